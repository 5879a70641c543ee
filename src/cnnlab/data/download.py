"""Fetching missing dataset files: mirrors in order, resume, checksum, atomic rename.

For each file: try each mirror; bytes arrive in ``<name>.part`` beside the target; a transfer
cut short is resumed with an HTTP ``Range`` request (RFC 9110, sec. 14.2) from the ``.part``
file's length; the finished file must match the published size and digests or it is deleted;
only then is it renamed into place (``os.replace``: atomic), so a reader never sees a partial file.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path

from cnnlab.data.sources import FileSpec, Source, mirrors_for, missing_files_error, verify_file
from cnnlab.errors import DataError

CHUNK = 1 << 16
TIMEOUT = 30.0  # seconds without data before a mirror counts as dead
ATTEMPTS_PER_MIRROR = 3  # a cut transfer is resumed from the same mirror this often


class TransferError(Exception):
    """A mirror failed for this file (dead, refused, cut short, wrong content)."""


def fetch_missing(
    source: Source, folder: Path, specs: list[FileSpec], mirrors: list[str] | None = None, progress: bool | None = None
) -> None:
    """Download ``specs`` into ``folder``; a one-line DataError naming the files if it cannot."""
    mirrors = mirrors if mirrors is not None else mirrors_for(source)
    names = [spec.name for spec in specs]
    if not mirrors:
        raise missing_files_error(source, folder, names, "no public mirror is known for these files")
    existing = _nearest_existing(folder)
    if not _writable(existing):
        raise missing_files_error(source, folder, names, f"{existing} is read-only, so nothing was downloaded")
    created = existing != folder
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for spec in specs:
            _fetch_one(spec, folder, mirrors, progress, source, names)
    finally:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # leave no empty folder behind a failed download


def _fetch_one(spec: FileSpec, folder: Path, mirrors: list[str], progress, source: Source, names: list[str]) -> None:
    failures = []
    for base in mirrors:
        try:
            download_file(base.rstrip("/") + "/" + spec.name, folder / spec.name, spec, progress)
            return
        except TransferError as exc:
            failures.append(f"{base}: {exc}")
    pending = names[names.index(spec.name) :]
    raise missing_files_error(source, folder, pending, "all mirrors failed: " + "; ".join(failures))


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _writable(folder: Path) -> bool:
    """Writable, and not marked read-only (no write bit at all), which root's access() ignores."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def download_file(url: str, target: Path, spec: FileSpec, progress: bool | None = None) -> None:
    """Fetch ``url`` into ``target`` through ``target.part``, resuming and verifying."""
    part = target.with_name(target.name + ".part")
    for _ in range(ATTEMPTS_PER_MIRROR):
        before = part.stat().st_size if part.exists() else 0
        try:
            complete = _transfer(url, part, spec, progress)
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TransferError(str(reason)) from None
        after = part.stat().st_size if part.exists() else 0
        if complete:
            break
        if after <= before:  # no progress: give up on this mirror
            raise TransferError("transfer cut short without progress")
    else:
        raise TransferError(f"transfer still incomplete after {ATTEMPTS_PER_MIRROR} attempts")
    try:
        verify_file(part, spec)
    except DataError:
        part.unlink(missing_ok=True)  # wrong content: never keep it, never resume from it
        raise TransferError("downloaded file does not match the published checksum; discarded") from None
    os.replace(part, target)


def _transfer(url: str, part: Path, spec: FileSpec, progress: bool | None) -> bool:
    """One HTTP request appending to ``part``; True when the file is complete."""
    have = part.stat().st_size if part.exists() else 0
    if have > spec.size:  # not ours, or from another version: start again
        part.unlink()
        have = 0
    if have == spec.size:
        return True
    request = urllib.request.Request(url, headers={"User-Agent": "cnnlab"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        resumed = response.status == 206
        mode = "ab" if resumed else "wb"  # a server that ignores Range sends the whole file
        offset = have if resumed else 0
        with open(part, mode) as out, _progress_bar(spec, offset, progress) as advance:
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    advance(len(chunk))
            except HTTPException:  # IncompleteRead: keep what arrived, resume next attempt
                pass
    return part.stat().st_size >= spec.size


class _progress_bar:
    """A Rich progress bar on stderr when it is a terminal; silent otherwise (logs, tests)."""

    def __init__(self, spec: FileSpec, done: int, enabled: bool | None):
        self.spec, self.done = spec, done
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self.progress = Progress(
            "{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.progress.start()
        task = self.progress.add_task(self.spec.name, total=self.spec.size, completed=self.done)
        return lambda n: self.progress.advance(task, n)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()
        return False
