"""Attribution methods on a Keras model and a float32 batch of model inputs (NHWC, preprocessed).

Every function takes the model, the network input ``x`` (what the run's preprocessing produced)
and one target class per image, and returns NumPy arrays. The score explained is the target
class's **logit** (the models return logits) for every method. Occlusion measures the drop of the
logit too, not of the probability as Zeiler and Fergus (2014) did: a confident model's probability
stays at 1.0 when part of the evidence is covered, its logit does not.

- :func:`grad_cam`: Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep networks via
  gradient-based localization"; ``plus=True`` gives Grad-CAM++ (Chattopadhyay et al. 2018).
- :func:`saliency`: Simonyan et al. 2014, the gradient of the score with respect to the input.
- :func:`smoothgrad`: Smilkov et al. 2017, the gradient averaged over noisy copies of the input.
- :func:`integrated_gradients`: Sundararajan et al. 2017, the path integral of gradients from a
  baseline, with the trapezoidal rule; attributions sum to f(x) - f(baseline) (completeness).
- :func:`occlusion`: Zeiler and Fergus 2014, the drop in probability when a patch is covered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cnnlab.errors import ModelError
from cnnlab.explain.gradients import gradients, injected

GRADIENT_BATCH = 64  # images per gradient computation (integrated gradients' steps, SmoothGrad's samples)


# ----------------------------------------------------------------------------- layers


def walk_layers(model) -> list:
    """Every layer of ``model``, nested models' layers included, in graph order."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers") and layer is not model:
            found.extend(walk_layers(layer))
    return found


def _output_shape(layer):
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return None


def spatial_layers(model) -> list:
    """Layers whose output is a feature map (N, H, W, C) with H or W above 1."""
    result = []
    for layer in walk_layers(model):
        shape = _output_shape(layer)
        if shape is not None and len(shape) == 4 and ((shape[1] or 0) > 1 or (shape[2] or 0) > 1):
            result.append(layer)
    return result


def is_convolution(layer) -> bool:
    return hasattr(layer, "kernel_size") and hasattr(layer, "strides") and "Conv" in type(layer).__name__


def target_layer(model, name: str | None = None):
    """The layer Grad-CAM uses: ``name``, else the last convolution whose output has a spatial extent."""
    candidates = spatial_layers(model)
    if name is not None:
        for layer in candidates:
            if layer.name == name:
                return layer
        valid = ", ".join(layer.name for layer in candidates) or "none"
        raise ModelError(f"--layer: {model.name} has no layer {name!r} with a spatial output; valid layers: {valid}")
    convolutions = [layer for layer in candidates if is_convolution(layer)]
    if convolutions:
        return convolutions[-1]
    if candidates:
        return candidates[-1]
    raise ModelError(f"--layer: {model.name} has no layer with a spatial output (it is not a convolutional network)")


# ----------------------------------------------------------------------------- helpers


