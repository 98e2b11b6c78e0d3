"""Hint memory: earlier successful fixes of the same error signature, shown as worked examples.

The episode store keys episodes by the koan's starting signature; the fix is re-rendered in the
edit format in use from the trajectory's start code and final code.
"""

from __future__ import annotations

from sleepy.day.seams import EpisodeSink
from sleepy.prompts.edits import EditError, EditFormat
from sleepy.prompts.template import Hint


def hints_for(
    store: EpisodeSink | None,
    signature,
    k: int,
    edit_format: EditFormat,
    exclude_task: str | None = None,
) -> list[Hint]:
    """Up to k hints for `signature`, newest first; never the koan's own earlier fix."""
    if store is None or signature is None or k <= 0:
        return []
    out: list[Hint] = []
    for episode in store.successes_with_signature(signature, k=k * 3 + 1):
        if episode.task_id == exclude_task or not episode.trajectory:
            continue
        start = episode.trajectory[0]
        final = next((s["code"] for s in reversed(episode.trajectory) if s.get("code")), None)
        if start.get("kind") != "start" or final is None:
            continue
        try:
            reply = edit_format.render(start["code"], final)
        except (EditError, IndexError):
            continue
        out.append(
            Hint(
                start.get("description", ""),
                start.get("feedback", ""),
                reply.strip(),
                str(signature),
            )
        )
        if len(out) == k:
            break
    return out
