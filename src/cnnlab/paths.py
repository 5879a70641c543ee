"""Where cnnlab looks for data: ``--data-dir`` > ``CNNLAB_DATA_DIR`` > ``~/.cache/cnnlab``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "CNNLAB_DATA_DIR"


def default_data_dir() -> Path:
    return Path(os.path.expanduser("~")) / ".cache" / "cnnlab"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return the data directory: the argument, else ``$CNNLAB_DATA_DIR``, else the cache folder.

    The directory is not created here; loaders decide whether a missing folder is an error
    (explicit setting) or a place to download into (the default cache).
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return default_data_dir()


def data_dir_is_explicit(data_dir: str | os.PathLike | None = None) -> bool:
    """True when the user chose the folder (argument or environment), not the default cache."""
    return data_dir is not None or bool(os.environ.get(DATA_DIR_ENV))


CACHE_DIR_ENV = "CNNLAB_CACHE_DIR"


def cache_dir() -> Path:
    """Writable folder for derived files (extracted archives, decoded arrays).

    Separate from the data directory, which may be read-only (a shared mount).
    """
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return default_data_dir() / "_cache"
