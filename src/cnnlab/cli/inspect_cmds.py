"""``cnnlab inspect DATASET``: counts, missing classes, duplicates, bad files, sizes, statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        dataset: str = typer.Argument(..., help="Dataset name, e.g. mnist, idx:DIR, folder:PATH."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the PNG report here."),
        json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
        strict: bool = typer.Option(False, "--strict", help="Exit with an error (status 2) if there is any warning."),
        val_split: Optional[str] = typer.Option(
            None, "--val-split", help="Inspect with this validation split taken off train, e.g. 0.1 or last:10000."
        ),
        image_size: Optional[str] = typer.Option(
            None, "--image-size", help="folder: resize to H[,W] (default: announced)."
        ),
        resize: str = typer.Option("squash", "--resize", help="folder: squash, center-crop or pad."),
        near: float = typer.Option(
            1.5, "--near", help="Near-duplicate threshold: mean grey-level difference of thumbnails."
        ),
    ) -> None:
        """Check a dataset: counts, missing classes, duplicates, unreadable files, sizes, imbalance."""
        import json

        from cnnlab.data.inspect import inspect_dataset, load_for_inspection

        data = load_for_inspection(dataset, val_split=val_split, image_size=image_size, resize=resize)
        report = inspect_dataset(data, near_difference=near)
        if out is not None:
            report.write_png(out)
        if json_output:
            typer.echo(json.dumps(report.to_dict(), indent=2))
        else:
            for line in report.summary_lines():
                typer.echo(line)
            if out is not None:
                typer.echo(f"wrote {out}")
        if strict:
            report.raise_if_warnings()