def _check_targets(x: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if len(targets) != len(x):
        raise ValueError(f"{len(x)} images but {len(targets)} targets")
    return targets


def _one_hot(targets: np.ndarray, classes: int) -> np.ndarray:
    hot = np.zeros((len(targets), classes), np.float32)
    hot[np.arange(len(targets)), targets] = 1.0
    return hot


def logits(model, x: np.ndarray) -> np.ndarray:
    from cnnlab._keras import keras

    return np.asarray(keras.ops.convert_to_numpy(model(np.asarray(x, np.float32), training=False)), np.float64)


def target_scores(model, x: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """The target classes' logits, one per image (float64)."""
    targets = _check_targets(x, targets)
    return logits(model, x)[np.arange(len(x)), targets]


def input_gradients(model, x: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """d logit[target] / d input, (N, H, W, C) float32, in batches."""
    from cnnlab._keras import keras

    x = np.asarray(x, np.float32)
    targets = _check_targets(x, targets)
    classes = model.output_shape[-1]
    out = []
    for start in range(0, len(x), GRADIENT_BATCH):
        hot = keras.ops.convert_to_tensor(_one_hot(targets[start : start + GRADIENT_BATCH], classes))

        def score(inputs, hot=hot):
            return keras.ops.sum(model(inputs, training=False) * hot)

        _, (grad,) = gradients(score, [x[start : start + GRADIENT_BATCH]])
        out.append(grad)
    return np.concatenate(out)


def layer_gradients(model, layer, x: np.ndarray, targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``layer``'s activations A and d logit[target] / d A, both (N, h, w, c) float32."""
    from cnnlab._keras import keras

    x = np.asarray(x, np.float32)
    targets = _check_targets(x, targets)
    ref = [None, None]
    with injected(layer, ref):
        model(x, training=False)
        activations = np.asarray(keras.ops.convert_to_numpy(ref[1]), np.float32)
        hot = keras.ops.convert_to_tensor(_one_hot(targets, model.output_shape[-1]))

        def score(inputs, delta):
            ref[0] = delta
            try:
                return keras.ops.sum(model(inputs, training=False) * hot)
            finally:
                ref[0] = None

        _, (_, grad) = gradients(score, [x, np.zeros_like(activations)])
    return activations, grad


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) float maps resized to ``size`` = (H, W) bilinearly (Pillow, float mode)."""
    from PIL import Image

    height, width = size
    out = np.empty((len(maps), height, width), np.float32)
    for i, m in enumerate(np.asarray(maps, np.float32)):
        if m.shape == (height, width):
            out[i] = m
        else:
            out[i] = np.asarray(Image.fromarray(m, mode="F").resize((width, height), Image.Resampling.BILINEAR))
    return out


# ----------------------------------------------------------------------------- methods


def grad_cam(
    model, x: np.ndarray, targets: Sequence[int], layer=None, *, plus: bool = False, upsampled: bool = True
) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++ with ``plus``) maps, (N, H, W) at the input size (or the layer's with
    ``upsampled=False``), not normalised: ReLU of the gradient-weighted sum of the layer's channels."""
    layer = target_layer(model, layer) if layer is None or isinstance(layer, str) else layer
    activations, grads = layer_gradients(model, layer, x, targets)
    if plus:
        g2, g3 = grads**2, grads**3
        denominator = 2.0 * g2 + np.sum(activations, axis=(1, 2), keepdims=True) * g3
        alpha = np.where(denominator != 0, g2 / np.where(denominator != 0, denominator, 1.0), 0.0)
        weights = np.sum(alpha * np.maximum(grads, 0.0), axis=(1, 2))
    else:
        weights = grads.mean(axis=(1, 2))
    cams = np.maximum(np.einsum("nhwc,nc->nhw", activations, weights), 0.0).astype(np.float32)
    return upsample(cams, np.asarray(x).shape[1:3]) if upsampled else cams


def saliency(model, x: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Vanilla gradient saliency: max over channels of |d logit / d input|, (N, H, W)."""
    return np.abs(input_gradients(model, x, targets)).max(axis=-1)


def smoothgrad(
    model, x: np.ndarray, targets: Sequence[int], samples: int = 25, noise: float = 0.15, seed: int = 0
) -> np.ndarray:
    """SmoothGrad: |mean gradient over ``samples`` noisy copies| (noise sd = ``noise`` x the image's range),
    max over channels, (N, H, W)."""
    x = np.asarray(x, np.float32)
    targets = _check_targets(x, targets)
    rng = np.random.default_rng(seed)
    maps = []
    for image, target in zip(x, targets):
        sigma = noise * float(image.max() - image.min() or 1.0)
        noisy = image[None] + rng.normal(0.0, sigma, (samples, *image.shape)).astype(np.float32)
        grad = input_gradients(model, noisy, np.full(samples, target)).mean(axis=0)
        maps.append(np.abs(grad).max(axis=-1))
    return np.stack(maps)


def integrated_gradients(
    model, x: np.ndarray, targets: Sequence[int], baseline: np.ndarray, steps: int = 64
) -> np.ndarray:
    """Integrated Gradients (N, H, W, C), signed: (x - baseline) times the trapezoidal average of the
    gradients at ``steps`` + 1 points on the straight path from ``baseline`` to ``x``."""
    if steps < 1:
        from cnnlab.errors import ConfigError

        raise ConfigError(f"--steps: expected a positive integer, got {steps}")
    x = np.asarray(x, np.float32)
    baseline = np.broadcast_to(np.asarray(baseline, np.float32), x.shape)
    targets = _check_targets(x, targets)
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    weights = np.full(steps + 1, 1.0 / steps, np.float64)
    weights[[0, -1]] /= 2
    out = []
    for image, base, target in zip(x, baseline, targets):
        path = base[None] + alphas[:, None, None, None] * (image - base)[None]
        grads = input_gradients(model, path, np.full(len(path), target)).astype(np.float64)
        average = np.tensordot(weights, grads, axes=1)
        out.append(((image - base) * average).astype(np.float32))
    return np.stack(out)


def occlusion(
    model,
    x: np.ndarray,
    targets: Sequence[int],
    patch: int | None = None,
    stride: int | None = None,
    fill: np.ndarray | float = 0.0,
    batch_size: int = 256,
) -> np.ndarray:
    """Occlusion sensitivity (N, H, W): the target class's logit drop when a ``patch`` x ``patch``
    square around each pixel is replaced by ``fill`` (the network input of a black image), averaged
    over the windows that cover the pixel."""
    x = np.asarray(x, np.float32)
    targets = _check_targets(x, targets)
    height, width = x.shape[1:3]
    patch = patch or max(2, round(min(height, width) / 7))
    stride = stride or max(1, patch // 2)
    fill = np.broadcast_to(np.asarray(fill, np.float32), x.shape[1:])
    tops = list(range(0, max(height - patch, 0) + 1, stride))
    lefts = list(range(0, max(width - patch, 0) + 1, stride))
    if tops[-1] + patch < height:
        tops.append(height - patch)
    if lefts[-1] + patch < width:
        lefts.append(width - patch)
    windows = [(t, left) for t in tops for left in lefts]
    maps = []
    for image, target in zip(x, targets):
        base = logits(model, image[None])[0, target]
        drops = []
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            batch = np.repeat(image[None], len(chunk), axis=0)
            for k, (t, left) in enumerate(chunk):
                batch[k, t : t + patch, left : left + patch] = fill[t : t + patch, left : left + patch]
            drops.append(base - logits(model, batch)[:, target])
        drops = np.concatenate(drops)
        total = np.zeros((height, width), np.float64)
        count = np.zeros((height, width), np.float64)
        for drop, (t, left) in zip(drops, windows):
            total[t : t + patch, left : left + patch] += drop
            count[t : t + patch, left : left + patch] += 1
        maps.append((total / np.maximum(count, 1)).astype(np.float32))
    return np.stack(maps)
