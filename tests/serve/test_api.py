"""The HTTP API against a real ``cnnlab serve`` process on 127.0.0.1: answers, limits, bad requests."""

from __future__ import annotations

import base64
import io
import json
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from tests.serve.helpers import Server, confident_test_digits, multipart, request


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def digits(mnist_run, tmp_path_factory):
    """Three confidently classified test digits as PNG files, with their labels."""
    _, images, labels = confident_test_digits(mnist_run, 3)
    folder = tmp_path_factory.mktemp("digits")
    paths = []
    for i, (image, label) in enumerate(zip(images, labels)):
        paths.append(folder / f"digit-{i}-true-{label}.png")
        paths[-1].write_bytes(png(image[..., 0]))
    return paths, labels


def test_health_model_card_and_openapi(server, mnist_run):
    status, body, _ = request(server.url + "/health")
    assert status == 200 and body["status"] == "ok" and body["model"] == "lenet5"
    status, card, _ = request(server.url + "/model")
    assert status == 200
    assert card["classes"] == mnist_run.class_names
    assert card["input_shape"] == [32, 32, 1] and card["image_size"] == [28, 28] and card["channels"] == 1
    assert card["preprocessing"]["pad"] == 2 and card["parameters"] == 61706
    assert card["test_metrics"]["accuracy"] == pytest.approx(mnist_run.metrics["accuracy"])
    assert card["training_background"] == "dark" and card["gradcam_layer"] == "conv2"
    status, schema, _ = request(server.url + "/openapi.json")
    assert status == 200 and {"/predict", "/model", "/health"} <= set(schema["paths"])
    assert "multipart/form-data" in schema["paths"]["/predict"]["post"]["requestBody"]["content"]


def test_confusion_matrix_image(server):
    import urllib.request

    with urllib.request.urlopen(server.url + "/model/confusion-matrix.png", timeout=30) as reply:
        assert reply.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(reply.read())).size[0] > 100


def test_server_and_cli_give_the_same_probabilities(server, mnist_run, digits):
    paths, labels = digits
    proc = run_cli("predict", mnist_run.path, *paths, "--top-k", "10", "--json")
    assert proc.returncode == 0, proc.stderr
    expected = json.loads(proc.stdout)
    body, content_type = multipart([(p.name, p.read_bytes()) for p in paths], {"top_k": "10"})
    status, reply, _ = request(server.url + "/predict", body, {"Content-Type": content_type})
    assert status == 200, reply
    assert len(reply["predictions"]) == len(paths)
    for cli, served, path, label in zip(expected, reply["predictions"], paths, labels):
        assert served["file"] == path.name and served["warnings"] == []
        assert served["top"][0]["index"] == int(label)
        cli_p = {t["index"]: t["probability"] for t in cli["top"]}
        served_p = {t["index"]: t["probability"] for t in served["top"]}
        assert set(cli_p) == set(served_p) == set(range(10))
        for index in cli_p:
            assert served_p[index] == pytest.approx(cli_p[index], abs=1e-6)


def test_json_base64_top_k_and_gradcam(server, digits):
    paths, labels = digits
    data = {
        "images": [
            base64.b64encode(paths[0].read_bytes()).decode(),
            "data:image/png;base64," + base64.b64encode(paths[1].read_bytes()).decode(),
        ],
        "names": ["a.png", "b.png"],
        "top_k": 2,
        "gradcam": True,
    }
    status, reply, _ = request(server.url + "/predict", json.dumps(data).encode(), {"Content-Type": "application/json"})
    assert status == 200, reply
    first, second = reply["predictions"]
    assert [first["file"], second["file"]] == ["a.png", "b.png"]
    assert len(first["top"]) == 2 and first["top"][0]["index"] == int(labels[0])
    assert second["top"][0]["index"] == int(labels[1])
    assert first["top"][0]["probability"] >= first["top"][1]["probability"]
    header, _, payload = first["gradcam"].partition(",")
    assert header == "data:image/png;base64"
    overlay = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert overlay.mode == "RGB" and min(overlay.size) >= 128


def test_inverted_digit_is_flagged_and_fixed(server, mnist_run, digits, tmp_path):
    """A dark-on-light digit gets a warning naming the fix; with invert it is read right (server and CLI)."""
    paths, labels = digits
    negative = tmp_path / "negative.png"
    negative.write_bytes(png(255 - np.asarray(Image.open(paths[0]))))
    body, content_type = multipart([("negative.png", negative.read_bytes())])
    status, reply, _ = request(server.url + "/predict", body, {"Content-Type": content_type})
    assert status == 200
    assert any("invert" in w for w in reply["predictions"][0]["warnings"])
    body, content_type = multipart([("negative.png", negative.read_bytes())], {"invert": "true"})
    status, reply, _ = request(server.url + "/predict", body, {"Content-Type": content_type})
    assert reply["predictions"][0]["warnings"] == [] and reply["predictions"][0]["top"][0]["index"] == int(labels[0])

    proc = run_cli("predict", mnist_run.path, negative)
    assert proc.returncode == 0 and "cnnlab: warning:" in proc.stderr and "--invert" in proc.stderr
    from cnnlab.inference import predict

    fixed = predict(mnist_run, negative, invert=True)[0]
    assert "warnings" not in fixed and fixed["top"][0]["index"] == int(labels[0])


