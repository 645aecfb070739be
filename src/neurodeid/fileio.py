"""Small file-writing helpers: atomic writes, write-if-changed.

Every output is written to a temporary name in its own folder and renamed into
place, so a run killed at any moment leaves either the old file or the new one,
never a partial file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` atomically unless ``path`` already holds exactly it.

    Keeping the mtime of unchanged files is what lets Snakemake rerun only the
    work whose inputs really changed. Returns True when the file was written.
    """
    path = Path(path)
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_bytes_atomic(path, data)
    return True


def write_json_atomic(path: str | os.PathLike, record) -> None:
    """Write a stage's JSON record (indented, one trailing newline) atomically; values that
    JSON cannot hold (paths) are written as text."""
    import json

    write_text_atomic(path, json.dumps(record, indent=1, default=str) + "\n")


def write_placeholder_png(path: str | os.PathLike) -> None:
    """A black 64 x 64 picture where a QC picture could not be made, so the report shows the gap."""
    from PIL import Image

    Image.new("RGB", (64, 64)).save(path, format="PNG")
