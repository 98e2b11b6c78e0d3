"""The day: the agent fixes koans (replying with edits or actions until the sandbox's verdict
passes); every episode goes to the episode store, the run to MLflow."""

from sleepy.day.loop import KoanRun, Policy, policy_from, run_koans, solve
from sleepy.day.protocol import PROTOCOLS, TOOL_SCHEMAS, Action, FormatError
from sleepy.day.run import DayError, DayResult, main, run_day, select_koans
from sleepy.prompts.edits import EditError, EditFormat, get_edit_format
from sleepy.prompts.template import Hint, PromptTemplate

__all__ = [
    "PROTOCOLS",
    "TOOL_SCHEMAS",
    "Action",
    "DayError",
    "DayResult",
    "EditError",
    "EditFormat",
    "FormatError",
    "Hint",
    "KoanRun",
    "Policy",
    "PromptTemplate",
    "get_edit_format",
    "main",
    "policy_from",
    "run_day",
    "run_koans",
    "select_koans",
    "solve",
]
