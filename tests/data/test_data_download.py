"""Downloads against a real HTTP server on 127.0.0.1: good, dead, cut and wrong mirrors."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data.download import fetch_missing
from cnnlab.data.sources import MNIST, FileSpec, Source
from cnnlab.errors import DataError
from tests.conftest import assert_clean_error, require_data, run_cli

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SPEC = FileSpec("blob.bin", len(PAYLOAD), hashlib.md5(PAYLOAD).hexdigest(), hashlib.sha256(PAYLOAD).hexdigest())
SOURCE = Source("toy", (SPEC,), ())


class MirrorServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` under /good/, a first response cut halfway under /cut/, wrong bytes under /bad/."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_done: set[str] = set()
        super().__init__(("127.0.0.1", 0), Handler)

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{kind}/"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        server: MirrorServer = self.server
        rng = self.headers.get("Range")
        server.requests.append((self.path, rng))
        kind, _, name = self.path.strip("/").partition("/")
        data = server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        if kind == "bad":
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]  # same size, wrong content
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "cut" and name not in server.cut_done:
            server.cut_done.add(name)
            self.wfile.write(body[: len(body) // 2])  # then drop the connection
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = MirrorServer({SPEC.name: PAYLOAD})
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def dead_url():
    """A port nobody listens on: connection refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_dead_mirror_then_good_one(tmp_path, server, dead_url):
    fetch_missing(SOURCE, tmp_path / "toy", [SPEC], mirrors=[dead_url, server.url("good")])
    assert (tmp_path / "toy" / "blob.bin").read_bytes() == PAYLOAD
    assert _leftovers(tmp_path / "toy") == ["blob.bin"]  # no .part left behind


def test_cut_transfer_resumes_from_part_file_with_range(tmp_path, server):
    fetch_missing(SOURCE, tmp_path, [SPEC], mirrors=[server.url("cut")])
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    (first, no_range), (second, rng) = server.requests
    assert no_range is None
    assert rng is not None and rng.startswith("bytes=") and 0 < int(rng[6:].rstrip("-")) < len(PAYLOAD)


def test_partial_file_from_an_earlier_run_is_resumed(tmp_path, server):
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:1000])
    fetch_missing(SOURCE, tmp_path, [SPEC], mirrors=[server.url("good")])
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/good/blob.bin", "bytes=1000-")]


def test_wrong_checksum_is_discarded_and_next_mirror_used(tmp_path, server):
    fetch_missing(SOURCE, tmp_path, [SPEC], mirrors=[server.url("bad"), server.url("good")])
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/bad/blob.bin", "/good/blob.bin"]


def test_only_wrong_mirror_fails_and_keeps_nothing(tmp_path, server):
    with pytest.raises(DataError, match="checksum") as err:
        fetch_missing(SOURCE, tmp_path, [SPEC], mirrors=[server.url("bad")])
    assert "\n" not in str(err.value)
    assert _leftovers(tmp_path) == []


def test_offline_error_names_files_and_folder(tmp_path, dead_url):
    with pytest.raises(DataError) as err:
        fetch_missing(SOURCE, tmp_path / "toy", [SPEC], mirrors=[dead_url])
    message = str(err.value)
    assert "blob.bin" in message and str(tmp_path / "toy") in message and "\n" not in message


def test_cli_downloads_mnist_from_a_mirror_and_verifies_it(tmp_path):
    """End to end: the real MNIST files served over HTTP, fetched on first use, checksums verified."""
    real = require_data("mnist")
    files = {spec.name: (real / spec.name).read_bytes() for spec in MNIST.files}
    srv = MirrorServer(files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        out = tmp_path / "grid.png"
        proc = run_cli(
            "--data-dir",
            data_dir,
            "show",
            "mnist",
            "--out",
            out,
            "--grid",
            "2x2",
            env={"CNNLAB_MIRRORS": f"{srv.url('cut')} {srv.url('good')}"},
        )
    finally:
        srv.shutdown()
        srv.server_close()
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # `show` reads the training split only, so only its two files are fetched.
    assert sorted(p.name for p in (data_dir / "mnist").iterdir()) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    for spec in MNIST.files[:2]:
        assert hashlib.md5((data_dir / "mnist" / spec.name).read_bytes()).hexdigest() == spec.md5


def test_cli_offline_is_one_line_naming_files_and_folder(tmp_path, dead_url):
    out = tmp_path / "grid.png"
    proc = run_cli("--data-dir", tmp_path, "show", "fashion_mnist", "--out", out, env={"CNNLAB_MIRRORS": dead_url})
    assert_clean_error(proc, "train-images-idx3-ubyte.gz", str(tmp_path / "fashion-mnist"))
    assert not out.exists()
    assert not list((tmp_path / "fashion-mnist").glob("*"))


def test_read_only_data_dir_is_not_touched(tmp_path, server):
    read_only = tmp_path / "shared"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        with pytest.raises(DataError, match="read-only, so nothing was downloaded"):
            fetch_missing(SOURCE, read_only / "toy", [SPEC], mirrors=[server.url("good")])
        assert server.requests == [] and _leftovers(read_only) == []
    finally:
        read_only.chmod(0o755)


def test_failed_download_leaves_no_empty_folder(tmp_path, dead_url):
    with pytest.raises(DataError):
        fetch_missing(SOURCE, tmp_path / "new" / "toy", [SPEC], mirrors=[dead_url])
    assert not (tmp_path / "new" / "toy").exists()
