"""``explain(run, files, methods)``: what a run's model looks at, as arrays and PNG overlays.

Images go through the run's own preprocessing (:func:`cnnlab.inference.prediction.read_image` and
the run's :class:`~cnnlab.data.preprocessing.Preprocessing`); maps are computed on the network
input and cropped back to the image when the run pads its inputs. The class explained is the
predicted one unless ``target`` names another. Test-time augmentation is not applied: the maps
explain the plain network.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError

METHODS = ("gradcam", "gradcam++", "saliency", "smoothgrad", "integrated-gradients", "occlusion")
BASELINES = ("black", "blurred", "noise")


@dataclass
class Explanation:
    """One image's explanation: the image as the model saw it (before normalisation), its top classes,
    the class explained, and one (H, W) map per method (plus signed IG attributions (H, W, C))."""

    file: str
    image: np.ndarray
    top: list[dict]
    target: int
    target_class: str
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    attributions: np.ndarray | None = None
    files: dict[str, str] = field(default_factory=dict)


def check_methods(methods: Iterable[str]) -> list[str]:
    methods = [m.strip().lower() for m in ([methods] if isinstance(methods, str) else methods)]
    expanded = []
    for method in methods:
        if method == "all":
            expanded.extend(METHODS)
        elif method in ("ig", "integrated_gradients"):
            expanded.append("integrated-gradients")
        elif method in ("grad-cam", "grad_cam"):
            expanded.append("gradcam")
        elif method in ("gradcam-plus-plus", "grad-cam++", "gradcampp"):
            expanded.append("gradcam++")
        elif method in METHODS:
            expanded.append(method)
        else:
            raise ConfigError(f"--method: expected one of {', '.join(METHODS)} or all, got {method!r}")
    return list(dict.fromkeys(expanded)) or ["gradcam"]


class Explainer:
    """Explanations for one model and preprocessing; reused by the server for its Grad-CAM overlays."""

    def __init__(self, model, preprocessing, class_names: Sequence[str], layer: str | None = None):
        from cnnlab.explain.methods import target_layer

        self.model = model
        self.preprocessing = preprocessing
        self.class_names = list(class_names)
        self.layer = target_layer(model, layer)

    def network_input(self, images: np.ndarray) -> np.ndarray:
        return self.preprocessing(np.asarray(images, np.uint8))

    def baseline(self, images: np.ndarray, kind: str = "black", seed: int = 0) -> np.ndarray:
        """Integrated Gradients' starting point as network input: a black image, the image blurred
        (Gaussian, sigma a tenth of its side), or uniform noise."""
        images = np.asarray(images, np.uint8)
        if kind == "black":
            raw = np.zeros_like(images)
        elif kind == "blurred":
            from scipy.ndimage import gaussian_filter

            sigma = max(images.shape[1:3]) / 10
            raw = np.stack([gaussian_filter(im.astype(np.float32), sigma=(sigma, sigma, 0)) for im in images])
            raw = np.clip(raw.round(), 0, 255).astype(np.uint8)
        elif kind == "noise":
            raw = np.random.default_rng(seed).integers(0, 256, images.shape, dtype=np.uint8)
        else:
            raise ConfigError(f"--baseline: expected one of {', '.join(BASELINES)}, got {kind!r}")
        return self.network_input(raw)

    def _crop(self, maps: np.ndarray) -> np.ndarray:
        p = self.preprocessing.pad
        return maps[:, p : maps.shape[1] - p, p : maps.shape[2] - p] if p else maps

    def maps(
        self,
        images: np.ndarray,
        method: str,
        targets: Sequence[int],
        *,
        steps: int = 64,
        baseline: str = "black",
        samples: int = 25,
        patch: int | None = None,
    ) -> np.ndarray:
        """(N, H, W) maps of ``method`` for uint8 ``images`` (N, H, W, C) and one target class each."""
        from cnnlab.explain import methods as m

        x = self.network_input(images)
        if method in ("gradcam", "gradcam++"):
            out = m.grad_cam(self.model, x, targets, self.layer, plus=method == "gradcam++")
        elif method == "saliency":
            out = m.saliency(self.model, x, targets)
        elif method == "smoothgrad":
            out = m.smoothgrad(self.model, x, targets, samples=samples)
        elif method == "integrated-gradients":
            out = np.abs(self.integrated_gradients(images, targets, steps=steps, baseline=baseline)).sum(-1)
            return out
        elif method == "occlusion":
            fill = self.network_input(np.zeros_like(np.asarray(images[:1], np.uint8)))[0]
            out = m.occlusion(self.model, x, targets, patch=patch, fill=fill)
        else:
            check_methods([method])
            raise AssertionError(method)
        return self._crop(out)

    def integrated_gradients(
        self, images: np.ndarray, targets: Sequence[int], *, steps: int = 64, baseline: str = "black"
    ) -> np.ndarray:
        """Signed attributions (N, H, W, C) on the image (padding cropped)."""
        from cnnlab.explain.methods import integrated_gradients

        x = self.network_input(images)
        attributions = integrated_gradients(self.model, x, targets, self.baseline(images, baseline), steps=steps)
        p = self.preprocessing.pad
        return attributions[:, p : attributions.shape[1] - p, p : attributions.shape[2] - p] if p else attributions

    def explain(
        self,
        images: np.ndarray,
        names: Sequence[str],
        methods: Iterable[str] = ("gradcam",),
        *,
        target: int | str | None = None,
        top: list[list[dict]] | None = None,
        top_k: int = 3,
        **options,
    ) -> list[Explanation]:
        from cnnlab.explain.methods import logits
        from cnnlab.inference.forward import softmax

        methods = check_methods(methods)
        images = np.asarray(images, np.uint8)
        probabilities = softmax(logits(self.model, self.network_input(images)))
        if top is None:
            top = [
                [
                    {"class": self.class_names[i], "index": int(i), "probability": float(row[i])}
                    for i in np.argsort(-row, kind="stable")[:top_k]
                ]
                for row in probabilities
            ]
        targets = [self._target(target, row) for row in probabilities]
        results = [
            Explanation(str(name), image, t, k, self.class_names[k])
            for name, image, t, k in zip(names, images, top, targets)
        ]
        for method in methods:
            if method == "integrated-gradients":
                attributions = self.integrated_gradients(
                    images, targets, steps=options.get("steps", 64), baseline=options.get("baseline", "black")
                )
                for result, a in zip(results, attributions):
                    result.attributions = a
                    result.maps[method] = np.abs(a).sum(-1)
                continue
            for result, heat in zip(results, self.maps(images, method, targets, **options)):
                result.maps[method] = heat
        return results

    def _target(self, target, probabilities: np.ndarray) -> int:
        if target is None:
            return int(np.argmax(probabilities))
        if isinstance(target, str) and not target.lstrip("-").isdigit():
            if target not in self.class_names:
                raise ConfigError(
                    f"--target: expected a class name ({', '.join(self.class_names)}) or index, got {target!r}"
                )
            return self.class_names.index(target)
        index = int(target)
        if not 0 <= index < len(self.class_names):
            raise ConfigError(f"--target: expected a class index 0-{len(self.class_names) - 1}, got {index}")
        return index


def explain(
    run_or_path,
    files,
    methods: Iterable[str] = ("gradcam",),
    *,
    out: str | os.PathLike | None = None,
    target: int | str | None = None,
    layer: str | None = None,
    steps: int = 64,
    baseline: str = "black",
    samples: int = 25,
    top_k: int = 3,
    which: str = "final",
    invert: bool = False,
) -> list[Explanation]:
    """Explain a run's predictions on image files (or folders of them) with each of ``methods``.

    Returns one :class:`Explanation` per image. With ``out`` it also writes, for each image and
    method, ``<out>/<image>-<method>.png`` (image, heat map, overlay; the top-k classes in the
    title) and ``<out>/summary.png`` (every image and method in one grid); ``files`` lists them.
    """
    from cnnlab.inference.forward import load_model, open_run
    from cnnlab.inference.prediction import expand_image_paths, read_image

    methods = check_methods(methods)
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if steps < 1:
        raise ConfigError(f"--steps: expected a positive integer, got {steps}")
    if baseline not in BASELINES:
        raise ConfigError(f"--baseline: expected one of {', '.join(BASELINES)}, got {baseline!r}")
    paths = expand_image_paths(files)
    run = open_run(run_or_path)
    images = np.stack([read_image(run.preprocessing, path)[0] for path in paths])
    if invert:
        images = 255 - images
    explainer = Explainer(load_model(run, which), run.preprocessing, run.class_names, layer)
    results = explainer.explain(
        images,
        [os.fspath(p) for p in paths],
        methods,
        target=target,
        top_k=top_k,
        steps=steps,
        baseline=baseline,
        samples=samples,
    )
    if out is not None:
        write_explanations(results, methods, Path(out))
    return results


def write_explanations(results: list[Explanation], methods: Sequence[str], out: Path) -> Path:
    """Per image and method a three-panel PNG, and ``summary.png``; returns the summary's path."""
    from cnnlab.explain.overlay import top_line, write_panels, write_summary

    out.mkdir(parents=True, exist_ok=True)
    stems: dict[str, int] = {}
    for result in results:
        stem = Path(result.file).stem
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:
            stem = f"{stem}-{stems[stem]}"
        for method in methods:
            title = (
                f"{Path(result.file).name}: {method} for class {result.target_class}   (top: {top_line(result.top)})"
            )
            path = write_panels(result.image, result.maps[method], out / f"{stem}-{method}.png", title)
            result.files[method] = os.fspath(path)
    rows = [(r.image, f"{Path(r.file).stem[:18]}\n{top_line(r.top, 1)}", r.maps) for r in results]
    return write_summary(rows, methods, out / "summary.png")
