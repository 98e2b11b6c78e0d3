"""Error signatures: a failure reduced to its kind of mistake, so the same mistake in different
programs groups together (`E0382 borrow of moved value: <id>`) and different mistakes do not."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sleepy.sandbox.text import printable

if TYPE_CHECKING:
    from sleepy.sandbox import Diagnostic


# The words of a signature that tell mistakes apart, for TF-IDF over signatures: names and rustc's
# error codes. Sleep clusters failures with it, the Share router matches unseen errors with it.
SIGNATURE_TOKENS = r"[A-Za-z_][A-Za-z0-9_]+|E\d{4}"


@dataclass(frozen=True)
class ErrorSignature:
    code: str  # "E0382" | "error" (rustc error without a code) | "test_failed" | "timeout" | ...
    text: str  # the normalized message

    @property
    def hash(self) -> str:
        return hashlib.sha256(str(self).encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


_PRIMITIVES = {
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
    "f32", "f64", "bool", "char", "str", "String", "()", "!", "Self",
}  # fmt: skip
# Words inside backticks that carry the meaning of the message rather than the program's names.
_KEPT = {
    "left == right", "left != right", "Err", "Ok", "None", "Some", "&mut", "&", "?",
    "if", "else", "match", "for", "while", "loop", "fn", "impl", "let", "return", "async",
    "await", "dyn", "where", "mut", "move", "ref", "static", "const", "break", "continue",
}  # fmt: skip
_KEPT_RE = re.compile(r"^(Option|Result)::\w+\(\)$")
_PLACE_RE = re.compile(r"^[&*]*(mut\s+)?[a-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+|\[[^\]]*\]|\(\))*$")
_LIFETIME_RE = re.compile(r"^&?'[A-Za-z_]\w*$")
_NUMBER = (
    r"-?\b(?:0x[0-9a-fA-F_]+|\d[\d_]*(?:\.\d+)?(?:e-?\d+)?)(?:[iuf](?:8|16|32|64|128|size))?\b"
)
_NUMBER_RE = re.compile(_NUMBER)


def _abstract_quoted(content: str) -> str:
    c = content.strip()
    if c in _KEPT or _KEPT_RE.match(c):
        return c
    if _LIFETIME_RE.match(c):
        return "<lifetime>"
    if re.fullmatch(r'b?"(?:[^"\\]|\\.)*"', c):
        return "<str>"
    if re.fullmatch(r"b?'(?:[^'\\]|\\.)+'", c):
        return "<char>"
    if _NUMBER_RE.fullmatch(c):
        return "<num>"
    if re.sub(r"^(&|\*|mut\s+)+", "", c) in _PRIMITIVES:
        return "<type>"
    if _PLACE_RE.match(c):
        return "<id>"
    return "<type>"


def normalize_message(msg: str) -> str:
    """The first line of a message with names, types, lifetimes, literals, paths and numbers
    replaced by placeholders; whitespace collapsed. Control characters go first: a message may
    quote the program (`compile_error!`, a panic), and a signature is shown and grouped on."""
    msg = printable(msg)
    text = msg.strip().splitlines()[0] if msg.strip() else ""
    # `...` spans first: they hold the program's own names and types.
    text = re.sub(r"`([^`]*)`", lambda m: _abstract_quoted(m.group(1)), text)
    text = re.sub(r'b?"(?:[^"\\]|\\.)*"', "<str>", text)
    text = re.sub(r"(?<![\w'])b?'(?:[^'\\]|\\.)'", "<char>", text)
    text = re.sub(r"(?<![\w'])'[A-Za-z_]\w*\b(?!')", "<lifetime>", text)
    # file paths with optional :line:col (panics, linker errors)
    text = re.sub(r"(?:[\w.\-]*/)+[\w.\-]+(?::\d+)*", "<path>", text)
    text = _NUMBER_RE.sub("<num>", text)
    # "1 argument was" and "2 arguments were" are the same mistake
    text = re.sub(r"<num> (\w+?)s\b", r"<num> \1", text)
    text = re.sub(r"\bwere\b", "was", text)
    text = " ".join(text.split())
    return text[:200]


def signature_from_diagnostic(d: Diagnostic) -> ErrorSignature:
    return ErrorSignature(d.code or "error", normalize_message(d.message))


def signature_from_test_failure(message: str) -> ErrorSignature:
    """A failing test's panic message: assertion kinds are kept, their operands dropped."""
    message = printable(message)
    first = message.strip().splitlines()[0] if message.strip() else "test failed"
    m = re.match(r"assertion `(left [=!]= right)` failed", first)
    if m:
        return ErrorSignature("test_failed", f"assertion {m.group(1)} failed")
    if first.startswith("assertion failed"):
        return ErrorSignature("test_failed", "assertion failed")
    return ErrorSignature("test_failed", normalize_message(first))


def signature_of(status: str, detail: str = "") -> ErrorSignature:
    """Signatures for failures that are not a compiler or test message (timeout, memory, ...)."""
    return ErrorSignature(status, normalize_message(detail) if detail else "")
