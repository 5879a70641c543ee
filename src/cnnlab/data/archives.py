"""Reading files from a folder, a tar archive (plain, gzip, bz2, xz) or a zip archive, safely.

Members are read straight from the archive, never extracted, so nothing lands on disk. Even so,
an archive whose member names are absolute, contain ``..`` or are links pointing outside the
archive is refused as a whole: such a file is malformed or hostile (the "tar slip" of
CVE-2007-4559). For tar files the check is Python's own ``tarfile.data_filter`` (PEP 706), with
our own path check on top for Pythons that lack it and for zip files.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

from cnnlab.data.limits import check_bytes
from cnnlab.errors import DataError
from cnnlab.io import is_regular_file, read_regular_bytes

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def check_member_name(archive: Path, name: str) -> str:
    """The member's path, normalised; a DataError if it is absolute or climbs out with ``..``."""
    clean = name.replace("\\", "/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":") or ".." in parts:
        raise DataError(f"{archive}: unsafe member path {name!r} (absolute or containing '..'); refusing the archive")
    return "/".join(parts)


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> str:
    name = check_member_name(archive, member.name)
    if member.issym() or member.islnk():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or target.startswith(".."):
            raise DataError(
                f"{archive}: member {member.name!r} links outside the archive ({member.linkname!r}); refusing the archive"
            )
    data_filter = getattr(tarfile, "data_filter", None)
    # Regular files are fully covered by the name check; data_filter (which resolves real paths,
    # slow over 60,000 members) judges the rest: links, devices, FIFOs.
    if data_filter is not None and not member.isfile():
        try:
            data_filter(member, "/nonexistent-extraction-root")  # raises for anything "data" extraction refuses
        except tarfile.FilterError as exc:
            raise DataError(f"{archive}: unsafe member {member.name!r} ({exc}); refusing the archive") from None
    return name


def iter_files(path: Path, keep: Callable[[str], bool] | None = None) -> Iterator[tuple[str, bytes | None]]:
    """Yield ``(relative/posix/name, content)`` of every regular file under a folder or in an archive.

    Archives are read in one sequential pass (a ``.tar.gz`` has no random access); folders in
    sorted order. Files for which ``keep(name)`` is false are listed with content ``None``.
    """
    keep = keep or (lambda name: True)
    name = path.name.lower()
    if path.is_dir():
        yield from _iter_folder(path, keep)
    elif name.endswith(".zip"):
        yield from _iter_zip(path, keep)
    elif name.endswith(TAR_SUFFIXES):
        yield from _iter_tar(path, keep)
    else:
        raise DataError(f"{path}: expected a folder or a .tar, .tar.gz, .tgz or .zip archive")


def _iter_folder(root: Path, keep) -> Iterator[tuple[str, bytes | None]]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in sorted(files):
            full = Path(folder) / file
            if is_regular_file(full):  # never a FIFO, socket or device, which would block or stream forever
                name = full.relative_to(root).as_posix()
                yield name, read_regular_bytes(full, limit_name="member_bytes") if keep(name) else None


class _Budget:
    """Bytes read from one archive so far, against the member and archive limits (checked before reading)."""

    def __init__(self, archive: Path):
        self.archive, self.total = archive, 0

    def take(self, name: str, size: int) -> None:
        check_bytes(f"{self.archive}: member {name!r}", size, "member_bytes")
        self.total += size
        check_bytes(f"{self.archive}: members read so far", self.total, "archive_bytes")


def _iter_tar(archive: Path, keep) -> Iterator[tuple[str, bytes | None]]:
    _require_regular(archive)
    budget = _Budget(archive)
    try:
        with tarfile.open(archive, "r|*") as tar:  # stream mode: one pass, no seeking back
            for member in tar:
                name = _check_tar_member(archive, member)
                if member.isfile():
                    if keep(name):
                        budget.take(name, member.size)
                        yield name, tar.extractfile(member).read()
                    else:
                        yield name, None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{archive}: not a readable tar archive ({type(exc).__name__}: {exc})") from None


def _iter_zip(archive: Path, keep) -> Iterator[tuple[str, bytes | None]]:
    _require_regular(archive)
    budget = _Budget(archive)
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:  # check every name before reading anything
                check_member_name(archive, info.filename)
            for info in infos:
                if not info.is_dir():
                    name = check_member_name(archive, info.filename)
                    if keep(name):
                        budget.take(name, info.file_size)  # the declared size; zipfile stops reading there
                        yield name, zf.read(info)
                    else:
                        yield name, None
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error, RuntimeError) as exc:
        raise DataError(f"{archive}: not a readable zip archive ({type(exc).__name__}: {exc})") from None


def _require_regular(archive: Path) -> None:
    if not is_regular_file(archive):
        raise DataError(f"{archive}: not a regular file; refusing to read it as an archive")


def iter_names(path: Path) -> Iterator[str]:
    """Names of the regular files under a folder or in an archive, without reading their contents."""
    name = path.name.lower()
    if path.is_dir():
        for folder, dirs, files in os.walk(path):
            dirs.sort()
            for file in sorted(files):
                if is_regular_file(Path(folder) / file):  # a FIFO or device is not a data file
                    yield (Path(folder) / file).relative_to(path).as_posix()
        return
    _require_regular(path)
    if name.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = [check_member_name(path, info.filename) for info in zf.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable zip archive ({type(exc).__name__}: {exc})") from None
        yield from names
        return
    if not name.endswith(TAR_SUFFIXES):
        raise DataError(f"{path}: expected a folder or a .tar, .tar.gz, .tgz or .zip archive")
    try:
        with tarfile.open(path, "r|*") as tar:
            members = [(member, _check_tar_member(path, member)) for member in tar]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable tar archive ({type(exc).__name__}: {exc})") from None
    yield from (name for member, name in members if member.isfile())


def read_members(archive: Path, wanted: set[str]) -> dict[str, bytes]:
    """The contents of the ``wanted`` members (names relative to the archive root) of a tar archive.

    Every member is checked, wanted or not, before the archive is trusted.
    """
    found = {}
    for name, content in _iter_tar(archive, lambda name: name in wanted):
        if name in wanted:
            found[name] = content
    return found
