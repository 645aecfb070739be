"""gzip a file with several threads (pigz-style independent deflate blocks).

Each block is deflated on its own and ended with a sync flush, so the concatenation
is one valid deflate stream; the result is a standard single-member .gz that any
gunzip / nibabel reads. zlib releases the GIL, so blocks compress in parallel.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["gzip_file"]

_BLOCK = 1 << 20


def _deflate(block: bytes, level: int, last: bool) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def gzip_file(src: Path, dst: Path, level: int = 6, threads: int | None = None) -> Path:
    """Compress ``src`` into ``dst`` (gzip format); returns ``dst``."""
    data = Path(src).read_bytes()
    blocks = [data[i : i + _BLOCK] for i in range(0, len(data), _BLOCK)] or [b""]
    threads = threads or (min(len(blocks), os.cpu_count() or 1) if len(data) > 4 * _BLOCK else 1)
    with open(dst, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # no name, no mtime
        if threads > 1 and len(blocks) > 1:
            with ThreadPoolExecutor(threads) as pool:
                parts = pool.map(
                    _deflate, blocks, [level] * len(blocks), [i == len(blocks) - 1 for i in range(len(blocks))]
                )
                for p in parts:
                    out.write(p)
        else:
            for i, b in enumerate(blocks):
                out.write(_deflate(b, level, i == len(blocks) - 1))
        out.write(struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF))
    return Path(dst)
