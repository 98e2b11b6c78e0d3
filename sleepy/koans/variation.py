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
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from sleepy.koan.syntax import Source
from sleepy.koans.generator import Vocab

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


# -- on the syntax tree: renaming, literals, item order --------------------------------------------

_FORMAT_ARG_RE = re.compile(r"\{([A-Za-z_]\w*)")


def _declared_names(src: Source) -> tuple[set[str], set[str], set[str]]:
    """(locals, free functions, types) the program itself declares."""
    local, funcs, types = set(), set(), set()
    for n in src.walk():
        if n.type in ("let_declaration", "parameter", "for_expression", "closure_parameters"):
            pat = n if n.type == "closure_parameters" else n.child_by_field_name("pattern")
            for p in src.walk(pat) if pat is not None else ():
                if p.type == "identifier" and (
                    p.parent.type != "tuple_struct_pattern" or p.prev_sibling is not None
                ):
                    local.add(src.text(p))
        elif n.type == "function_item" and n.parent.type == "source_file":
            name = src.text(n.child_by_field_name("name"))
            if name != "main":
                funcs.add(name)
        elif (
            n.type in ("struct_item", "enum_item", "trait_item") and n.parent.type == "source_file"
        ):
            types.add(src.text(n.child_by_field_name("name")))
    return local, funcs, types


def _unsafe_names(src: Source) -> set[str]:
    """Names a consistent rename could break: fields and methods (`x.name`, `Point { x }`),
    path segments of other crates' items, names used inside format strings, macros' own names."""
    out = set()
    for n in src.walk():
        if n.type in ("field_identifier", "shorthand_field_identifier"):
            out.add(src.text(n))
        elif n.type == "shorthand_field_initializer" or n.type == "field_pattern":
            out.update(src.text(c) for c in n.named_children if c.type == "identifier")
        elif n.type in ("scoped_identifier", "scoped_type_identifier", "use_declaration"):
            out.update(
                src.text(c) for c in src.walk(n) if c.type in ("identifier", "type_identifier")
            )
        elif n.type == "string_literal":
            out.update(_FORMAT_ARG_RE.findall(src.text(n)))
        elif n.type == "macro_invocation":
            out.add(src.text(n.child_by_field_name("macro")))
    return out


def rename(
    code: str, rng: random.Random, description: str = "", vocab: Callable[..., Vocab] = Vocab
) -> tuple[str, str]:
    """The program with its own locals, free functions and types consistently renamed (and the
    description's backticked mentions of them): the same program, with other names."""
    (code,), description = rename_together([code], rng, description, vocab)
    return code, description


def rename_together(
    codes: list[str],
    rng: random.Random,
    description: str = "",
    vocab: Callable[..., Vocab] = Vocab,
    keep: float = 0.3,
) -> tuple[list[str], str]:
    """Programs renamed with one mapping (a koan's buggy and correct code, so its fix stays the
    same fix): names any of them declares, safe to rename in all of them, each kept with
    probability `keep` (partial renames too)."""
    srcs = [Source(c) for c in codes]
    local, funcs, types, taken, unsafe = set(), set(), set(), set(), {"self", "Self", "_"}
    for src in srcs:
        names = _declared_names(src)
        local, funcs, types = local | names[0], funcs | names[1], types | names[2]
        taken |= {src.text(n) for n in src.walk() if n.type.endswith("identifier")}
        unsafe |= _unsafe_names(src)
    names = vocab(rng, taken=taken)  # a new name must not be any name already in the programs
    mapping: dict[str, str] = {}
    for declared, make in ((local, names.var), (funcs, names.func), (types, names.type_name)):
        for name in sorted(declared - unsafe):
            if name.startswith("_") or rng.random() < keep:
                continue
            mapping[name] = make()
    if not mapping:
        return codes, description
    out = [
        src.apply(
            [
                src.replace(n, mapping[src.text(n)])
                for n in src.walk()
                if n.type in ("identifier", "type_identifier") and src.text(n) in mapping
            ]
        )
        for src in srcs
    ]
    for old, new in mapping.items():
        description = description.replace(f"`{old}`", f"`{new}`")
    return out, description


def _word_strings(src: Source) -> dict[str, list]:
    """Plain-word string literals (`"north"`) outside format strings, by their text."""
    out: dict[str, list] = {}
    for n in src.walk():
        if n.type != "string_literal" or n.parent is None:
            continue
        body = src.text(n)[1:-1]
        if not re.fullmatch(r"[a-z]{3,12}", body):
            continue
        out.setdefault(body, []).append(n)
    return out


def change_literals(code: str, rng: random.Random) -> str:
    """The program with some plain-word strings replaced consistently (the same word becomes the
    same new word everywhere) and, in programs without tests, some data integers (array and vec
    elements, struct field values) changed a little. What it prints changes; `expected_stdout` is
    recomputed from the new program."""
    src = Source(code)
    edits = []
    words = _word_strings(src)
    vocab = Vocab(rng, taken=set(words))
    for word in sorted(words):
        if rng.random() < 0.5:
            new = vocab.fresh_word()
            edits += [src.replace(n, f'"{new}"') for n in words[word]]
    if "#[test]" not in code:
        for n in src.walk():
            if n.type != "integer_literal" or not src.text(n).isdigit():
                continue
            data = n.parent.type in ("array_expression", "field_initializer") or (
                n.parent.type == "token_tree"
                and n.parent.parent.type == "macro_invocation"
                and src.text(n.parent.parent).startswith("vec!")
            )
            if data and rng.random() < 0.5:
                edits.append(src.replace(n, str(int(src.text(n)) + rng.randint(1, 9))))
    return src.apply(edits) if edits else code


def reorder_items(code: str, rng: random.Random) -> str:
    """The program with its top-level items (functions, types, impls; each with its attributes
    and comments) in another order. `use` lines before them stay first, and a test module or
    anything else after them stays where it is; a program with `macro_rules!` (whose order
    matters) is left as it is."""
    if "macro_rules" in code:
        return code
    src = Source(code)
    groups: list[tuple[int, int]] = []  # byte ranges of the movable items, in order
    pending = None  # where the current item's attributes and comments start
    for n in src.root.children:
        if n.type in ("line_comment", "block_comment", "attribute_item"):
            pending = n.start_byte if pending is None else pending
            continue
        if n.type in _FIXED_ITEMS:
            if groups:
                break
            pending = None
            continue
        groups.append((n.start_byte if pending is None else pending, n.end_byte))
        pending = None
    if len(groups) < 2:
        return code
    order = list(range(len(groups)))
    rng.shuffle(order)
    head, tail = src.src[: groups[0][0]], src.src[groups[-1][1] :]
    body = b"\n\n".join(src.src[groups[i][0] : groups[i][1]] for i in order)
    return (head + body + tail).decode()


_FIXED_ITEMS = (
    "use_declaration", "inner_attribute_item", "extern_crate_declaration", "mod_item",
    "macro_definition", "macro_invocation", "expression_statement",
)  # fmt: skip
