"""Action protocols: how one model reply becomes one action for the workspace.

- edit:  the reply is the edit itself, in the configured edit format (small models);
- text:  one fenced block whose language is the action's name (```search\\nfoo\\n```);
- tools: native tool calls in the OpenAI tools format (or Qwen's <tool_call> JSON in the text).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("edit", "text", "tools")
ACTIONS = ("open_file", "search", "apply_patch", "write_file", "run_check", "run_tests", "submit")


class FormatError(ValueError):
    """A reply that holds no usable action; the one-line message goes back to the model."""


@dataclass
class Action:
    name: str  # one of ACTIONS, or "edit" (the edit protocol)
    args: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None  # the tool call's id, to answer it with a tool message


def _schema(name: str, description: str, **params: str) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": "string", "description": v} for k, v in params.items()},
                "required": list(params),
            },
        },
    }


TOOL_SCHEMAS: list[dict] = [
    _schema("open_file", "Show a file of the crate with line numbers.", path="e.g. src/main.rs"),
    _schema("search", "Lines of src/main.rs that contain the text.", pattern="text to find"),
    _schema(
        "apply_patch",
        "Apply a unified diff to src/main.rs; the verdict comes back.",
        patch="unified diff (--- a/src/main.rs, +++ b/src/main.rs, @@ hunks)",
    ),
    _schema(
        "write_file",
        "Replace a file with new content; the verdict comes back.",
        path="src/main.rs",
        content="the whole new file",
    ),
    _schema("run_check", "Compile src/main.rs and show rustc's errors."),
    _schema("run_tests", "Build and run the crate's tests; show failures."),
    _schema("submit", "Submit src/main.rs as the fix; ends the attempt if it passes."),
]

_FENCE = re.compile(r"^```[ \t]*([A-Za-z_]+)([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)


def parse_text(reply: str) -> Action:
    """The one fenced action in a reply of the text protocol."""
    found = [(n, rest.strip(), body) for n, rest, body in _FENCE.findall(reply) if n in ACTIONS]
    if not found:
        # a bare action name with no body, e.g. "submit" on its own line
        bare = [
            n
            for n in ("submit", "run_check", "run_tests")
            if re.search(rf"^\s*{n}\s*$", reply, re.M)
        ]
        if len(bare) == 1:
            return Action(bare[0])
        raise FormatError(
            f"no action found: reply with one fenced block named one of {', '.join(ACTIONS)}"
        )
    if len(found) > 1:
        raise FormatError(
            f"{len(found)} actions in one reply ({', '.join(f[0] for f in found)}): send exactly one"
        )
    name, rest, body = found[0]
    if name == "open_file":
        return Action(name, {"path": (rest or body.strip() or "src/main.rs")})
    if name == "search":
        if not (body.strip() or rest):
            raise FormatError("search needs the text to find inside the block")
        return Action(name, {"pattern": body.strip("\n") or rest})
    if name == "apply_patch":
        return Action(name, {"patch": body})
    if name == "write_file":
        return Action(name, {"path": rest or "src/main.rs", "content": body})
    return Action(name)


_QWEN_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def parse_tool_calls(text: str, tool_calls: list[dict] | None) -> Action:
    """The first native tool call of a reply (servers return them apart from the text; some local
    chat templates leave them in the text as <tool_call>{json}</tool_call>)."""
    calls = list(tool_calls or [])
    if not calls:
        for raw in _QWEN_CALL.findall(text or ""):
            try:
                calls.append(json.loads(raw))
            except json.JSONDecodeError:
                raise FormatError(f"a <tool_call> holds invalid JSON: `{raw[:60]}`") from None
    if not calls:
        raise FormatError(f"no tool call: call one of the tools ({', '.join(ACTIONS)})")
    call = calls[0]
    fn = call.get("function", call)
    name, args = fn.get("name"), fn.get("arguments") or {}
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise FormatError(f"arguments of {name} are not valid JSON: `{args[:60]}`") from None
    if name not in ACTIONS:
        raise FormatError(f"unknown tool '{name}': use one of {', '.join(ACTIONS)}")
    return Action(name, dict(args), call.get("id"))


def parse(protocol: str, text: str, tool_calls: list[dict] | None = None) -> Action:
    if protocol == "edit":
        return Action("edit", {"reply": text})
    if protocol == "text":
        return parse_text(text)
    if protocol == "tools":
        return parse_tool_calls(text, tool_calls)
    raise ValueError(f"unknown protocol '{protocol}' (choose one of {', '.join(PROTOCOLS)})")
