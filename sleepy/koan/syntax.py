"""Rust syntax trees (tree-sitter's Rust grammar) and byte-range edits on the source they parse.

Mutation operators, semantics-preserving variation and the sandbox's test harness read programs
through these trees rather than with regexes: a `mut` is a `mutable_specifier` node, a `?` a
`try_expression`, so an operator never touches the word `mut` in a string or a comment. Offsets are
byte offsets of the UTF-8 source.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import tree_sitter
import tree_sitter_rust

_LANGUAGE = tree_sitter.Language(tree_sitter_rust.language())
_local = threading.local()  # a Parser is not safe to share between threads

Node = tree_sitter.Node


def parse(src: bytes) -> Node:
    """The root of `src`'s syntax tree (tree-sitter recovers from errors: it always returns one)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = tree_sitter.Parser(_LANGUAGE)
    return parser.parse(src).root_node


@dataclass(frozen=True)
class Edit:
    """Replace bytes [start, end) of the source with `text`."""

    start: int
    end: int
    text: bytes = b""


class Source:
    """A program's bytes and their syntax tree, with the small queries the operators need."""

    def __init__(self, code: str):
        self.code = code
        self.src = code.encode()
        self.root = parse(self.src)

    @property
    def has_errors(self) -> bool:
        """True when tree-sitter could not parse some of the program (the tree holds ERROR nodes)."""
        return self.root.has_error

    def text(self, node: Node) -> str:
        return self.src[node.start_byte : node.end_byte].decode()

    def walk(self, node: Node | None = None) -> Iterator[Node]:
        """Every node under `node` (default: the root), in source order."""
        stack = [node or self.root]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(reversed(n.children))

    def of_type(self, *types: str, under: Node | None = None) -> list[Node]:
        return [n for n in self.walk(under) if n.type in types]

    def apply(self, edits: list[Edit]) -> str:
        """The source with non-overlapping `edits` applied."""
        out, pos = [], 0
        for e in sorted(edits, key=lambda e: e.start):
            if e.start < pos:
                raise ValueError(f"overlapping edits at byte {e.start}")
            out += [self.src[pos : e.start], e.text]
            pos = e.end
        out.append(self.src[pos:])
        return b"".join(out).decode()

    # -- edits that keep the layout tidy -----------------------------------------------------

    def replace(self, node: Node, text: str) -> Edit:
        return Edit(node.start_byte, node.end_byte, text.encode())

    def delete_with_space(self, node: Node) -> Edit:
        """Delete `node` and the spaces after it (`mut x` -> `x`)."""
        end = node.end_byte
        while end < len(self.src) and self.src[end : end + 1] in (b" ", b"\t"):
            end += 1
        return Edit(node.start_byte, end, b"")

    def delete_lines(self, first: Node, last: Node | None = None) -> Edit:
        """Delete the whole lines from `first` to `last` (an item with its attributes), and one
        blank line after them when there is one."""
        last = last or first
        start = self.src.rfind(b"\n", 0, first.start_byte) + 1
        end = self.src.find(b"\n", last.end_byte)
        end = len(self.src) if end == -1 else end + 1
        if self.src[end : end + 1] == b"\n":
            end += 1
        return Edit(start, end, b"")

    def delete_from_list(self, node: Node, sep: bytes = b",") -> Edit:
        """Delete one item of a `sep`-separated list with its separator (`A, B, C` -> `A, C`)."""
        after = node.next_sibling
        if after is not None and self.src[after.start_byte : after.end_byte] == sep:
            end = after.end_byte
            while self.src[end : end + 1] in (b" ", b"\t"):
                end += 1
            return Edit(node.start_byte, end, b"")
        before = node.prev_sibling
        if before is not None and self.src[before.start_byte : before.end_byte] == sep:
            start = before.start_byte
            while start > 0 and self.src[start - 1 : start] in (b" ", b"\t"):
                start -= 1
            return Edit(start, node.end_byte, b"")
        return Edit(node.start_byte, node.end_byte, b"")


def field(node: Node, name: str) -> Node | None:
    return node.child_by_field_name(name)


def method_name(call: Node) -> str | None:
    """`m` for a method call `x.m(...)`, else None."""
    if call.type != "call_expression":
        return None
    f = field(call, "function")
    if f is None or f.type != "field_expression":
        return None
    name = field(f, "field")
    return name.text.decode() if name is not None else None


def receiver(call: Node) -> Node | None:
    """`x` of a method call `x.m(...)`."""
    f = field(call, "function")
    return field(f, "value") if f is not None and f.type == "field_expression" else None


def arguments(call: Node) -> list[Node]:
    args = field(call, "arguments")
    return [c for c in args.named_children if c.type != "line_comment"] if args else []


def ancestors(node: Node) -> Iterator[Node]:
    n = node.parent
    while n is not None:
        yield n
        n = n.parent


def inside(node: Node, *types: str) -> bool:
    return any(a.type in types for a in ancestors(node))
