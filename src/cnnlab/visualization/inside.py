"""Looking inside a trained network: first-layer filters, feature maps, an embedding of the test set,
top losses and the most-confused class pairs; and a one-page HTML report of the run (``cnnlab visualize``).

Figures are drawn on matplotlib ``Figure`` objects (no ``pyplot``) and written atomically through
:func:`cnnlab.visualization.plots.save_figure`. The report links the PNG files by relative path, so
it opens from disk in any browser, without a server.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.errors import ConfigError
from cnnlab.visualization.plots import PLOTS_DIR, _new_figure, save_figure

INSIDE_DIR = "inside"
EMBEDDINGS = ("tsne", "umap")


def first_conv_kernel(model) -> tuple[str, np.ndarray]:
    """The first convolution's name and kernel (kh, kw, in, out)."""
    from cnnlab.explain.methods import is_convolution, walk_layers

    for layer in walk_layers(model):
        if is_convolution(layer) and getattr(layer, "kernel", None) is not None:
            from cnnlab._keras import keras

            return layer.name, np.asarray(keras.ops.convert_to_numpy(layer.kernel))
    raise ConfigError(f"{model.name}: has no convolution layer to show filters of")


def plot_filters(model, path: str | os.PathLike) -> Path:
    """The first convolution's filters as an image grid (RGB when it reads 3 channels, else gray)."""
    name, kernel = first_conv_kernel(model)
    kh, kw, cin, cout = kernel.shape
    shown = min(cout, 64)
    columns = min(8, shown)
    rows = math.ceil(shown / columns)
    fig = _new_figure(columns * 0.9 + 0.4, rows * 0.9 + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= shown:
            continue
        w = kernel[..., i]
        w = (w - w.min()) / (w.max() - w.min() + 1e-12)
        if cin == 3:
            ax.imshow(w, interpolation="nearest")
        else:
            ax.imshow(w.mean(axis=-1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(f"{model.name}: first-layer filters ({name}, {kh}x{kw}x{cin}, {shown} of {cout})", fontsize=9)
    return save_figure(fig, path)


def block_layers(model) -> list:
    """One layer per convolution block: every convolution when there are at most six, otherwise the last
    convolution at each spatial resolution (ResNet's stages, VGG's blocks)."""
    from cnnlab.explain.methods import is_convolution, spatial_layers

    convolutions = [layer for layer in spatial_layers(model) if is_convolution(layer)]
    if len(convolutions) <= 6:
        return convolutions
    last = {}
    for layer in convolutions:
        last[tuple(layer.output.shape[1:3])] = layer
    return list(last.values())


def plot_feature_maps(model, preprocessing, image: np.ndarray, path: str | os.PathLike, channels: int = 12) -> Path:
    """The first ``channels`` feature maps of every convolution block for one uint8 image."""
    from cnnlab._keras import keras
    from cnnlab.explain.gradients import injected

    layers = block_layers(model)
    if not layers:
        raise ConfigError(f"{model.name}: has no convolution layer with a spatial output")
    x = preprocessing(np.asarray(image, np.uint8)[None])
    outputs = []
    for layer in layers:
        ref = [None, None]
        with injected(layer, ref):
            model(x, training=False)
        outputs.append(np.asarray(keras.ops.convert_to_numpy(ref[1]))[0])
    columns = 1 + channels
    fig = _new_figure(columns * 0.85, len(layers) * 0.95 + 0.5)
    axes = fig.subplots(len(layers), columns, squeeze=False)
    for r, (layer, maps) in enumerate(zip(layers, outputs)):
        shown = image[..., 0] if image.shape[-1] == 1 else image
        axes[r, 0].imshow(shown, cmap="gray" if image.shape[-1] == 1 else None, interpolation="nearest")
        axes[r, 0].set_title(f"{layer.name}\n{maps.shape[0]}x{maps.shape[1]}x{maps.shape[2]}", fontsize=6)
        for c in range(channels):
            ax = axes[r, c + 1]
            if c < maps.shape[-1]:
                ax.imshow(maps[..., c], cmap="viridis", interpolation="nearest")
            ax.set_axis_off()
        axes[r, 0].set_axis_off()
    fig.suptitle(f"{model.name}: feature maps of each convolution block (first {channels} channels)", fontsize=9)
    return save_figure(fig, path)


def penultimate_features(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The input of the model's last dense layer (the features the classifier reads) for network inputs x."""
    from cnnlab._keras import keras
    from cnnlab.explain.methods import walk_layers

    dense = [layer for layer in walk_layers(model) if type(layer).__name__ == "Dense"]
    if not dense:
        raise ConfigError(f"{model.name}: has no dense classifier layer to take features from")
    last = dense[-1]
    captured = []
    original = last.call

    def call(inputs, *args, **kwargs):
        captured.append(np.asarray(keras.ops.convert_to_numpy(inputs)))
        return original(inputs, *args, **kwargs)

    # the dense layer's *input* is wanted, so its call is wrapped directly (as explain.gradients.injected does)
    last.call = call
    try:
        for start in range(0, len(x), batch_size):
            model(x[start : start + batch_size], training=False)
    finally:
        del last.call
    features = np.concatenate(captured)
    return features.reshape(len(features), -1)


def embed(features: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D embedding: t-SNE (scikit-learn) or UMAP (the optional ``umap-learn`` package)."""
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(features) - 1) / 3)))
        return TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity).fit_transform(features)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise ConfigError("--embedding umap: needs the umap-learn package (pip install umap-learn)") from None
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(features)
    raise ConfigError(f"--embedding: expected one of {', '.join(EMBEDDINGS)}, got {method!r}")


def plot_embedding(points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path, title: str) -> Path:
    from matplotlib import colormaps

    fig = _new_figure(7.0, 6.0)
    ax = fig.subplots()
    cmap = colormaps["tab10" if len(class_names) <= 10 else "tab20"]
    for k, name in enumerate(class_names):
        chosen = labels == k
        if chosen.any():
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, color=cmap(k % cmap.N), label=name, alpha=0.8)
    if len(class_names) <= 20:
        ax.legend(markerscale=3, fontsize=7, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def confused_pairs(labels: np.ndarray, predicted: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict]:
    """The most frequent (true, predicted) mistakes, most frequent first."""
    n = len(class_names)
    matrix = np.zeros((n, n), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    np.fill_diagonal(matrix, 0)
    order = np.argsort(-matrix, axis=None, kind="stable")[:top]
    pairs = []
    for flat in order:
        true, pred = divmod(int(flat), n)
        if matrix[true, pred] == 0:
            break
        pairs.append(
            {
                "true": class_names[true],
                "predicted": class_names[pred],
                "count": int(matrix[true, pred]),
                "of": int((labels == true).sum()),
            }
        )
    return pairs


def plot_confused_pairs(pairs: list[dict], path, title: str) -> Path:
    fig = _new_figure(6.0, 0.35 * max(len(pairs), 1) + 1.2)
    ax = fig.subplots()
    if pairs:
        names = [f"{p['true']} → {p['predicted']}" for p in pairs][::-1]
        counts = [p["count"] for p in pairs][::-1]
        ax.barh(names, counts, color="#c62828")
        for i, count in enumerate(counts):
            ax.text(count, i, f" {count}", va="center", fontsize=8)
        ax.set_xlabel("test images (true → predicted)")
    else:
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def visualize(
    run_or_path,
    image: str | os.PathLike | None = None,
    *,
    samples: int = 1000,
    embedding: str = "tsne",
    which: str = "final",
    out: str | os.PathLike | None = None,
) -> dict[str, str]:
    """Every picture of ``cnnlab visualize`` for a run, and ``RUN/report.html``; returns kind -> path.

    ``samples`` test images (the first ones of the run's test split) are used for the embedding,
    the top losses and the confused pairs; ``image`` is the picture whose feature maps are drawn
    (default: the first test image).
    """
    from cnnlab.inference.forward import load_model, open_run, predict_logits, softmax
    from cnnlab.inference.prediction import read_image
    from cnnlab.visualization.plots import plot_misclassified

    if samples < 10:
        raise ConfigError(f"--samples: expected at least 10 test images, got {samples}")
    if embedding not in EMBEDDINGS:
        raise ConfigError(f"--embedding: expected one of {', '.join(EMBEDDINGS)}, got {embedding!r}")
    run = open_run(run_or_path)
    folder = Path(out) if out is not None else run.path / PLOTS_DIR / INSIDE_DIR
    model = load_model(run, which)
    pre = run.preprocessing
    files: dict[str, str] = {}
    files["filters"] = os.fspath(plot_filters(model, folder / "filters.png"))

    data = run.dataset()
    split = data.test if data.test is not None and len(data.test) else data.val
    if split is None or not len(split):
        raise ConfigError(f"{run.path}: the run's dataset has no test or validation images to visualize")
    x, y = split.x[:samples], np.asarray(split.y[:samples], np.int64)
    picture = read_image(pre, Path(image))[0] if image is not None else x[0]
    files["feature maps"] = os.fspath(plot_feature_maps(model, pre, picture, folder / "feature_maps.png"))

    logits = predict_logits(model, x, pre)
    probabilities = softmax(logits)
    predicted = probabilities.argmax(axis=1)
    features = penultimate_features(model, pre(x))
    points = embed(features, embedding)
    files["embedding"] = os.fspath(
        plot_embedding(
            points,
            y,
            run.class_names,
            folder / f"embedding_{embedding}.png",
            f"{run.name}: {embedding} of the penultimate features of {len(x)} test images",
        )
    )

    losses = -np.log(np.maximum(probabilities[np.arange(len(y)), y], 1e-300))
    wrong = np.flatnonzero(predicted != y)
    if len(wrong):
        worst = wrong[np.argsort(-losses[wrong], kind="stable")][:24]
        files["top losses"] = os.fspath(
            plot_misclassified(
                x[worst],
                y[worst],
                predicted[worst],
                run.class_names,
                folder / "top_losses.png",
                probabilities=probabilities[worst, predicted[worst]],
            )
        )
    pairs = confused_pairs(y, predicted, run.class_names)
    files["confused pairs"] = os.fspath(
        plot_confused_pairs(
            pairs, folder / "confused_pairs.png", f"{run.name}: most-confused class pairs ({len(x)} test images)"
        )
    )
    files["report"] = os.fspath(write_report(run, pairs=pairs, accuracy=float((predicted == y).mean()), count=len(y)))
    return files


def write_report(run, *, pairs: list[dict] | None = None, accuracy: float | None = None, count: int = 0) -> Path:
    """``RUN/report.html``: the run's settings, metrics and every PNG under ``RUN/plots/``, by relative link."""
    from cnnlab.io import atomic_write_text

    root = Path(run.path)
    pictures = sorted((root / PLOTS_DIR).rglob("*.png"))
    train = run.config.get("train", {})
    metrics = run.metrics or {}
    rows = [
        ("model", train.get("model")),
        ("dataset", train.get("dataset")),
        ("epochs / steps", f"{metrics.get('epochs')} / {metrics.get('steps')}"),
        ("test accuracy", metrics.get("accuracy")),
        ("test loss", metrics.get("loss")),
        ("backend", train.get("backend")),
        ("seed", train.get("seed")),
    ]
    if accuracy is not None:
        rows.append((f"accuracy on the {count} images visualized", f"{accuracy:.4f}"))
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{esc(run.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
        "figure{display:inline-block;margin:0.6em;vertical-align:top}img{max-width:520px}"
        "figcaption{font-size:0.85em;color:#444}</style></head><body>",
        f"<h1>{esc(run.name)}</h1>",
        "<table>" + "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in rows) + "</table>",
    ]
    if pairs:
        parts.append("<h2>Most-confused pairs</h2><table><tr><th>true</th><th>predicted</th><th>count</th></tr>")
        parts += [
            f"<tr><td>{esc(p['true'])}</td><td>{esc(p['predicted'])}</td><td>{p['count']} of {p['of']}</td></tr>"
            for p in pairs
        ]
        parts.append("</table>")
    parts.append("<h2>Pictures</h2>")
    for picture in pictures:
        relative = picture.relative_to(root).as_posix()
        parts.append(
            f"<figure><a href='{esc(relative)}'><img src='{esc(relative)}' alt='{esc(picture.stem)}'></a>"
            f"<figcaption>{esc(relative)}</figcaption></figure>"
        )
    parts.append("<h2>Configuration</h2><pre>" + esc(json.dumps(train, indent=1)) + "</pre></body></html>")
    path = root / "report.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path
