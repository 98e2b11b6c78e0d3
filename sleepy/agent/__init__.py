"""The agent: fixes a koan by replying with edits (or actions) until the sandbox's verdict passes."""

from sleepy.agent.edits import EditError, EditFormat, get_edit_format
from sleepy.agent.loop import KoanRun, Policy, policy_from, run_koans, solve
from sleepy.agent.prompts import Hint, PromptTemplate
from sleepy.agent.protocol import PROTOCOLS, TOOL_SCHEMAS, Action, FormatError

__all__ = [
    "PROTOCOLS",
    "TOOL_SCHEMAS",
    "Action",
    "EditError",
    "EditFormat",
    "FormatError",
    "Hint",
    "KoanRun",
    "Policy",
    "PromptTemplate",
    "get_edit_format",
    "policy_from",
    "run_koans",
    "solve",
]
