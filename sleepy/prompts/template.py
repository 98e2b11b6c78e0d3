"""Prompt templates: conf/prompts/<name>.yaml holds Jinja text that turns a koan, its code and the
compiler's feedback into chat messages. The agent and the training data of sleep both use it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

from sleepy.config import CONF_DIR
from sleepy.koan.model import Koan

PROMPTS_DIR = CONF_DIR / "prompts"
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


class PromptError(ValueError):
    """A template that is missing or does not render; the message names the file."""


@dataclass
class Hint:
    """A worked example: an earlier successful fix for the same error signature."""

    description: str
    feedback: str
    reply: str  # the fix, written in the edit format in use
    signature: str = ""


@dataclass
class PromptTemplate:
    name: str
    system: str | None
    user: str
    observation: str = "{{ output }}"
    formats: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def load(cls, name: str) -> PromptTemplate:
        """`name` is a file in conf/prompts/ (without .yaml) or a path to a YAML file."""
        path = Path(name) if name.endswith((".yaml", ".yml")) else PROMPTS_DIR / f"{name}.yaml"
        if not path.exists():
            have = sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))
            raise PromptError(f"no prompt template '{name}' ({path}); available: {have}")
        text = path.read_text()
        data = yaml.safe_load(text) or {}
        if "user" not in data:
            raise PromptError(f"{path}: missing the 'user' template")
        known = {"system", "user", "observation", "formats"}
        if set(data) - known:
            raise PromptError(
                f"{path}: unknown keys {sorted(set(data) - known)} (allowed: {sorted(known)})"
            )
        tpl = cls(
            name=path.stem,
            system=data.get("system"),
            user=data["user"],
            observation=data.get("observation", "{{ output }}"),
            formats=data.get("formats") or {},
            source=text,
        )
        for key in ("system", "user", "observation"):
            if getattr(tpl, key):
                try:
                    _ENV.from_string(getattr(tpl, key))
                except jinja2.TemplateSyntaxError as e:
                    raise PromptError(f"{path}: '{key}' line {e.lineno}: {e.message}") from None
        return tpl

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()[:12]

    def _render(self, text: str, **values: Any) -> str:
        try:
            return _ENV.from_string(text).render(**values).strip("\n")
        except jinja2.UndefinedError as e:
            raise PromptError(f"prompt template '{self.name}': {e.message}") from None

    def messages(
        self,
        koan: Koan,
        code: str,
        feedback: str,
        hints: Sequence[Hint] = (),
        edit_format: str = "search_replace",
        protocol: str = "edit",
    ) -> list[dict]:
        """The chat messages that open an attempt at `koan` whose current program is `code`."""
        values = dict(
            koan=koan,
            code=code if code.endswith("\n") else code + "\n",
            numbered_code=numbered(code),
            feedback=feedback.strip(),
            hints=list(hints),
            edit_format=edit_format,
            protocol=protocol,
            file="src/main.rs",
            format_instructions=self.formats.get(edit_format, ""),
        )
        out = []
        if self.system:
            out.append({"role": "system", "content": self._render(self.system, **values)})
        out.append({"role": "user", "content": self._render(self.user, **values)})
        return out

    def render_observation(self, output: str, **values: Any) -> str:
        return self._render(self.observation, output=output, **values)


def messages_hash(messages: list[dict]) -> str:
    """A stable id for the exact prompt sent (the episode's prompt_hash)."""
    text = "\x1e".join(f"{m['role']}\x1f{m.get('content') or ''}" for m in messages)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def numbered(code: str) -> str:
    """The program with its line numbers, as rustc's diagnostics show them (`12 | let x = 1;`)."""
    lines = code.splitlines()
    width = len(str(len(lines)))
    return "".join(f"{i:>{width}} | {line}".rstrip() + "\n" for i, line in enumerate(lines, 1))
