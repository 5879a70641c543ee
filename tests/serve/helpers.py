"""Helpers shared by the serving tests: a short real MNIST run, a real uvicorn server, a free port."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from tests.conftest import REPO, require_data

TRAIN_IMAGES = 3000
EVAL_IMAGES = 500


def train_mnist_run(tmp_path_factory):
    """LeNet-5 on 3,000 real MNIST training images for one epoch, evaluated (confusion matrix) on 500.

    Kept in the session's temporary root, so the explanation and serving tests share one run.
    """
    data_dir = require_data("mnist")
    from cnnlab.evaluation import evaluate
    from cnnlab.training import Run, train

    folder = tmp_path_factory.getbasetemp() / "shared-runs"
    path = folder / "lenet5-mnist"
    if (path / "evaluation-test.json").is_file():
        return Run.load(path)
    run = train(
        "lenet5",
        "mnist",
        name="lenet5-mnist",
        runs_dir=folder,
        data_dir=data_dir.parent,
        epochs=1,
        batch_size=50,
        pad=2,
        val_split=1000,
        max_train_samples=TRAIN_IMAGES,
        max_eval_samples=EVAL_IMAGES,
        seed=0,
        verbose=False,
    )
    evaluate(run)
    return run


def confident_test_digits(run, count: int = 1, threshold: float = 0.95):
    """Indices, images and labels of test digits the run classifies correctly with probability > threshold."""
    from cnnlab.inference.forward import predict_logits, softmax

    test = run.dataset().test
    probabilities = softmax(predict_logits(run.model(), test.x, run.preprocessing))
    good = np.flatnonzero((probabilities.argmax(1) == test.y) & (probabilities.max(1) > threshold))
    assert len(good) >= count, f"the short run classifies fewer than {count} test digits with p > {threshold}"
    chosen = good[:count]
    return chosen, test.x[chosen], test.y[chosen]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``python -m cnnlab serve RUN`` in a real subprocess on 127.0.0.1 and a free port."""

    def __init__(self, run_path: Path, *args: str, timeout: float = 180):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"),
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        }
        self.log = open(Path(run_path).parent / f"server-{self.port}.log", "w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cnnlab", "serve", str(run_path), "--port", str(self.port), *args],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}: {self.output()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not answer /health within {timeout} s: {self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def request(
    url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None, timeout: float = 60
) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of one HTTP request; 4xx/5xx replies are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read() or b"null"), dict(reply.headers)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body else None, dict(exc.headers)


def multipart(files: list[tuple[str, bytes]], fields: dict | None = None, field: str = "file") -> tuple[bytes, str]:
    """A multipart/form-data body with ``files`` (name, bytes) and text ``fields``; returns (body, content type)."""
    boundary = "cnnlab-test-boundary-7d1f"
    parts = []
    for key, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    for name, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
