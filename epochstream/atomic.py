"""Files that appear whole: written under a hidden temporary name in the same directory, then renamed.

A reader sees the old file or the new one, never half of one. With `fsync`, the data and then the rename
are made durable (without the directory's fsync a power loss can undo a rename that something was
already told about). The standard library only: the producer (no pyarrow in training processes) uses it
as well as the workers; `epochstream.layout.atomic_write_parquet` is the same protocol for Parquet.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_SUFFIX = ".tmp"


def tmp_name(path: Path) -> Path:
    """A hidden, unique name beside `path` (hidden: globs over the directory never pick it up)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")


def is_tmp_of(candidate: Path, final_name: str) -> bool:
    """Whether `candidate` is a temporary file of `atomic_write*(..., <dir>/final_name)` (one a killed
    writer left behind, say)."""
    return candidate.name.startswith(f".{final_name}.") and candidate.name.endswith(TMP_SUFFIX)


def fsync_dir(directory: Path, *, strict: bool = True) -> None:
    """Make a rename (or a new file) in `directory` durable. `strict=False`: a filesystem that cannot
    fsync a directory is not an error (the spool carries on; durability is then the page cache's)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None], *, fsync: bool = True, mode: int | None = None) -> None:
    """`write(tmp)` makes the file under a temporary name; it then replaces `path` in one rename. `mode`
    is set before the rename, so the file is never readable under its name with other permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        write(tmp)
        if mode is not None:
            tmp.chmod(mode)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True, mode: int | None = None) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=fsync, mode=mode)


def atomic_write_text(path: Path, text: str, *, fsync: bool = True, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync, mode=mode)
