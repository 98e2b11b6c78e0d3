"""Where the agent meets the parts it does not own: the model (`LLM`, the base class of every
backend in sleepy.llm), and as Protocols the sandbox that judges code (`Checker`) and the store
every step is written to (`EpisodeSink`). sleepy.sandbox.Sandbox and sleepy.episodes.EpisodeStore
are the real ones; a test may pass any object with these methods."""

from __future__ import annotations

from typing import Any, Protocol

from sleepy.episodes import Episode
from sleepy.koan.model import Koan
from sleepy.llm import LLM
from sleepy.sandbox import SandboxResult, Verdict

__all__ = ["LLM", "Checker", "EpisodeSink"]


class Checker(Protocol):
    """The sandbox as the agent uses it: the verdict on a koan's code (the one definition of a
    fix), and a type check or a test run for the text and tools protocols' actions."""

    def verdict(self, koan: Koan, code: str) -> Verdict: ...

    def check(self, code: str, edition: str = "2021") -> SandboxResult: ...

    def test(self, code: str, edition: str = "2021") -> SandboxResult: ...


class EpisodeSink(Protocol):
    """Where episodes go as they happen (one write per step), and where hints come from."""

    def start_episode(self, run_id: str, task_id: str, **fields: Any) -> str: ...

    def record_step(self, episode_id: str, step: dict | None = None, **updates: Any) -> None: ...

    def finish_episode(
        self, episode_id: str, passed: bool, status: str = "done", **updates: Any
    ) -> None: ...

    def successes_with_signature(self, signature: object, k: int = 3) -> list[Episode]: ...
