"""The journal's verification seal: a node that stopped in order does not re-read every record at start.

Decision (issue 14, a whole-node restart must not grow with the journal): :meth:`Journal.verify`
decodes every record and recomputes every index and aggregate, one full pass (seconds per million
records). A node verifies the whole journal at start unless the journal carries a **seal** written
at its last orderly stop and nothing touched the file since: the seal (``journal/verified.json``)
holds LMDB's last transaction id and ``data.mdb``'s size, inode and modification time as they were
after the last commit. Any write since (through LMDB: a new transaction id; by anything else: a new
mtime or size, a replaced file) breaks the match, and the start verifies everything, as before.

What the seal vouches for: at the start of the sealed run the journal was verified in full (or was
itself sealed), and every record appended during the run was validated by its writer
(:meth:`Journal.append` refuses what it could not read back). A run that did not stop in order
(kill -9 of the node, a crash, a power loss) leaves no seal: the seal is removed at start, before
anything is written, so the next start verifies everything. Bit rot at rest that changes none of
these (a disk returning other bytes for an untouched file) is not seen at a sealed start;
``sniperbot journal fills`` (which verifies the whole journal first) checks everything when asked.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from sniperbot.journal.lmdbfile import DATA_FILE

__all__ = ["SEAL_FILE", "break_seal", "is_sealed", "write_seal"]

SEAL_FILE = "verified.json"


def _fingerprint(journal_dir: Path, txnid: int) -> dict[str, Any]:
    stat = os.stat(journal_dir / DATA_FILE)
    return {"txnid": txnid, "size": stat.st_size, "ino": stat.st_ino, "mtime_ns": stat.st_mtime_ns}


def is_sealed(journal_dir: Path, txnid: int) -> bool:
    """Whether the journal is exactly as its last orderly stop sealed it (``txnid``: LMDB's last now)."""
    try:
        seal = json.loads((journal_dir / SEAL_FILE).read_text())
        return bool(seal == _fingerprint(journal_dir, txnid))
    except (OSError, ValueError):
        return False


def break_seal(journal_dir: Path) -> None:
    """Remove the seal (at start, before the first write): only an orderly stop writes a new one."""
    with contextlib.suppress(FileNotFoundError):
        (journal_dir / SEAL_FILE).unlink()
        fd = os.open(journal_dir, os.O_RDONLY)
        try:
            os.fsync(fd)  # the removal is durable before anything is written
        finally:
            os.close(fd)


def write_seal(journal_dir: Path, txnid: int) -> None:
    """Seal the journal after its last commit and close (``txnid``: LMDB's last transaction id)."""
    tmp = journal_dir / (SEAL_FILE + ".tmp")
    tmp.write_text(json.dumps(_fingerprint(journal_dir, txnid)))
    os.chmod(tmp, 0o600)
    os.replace(tmp, journal_dir / SEAL_FILE)
