"""Reading trees of files someone else wrote (`koans import`, `koans mutate --from`): regular files
only, found without following a symlink, and each one that cannot be read left out with why.

An exercise tree is another person's folder. A symlink in it can point at any file this user may
read (`y.rs -> /etc/passwd` would become a koan), a FIFO named `x.rs` blocks a plain read
forever, and a tree deeper than Python's recursion limit stops a recursive walk; so the walk
keeps its own stack, takes names from `lstat`, and every read re-checks the open file itself.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

Skipped = list[tuple[str, str]]  # (path relative to the tree, why it was left out)

SYMLINK = "a symlink (only regular files are read: copy the file into the tree)"


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def _not_regular(mode: int) -> str:
    return "not a regular file: " + next((k for test, k in _KINDS if test(mode)), "not a file")


def walk_files(root: Path, suffixes: tuple[str, ...]) -> tuple[list[Path], Skipped]:
    """The regular files under `root` whose names end in one of `suffixes`, sorted, and each other
    entry with such a name (a symlink, a FIFO, a folder named `x.rs`) with why it was left out.
    Symlinked folders are not entered; `root` itself may be one (the user named it)."""
    files: list[Path] = []
    skipped: Skipped = []
    stack = [root]
    while stack:  # a stack, not recursion: a tree may be deeper than the interpreter's limit
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            skipped.append((str(folder.relative_to(root)), f"folder not readable: {e.strerror}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                stack.append(path)
            if not entry.name.endswith(suffixes):
                continue
            rel = str(path.relative_to(root))
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as e:
                skipped.append((rel, f"cannot be read: {e.strerror}"))
                continue
            if stat.S_ISLNK(mode):
                skipped.append((rel, SYMLINK))
            elif not stat.S_ISREG(mode):
                skipped.append((rel, _not_regular(mode)))
            else:
                files.append(path)
    return sorted(files), sorted(skipped)


def read_text(path: Path) -> tuple[str | None, str]:
    """(the file's text, "") or (None, why it cannot be a source): the file must be a regular
    file, not a symlink, and UTF-8."""
    try:
        # O_NONBLOCK: opening a FIFO that was swapped in after the walk returns at once
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, "does not exist"
    except OSError as e:
        return None, SYMLINK if e.errno == errno.ELOOP else f"cannot be read: {e.strerror}"
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if not stat.S_ISREG(mode):
            return None, _not_regular(mode)
        data = f.read()
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text: byte {e.start} is {data[e.start]:#04x} (save it as UTF-8)"


def read_under(root: Path, rel: str) -> tuple[str | None, str]:
    """`read_text` of `root/rel`, refusing a path that passes through a symlinked folder under
    `root` (O_NOFOLLOW checks only the last name)."""
    folder = root
    for part in Path(rel).parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            return (
                None,
                f"reached through a symlinked folder ({folder}): only regular files are read",
            )
    return read_text(root / rel)


def leading_comment(code: str) -> str:
    """The comment block a program opens with, as one line ("" when it has none): in a file
    someone wrote, it says what the program is about better than sleepy can."""
    lines = []
    for line in code.splitlines():
        s = line.strip()
        if s.startswith("//"):
            lines.append(s.lstrip("/!").strip())
        elif s or lines:
            break
    return " ".join(x for x in lines if x)
