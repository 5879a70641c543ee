"""A short real MNIST run and a real uvicorn server on 127.0.0.1 serving it, shared by the serving tests."""

from __future__ import annotations

import importlib.util

import pytest

from tests.serve.helpers import Server, train_mnist_run

if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
    pytest.skip("the serve extra is not installed: pip install 'cnnlab[serve]'", allow_module_level=True)


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory):
    return train_mnist_run(tmp_path_factory)


@pytest.fixture(scope="session")
def server(mnist_run):
    """``cnnlab serve`` with micro-batching (the default), in its own process."""
    process = Server(mnist_run.path)
    yield process
    process.stop()