def _bomb_png(side: int) -> bytes:
    """A valid PNG header and a tiny compressed stream declaring side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 8-bit grayscale
    rows = zlib.compress(b"\x00" * (side + 1) * 64, 9)  # only the first rows: never decoded anyway
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


BAD_REQUESTS = {
    "no body type": (lambda: (b"hello", {"Content-Type": "text/plain"}), 415, "Content-Type"),
    "not an image": (lambda: multipart([("notes.png", b"this is not a picture")]), 400, "notes.png"),
    "truncated image": (
        lambda: multipart([("cut.png", png(np.random.default_rng(0).integers(0, 256, (28, 28), np.uint8))[:300])]),
        400,
        "cut.png",
    ),
    "no image": (lambda: multipart([], {"top_k": "3"}), 400, "no image"),
    "top_k too large": (
        lambda: multipart([("d.png", png(np.zeros((28, 28), np.uint8)))], {"top_k": "11"}),
        422,
        "top_k",
    ),
    "top_k not a number": (
        lambda: multipart([("d.png", png(np.zeros((28, 28), np.uint8)))], {"top_k": "many"}),
        422,
        "top_k",
    ),
    "gradcam not a bool": (
        lambda: multipart([("d.png", png(np.zeros((28, 28), np.uint8)))], {"gradcam": "perhaps"}),
        422,
        "gradcam",
    ),
    "bad JSON": (lambda: (b"{not json", {"Content-Type": "application/json"}), 400, "JSON"),
    "JSON without images": (lambda: (b'{"pictures": []}', {"Content-Type": "application/json"}), 400, "images"),
    "bad base64": (lambda: (b'{"images": ["***"]}', {"Content-Type": "application/json"}), 400, "base64"),
    "broken multipart": (lambda: (b"--x\r\nbroken", {"Content-Type": "multipart/form-data; boundary=zz"}), 400, ""),
    "multipart without boundary": (lambda: (b"", {"Content-Type": "multipart/form-data"}), 400, "boundary"),
    "decompression bomb": (lambda: multipart([("bomb.png", _bomb_png(50_000))]), 413, "pixels"),
    "image over the pixel limit": (lambda: multipart([("huge.png", _bomb_png(5_000))]), 413, "pixels"),
    "too many images": (lambda: multipart([(f"{i}.png", b"x") for i in range(65)]), 413, "64 images"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_requests_get_a_json_4xx(server, case):
    make, expected_status, needle = BAD_REQUESTS[case]
    body, headers = make()
    headers = headers if isinstance(headers, dict) else {"Content-Type": headers}
    status, reply, reply_headers = request(server.url + "/predict", body, headers)
    assert status == expected_status, reply
    assert reply_headers["content-type"].startswith("application/json")
    assert reply["status"] == expected_status and needle.lower() in reply["error"].lower()
    assert "\n" not in reply["error"] and "Traceback" not in reply["error"]


@pytest.mark.parametrize(
    "path,method,status",
    [
        ("/nothing", "GET", 404),
        ("/predict", "GET", 405),
        ("/static/../../cnnlab/errors.py", "GET", 404),
        ("/static/%2e%2e/app.py", "GET", 404),
        ("/health", "DELETE", 405),
    ],
)
def test_unknown_routes_and_methods_are_json(server, path, method, status):
    got, reply, headers = request(server.url + path, method=method)
    assert got == status and reply["status"] == status and headers["content-type"].startswith("application/json")


def test_upload_limit(mnist_run, digits):
    """A body over --max-upload-bytes is refused with 413 before it is read; smaller ones pass."""
    paths, _ = digits
    server = Server(mnist_run.path, "--max-upload-bytes", "3000", "--no-batching")
    try:
        body, content_type = multipart([("big.bin", b"\0" * 5000)])
        status, reply, _ = request(server.url + "/predict", body, {"Content-Type": content_type})
        assert status == 413 and "3000 bytes" in reply["error"]
        body, content_type = multipart([(paths[0].name, paths[0].read_bytes())])
        assert len(body) < 3000
        status, reply, _ = request(server.url + "/predict", body, {"Content-Type": content_type})
        assert status == 200 and reply["predictions"][0]["top"]
        status, health, _ = request(server.url + "/health")
        assert health["batching"] is False
    finally:
        server.stop()


def test_concurrent_requests_are_batched_and_each_gets_its_answer(server, digits):
    """Many clients at once: every reply is its own image's (micro-batching must not mix them up)."""
    from concurrent.futures import ThreadPoolExecutor

    paths, labels = digits

    def one(i):
        path = paths[i % len(paths)]
        body, content_type = multipart([(path.name, path.read_bytes())])
        status, reply, _ = request(server.url + "/predict", body, {"Content-Type": content_type})
        return i, status, reply

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(48)))
    for i, status, reply in results:
        assert status == 200
        assert reply["predictions"][0]["file"] == paths[i % len(paths)].name
        assert reply["predictions"][0]["top"][0]["index"] == int(labels[i % len(paths)])


def test_page_and_static_files_are_served_offline(server):
    import urllib.request

    with urllib.request.urlopen(server.url + "/", timeout=30) as reply:
        page = reply.read().decode()
    for element in ("canvas", "file-input", "predictions", "gradcam", "model-card", "error", "invert"):
        assert f'id="{element}"' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere
    with urllib.request.urlopen(server.url + "/static/app.js", timeout=30) as reply:
        script = reply.read().decode()
    assert 'fetch("/predict"' in script and "https://" not in script
