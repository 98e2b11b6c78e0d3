"""The koan contract every stage hands on: a broken Rust program with its error and fix (`Koan`),
its file and evalset formats, and the Rust syntax trees that read its code. Below the sandbox, so a
verdict takes a typed `Koan`; the corpus that makes koans lives above, in `sleepy.koans`."""

from sleepy.koan.model import (
    FAMILIES,
    Koan,
    KoanError,
    content_hash,
    load_evalset,
    load_koan,
    load_koans,
    save_evalset,
    save_koan,
)

__all__ = [
    "FAMILIES",
    "Koan",
    "KoanError",
    "content_hash",
    "load_evalset",
    "load_koan",
    "load_koans",
    "save_evalset",
    "save_koan",
]
