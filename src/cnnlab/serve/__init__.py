"""Serving a run: a FastAPI app (``POST /predict``, ``GET /model``, ``GET /health``, the page at ``/``)
on uvicorn. Needs the ``serve`` extra: ``pip install 'cnnlab[serve]'``."""


def create_app(*args, **kwargs):
    from cnnlab.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)


def serve(*args, **kwargs):
    from cnnlab.serve.app import serve as _serve

    return _serve(*args, **kwargs)


__all__ = ["create_app", "serve"]
