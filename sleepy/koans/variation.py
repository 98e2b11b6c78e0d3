"""Semantics-preserving variation: unrelated items added to a koan's program.

The same mistake in a program that also holds other code: the fix is unchanged, the output is
unchanged (the items are never called), but the program is new — its normalized form is not a
renamed twin of any other draw of its template. Two disjoint pools: training augmentation draws
from TRAIN_ITEMS, the eval's learning sets from EVAL_ITEMS, so no learning-set program can be a
training program with other names.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from typing import TypeVar

Program = TypeVar("Program")  # a Koan or a template's Draft: anything with buggy/correct code

TRAIN_ITEMS: tuple[str, ...] = (
    "const RETRY_LIMIT: u32 = 3;",
    "fn clamp_percent(x: i64) -> i64 {\n    x.max(0).min(100)\n}",
    "struct Stopwatch {\n    ticks: u64,\n}\n\nimpl Stopwatch {\n    fn tick(&mut self) {\n"
    "        self.ticks += 1;\n    }\n}",
    "fn checksum(bytes: &[u8]) -> u8 {\n    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))\n}",
    "enum Light {\n    Red,\n    Green,\n}",
    "fn is_even(n: u64) -> bool {\n    n % 2 == 0\n}",
    "type Pair = (i32, i32);",
    "fn swap_pair(p: (i32, i32)) -> (i32, i32) {\n    (p.1, p.0)\n}",
)

EVAL_ITEMS: tuple[str, ...] = (
    "const PAGE_SIZE: usize = 4096;",
    "fn median3(a: i32, b: i32, c: i32) -> i32 {\n    a.max(b).min(a.min(b).max(c))\n}",
    "struct Fraction {\n    num: i64,\n    den: i64,\n}\n\nimpl Fraction {\n"
    "    fn value(&self) -> f64 {\n        self.num as f64 / self.den as f64\n    }\n}",
    'fn count_vowels(s: &str) -> usize {\n    s.chars().filter(|c| "aeiou".contains(*c)).count()\n}',
    "enum Shape {\n    Dot,\n    Line(u32),\n}",
    "fn gcd(a: u64, b: u64) -> u64 {\n    if b == 0 { a } else { gcd(b, a % b) }\n}",
    'static GREETING: &str = "hello";',
    "fn mean(xs: &[f64]) -> f64 {\n    xs.iter().sum::<f64>() / xs.len().max(1) as f64\n}",
)

_USE_RE = re.compile(r"\A(?:(?:use [^\n]*;|//[^\n]*|#!\[[^\n]*\])\n|\s*\n)*")


def add_items(code: str, items: list[str], at_top: bool) -> str:
    """`code` with `items` (each marked allow(dead_code)) after its leading `use` lines, or at
    the end."""
    block = "".join(f"#[allow(dead_code)]\n{item}\n\n" for item in items)
    if at_top:
        head = _USE_RE.match(code).end()
        return code[:head] + ("\n" if head else "") + block + code[head:]
    return code.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"


def vary(koan: Program, pool: tuple[str, ...], rng: random.Random, k: int) -> Program:
    """The koan with k items from `pool` added to both programs, at the same place."""
    if k == 0:
        return koan
    items, at_top = rng.sample(pool, k), rng.random() < 0.5
    return replace(
        koan,
        buggy_code=add_items(koan.buggy_code, items, at_top),
        correct_code=add_items(koan.correct_code, items, at_top),
    )
