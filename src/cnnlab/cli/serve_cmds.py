"""``cnnlab serve RUN``: the run's model behind an HTTP API and a page, on uvicorn (the ``serve`` extra)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; anything but 127.0.0.1 is reachable from other machines."
    ),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    batching: bool = typer.Option(
        True, "--batching/--no-batching", help="Gather concurrent requests into one forward pass (micro-batching)."
    ),
    max_batch: int = typer.Option(32, "--max-batch", help="Images per forward pass when batching."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="How long a batch waits for more requests (ms)."),
    max_upload_bytes: int = typer.Option(8 * 1024 * 1024, "--max-upload-bytes", help="Largest request body."),
    max_pixels: int = typer.Option(4096 * 4096, "--max-pixels", help="Largest image, in pixels, before decoding."),
    top_k: int = typer.Option(3, "--top-k", help="Classes per image unless the request says."),
    checkpoint: str = typer.Option(
        "final",
        "--checkpoint",
        metavar="final|best|latest",
        help="Which weights: final (model.keras), best or latest checkpoint.",
    ),
) -> None:
    """Serve a run: POST /predict (multipart or JSON), GET /model, GET /health, and a page at /."""
    import importlib.util

    from cnnlab.errors import ConfigError

    missing = [name for name in ("fastapi", "uvicorn", "python_multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"serve: needs {', '.join(missing)}; install them with: pip install 'cnnlab[serve]'")
    from cnnlab.serve.app import serve as serve_run

    serve_run(
        run,
        host=host,
        port=port,
        batching=batching,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels,
        top_k=top_k,
        which=checkpoint,
        announce=typer.echo,
    )
