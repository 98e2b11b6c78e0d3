"""The koan corpus: generating, mutating, importing, harvesting and validating koans. The koan
itself (`Koan`, its files and evalsets) is the contract in `sleepy.koan`, re-exported here for
callers that reach it through the corpus."""

from sleepy.koan import (
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
