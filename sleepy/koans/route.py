"""What the router reads off a koan without compiling it: the error signature its expected error
makes, and rustc's message with the lines the fix changes (where rustc's diagnostic points).

A sleep hands these to the Share router for the koans it trained on, consolidation for the
corpus's koans of families no task learned; at inference the router reads the feedback the agent
is shown, which quotes the same message and the lines at the error's span.
"""

from __future__ import annotations

import difflib

from sleepy.koan.model import Koan
from sleepy.sandbox.signatures import (
    ErrorSignature,
    normalize_message,
    signature_from_test_failure,
)


def koan_signature(koan: Koan) -> str:
    """The signature the sandbox would give the koan's expected error (as near as the stored
    text allows: it is often the first part of rustc's message)."""
    if koan.kind == "test":
        return str(signature_from_test_failure(koan.expected_error))
    return str(
        ErrorSignature(koan.expected_code or "error", normalize_message(koan.expected_error))
    )


def koan_route_text(koan: Koan) -> str:
    """rustc's message and the buggy lines the fix changes (rustc quotes the lines at the span)."""
    buggy, fixed = koan.buggy_code.splitlines(), koan.correct_code.splitlines()
    changed = [
        line.strip()
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, buggy, fixed).get_opcodes()
        if tag in ("replace", "delete")
        for line in buggy[i1:i2]
    ]
    return "\n".join([koan.expected_error, *changed])


def route_example(koan: Koan) -> dict:
    """One example for the router: {koan_id, family, signature, text}; the family is a training
    label only (the router is given the text, never the family, at inference)."""
    return {
        "koan_id": koan.id,
        "family": koan.family,
        "signature": koan_signature(koan),
        "text": koan_route_text(koan),
    }
