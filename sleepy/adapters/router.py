"""Routing at inference: an error signature picks the task adapter that learned it.

A Share bundle (`router.json` + `tasks/<name>/`, written by `Share.consolidate`) lists, per task,
the error signatures of the failures it was trained on. A signature seen in training routes to its
task; an unseen one goes to the task of its nearest training signature when that one lies within
the bundle's `distance` (TF-IDF over sleep's clustering tokens, cosine; the distance is
consolidation.route_distance, tighter than curation's clustering distance); anything else gets
the base model. A failing test's bare
assertion (`test_failed assertion left == right failed`) says that a program is wrong, not which
mistake it made, so it routes nowhere: sent to a task adapter, every failing test of every family
would be.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from sleepy.sandbox.signatures import SIGNATURE_TOKENS


def routable(signature: str) -> bool:
    """A signature that names a kind of mistake (a rustc error), not just that a test failed."""
    return not signature.startswith("test_failed assertion")


class RouterError(ValueError):
    """A bundle without a usable router.json; the message says which file and what is wrong."""


def task_name_problem(name: object) -> str | None:
    """What makes `name` unusable as a task's folder under tasks/, or None when it is one plain
    path component. Readers join it to a bundle's path and `sleepy export` deletes and rewrites
    what that join names, so `..`, `/` or an absolute name would reach outside the bundle; a
    control character (a newline) would start a new line in the files that name the task."""
    if not isinstance(name, str) or not name:
        return "is empty" if name == "" else f"is not a string ({type(name).__name__})"
    if name in (".", ".."):
        return f"is {name!r}, not a folder of its own"
    if "/" in name or "\\" in name:
        return "has a path separator: a task name is one folder name"
    if not name.isprintable():
        return "has a control character (a newline, a tab) or another unprintable one"
    return None


class Router:
    """signature -> task name (or None: the base model)."""

    def __init__(self, bundle_dir: str | Path, distance: float | None = None):
        self.bundle = Path(bundle_dir)
        path = self.bundle / "router.json"
        try:
            data = json.loads(path.read_text())
            table = data["tasks"]
            # the bundle's own (consolidation.route_distance when it was written)
            self.distance = float(distance if distance is not None else data["distance"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RouterError(f"{path}: not a router table ({type(e).__name__}: {e})") from None
        if not isinstance(table, dict):
            raise RouterError(f"{path}: 'tasks' must be an object of task name -> entry")
        for task in table:
            if problem := task_name_problem(task):
                raise RouterError(
                    f"{path}: task name {task!r} {problem}: rename it in router.json and tasks/"
                )
        self.table: dict[str, dict] = table
        missing = [t for t in table if not (self.task_dir(t) / "adapter_config.json").is_file()]
        if missing:
            raise RouterError(f"{self.bundle}: router.json names tasks with no adapter: {missing}")
        # later tasks win ties: a signature learned again is routed to the newer adapter
        self.exact = {
            s: t for t, e in table.items() for s in e.get("signatures", []) if routable(s)
        }
        self._signatures = list(self.exact)
        self._vectorizer = self._matrix = None
        if self._signatures:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self._vectorizer = TfidfVectorizer(token_pattern=SIGNATURE_TOKENS, sublinear_tf=True)
            self._matrix = self._vectorizer.fit_transform(self._signatures)

    @staticmethod
    def find(adapter_dir: str | Path) -> Path | None:
        """The bundle folder inside an adapter folder (Share exports one), if there is one."""
        bundle = Path(adapter_dir) / "bundle"
        return bundle if (bundle / "router.json").is_file() else None

    @property
    def tasks(self) -> list[str]:
        return list(self.table)

    def task_dir(self, name: str) -> Path:
        return self.bundle / "tasks" / name

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one router lives as long as its backend
    def route(self, signature: str | None) -> str | None:
        if not signature or not routable(signature):
            return None
        if signature in self.exact:
            return self.exact[signature]
        if self._vectorizer is None:
            return None
        from sklearn.metrics.pairwise import cosine_similarity

        query = self._vectorizer.transform([signature])
        if query.nnz == 0:
            return None
        sims = cosine_similarity(query, self._matrix)[0]
        best = int(sims.argmax())
        if 1.0 - sims[best] > self.distance:
            return None
        return self.exact[self._signatures[best]]
