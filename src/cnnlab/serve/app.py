"""``create_app(run)``: a FastAPI app serving a run's model, and ``serve(run)`` to run it on uvicorn.

Routes: ``GET /`` (the page, from the package's static folder), ``POST /predict``, ``GET /model``
(the model card), ``GET /model/confusion-matrix.png``, ``GET /health``, ``GET /openapi.json``.

Predictions go through :func:`cnnlab.inference.prediction.predict_images`, the function behind
``cnnlab predict``, after decoding with the same :func:`~cnnlab.inference.prediction.read_image`:
a file gets the same probabilities from both. Every bad request gets a JSON reply
``{"error": "<one line>", "status": <4xx>}``; uploads are read into memory under a size cap and
never written to disk; pictures are checked for their pixel count before they are decoded
(decompression bombs).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fastapi import Request  # at module level: FastAPI resolves the handlers' annotations here

from cnnlab.errors import CnnlabError
from cnnlab.serve.requests import BadRequest, option_bool, option_int, parse_predict_body, read_body

STATIC_DIR = Path(__file__).parent / "static"
_log = logging.getLogger("cnnlab.serve")


@dataclass
class ServeOptions:
    """Limits and batching of one server (``cnnlab serve`` flags of the same names)."""

    batching: bool = True  # gather concurrent requests into one forward pass
    max_batch: int = 32  # images per forward pass when batching
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for company
    max_upload_bytes: int = 8 * 1024 * 1024  # whole request body
    max_pixels: int = 4096 * 4096  # per image, checked before decoding
    max_images: int = 64  # per request
    top_k: int = 3
    which: str = "final"

    def check(self) -> ServeOptions:
        from cnnlab.errors import ConfigError

        for name in ("max_batch", "max_upload_bytes", "max_pixels", "max_images", "top_k"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"--{name.replace('_', '-')}: expected a positive integer, got {getattr(self, name)}")
        if not self.max_wait_ms >= 0:
            raise ConfigError(f"--max-wait-ms: expected a number >= 0, got {self.max_wait_ms}")
        return self


class ModelService:
    """The run, its model and everything computed once: input statistics, the Grad-CAM explainer."""

    def __init__(self, run, options: ServeOptions):
        from cnnlab.inference.forward import FORWARD_BUCKETS, compiled_forward, load_model
        from cnnlab.inference.input_check import InputChecker

        self.run = run
        self.options = options
        self.model = load_model(run, options.which)
        self.forward = compiled_forward(self.model)  # one model called many times: compile its step once
        self.checker = InputChecker(run)
        self._explainer = None
        self.num_classes = len(run.class_names)
        # One thread runs the model: requests never race on it, and the event loop stays free.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnlab-model")
        height, width = run.preprocessing.image_size
        # Warm up: compile the forward step for every batch size a request can bring.
        largest = max(options.max_batch, options.max_images) if options.batching else options.max_images
        for size in [b for b in FORWARD_BUCKETS if b < largest] + [largest]:
            self.forward(np.zeros((size, *run.preprocessing.output_shape), np.float32))

    @property
    def explainer(self):
        if self._explainer is None:
            from cnnlab.explain import Explainer

            self._explainer = Explainer(self.model, self.run.preprocessing, self.run.class_names)
        return self._explainer

    def decode(self, upload) -> tuple[np.ndarray, dict]:
        """An upload as uint8 (H, W, C) at the training size, with its original size and channels."""
        from PIL import Image, UnidentifiedImageError

        from cnnlab.inference.prediction import read_image

        try:
            with Image.open(io.BytesIO(upload.data)) as probe:  # reads the header only
                width, height = probe.size
        except Image.DecompressionBombError:  # Pillow's own limit, far above ours
            raise BadRequest(
                413, f"{upload.name}: more pixels than the limit of {self.options.max_pixels} (a decompression bomb?)"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            raise BadRequest(400, f"{upload.name}: not a readable image ({type(exc).__name__})") from None
        if width * height > self.options.max_pixels:
            raise BadRequest(
                413,
                f"{upload.name}: {width}x{height} pixels exceeds the limit of "
                f"{self.options.max_pixels} pixels (a decompression bomb?)",
            )
        try:
            return read_image(self.run.preprocessing, upload.data, upload.name)
        except CnnlabError as exc:
            raise BadRequest(400, str(exc)) from None

    def predict_batch(self, images: np.ndarray) -> list[dict]:
        """Every class's probability for each image, by the prediction path of ``cnnlab predict``."""
        from cnnlab.inference.prediction import predict_images

        names = [""] * len(images)
        return predict_images(self.run, self.model, images, names, top_k=self.num_classes, forward=self.forward)

    def gradcam_png(self, image: np.ndarray, target: int) -> str:
        from cnnlab.explain.overlay import overlay, png_bytes

        heat = self.explainer.maps(image[None], "gradcam", [target])[0]
        return "data:image/png;base64," + base64.b64encode(png_bytes(overlay(image, heat))).decode("ascii")


