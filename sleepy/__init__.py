"""sleepy: a coding agent that fixes Rust koans by day and learns from its failures by night."""

__version__ = "0.1.0"
