"""``export(run, format)``: the run's model as a ``.keras`` file, a TF SavedModel or an ONNX file.

Every export takes the *preprocessed* float32 NHWC batch (after resize, padding and
normalisation) and outputs **softmax probabilities**: the run's logits model with a
``Softmax`` layer on top, so the export can be used without knowing that cnnlab models return
logits. Beside it, ``<export>.json`` records the class names, the input shape and the
preprocessing (``Preprocessing.to_dict()``: size, channels, padding, normalisation statistics),
which is all a user of the export alone needs to repeat the training-time input pipeline.

Writers: ``Model.save`` for Keras (https://keras.io/api/models/model_saving_apis/), and Keras 3's
``Model.export`` for ``tf_saved_model`` and ``onnx`` (https://keras.io/api/models/model_saving_apis/export/).
Each is written into a temporary name beside the destination and renamed into place, so an
interrupted export never leaves a half-written model where a user would look for one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.inference.forward import RunLike, load_model, open_run
from cnnlab.io import MAGIC, check_output_path

FORMATS = ("keras", "saved_model", "onnx")
EXPORT_DIR = "export"
DEFAULT_NAMES = {"keras": "model.keras", "saved_model": "saved_model", "onnx": "model.onnx"}
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class Exported:
    """Where an export went: the model (file or SavedModel folder) and its JSON sidecar."""

    format: str
    path: Path
    metadata: Path


def metadata_path(path: str | os.PathLike) -> Path:
    """The sidecar of an export: its path plus ``.json`` (``model.onnx.json``, ``saved_model.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def probability_model(model):
    """``model`` (logits out) followed by a softmax: a new Keras model sharing the same weights."""
    from cnnlab._keras import keras

    inputs = keras.Input(shape=tuple(model.input_shape[1:]), dtype="float32", name=INPUT_NAME)
    outputs = keras.layers.Softmax(name=OUTPUT_NAME)(model(inputs))
    wrapped = keras.Model(inputs, outputs, name=f"{model.name}_probabilities")
    # Keras's ONNX exporter refuses a model that has never been called on data.
    wrapped(np.zeros((1, *wrapped.input_shape[1:]), dtype="float32"), training=False)
    return wrapped


def export(
    run_or_path: RunLike,
    format: str = "keras",
    out: str | os.PathLike | None = None,
    *,
    which: str = "final",
    force: bool = False,
) -> Exported:
    """Export a run's model (``which``: final, best or latest) in ``format``; return where it went.

    ``out`` defaults to ``RUN/export/model.keras``, ``RUN/export/saved_model`` or
    ``RUN/export/model.onnx``. An existing export at ``out`` is replaced only once the new one
    is complete. ``out`` is checked first (:func:`cnnlab.io.check_output_path`): never one of the
    run's own files, never over a file of another kind (a regular file where a SavedModel folder
    goes, a text file where a .keras zip goes) unless ``force``.
    """
    if format not in FORMATS:
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {format!r}")
    run = open_run(run_or_path)
    path = Path(out) if out is not None else Path(run.path) / EXPORT_DIR / DEFAULT_NAMES[format]
    if format == "keras" and path.suffix != ".keras":
        raise ConfigError(f"--out: a Keras export must end in .keras, got {path}")
    kind = "dir" if format == "saved_model" else "file"
    check_output_path(
        path,
        kind=kind,
        force=force,
        magic=MAGIC["keras"] if format == "keras" else None,
        marker="saved_model.pb" if kind == "dir" else None,
    )
    sidecar = metadata_path(path)
    check_output_path(sidecar, kind="file", force=force, option="--out (its .json sidecar)")
    model = probability_model(load_model(run, which))
    _WRITERS[format](model, path)
    _write_metadata(sidecar, run, model, format, path, which)
    return Exported(format=format, path=path, metadata=sidecar)


def _write_keras(model, path: Path) -> None:
    from cnnlab.io import atomic_path

    with atomic_path(path) as tmp:
        model.save(tmp)


def _write_saved_model(model, path: Path) -> None:
    _require_backend("saved_model", "tensorflow", "jax")
    with _atomic_directory(path) as tmp, _quiet_exporter():
        model.export(os.fspath(tmp), format="tf_saved_model", verbose=False)


def _write_onnx(model, path: Path) -> None:
    from cnnlab.io import atomic_path

    try:
        with atomic_path(path, suffix=".onnx") as tmp, _quiet_exporter():
            model.export(os.fspath(tmp), format="onnx", verbose=False)
    except ImportError as exc:  # each backend has its own converter (tf2onnx, jax2onnx, torch.onnx's onnxscript)
        from cnnlab._keras import keras

        raise ConfigError(
            f"--format onnx: the {keras.backend.backend()} backend's ONNX converter is not installed "
            f"({' '.join(str(exc).split())}); install it, or export with --backend tensorflow"
        ) from None


_WRITERS = {"keras": _write_keras, "saved_model": _write_saved_model, "onnx": _write_onnx}


def _require_backend(format: str, *backends: str) -> None:
    from cnnlab._keras import keras

    if keras.backend.backend() not in backends:
        raise ConfigError(
            f"--format {format}: needs the {' or '.join(backends)} backend, not {keras.backend.backend()!r}; "
            f"export with --backend {backends[0]}"
        )


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the converters' chatter (TensorFlow's native log lines, tf2onnx's NumPy FutureWarnings)."""
    from cnnlab.backend import quiet_native_stderr

    with warnings.catch_warnings(), quiet_native_stderr():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@contextlib.contextmanager
def _atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a not-yet-existing folder path beside ``path``; on success it takes ``path``'s place.

    A directory cannot be ``os.replace``d over a non-empty one, so an old export is first renamed
    aside, the new one renamed in, and only then the old one deleted.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield staging / path.name
        if path.exists():
            os.replace(path, staging / "previous")  # deleted with the staging folder below
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_metadata(sidecar: Path, run, model, format: str, path: Path, which: str) -> None:
    from cnnlab import __version__
    from cnnlab._keras import keras
    from cnnlab.io import atomic_write_json

    input_name, output_name = INPUT_NAME, OUTPUT_NAME
    if format == "onnx":  # the names the graph really has: what session.run([name], {name: x}) needs
        input_name, output_name = onnx_io_names(path)
    metadata = {
        "format": format,
        "model_file": path.name,
        "run": os.fspath(run.path),
        "checkpoint": which,
        "input": {
            "name": input_name,
            "shape": [None, *model.input_shape[1:]],
            "dtype": "float32",
            "layout": "NHWC",
            "preprocessed": True,
        },
        "output": {"name": output_name, "kind": "softmax probabilities", "shape": [None, len(run.class_names)]},
        "class_names": list(run.class_names),
        "preprocessing": run.preprocessing.to_dict(),
        "how_to_use": _USAGE[format].format(input=input_name, output=output_name),
        "versions": {"cnnlab": __version__, "keras": keras.__version__, "backend": keras.backend.backend()},
    }
    atomic_write_json(sidecar, metadata)


_USAGE = {
    "keras": "keras.saving.load_model(path).predict(x)",
    "saved_model": "tf.saved_model.load(path).serve(x)",
    "onnx": "onnxruntime.InferenceSession(path).run(['{output}'], {{'{input}': x}})[0]",
}


def onnx_io_names(path: Path) -> tuple[str, str]:
    """(input name, output name) of an ONNX graph, read from the file (the converter picks the output's name)."""
    try:
        import onnx
    except ImportError:  # the converters depend on it, so this is only a safety net
        return INPUT_NAME, OUTPUT_NAME
    graph = onnx.load(os.fspath(path), load_external_data=False).graph
    initialisers = {init.name for init in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initialisers]
    return inputs[0], graph.output[0].name