class MicroBatcher:
    """Concurrent requests' images gathered into one forward pass: a queue, a maximum batch and wait."""

    def __init__(self, service: ModelService, max_batch: int, max_wait_ms: float):
        self.service = service
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.batches = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._worker())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass

    async def predict(self, images: np.ndarray) -> list[dict]:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((images, future))
        return await future

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self.queue.get()]
            count = len(items[0][0])
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                remaining = deadline - loop.time()
                try:
                    item = (
                        self.queue.get_nowait()
                        if remaining <= 0
                        else await asyncio.wait_for(self.queue.get(), remaining)
                    )
                except (asyncio.TimeoutError, asyncio.QueueEmpty):
                    break
                items.append(item)
                count += len(item[0])
            images = np.concatenate([images for images, _ in items])
            try:
                results = await loop.run_in_executor(self.service.executor, self.service.predict_batch, images)
            except Exception as exc:  # pragma: no cover - handed to every waiting request
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            start = 0
            for part, future in items:
                if not future.done():
                    future.set_result(results[start : start + len(part)])
                start += len(part)


def model_card(service: ModelService) -> dict:
    """What ``GET /model`` returns: the architecture, classes, input and preprocessing, test metrics."""
    from cnnlab.models import count_params

    run = service.run
    train = run.config.get("train", {})
    pre = run.preprocessing.to_dict()
    for key in ("mean", "std"):  # the per-pixel mean image of "center" is long; show its size only
        value = pre.get(key)
        if isinstance(value, list) and np.asarray(value).size > 3:
            pre[key] = f"array of shape {list(np.asarray(value).shape)}"
    metrics = run.metrics or {}
    evaluation = None
    report = run.path / "evaluation-test.json"
    if report.is_file():
        import json

        try:
            data = json.loads(report.read_text())
            evaluation = {k: data.get(k) for k in ("accuracy", "loss", "top5_accuracy", "num_examples")}
        except ValueError:
            evaluation = None
    confusion = (run.path / "plots" / "confusion_matrix.png").is_file()
    stats = service.checker.stats
    return {
        "run": run.name,
        "model": train.get("model"),
        "dataset": train.get("dataset"),
        "classes": run.class_names,
        "input_shape": list(run.input_shape),
        "image_size": list(run.preprocessing.image_size),
        "channels": run.preprocessing.channels,
        "preprocessing": pre,
        "parameters": int(count_params(service.model).total),
        "trained": {k: metrics.get(k) for k in ("epochs", "steps", "seconds", "backend", "seed") if k in metrics},
        "test_metrics": {k: metrics.get(k) for k in ("accuracy", "loss", "n") if k in metrics} or None,
        "evaluation": evaluation,
        "confusion_matrix_url": "/model/confusion-matrix.png" if confusion else None,
        "training_background": service.checker.polarity,
        "input_statistics": stats,
        "gradcam_layer": service.explainer.layer.name,
        "serving": asdict(service.options),
    }


