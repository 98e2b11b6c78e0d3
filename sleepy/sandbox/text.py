"""Text a program or rustc wrote, made safe to show on a terminal: escape sequences and other
control characters removed, newlines and tabs kept.

A program under test prints what it likes: `\\x1b]0;...\\x07` retitles the terminal, `\\x1b[2J`
clears it, a lone `\\r` overwrites the line before it. rich passes ESC through, so what the
sandbox reports goes through `printable` wherever a person reads it; the episode store keeps the
original bytes.
"""

from __future__ import annotations

import re

_ESCAPES = re.compile(
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window title, hyperlinks, clipboard writes
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, clearing the screen
    r"|\x1b[ -/]*[0-~]"  # the two-character escapes (charset switches, reset)
)
# C0 but tab and newline, DEL, and C1 (U+0080..U+009F: terminals read U+009B as CSI)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without terminal escape sequences or control characters other than \\n and \\t
    (\\r\\n becomes \\n)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text.replace("\r\n", "\n")))
