"""Routing at inference: what the agent sees of an error picks the task adapter that learned it,
or the base model.

A Share bundle (`router.json` + `tasks/<name>/`, written by `Share.consolidate`) lists, per task,
the error signatures of the failures it was trained on, and says which router reads it:

- `learned` (the default): a classifier (`router_model.json`) over TF-IDF of the signature's
  tokens and of rustc's text (its message and the source lines it quotes), with one class per
  task and one for the base model, trained on the koans each task learned and on koans of
  families no task learned. Below the bundle's `confidence` the base model answers. Families
  share rustc's error codes (E0599 is a missing derive in trait_bounds and a method called on a
  Result in result_handling); the text tells them apart where the signature alone cannot.
- `signature`: a signature seen in training routes to its task; an unseen one to the task of its
  nearest training signature within the bundle's `distance` (TF-IDF, cosine); else the base.

A failing test's bare assertion (`test_failed assertion left == right failed`) says that a
program is wrong, not which mistake it made, so it routes nowhere: sent to a task adapter, every
failing test of every family would be. A route the gate saw break koans of other families is
withdrawn (`add_withdrawn`): router.json keeps it, with why, and its queries go where the champion
sent them. When the task trained on that signature itself (families that fail with one error), the
route is withdrawn for the broken koan's text only: a query goes where the champion sent it when
its text is nearer that koan's than any of the task's own examples.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from sleepy.files import write_atomic
from sleepy.sandbox.signatures import SIGNATURE_TOKENS

MODEL_FILE = "router_model.json"  # the learned router's vocabularies and coefficients
ROUTERS = ("learned", "signature")
_TOKENS = re.compile(SIGNATURE_TOKENS)
_HEADLINE = re.compile(r"^(?:error|warning)(?:\[\w+\])?: (.*)$")
_QUOTED = re.compile(r"^\s*\d+\s*\|\s?(.*)$")


def diagnostic_core(text: str) -> str:
    """rustc's feedback cut to what the router learned from: each error's message and the source
    lines it quotes, without the arrows, notes and help around them (a koan's training text is
    its message and the lines its fix changes). Text with no quoted line is kept as it is."""
    kept = []
    for line in text.splitlines():
        if m := _HEADLINE.match(line):
            kept.append(m.group(1))
        elif (m := _QUOTED.match(line)) and m.group(1).strip():
            kept.append(m.group(1).strip())
    return "\n".join(kept) if any(_QUOTED.match(line) for line in text.splitlines()) else text


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


@dataclass(frozen=True)
class Route:
    """Where one query goes: `task` (None: the base model) and how sure the router was of it (the
    learned router's probability of its choice, the signature router's cosine similarity)."""

    task: str | None
    confidence: float | None = None


def _tfidf(text: str, vocabulary: dict[str, int], idf: list[float]) -> list[float]:
    """scikit-learn's TfidfVectorizer(sublinear_tf=True, norm="l2") for one text, from the saved
    vocabulary and idf (so inference needs neither scikit-learn nor a pickle)."""
    counts: dict[int, int] = {}
    for token in _TOKENS.findall(text):
        if (j := vocabulary.get(token)) is not None:
            counts[j] = counts.get(j, 0) + 1
    x = [0.0] * len(idf)
    for j, n in counts.items():
        x[j] = (1.0 + math.log(n)) * idf[j]
    norm = math.sqrt(sum(v * v for v in x))
    return [v / norm for v in x] if norm else x


@dataclass
class RouterModel:
    """The learned router: features phi = [tfidf(signature); tfidf(text)], class scores
    W phi + b, softmax over the classes (each task, and None for the base model)."""

    classes: list[str | None]
    signature_vocabulary: dict[str, int]
    signature_idf: list[float]
    text_vocabulary: dict[str, int]
    text_idf: list[float]
    coef: list[list[float]]  # W: (classes, signature features + text features)
    intercept: list[float]  # b: (classes,)

    @classmethod
    def fit(cls, examples: list[tuple[str, str, str | None]], seed: int = 0) -> RouterModel:
        """A model from (signature, text, task or None) examples: TF-IDF over each part, then a
        multinomial logistic regression with balanced class weights (a task's few koans against
        many base ones)."""
        import numpy as np
        from scipy.sparse import hstack
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        labels = [label for _, _, label in examples]
        if len(set(labels)) < 2:
            raise RouterError(
                "the learned router needs examples of two routes at least (tasks, or a task and "
                f"the base model), got {sorted(set(map(str, labels)))}: give "
                "consolidation.route_koans a corpus with families no task learned"
            )
        make = lambda: TfidfVectorizer(  # noqa: E731
            token_pattern=SIGNATURE_TOKENS, lowercase=False, sublinear_tf=True
        )
        sig, txt = make(), make()
        phi = hstack(
            [
                sig.fit_transform([s for s, _, _ in examples]),
                txt.fit_transform([t for _, t, _ in examples]),
            ]
        ).tocsr()
        # None cannot be a class label next to strings: index the classes instead
        classes = sorted(set(labels), key=lambda c: (c is not None, c or ""))
        y = [classes.index(label) for _, _, label in examples]
        clf = LogisticRegression(C=10.0, class_weight="balanced", max_iter=5000, random_state=seed)
        clf.fit(phi, y)
        coef, intercept = np.asarray(clf.coef_), np.asarray(clf.intercept_)
        if len(classes) == 2:  # sigmoid(z) == softmax([-z/2, z/2])[1]
            coef, intercept = (
                np.vstack([-coef / 2, coef / 2]),
                np.array([-intercept[0] / 2, intercept[0] / 2]),
            )
        vocab = lambda v: {t: int(j) for t, j in sorted(v.vocabulary_.items())}  # noqa: E731
        return cls(
            classes,
            vocab(sig),
            [float(v) for v in sig.idf_],
            vocab(txt),
            [float(v) for v in txt.idf_],
            coef.tolist(),
            intercept.tolist(),
        )

    def probabilities(self, signature: str, text: str = "") -> list[float]:
        """P(class | signature, text), in the order of `classes`."""
        phi = _tfidf(signature, self.signature_vocabulary, self.signature_idf) + _tfidf(
            text, self.text_vocabulary, self.text_idf
        )
        scores = [
            b + sum(w * x for w, x in zip(row, phi, strict=True) if x)
            for row, b in zip(self.coef, self.intercept, strict=True)
        ]
        top = max(scores)
        exp = [math.exp(s - top) for s in scores]
        return [e / sum(exp) for e in exp]

    def save(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.__dict__))

    @classmethod
    def load(cls, path: Path) -> RouterModel:
        """The saved model, or a one-line RouterError saying what is wrong with the file."""
        try:
            model = cls(**json.loads(path.read_text()))
            n_sig, n_txt = len(model.signature_idf), len(model.text_idf)
            problem = (
                "the vocabularies and idf do not match"
                if sorted(model.signature_vocabulary.values()) != list(range(n_sig))
                or sorted(model.text_vocabulary.values()) != list(range(n_txt))
                else "one row of coefficients per class is needed"
                if len(model.coef) != len(model.classes)
                or len(model.intercept) != len(model.classes)
                else "a row of coefficients is not one per feature"
                if any(len(row) != n_sig + n_txt for row in model.coef)
                else "a coefficient is not a finite number"
                if not all(math.isfinite(float(v)) for row in model.coef for v in row)
                else None
            )
        except (OSError, ValueError, TypeError, AttributeError) as e:
            problem = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
        if problem:
            raise RouterError(
                f"{path}: not a router model ({problem}); consolidate again or set "
                "consolidation.router=signature"
            )
        return model


class Router:
    """(signature, text) -> Route: a task name, or None for the base model."""

    def __init__(self, bundle_dir: str | Path, distance: float | None = None):
        self.bundle = Path(bundle_dir)
        path = self.bundle / "router.json"
        try:
            data = json.loads(path.read_text())
            table = data["tasks"]
            # the bundle's own (consolidation.route_distance when it was written)
            self.distance = float(distance if distance is not None else data["distance"])
            self.kind = str(data.get("router", "signature"))  # bundles written before: signature
            self.confidence = float(data.get("confidence", 0.0))
            withdrawn = list(data.get("withdrawn", []))
            # (task, signature) -> where its queries go now
            self.withdrawn = {
                (w["task"], w["signature"]): w.get("to") for w in withdrawn if not w.get("text")
            }
            # (task, signature) -> [(text, where)]: a route the task trained on, withdrawn only
            # for queries whose text is nearer a regressed koan's than the task's own examples
            self.exceptions: dict[tuple[str, str], list[tuple[str, str | None]]] = {}
            for w in withdrawn:
                if w.get("text"):
                    key = (w["task"], w["signature"])
                    self.exceptions.setdefault(key, []).append((str(w["text"]), w.get("to")))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RouterError(f"{path}: not a router table ({type(e).__name__}: {e})") from None
        if not isinstance(table, dict):
            raise RouterError(f"{path}: 'tasks' must be an object of task name -> entry")
        if self.kind not in ROUTERS:
            raise RouterError(f"{path}: router must be one of {ROUTERS}, not {self.kind!r}")
        for task in table:
            if problem := task_name_problem(task):
                raise RouterError(
                    f"{path}: task name {task!r} {problem}: rename it in router.json and tasks/"
                )
        self.table: dict[str, dict] = table
        missing = [t for t in table if not (self.task_dir(t) / "adapter_config.json").is_file()]
        if missing:
            raise RouterError(f"{self.bundle}: router.json names tasks with no adapter: {missing}")
        self.model = RouterModel.load(self.bundle / MODEL_FILE) if self.kind == "learned" else None
        if self.model is not None and (unknown := set(self.model.classes) - {None, *table}):
            raise RouterError(
                f"{self.bundle / MODEL_FILE}: routes to tasks not in router.json: {sorted(unknown)}"
            )
        # later tasks win ties: a signature learned again is routed to the newer adapter
        self.exact = {
            s: t for t, e in table.items() for s in e.get("signatures", []) if routable(s)
        }
        self._signatures = list(self.exact)
        self._vectorizer = self._matrix = None
        if self._signatures and self.model is None:
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

    def route(self, signature: str | None, text: str | None = None) -> str | None:
        return self.decide(signature, text).task

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one router lives as long as its backend
    def decide(self, signature: str | None, text: str | None = None) -> Route:
        """Where a query goes. `text` is rustc's feedback as the agent is shown it; without it
        (serve clients, scripts) the learned router reads the signature alone."""
        if not signature or not routable(signature):
            return Route(None)
        chosen = (
            self._learned(signature, diagnostic_core(text or ""))
            if self.model
            else self._nearest(signature)
        )
        key = (chosen.task, signature)
        if chosen.task is not None and key in self.withdrawn:
            return Route(self.withdrawn[key], chosen.confidence)
        if chosen.task is not None and key in self.exceptions:
            return Route(self._nearer(key, diagnostic_core(text or "")), chosen.confidence)
        return chosen

    def _nearer(self, key: tuple[str, str], text: str) -> str | None:
        """Where a query on a route withdrawn by text goes: to the withdrawal's `to` when its text
        is nearer (TF-IDF cosine) a regressed koan's text than any example the task trained on
        with that signature (any of its examples when none has it), else to the task itself."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.metrics.pairwise import cosine_similarity

        task, signature = key
        examples = self.table[task].get("examples") or []
        own = [e["text"] for e in examples if e.get("signature") == signature] or [
            e["text"] for e in examples
        ]
        withdrawn = self.exceptions[key]
        vectorizer = TfidfVectorizer(token_pattern=SIGNATURE_TOKENS, sublinear_tf=True)
        vectorizer.fit([text, *own, *(t for t, _ in withdrawn)])
        query = vectorizer.transform([text])
        near = cosine_similarity(query, vectorizer.transform([t for t, _ in withdrawn]))[0]
        best = int(near.argmax())
        kept = cosine_similarity(query, vectorizer.transform(own))[0].max() if own else -1.0
        return withdrawn[best][1] if near[best] > kept else task

    def _learned(self, signature: str, text: str) -> Route:
        p = self.model.probabilities(signature, text)
        best = max(range(len(p)), key=p.__getitem__)
        task = self.model.classes[best]
        return Route(task if p[best] >= self.confidence else None, round(p[best], 4))

    def _nearest(self, signature: str) -> Route:
        if signature in self.exact:
            return Route(self.exact[signature], 1.0)
        if self._vectorizer is None:
            return Route(None)
        from sklearn.metrics.pairwise import cosine_similarity

        query = self._vectorizer.transform([signature])
        if query.nnz == 0:
            return Route(None)
        sims = cosine_similarity(query, self._matrix)[0]
        best = int(sims.argmax())
        if 1.0 - sims[best] > self.distance:
            return Route(None, round(float(sims[best]), 4))
        return Route(self.exact[self._signatures[best]], round(float(sims[best]), 4))


def add_withdrawn(bundle_dir: str | Path, withdrawals: list[dict]) -> None:
    """Add withdrawn routes to a bundle's router.json: each {task, signature, to (a task or None:
    the base model), reason, koan_ids}, and `text` when the task trained on that signature; a
    Router read afterwards sends that task's queries with that signature to `to` (with `text`:
    those whose text is nearer it than the task's own examples)."""
    path = Path(bundle_dir) / "router.json"
    data = json.loads(path.read_text())
    data.setdefault("withdrawn", []).extend(withdrawals)
    write_atomic(path, json.dumps(data, indent=2))
