"""``cnnlab explain`` (what the model looks at) and ``cnnlab visualize`` (inside the network, a run report)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

METHOD_HELP = (
    "gradcam, gradcam++, saliency, smoothgrad, integrated-gradients, occlusion, or all; repeat or separate with commas."
)


def register(app: typer.Typer) -> None:
    app.command()(explain)
    app.command()(visualize)


def explain(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder."),
    files: list[Path] = typer.Argument(..., metavar="IMAGE...", help="Image files, or folders of them."),
    method: list[str] = typer.Option(["gradcam"], "--method", "-m", metavar="NAME", help=METHOD_HELP),
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="DIR", help="Where the PNG files go. Default: RUN/explanations."
    ),
    layer: Optional[str] = typer.Option(
        None, "--layer", metavar="NAME", help="Grad-CAM's layer (default: the last convolution with a spatial extent)."
    ),
    target: Optional[str] = typer.Option(
        None, "--target", metavar="CLASS", help="Class to explain, by name or index (default: the predicted one)."
    ),
    steps: int = typer.Option(64, "--steps", help="Integrated Gradients: points on the path."),
    baseline: str = typer.Option(
        "black", "--baseline", metavar="black|blurred|noise", help="Integrated Gradients: starting image."
    ),
    samples: int = typer.Option(25, "--samples", help="SmoothGrad: noisy copies averaged."),
    top_k: int = typer.Option(3, "--top-k", help="Classes named in each picture's title."),
    invert: bool = typer.Option(False, "--invert", help="Invert the images first (dark digits on light paper)."),
    checkpoint: str = typer.Option(
        "final",
        "--checkpoint",
        metavar="final|best|latest",
        help="Which weights: final (model.keras), best or latest checkpoint.",
    ),
) -> None:
    """Heat maps of what a run's model looks at, as PNG files: image, heat map and overlay per method."""
    from cnnlab.explain import explain as explain_run

    methods = [name for item in method for name in item.split(",") if name.strip()]
    folder = out if out is not None else Path(run) / "explanations"
    results = explain_run(
        run,
        files,
        methods,
        out=folder,
        target=target,
        layer=layer,
        steps=steps,
        baseline=baseline,
        samples=samples,
        top_k=top_k,
        which=checkpoint,
        invert=invert,
    )
    for result in results:
        top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in result.top)
        typer.echo(f"{result.file}: explaining {result.target_class}  (top: {top})")
        for name, path in result.files.items():
            typer.echo(f"  {name}: {path}")
    typer.echo(f"summary: {folder / 'summary.png'}")


def visualize(
    run: Path = typer.Argument(..., metavar="RUN", help="Run folder."),
    image: Optional[Path] = typer.Option(
        None, "--image", metavar="FILE", help="Image whose feature maps are drawn (default: the first test image)."
    ),
    samples: int = typer.Option(1000, "--samples", help="Test images for the embedding, top losses and pairs."),
    embedding: str = typer.Option("tsne", "--embedding", metavar="tsne|umap", help="2-D embedding method."),
    checkpoint: str = typer.Option(
        "final",
        "--checkpoint",
        metavar="final|best|latest",
        help="Which weights: final (model.keras), best or latest checkpoint.",
    ),
) -> None:
    """First-layer filters, feature maps, a t-SNE of the test set, top losses, confused pairs, and RUN/report.html."""
    from cnnlab.visualization.inside import visualize as visualize_run

    for kind, path in visualize_run(run, image, samples=samples, embedding=embedding, which=checkpoint).items():
        typer.echo(f"{kind}: {path}")
