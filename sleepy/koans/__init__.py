"""Koans: broken Rust programs with their error and fix; loading, generating, importing, validating."""

from sleepy.koans.model import (
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
