"""Make a small folder of photo-like JPEGs for docs/your-own-images.md (run it; nothing here is committed data).

    python docs/your-own-images/make_photos.py OUT_DIR

Three classes in one folder each (no train/test split), as photos usually arrive: ``balloons``
(soft discs), ``kites`` (tilted quadrilaterals) and ``waves`` (bands), drawn over a sky-like
gradient with blur and sensor noise, at mixed sizes (480x640, 600x800, 375x500 and a few
portraits) and modes (a few grayscale). Deliberate problems for ``cnnlab inspect`` to find: one
file that is not a JPEG at all, one exact copy, one copy re-saved at another quality (a
near-duplicate), and a smaller ``waves`` class.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZES = [(480, 640), (600, 800), (375, 500), (640, 480)]  # (height, width)
COUNTS = {"balloons": 60, "kites": 60, "waves": 24}


def sky(rng, height, width):
    yy = np.linspace(0, 1, height)[:, None, None]
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(120, 255, 3)
    image = top * (1 - yy) + bottom * yy
    return np.broadcast_to(image, (height, width, 3)).astype(np.uint8)


def draw(cls, rng, height, width):
    image = Image.fromarray(sky(rng, height, width))
    pen = ImageDraw.Draw(image)
    scale = min(height, width)
    for _ in range(rng.integers(1, 4)):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        r = rng.uniform(0.08, 0.2) * scale
        if cls == "balloons":
            pen.ellipse((cx - r, cy - 1.2 * r, cx + r, cy + 1.2 * r), fill=color)
            pen.line((cx, cy + 1.2 * r, cx + rng.uniform(-r, r), cy + 3 * r), fill=(40, 40, 40), width=3)
        elif cls == "kites":
            angle = rng.uniform(0, np.pi)
            points = [
                (cx + r * np.cos(angle + a) * s, cy + r * np.sin(angle + a) * s)
                for a, s in zip((0, np.pi / 2, np.pi, 3 * np.pi / 2), (1.6, 1, 0.8, 1))
            ]
            pen.polygon(points, fill=color)
        else:
            y0 = rng.uniform(0.3, 0.9) * height
            for k in range(6):
                y = y0 + k * 0.05 * height
                pen.line(
                    [(x, y + 0.03 * height * np.sin(x / width * 6 + k)) for x in range(0, width, 8)],
                    fill=color,
                    width=max(2, int(0.02 * height)),
                )
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5))))
    array = np.asarray(image, np.float32) + rng.normal(0, 5, (height, width, 3))
    return Image.fromarray(array.clip(0, 255).astype(np.uint8))


def main(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    rng = np.random.default_rng(2024)
    for cls, count in COUNTS.items():
        (out / cls).mkdir(parents=True)
        for i in range(count):
            height, width = SIZES[i % len(SIZES)]
            image = draw(cls, rng, height, width)
            if i % 15 == 7:
                image = image.convert("L")  # a few black-and-white photos
            image.save(out / cls / f"IMG_{i:04d}.jpg", quality=int(rng.integers(80, 95)))
    shutil.copy(out / "kites" / "IMG_0003.jpg", out / "kites" / "IMG_0003 (1).jpg")  # an exact copy
    with Image.open(out / "balloons" / "IMG_0005.jpg") as image:
        image.save(out / "balloons" / "IMG_0005-edited.jpg", quality=70)  # a re-saved copy
    (out / "waves" / "IMG_9999.jpg").write_bytes(b"<html>Sorry, this page is no longer available</html>")
    print(f"wrote {sum(1 for _ in out.rglob('*.jpg'))} files in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "photos"))
