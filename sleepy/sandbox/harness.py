"""A koan's own tests, put back into a candidate before it is judged.

A koan's tests belong to the koan, not to the code under test (SWE-bench applies its test patch
after the model's patch for the same reason): whatever a candidate did to its test module
(deleted it, renamed or `#[ignore]`d a test, compiled it out, shadowed `assert_eq!`), the verdict
removes the candidate's test items and appends the koan's, and every one of those tests must then
report a pass by name. Items are found with tree-sitter's Rust grammar, not with regexes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from sleepy.koan.syntax import Node, parse

# An outer attribute that makes an item test-only: `#[test]` or `#[cfg(test)]`. Any other cfg that
# names `test` (`cfg(not(test))`, `cfg_attr(test, ...)`) stays with the code under test, where
# `changes_under_test` finds it.
_TEST_ATTR = re.compile(r"#\s*\[\s*(?:test|cfg\s*\(\s*test\s*\))\s*\]")
_IS_TEST_FN = re.compile(r"#\s*\[\s*test\s*\]")
# Code that is built differently for the harness than for main: the tests would not test it.
_CFG_TEST = re.compile(r"\b(?:cfg!?|cfg_attr)\s*\((?:[^()]|\([^()]*\))*\btest\b")
# std's assertion macros, called by path in the koan's tests so that a `macro_rules! assert_eq`
# in the candidate (textually in scope for everything after it) cannot turn them into no-ops.
_STD_MACROS = frozenset(
    "assert assert_eq assert_ne debug_assert debug_assert_eq debug_assert_ne panic "
    "unreachable unimplemented todo matches".split()
)


@dataclass(frozen=True)
class KoanTests:
    """The test items of a koan's correct code, and the libtest names they must report."""

    source: str  # appended to the candidate after its own test items are removed
    names: tuple[str, ...]  # "tests::adds_two", "top_level_test"
    cfg_in_code: bool = False  # the correct code itself builds differently under test

    def __bool__(self) -> bool:
        return bool(self.source)


def _parse(code: str) -> tuple[bytes, Node]:
    src = code.encode(errors="surrogatepass")  # a model may emit a lone surrogate
    return src, parse(src)


def _top_items(src: bytes, root: Node):
    """(start byte, item node, its outer attributes' text) for each top-level item; an item's
    range starts at its first outer attribute (comments between them included)."""
    attrs: list[Node] = []
    for node in root.children:
        if node.type == "attribute_item":
            attrs.append(node)
            continue
        if node.type in ("line_comment", "block_comment") and attrs:
            continue
        text = " ".join(
            src[a.start_byte : a.end_byte].decode(errors="surrogatepass") for a in attrs
        )
        yield (attrs[0].start_byte if attrs else node.start_byte), node, text
        attrs = []


def _test_names(src: bytes, node: Node, attrs: str, prefix: str) -> list[str]:
    """libtest's names for the `#[test]` functions in one item (a test-only module recurses)."""
    if node.type == "function_item":
        name = node.child_by_field_name("name")
        if name is not None and _IS_TEST_FN.search(attrs):
            return [prefix + src[name.start_byte : name.end_byte].decode(errors="surrogatepass")]
        return []
    if node.type != "mod_item":
        return []
    body, name = node.child_by_field_name("body"), node.child_by_field_name("name")
    if body is None or name is None:
        return []
    inner = prefix + src[name.start_byte : name.end_byte].decode(errors="surrogatepass") + "::"
    names, pending = [], []
    for child in body.named_children:
        if child.type == "attribute_item":
            pending.append(src[child.start_byte : child.end_byte].decode(errors="surrogatepass"))
            continue
        if child.type in ("line_comment", "block_comment"):
            continue
        names += _test_names(src, child, " ".join(pending), inner)
        pending = []
    return names


def _absolute_macros(src: bytes, node: Node) -> str:
    """The item's text with std's assertion macros called as `::std::name!`."""
    edits = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.type == "macro_invocation":
            head = n.child_by_field_name("macro")
            if head is not None and head.type == "identifier":
                if (
                    src[head.start_byte : head.end_byte].decode(errors="surrogatepass")
                    in _STD_MACROS
                ):
                    edits.append(head.start_byte)
        stack.extend(n.children)
    text = bytearray(src[node.start_byte : node.end_byte])
    for at in sorted(edits, reverse=True):
        text[at - node.start_byte : at - node.start_byte] = b"::std::"
    return text.decode(errors="surrogatepass")


@functools.lru_cache(maxsize=4096)
def koan_tests(correct_code: str) -> KoanTests:
    """The test-only top-level items of a koan's correct code and the tests they define."""
    src, root = _parse(correct_code)
    parts, names = [], []
    for start, node, attrs in _top_items(src, root):
        if not _TEST_ATTR.search(attrs):
            continue
        head = src[start : node.start_byte].decode(errors="surrogatepass")
        parts.append(head + _absolute_macros(src, node))
        names += _test_names(src, node, attrs, "")
    return KoanTests("\n\n".join(parts), tuple(names), changes_under_test(correct_code))


def strip_tests(code: str) -> str:
    """`code` without its test-only top-level items; each removed item leaves its newlines, so
    rustc's line numbers for the rest of the program are the candidate's own."""
    src, root = _parse(code)
    out, at = bytearray(), 0
    for start, node, attrs in _top_items(src, root):
        if _TEST_ATTR.search(attrs):
            out += src[at:start] + b"\n" * src[start : node.end_byte].count(b"\n")
            at = node.end_byte
    return (bytes(out) + src[at:]).decode(errors="surrogatepass")


def with_koan_tests(code: str, tests: KoanTests) -> str:
    """The program the harness builds: the candidate's code under test, then the koan's tests."""
    stripped = strip_tests(code)
    return stripped.rstrip("\n") + "\n\n" + tests.source + "\n" if tests else stripped


def changes_under_test(code: str) -> bool:
    """True when code outside the test items is built differently for the harness (`cfg!(test)`,
    `#[cfg(not(test))]` in an impl): the koan's tests would then test other code than main runs."""
    return _CFG_TEST.search(strip_tests(code)) is not None


def bug_in_tests(buggy_code: str, correct_code: str) -> bool:
    """True when a koan's bug lies inside its tests: the verdict would put the fix back itself."""
    return koan_tests(buggy_code).source != koan_tests(correct_code).source
