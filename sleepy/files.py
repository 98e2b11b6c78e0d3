"""Writing a file so that no reader, and no other writer, ever sees half of it; telling a full
disk from other write errors."""

from __future__ import annotations

import errno
import os
import secrets
import sqlite3
import stat
from pathlib import Path

# what a write gets when no byte more fits: the disk, the user's quota, or RLIMIT_FSIZE
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file of its own in the same folder, then rename.

    The temporary name is unique to this call, so two processes writing the same path (two jobs
    of a sweep storing the same eval result) each rename a whole file and the last one wins.
    The file ends with the mode a plain write gives it: an existing file's own, else what the
    umask leaves of 0o666 (tempfile.mkstemp would make every file 0o600, readable by its owner
    only)."""
    path = Path(path)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            # O_EXCL: the name is this call's alone; 0o666 goes through the umask as open() does
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "w") as f:
            try:
                os.fchmod(f.fileno(), stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def disk_full(e: BaseException) -> bool:
    """Whether `e` is a write that failed for want of space: OSError ENOSPC (EDQUOT, EFBIG), or
    SQLite's SQLITE_FULL ("database or disk is full")."""
    if isinstance(e, sqlite3.Error):
        return getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or (
            "database or disk is full" in str(e)
        )
    return isinstance(e, OSError) and e.errno in _FULL_ERRNOS
