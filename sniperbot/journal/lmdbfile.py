"""Checks of an LMDB environment's file that must pass before any data page is touched.

LMDB maps ``data.mdb`` into memory and trusts it: a file shorter than its meta page
says (a half-truncated copy, a full disk during a copy) makes the first read of a
missing page a SIGBUS that kills the process without a word; a 0-byte ``data.mdb``
opened for writing is silently initialised as a *new, empty* environment over the
evidence. The journal and the venue ledger both run these checks at open, so damage
becomes an error that names the file and the problem instead.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import lmdb

__all__ = ["DATA_FILE", "check_before_open", "check_mapped_size", "is_disk_full"]

DATA_FILE = "data.mdb"


def check_before_open(env_dir: Path, *, must_exist: bool) -> str | None:
    """The problem with ``env_dir/data.mdb`` that LMDB would hide or crash on, or None.

    ``must_exist``: the caller knows the environment was created before (a run dir
    that has traded, a read-only reader), so a missing or empty file is lost data,
    not a first start.
    """
    data = env_dir / DATA_FILE
    try:
        size = data.stat().st_size
    except FileNotFoundError:
        if not must_exist:
            return None
        return f"{data} is missing" if env_dir.is_dir() else f"{env_dir} is missing (no {DATA_FILE})"
    except OSError as e:
        return f"{data} cannot be read: {e.strerror}"
    if size == 0 and must_exist:
        return f"{data} is empty (0 bytes): it was truncated or never written"
    return None


def check_mapped_size(env: lmdb.Environment, env_dir: Path) -> str | None:
    """After ``lmdb.open`` (which reads only the meta pages): is the file as long as they say?

    ``(last page number + 1) * page size`` bytes are addressed by the newest meta page;
    a shorter file would SIGBUS on the first read of a page past its end.
    """
    data = env_dir / DATA_FILE
    # Meta first, size second: another process may commit in between, and LMDB writes a
    # commit's pages (growing the file) before its meta page, so the file can only have
    # grown past what the meta we read addresses. The other order races with live writers.
    page_size = env.stat()["psize"]
    needed = (env.info()["last_pgno"] + 1) * page_size
    try:
        size = os.stat(data).st_size
    except OSError as e:
        return f"{data} cannot be read: {e.strerror}"
    if size < needed:
        return (
            f"{data} is truncated: {size} bytes, but its meta page addresses {needed} bytes "
            f"({needed // page_size} pages of {page_size})"
        )
    return None


def is_disk_full(error: BaseException | None) -> bool:
    """Whether ``error`` (or what caused it) is a disk that refuses writes: LMDB's DiskError or ENOSPC,
    and EIO, which LMDB reports when a full disk fails its commit's write-back (a dying disk gives
    the same answer, and the same remedy: stop in order, nothing more can be journaled).
    """
    while error is not None:
        if isinstance(error, lmdb.DiskError) or (
            isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EIO)
        ):
            return True
        if isinstance(error, lmdb.Error) and "Input/output error" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False
