"""Eval: the agent with a candidate adapter and with the champion on a learning set and the frozen
suite; the gate decides, and a passing candidate becomes the champion. The stage is
`sleepy.eval.run.evaluate`; `sleepy-eval` is its entrypoint."""

from sleepy.eval.run import (
    Contender,
    EvalError,
    EvalResult,
    SetResult,
    evaluate,
    resolve,
    split_new_programs,
)

__all__ = [
    "Contender",
    "EvalError",
    "EvalResult",
    "SetResult",
    "evaluate",
    "resolve",
    "split_new_programs",
]
