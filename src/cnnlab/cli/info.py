"""``cnnlab info``: versions, backend, threads, accelerators and the data directory."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def info(json_output: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
        """Show cnnlab, Keras and backend versions, CPU threads, accelerators and the data directory."""
        import json

        from cnnlab.paths import resolve_data_dir
        from cnnlab.runtime import describe

        facts = describe()
        data_dir = resolve_data_dir()
        facts["data_dir"] = str(data_dir)
        facts["data_dir_exists"] = data_dir.is_dir()
        if json_output:
            typer.echo(json.dumps(facts, indent=2))
            return
        accel = ", ".join(facts["accelerators"]) or "none (CPU only)"
        where = "" if facts["data_dir_exists"] else "  (does not exist yet)"
        typer.echo(f"cnnlab        {facts['cnnlab']}")
        typer.echo(f"python        {facts['python']}")
        typer.echo(f"keras         {facts['keras']}")
        typer.echo(f"backend       {facts['backend']} {facts['backend_version']}")
        typer.echo(f"cpu threads   {facts['cpu_threads']}")
        typer.echo(f"accelerators  {accel}")
        typer.echo(f"data dir      {facts['data_dir']}{where}")
