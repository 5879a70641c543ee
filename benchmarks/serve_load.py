"""Load benchmark of ``cnnlab serve`` (not a test): requests/s and latency with micro-batching on and off,
and a soak with bad requests mixed in.

For each run given (e.g. a LeNet-5 MNIST run and a ResNet-20 CIFAR-10 run), a real server process is
started on 127.0.0.1 twice, with and without micro-batching; N clients, each with its own keep-alive
connection, post one image (multipart) as fast as the server answers for a fixed time. Then a soak:
the first run, micro-batching on, N clients for 60 s with 10% bad requests (bytes that are not an
image); it counts the replies by status (5xx must be zero) and compares the server's resident memory
(RSS) after warm-up and at the end. The host's CPU steal over the whole benchmark is printed.

The clients (``--client``): ``wrk`` (the HTTP load generator written in C, ``apt-get install wrk``;
the default when it is on the PATH) or ``python`` (N threads of ``http.client`` in this process).
On a machine with few CPUs the client shares them with the server, and N Python threads under one
interpreter lock can become the bottleneck themselves: wrk's one event-loop thread costs a fraction
of that, so the figures measure the server. The soak always uses the Python clients, which count
every reply by status.

    python benchmarks/serve_load.py RUN [RUN...] --clients 32 --seconds 15 --soak 60
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cpu_times() -> tuple[int, int]:
    """(total, steal) jiffies from /proc/stat's cpu line."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields[:8]), fields[7]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: str, batching: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-m", "cnnlab", "serve", run, "--port", str(port)]
    if not batching:
        args.append("--no-batching")
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return process, port
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"server for {run} exited with {process.returncode}") from None
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"server for {run} did not start")


def test_image(run: str) -> bytes:
    """The run's first test image as PNG (what a client would upload)."""
    sys.path.insert(0, str(REPO / "src"))
    from PIL import Image

    from cnnlab.training import Run

    image = Run.load(run).dataset().test.x[0]
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
    return buffer.getvalue()


BOUNDARY = "loadtestboundary"


def body(data: bytes, name: str = "image.png") -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def load(port: int, good: bytes, clients: int, seconds: float, bad_fraction: float = 0.0) -> dict:
    """``clients`` threads posting for ``seconds``; latencies of good requests and status counts."""
    bad = body(b"this is not an image" * 10, "bad.png")
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def client(index: int) -> None:
        rng = np.random.default_rng(index)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, counts = [], {}
        while time.monotonic() < stop:
            is_bad = rng.random() < bad_fraction
            started = time.perf_counter()
            try:
                connection.request("POST", "/predict", body=bad if is_bad else good, headers=headers)
                reply = connection.getresponse()
                reply.read()
                status = reply.status
            except (OSError, http.client.HTTPException):
                status = -1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - started
            counts[status] = counts.get(status, 0) + 1
            if not is_bad and status == 200:
                mine.append(elapsed)
        connection.close()
        with lock:
            latencies.extend(mine)
            for status, count in counts.items():
                statuses[status] = statuses.get(status, 0) + count

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000
    return {
        "requests": sum(statuses.values()),
        "ok": len(latencies),
        "seconds": wall,
        "rps": sum(statuses.values()) / wall,
        "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "statuses": statuses,
    }


