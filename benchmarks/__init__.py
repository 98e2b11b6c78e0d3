"""Benchmarks (`make bench`, `python -m benchmarks`): they compose sleepy's stages and live outside
the installed package."""
