"""Draw one photo under the three resize policies, for docs/your-own-images.md.

python docs/your-own-images/resize_policies.py PHOTO.jpg OUT.png [SIZE]
"""

from __future__ import annotations

import sys

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from cnnlab.data.preprocessing import Preprocessing


def main(photo: str, out: str, size: int = 96) -> None:
    with Image.open(photo) as image:
        original = image.convert("RGB")
    fig = Figure(figsize=(10, 2.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    axes[0].imshow(original)
    axes[0].set_title(f"original {original.size[1]}x{original.size[0]}", fontsize=9)
    for ax, policy in zip(axes[1:], ("squash", "center-crop", "pad")):
        pixels = Preprocessing(image_size=(size, size), channels=3, resize=policy).load_images([photo])[0]
        ax.imshow(pixels, interpolation="nearest")
        ax.set_title(f'resize="{policy}" ({size}x{size})', fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 96)
