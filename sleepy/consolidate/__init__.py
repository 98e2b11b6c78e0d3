"""Consolidation: keep what earlier adapters learned when a new one arrives (Share, UWSH, PEFT merges)."""
