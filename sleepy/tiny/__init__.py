"""sleepy-tiny: the small Rust-fixing model the project trains and ships (the embedded default)."""

from sleepy.tiny.location import MODEL_DIR

__all__ = ["MODEL_DIR"]