def create_app(run_or_path, options: ServeOptions | None = None, **overrides):
    """The FastAPI app for a run (a path or a loaded :class:`~cnnlab.training.Run`)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from cnnlab.inference.forward import open_run

    options = (options or ServeOptions(**overrides)).check()
    run = open_run(run_or_path)
    service = ModelService(run, options)
    batcher = MicroBatcher(service, options.max_batch, options.max_wait_ms) if options.batching else None

    @asynccontextmanager
    async def lifespan(app):
        if batcher is not None:
            batcher.start()
        yield
        if batcher is not None:
            await batcher.stop()
        service.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title=f"cnnlab: {run.name}",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Classify images with a cnnlab run's model. The page at / draws or uploads an image.",
    )
    app.state.service = service
    app.state.batcher = batcher

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "status": status}, status_code=status)

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest):
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404:
            message = f"{request.url.path}: not found"
        elif exc.status_code == 405:
            message = f"{request.method} {request.url.path}: method not allowed"
        return error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health", summary="Liveness and the model served")
    async def health():
        return {
            "status": "ok",
            "run": run.name,
            "model": run.config["train"].get("model"),
            "batching": options.batching,
        }

    card = model_card(service)

    @app.get("/model", summary="Model card: architecture, classes, input, preprocessing, test metrics")
    async def model():
        return card

    @app.get(
        "/model/confusion-matrix.png",
        summary="The run's test confusion matrix (from cnnlab evaluate)",
        response_class=FileResponse,
    )
    async def confusion_matrix():
        path = run.path / "plots" / "confusion_matrix.png"
        if not path.is_file():
            raise BadRequest(404, f"no confusion matrix for this run yet: run cnnlab evaluate {run.name}")
        return FileResponse(path, media_type="image/png")

    request_body = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "top_k": {"type": "integer"},
                        "gradcam": {"type": "boolean"},
                        "invert": {"type": "boolean"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {"type": "array", "items": {"type": "string", "description": "base64 or data URL"}},
                        "names": {"type": "array", "items": {"type": "string"}},
                        "top_k": {"type": "integer"},
                        "gradcam": {"type": "boolean"},
                        "invert": {"type": "boolean"},
                    },
                }
            },
        },
    }

    @app.post(
        "/predict",
        summary="Top-k classes of one or several images, optionally with a Grad-CAM overlay",
        openapi_extra={"requestBody": request_body},
    )
    async def predict(request: Request):
        started = time.perf_counter()
        body = await read_body(request, options.max_upload_bytes)
        parsed = parse_predict_body(request.headers.get("content-type", ""), body, options.max_images)
        settings = {**dict(request.query_params), **parsed.options}
        top_k = option_int(settings, "top_k", options.top_k, 1, service.num_classes)
        gradcam = option_bool(settings, "gradcam")
        invert = option_bool(settings, "invert")
        decoded = [service.decode(upload) for upload in parsed.images]
        images = np.stack([image for image, _ in decoded])
        if invert:
            images = 255 - images
        warnings = service.checker.warnings(images, [info for _, info in decoded])
        if batcher is not None:
            full = await batcher.predict(images)
        else:
            full = await asyncio.get_running_loop().run_in_executor(service.executor, service.predict_batch, images)
        predictions = []
        for upload, image, result, notes in zip(parsed.images, images, full, warnings):
            entry = {"file": upload.name, "top": result["top"][:top_k], "warnings": notes}
            if gradcam:
                target = result["top"][0]["index"]
                entry["gradcam"] = await asyncio.get_running_loop().run_in_executor(
                    service.executor, service.gradcam_png, image, target
                )
            predictions.append(entry)
        # Plain JSON types already: a JSONResponse skips FastAPI's recursive encoder (a share of every request).
        return JSONResponse(
            {
                "predictions": predictions,
                "model": run.config["train"].get("model"),
                "run": run.name,
                "seconds": round(time.perf_counter() - started, 6),
            }
        )

    return app


def serve(
    run_or_path, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "warning", announce=print, **options
) -> None:
    """Serve a run on uvicorn until interrupted (``cnnlab serve``)."""
    import uvicorn

    from cnnlab.errors import ConfigError

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port: expected 0-65535, got {port}")
    app = create_app(run_or_path, **options)
    if host not in ("127.0.0.1", "localhost", "::1"):
        _log.warning("serving on %s: reachable from other machines", host)
    # Everything alive now (TensorFlow, Keras, the model and its traced steps: millions of objects)
    # lives as long as the server. Moved out of the collector's reach, they are no longer walked by
    # every full collection, which otherwise stalled all requests in flight for about half a second
    # under load: about one LeNet-5 request in twenty took ten times the median.
    gc.collect()
    gc.freeze()
    announce(f"Serving {app.state.service.run.name} on http://{host}:{port}/  (Ctrl+C to stop)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        limit_concurrency=int(os.environ.get("CNNLAB_SERVE_CONCURRENCY", "512")),
    )
