"""Template patterns for generated koans: each pattern turns a seeded Vocab into a Draft.

A family module in `sleepy/koans/families/` registers its patterns with `@pattern(...)`;
`generate()` (in `sleepy.koans.generate`) draws, validates and deduplicates them.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from sleepy.koan.model import FAMILIES


@dataclass(frozen=True)
class Draft:
    description: str
    buggy_code: str
    correct_code: str
    expected_error: str  # substring of the primary rustc message (compile) or the panic (test)


@dataclass(frozen=True)
class Pattern:
    family: str
    name: str
    kind: str  # "compile" | "test"
    expected_code: str | None
    make: Callable[[Vocab], Draft]


REGISTRY: dict[str, dict[str, Pattern]] = {}


def pattern(family: str, name: str, kind: str = "compile", code: str | None = None):
    """Register a template: `@pattern("borrow_checker", "use_after_move", code="E0382")`."""

    def register(fn: Callable[[Vocab], Draft]) -> Callable[[Vocab], Draft]:
        REGISTRY.setdefault(family, {})[name] = Pattern(family, name, kind, code, fn)
        return fn

    return register


def patterns(family: str) -> list[Pattern]:
    _register_families()
    return list(REGISTRY.get(family, {}).values())


@functools.cache
def _register_families() -> None:
    """Import every family's module in sleepy/koans/families/: each registers its patterns."""
    for family in FAMILIES:
        try:
            import_module(f"sleepy.koans.families.{family}")
        except ModuleNotFoundError as e:  # a family without templates yet
            if e.name != f"sleepy.koans.families.{family}":
                raise


_NOUNS = [
    "account",
    "order",
    "sensor",
    "book",
    "player",
    "ticket",
    "invoice",
    "packet",
    "robot",
    "planet",
    "recipe",
    "student",
    "vehicle",
    "message",
    "record",
    "sample",
    "cell",
    "task",
    "node",
    "token",
    "reading",
    "item",
    "batch",
    "course",
    "device",
    "shipment",
    "voter",
]
_FIELDS = [
    "id",
    "name",
    "count",
    "total",
    "score",
    "level",
    "price",
    "weight",
    "label",
    "code",
    "value",
    "limit",
    "speed",
    "owner",
    "title",
    "size",
    "rank",
    "age",
    "depth",
    "amount",
]
_VERBS = [
    "process",
    "update",
    "compute",
    "summarize",
    "describe",
    "check",
    "measure",
    "format",
    "collect",
    "render",
    "register",
    "inspect",
    "adjust",
    "report",
]
_WORDS = [
    "alpha",
    "delta",
    "north",
    "amber",
    "cobalt",
    "maple",
    "orbit",
    "quartz",
    "river",
    "solar",
    "tango",
    "velvet",
    "willow",
    "zephyr",
    "ember",
    "harbor",
    "lunar",
    "pixel",
]
INT_TYPES = ["i32", "i64", "u32", "u64", "usize"]


class Vocab:
    """Seeded choices of identifiers, types and literals, so one template yields many programs."""

    def __init__(self, rng: random.Random, taken: set[str] = frozenset()):
        self.rng = rng
        self._used: set[str] = set(taken)  # names never handed out (a program's own names)

    def choice(self, seq):
        return self.rng.choice(list(seq))

    def _fresh(self, pool: list[str], transform=lambda s: s) -> str:
        for _ in range(50):
            name = transform(self.rng.choice(pool))
            if name not in self._used:
                self._used.add(name)
                return name
        name = f"{transform(self.rng.choice(pool))}{len(self._used)}"
        self._used.add(name)
        return name

    def var(self) -> str:
        """A fresh snake_case local name (`order`, `sensor_list`, ...)."""
        return self._fresh(
            _NOUNS,
            lambda s: (
                s
                if self.rng.random() < 0.6
                else f"{s}_{self.rng.choice(['a', 'b', 'x', 'list', 'ref', 'data'])}"
            ),
        )

    def field(self) -> str:
        return self._fresh(_FIELDS)

    def func(self) -> str:
        return self._fresh([f"{v}_{n}" for v in _VERBS for n in _NOUNS[:12]])

    def type_name(self) -> str:
        """A fresh CamelCase struct name."""
        return self._fresh(
            _NOUNS,
            lambda s: (
                s.capitalize()
                if self.rng.random() < 0.7
                else s.capitalize() + self.rng.choice(["Info", "Data", "Entry", "Spec"])
            ),
        )

    def int_type(self) -> str:
        return self.rng.choice(INT_TYPES)

    def int(self, lo: int = 1, hi: int = 99) -> int:
        return self.rng.randint(lo, hi)

    def word(self) -> str:
        return self.rng.choice(_WORDS)

    def fresh_word(self) -> str:
        """A word not handed out (nor taken) before: a new value for a string literal."""
        return self._fresh(_WORDS)

    def string(self) -> str:
        return f'"{self.word()}"'

    def filler(self, indent: str = "    ") -> str:
        """An unrelated, valid statement or empty string, to vary the surrounding code."""
        n = self.rng.random()
        if n < 0.4:
            return ""
        v = self._fresh(_WORDS, lambda s: f"{s}_{self.rng.choice(['n', 'k', 'tag'])}")
        if n < 0.7:
            return f'{indent}let {v} = {self.int()};\n{indent}println!("{v} = {{}}", {v});\n'
        return f'{indent}let {v} = "{self.word()}".len();\n{indent}println!("{{}}", {v});\n'


@functools.cache
def _words() -> tuple[str, ...]:
    """2,000 English words programmers use (words.txt: parts of the identifiers of Python's
    standard library, most common first; no Rust keyword or prelude name)."""
    text = (Path(__file__).parent / "words.txt").read_text()
    return tuple(w for w in text.split() if w)


RUST_KEYWORDS = frozenset(
    "as break const continue crate else enum extern false fn for if impl in let loop match mod "
    "move mut pub ref return self static struct super trait true type unsafe use where while async "
    "await dyn abstract become box do final macro override priv typeof unsized virtual yield try "
    "union".split()
)


class WideVocab(Vocab):
    """Names drawn from 2,000 words instead of a few dozen: a model trained on programs renamed
    with it cannot guess a name from the names it has seen, only copy it from the program.
    With `made_up`, that share of the words is made of random syllables (`tavoki`): names no word
    prior can pull toward."""

    def __init__(self, rng: random.Random, taken: set[str] = frozenset(), made_up: float = 0.0):
        super().__init__(rng, taken)
        self.words = _words()
        self.made_up = made_up

    def _word(self) -> str:
        if self.made_up and self.rng.random() < self.made_up:
            while True:
                word = "".join(
                    self.rng.choice("bdfgklmnprstvz") + self.rng.choice("aeiou")
                    for _ in range(self.rng.randint(2, 3))
                )
                if word not in RUST_KEYWORDS:
                    return word
        return self.rng.choice(self.words)

    def _compound(self, n: int) -> list[str]:
        return [self._word() for _ in range(n)]

    def var(self) -> str:
        return self._fresh(["_"], lambda _: "_".join(self._compound(self.rng.choice((1, 1, 2)))))

    def func(self) -> str:
        return self._fresh(["_"], lambda _: "_".join(self._compound(self.rng.choice((1, 2, 2)))))

    def type_name(self) -> str:
        return self._fresh(
            ["_"],
            lambda _: "".join(w.capitalize() for w in self._compound(self.rng.choice((1, 2)))),
        )
