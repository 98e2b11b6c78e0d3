"""Where sleepy-tiny's files are: the `model` folder beside this module, in the installed package
as in a checkout."""

from pathlib import Path

MODEL_DIR = Path(__file__).parent / "model"
