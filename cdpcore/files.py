"""Files represents the durable-write idioms every persistent piece here shares: a
small file replaced atomically, and a directory synced so a rename survives power loss."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """A new or renamed file survives power loss only once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_atomically(path: Path, text: str) -> None:
    """Write a small file so a crash leaves the old or the new version, never a mix:
    a temporary file, fsynced, renamed over the old one, then the directory synced."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
