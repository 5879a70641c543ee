"""``cnnlab datasets`` and ``cnnlab show``: what data is here, and what it looks like."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def datasets(json_output: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
        """List the datasets: description, whether their files are present, and where."""
        import json

        from cnnlab.data import list_datasets
        from cnnlab.paths import resolve_data_dir

        infos = list_datasets()
        if json_output:
            rows = [
                {
                    "name": i.name,
                    "description": i.description,
                    "files": i.files,
                    "present": i.present,
                    "location": None if i.location is None else str(i.location),
                }
                for i in infos
            ]
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"datasets (data directory: {resolve_data_dir()})", title_justify="left")
        for column in ("name", "description", "files", "where"):
            table.add_column(column, overflow="fold")
        for info in infos:
            if info.location is None:
                status, where = "built in" if not info.name.endswith("PATH") else "-", "-"
            else:
                status, where = ("present" if info.present else "missing"), str(info.location)
            table.add_row(info.name, info.description, status, where)
        Console(width=None if _is_terminal() else 160).print(table)

    @app.command()
    def show(
        dataset: str = typer.Argument(..., help="Dataset name, e.g. mnist, cifar10_jpg, folder:PATH."),
        out: Path = typer.Option(..., "--out", "-o", help="PNG file to write."),
        split: str = typer.Option("train", "--split", help="train, val or test."),
        grid: str = typer.Option("4x4", "--grid", help="ROWSxCOLUMNS of images."),
        seed: int = typer.Option(0, "--seed", help="Which images: a random sample drawn with this seed."),
        val_split: Optional[str] = typer.Option(None, "--val-split", help="Validation split, e.g. last:10000."),
        force: bool = typer.Option(False, "--force", help="Replace an existing --out that is not a PNG."),
    ) -> None:
        """Write a grid of sample images titled with their class names."""
        import numpy as np

        from cnnlab.data import load_dataset
        from cnnlab.io import MAGIC, check_output_path
        from cnnlab.visualization.grid import image_grid, parse_grid

        check_output_path(out, kind="file", force=force, magic=MAGIC["png"])  # before the data is loaded
        rows, cols = parse_grid(grid)
        if split not in ("train", "val", "test"):
            raise typer.BadParameter(f"expected train, val or test, got {split!r}", param_hint="--split")
        splits = ("test",) if split == "test" else ("train",)
        data = load_dataset(dataset, val_split=val_split, splits=splits)
        part = data.split(split)
        count = min(rows * cols, len(part))
        pick = np.sort(np.random.default_rng(seed).choice(len(part), size=count, replace=False))
        titles = [data.class_names[label] for label in part.y[pick]]
        image_grid(part.x[pick], titles, out, columns=cols, suptitle=f"{data.name} ({split})")
        typer.echo(f"wrote {out} ({count} {split} images of {data.name})")


def _is_terminal() -> bool:
    import sys

    return sys.stdout.isatty()
