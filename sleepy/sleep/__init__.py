"""Sleep: curate a day's failures into an SFT set and train an adapter on it (LoRA, or
coefficients in a Share basis)."""

from sleepy.sleep.run import SleepResult, episodes_db, koans_for, main, run_sleep

__all__ = ["SleepResult", "episodes_db", "koans_for", "main", "run_sleep"]