def _seconds(text: str) -> float:
    """A wrk duration ("812.34us", "57.40ms", "1.02s", "2.00m") in seconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def load_wrk(port: int, good: bytes, clients: int, seconds: float) -> dict:
    """The same measurement as :func:`load`, with wrk as the client (one thread, ``clients`` connections)."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-wrk-") as folder:
        body_file = Path(folder) / "body.bin"
        body_file.write_bytes(good)
        script = Path(folder) / "post.lua"
        script.write_text(
            f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
            f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "multipart/form-data; boundary={BOUNDARY}"\n'
        )
        command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", "--timeout", "60s"]
        command += ["-s", str(script), f"http://127.0.0.1:{port}/predict"]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in ([\d.]+\w+)", out).group(1))
    wall = _seconds(re.search(r"\d+ requests in ([\d.]+\w+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)$", out, re.MULTILINE))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = sum(int(v) for v in errors.groups()) if errors else 0
    non_ok = int(bad.group(1)) if bad else 0
    statuses = {200: requests - non_ok, **({"non-2xx": non_ok} if non_ok else {}), **({-1: failed} if failed else {})}
    return {
        "requests": requests,
        "ok": requests - non_ok,
        "seconds": wall,
        "rps": requests / wall,
        "p50": _seconds(latency["50"]) * 1000,
        "p99": _seconds(latency["99"]) * 1000,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders to serve (the first is also soaked)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each throughput measurement")
    parser.add_argument("--soak", type=float, default=60.0, help="soak duration (0 = no soak)")
    parser.add_argument("--bad-fraction", type=float, default=0.1)
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator of the throughput measurements (auto: wrk when it is on the PATH)",
    )
    args = parser.parse_args()
    client = ("wrk" if shutil.which("wrk") else "python") if args.client == "auto" else args.client
    if client == "wrk" and not shutil.which("wrk"):
        sys.exit("serve_load: --client wrk: wrk is not on the PATH (apt-get install wrk)")
    measure = load_wrk if client == "wrk" else load
    print(f"clients: {args.clients} ({'wrk, one thread' if client == 'wrk' else 'Python threads'})", flush=True)

    total0, steal0 = cpu_times()
    rows = []
    for run in args.runs:
        image = body(test_image(run))
        for batching in (True, False):
            process, port = start_server(run, batching)
            try:
                measure(port, image, args.clients, 2.0)  # warm-up: connections, first batches
                result = measure(port, image, args.clients, args.seconds)
            finally:
                process.terminate()
                process.wait()
            rows.append((Path(run).name, batching, result))
            print(
                f"{Path(run).name:24s} batching {'on ' if batching else 'off'}  {result['rps']:7.1f} req/s  "
                f"p50 {result['p50']:7.1f} ms  p99 {result['p99']:7.1f} ms  ({result['requests']} requests, "
                f"statuses {result['statuses']})",
                flush=True,
            )

    if args.soak > 0:
        run = args.runs[0]
        process, port = start_server(run, True)
        try:
            image = body(test_image(run))
            load(port, image, args.clients, 3.0)
            rss_start = rss_kib(process.pid)
            soak = load(port, image, args.clients, args.soak, args.bad_fraction)
            rss_end = rss_kib(process.pid)
        finally:
            process.terminate()
            process.wait()
        errors = sum(count for status, count in soak["statuses"].items() if status >= 500 or status < 0)
        print(
            f"soak {Path(run).name}: {args.soak:.0f} s, {args.clients} clients, {args.bad_fraction:.0%} bad: "
            f"{soak['requests']} requests, statuses {dict(sorted(soak['statuses'].items()))}, 5xx/failed {errors}, "
            f"RSS {rss_start / 1024:.1f} -> {rss_end / 1024:.1f} MiB ({(rss_end - rss_start) / rss_start:+.1%})",
            flush=True,
        )

    total1, steal1 = cpu_times()
    steal = (steal1 - steal0) / max(total1 - total0, 1)
    print(
        f"host CPU steal over the benchmark: {steal:.1%}; {os.cpu_count()} CPUs; load average "
        f"{os.getloadavg()[0]:.1f} at the end"
    )
    print()
    print("| run | micro-batching | requests/s | p50 ms | p99 ms |")
    print("|---|---|---:|---:|---:|")
    for name, batching, result in rows:
        print(
            f"| {name} | {'on' if batching else 'off'} | {result['rps']:.1f} | {result['p50']:.1f} | "
            f"{result['p99']:.1f} |"
        )
    by_run = {}
    for name, batching, result in rows:
        by_run.setdefault(name, {})[batching] = result["rps"]
    for name, rates in by_run.items():
        if True in rates and False in rates and rates[False] > 0:
            print(f"{name}: micro-batching gives {rates[True] / rates[False]:.2f}x the requests/s")


if __name__ == "__main__":
    main()
