"""sleepy-tiny: the small Rust-fixing model the project trains and ships (the embedded default)."""

from pathlib import Path

MODEL_DIR = Path(__file__).parent / "model"
