"""Mutation operators: one realistic mistake, injected into a correct program on its syntax tree.

An operator belongs to a koan family and names the mistake (its `name` becomes the koan's pattern);
`sites(source)` lists every place in the program where it can be made, each as the edits that make
it. Whether a site really gives the declared failure is for the sandbox to say (`sleepy.koans.mutate`
keeps only mutants whose first error has one of `codes`, or, for test operators, that compile and
fail a test): an operator proposes, rustc disposes.

Operators never touch test code (`#[test]` functions, `#[cfg(test)]` modules): the mistake is in the
program, the tests are what catches it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sleepy.koan.syntax import (
    Edit,
    Node,
    Source,
    ancestors,
    arguments,
    field,
    inside,
    method_name,
    receiver,
)

Site = list[Edit]


@dataclass(frozen=True)
class Operator:
    family: str
    name: str
    kind: str  # "compile" | "test"
    codes: tuple[str, ...]  # compile: the first error must have one of these codes
    mistake: str  # what the operator does to the program, in words
    sites: Callable[[Source], list[Site]]


OPERATORS: dict[str, dict[str, Operator]] = {}


def operator(family: str, name: str, mistake: str, codes: tuple[str, ...] = (), kind="compile"):
    """Register an operator: `@operator("mutability", "drop_let_mut", "...", codes=("E0596",))`."""

    def register(fn: Callable[[Source], list[Site]]) -> Callable[[Source], list[Site]]:
        def sites(source: Source) -> list[Site]:
            return [site for site in fn(source) if site]

        OPERATORS.setdefault(family, {})[name] = Operator(family, name, kind, codes, mistake, sites)
        return fn

    return register


def operators(family: str) -> list[Operator]:
    return list(OPERATORS.get(family, {}).values())


def get_operator(family: str, name: str) -> Operator | None:
    return OPERATORS.get(family, {}).get(name)


# -- what the operators share ----------------------------------------------------------------------


def _attributes(item: Node) -> list[str]:
    """The texts of the attribute items right before `item`."""
    out, n = [], item.prev_named_sibling
    while n is not None and n.type in ("attribute_item", "line_comment"):
        if n.type == "attribute_item":
            out.append(n.text.decode())
        n = n.prev_named_sibling
    return out


def in_test_code(node: Node) -> bool:
    """Inside a `#[test]` function or a `#[cfg(test)]` module."""
    for a in [node, *ancestors(node)]:
        if a.type == "function_item" and any("test" in t for t in _attributes(a)):
            return True
        if a.type == "mod_item" and any("cfg(test)" in t.replace(" ", "") for t in _attributes(a)):
            return True
    return False


def program_nodes(src: Source, *types: str) -> list[Node]:
    """Nodes of these types outside test code."""
    return [n for n in src.of_type(*types) if not in_test_code(n)]


def method_calls(src: Source, *names: str) -> list[Node]:
    return [n for n in program_nodes(src, "call_expression") if method_name(n) in names]


def strip_call(src: Source, call: Node) -> Site:
    """`x.m(...)` -> `x`."""
    return [src.replace(call, src.text(receiver(call)))]


def mut_of(node: Node) -> Node | None:
    return next((c for c in node.children if c.type == "mutable_specifier"), None)


def enclosing_fn(node: Node) -> Node | None:
    return next((a for a in ancestors(node) if a.type == "function_item"), None)


def in_trait_impl(node: Node) -> bool:
    """Inside `impl Trait for Type`: its signatures are fixed by the trait (changing one is E0053)."""
    impl = next((a for a in ancestors(node) if a.type == "impl_item"), None)
    return impl is not None and field(impl, "trait") is not None


def used_after(src: Source, name: Node, after: Node) -> bool:
    """The identifier `name` appears again in its function after `after` ends."""
    fn = enclosing_fn(after)
    text = src.text(name)
    return fn is not None and any(
        n.type == "identifier" and n.start_byte >= after.end_byte and src.text(n) == text
        for n in src.walk(fn)
    )


def mentions_spawn(src: Source, node: Node | None) -> bool:
    return node is not None and "spawn" in src.text(node)


def tail_expression(block: Node) -> Node | None:
    """The block's value: its last expression when no `;` ends it."""
    named = [c for c in block.named_children if c.type not in ("line_comment", "block_comment")]
    if not named:
        return None
    last = named[-1]
    if last.type in ("let_declaration", "empty_statement") or last.type.endswith("_item"):
        return None
    if last.type == "expression_statement":
        if src_endswith(last, b";"):
            return None
        return last.named_children[0] if last.named_children else None
    return last


def src_endswith(node: Node, suffix: bytes) -> bool:
    return node.text.rstrip().endswith(suffix)


def derive_lists(src: Source) -> list[tuple[Node, Node, list[str]]]:
    """(attribute_item, token_tree, trait names) for each `#[derive(...)]` outside test code."""
    out = []
    for item in program_nodes(src, "attribute_item"):
        attr = item.named_children[0] if item.named_children else None
        if attr is None or attr.type != "attribute" or not attr.named_children:
            continue
        if src.text(attr.named_children[0]) != "derive":
            continue
        tree = field(attr, "arguments")
        if tree is None:
            continue
        names = [n.strip() for n in src.text(tree).strip("()").split(",") if n.strip()]
        out.append((item, tree, names))
    return out


def without_derives(src: Source, drop: set[str]) -> list[Site]:
    """One site per derive list naming any of `drop`: those traits removed (the whole attribute
    when nothing is left)."""
    sites = []
    for item, tree, names in derive_lists(src):
        short = [n.rsplit("::", 1)[-1] for n in names]
        if not drop & set(short):
            continue
        keep = [n for n, s in zip(names, short, strict=True) if s not in drop]
        sites.append(
            [src.replace(tree, "(" + ", ".join(keep) + ")")] if keep else [src.delete_lines(item)]
        )
    return sites


def item_with_attributes(item: Node) -> Node:
    """The first attribute item above `item` (or `item`): delete from there to drop it whole."""
    first, n = item, item.prev_named_sibling
    while n is not None and n.type == "attribute_item":
        first, n = n, n.prev_named_sibling
    return first


def lifetime_name(node: Node) -> str:
    return node.text.decode()


def paren(src: Source, node: Node) -> str:
    """The node's text, in parentheses unless it is already a postfix-level expression."""
    simple = (
        "identifier", "field_expression", "call_expression", "index_expression", "macro_invocation",
        "parenthesized_expression", "try_expression", "scoped_identifier", "self", "string_literal",
        "integer_literal",
    )  # fmt: skip
    return src.text(node) if node.type in simple else f"({src.text(node)})"


# -- mutability ------------------------------------------------------------------------------------

MUT_CODES = ("E0596", "E0594", "E0384")


@operator("mutability", "drop_let_mut", "drop the `mut` of a `let` binding", MUT_CODES)
def _drop_let_mut(src: Source) -> list[Site]:
    return [
        [src.delete_with_space(mut_of(n))]
        for n in program_nodes(src, "let_declaration")
        if mut_of(n) is not None
        and (field(n, "value") is None or field(n, "value").type != "closure_expression")
    ]


@operator("mutability", "drop_param_mut", "drop the `mut` of a by-value parameter", MUT_CODES)
def _drop_param_mut(src: Source) -> list[Site]:
    return [
        [src.delete_with_space(mut_of(n))]
        for n in program_nodes(src, "parameter")
        if mut_of(n) is not None
    ]


@operator("mutability", "drop_mut_self", "take `&self` in a method that changes self", MUT_CODES)
def _drop_mut_self(src: Source) -> list[Site]:
    return [
        [src.delete_with_space(mut_of(n))]
        for n in program_nodes(src, "self_parameter")
        if mut_of(n) is not None and not in_trait_impl(n)
    ]


@operator(
    "mutability",
    "drop_mut_reference_param",
    "take `&T` where the function changes the T",
    MUT_CODES,
)
def _drop_mut_reference_param(src: Source) -> list[Site]:
    sites = []
    for p in program_nodes(src, "parameter"):
        t = field(p, "type")
        if in_trait_impl(p):
            continue
        if t is not None and t.type == "reference_type" and mut_of(t) is not None:
            sites.append([src.delete_with_space(mut_of(t))])
    return sites


_SHARED_TWIN = {
    "iter_mut": "iter",
    "get_mut": "get",
    "values_mut": "values",
    "last_mut": "last",
    "first_mut": "first",
    "as_mut_slice": "as_slice",
}


@operator(
    "mutability",
    "shared_accessor_for_mutation",
    "use `iter`/`get`/`values` where the code changes what it gets (`iter_mut`/`get_mut`/...)",
    MUT_CODES,
)
def _shared_accessor(src: Source) -> list[Site]:
    return [
        [src.replace(field(field(c, "function"), "field"), _SHARED_TWIN[method_name(c)])]
        for c in method_calls(src, *_SHARED_TWIN)
    ]


@operator(
    "mutability",
    "shadow_instead_of_assign",
    "write `let x = ...` inside a block where the outer `x` should be assigned",
    kind="test",
)
def _shadow_instead_of_assign(src: Source) -> list[Site]:
    sites = []
    for st in program_nodes(src, "expression_statement"):
        e = st.named_children[0] if st.named_children else None
        if e is None or e.type not in ("assignment_expression", "compound_assignment_expr"):
            continue
        left = field(e, "left")
        nested = st.parent.type == "block" and st.parent.parent.type != "function_item"
        if left is None or left.type != "identifier" or not nested:
            continue
        if e.type == "assignment_expression":
            sites.append([Edit(e.start_byte, e.start_byte, b"let ")])
        else:  # `x += e` -> `let x = x + e`
            op = src.text(field(e, "operator")).rstrip("=")
            name, right = src.text(left), src.text(field(e, "right"))
            sites.append([src.replace(e, f"let {name} = {name} {op} {right}")])
    return sites


# -- borrow_checker --------------------------------------------------------------------------------

MOVE_CODES = ("E0382", "E0505", "E0507")


@operator("borrow_checker", "drop_clone", "use a value where it needed a `.clone()`", MOVE_CODES)
def _drop_clone(src: Source) -> list[Site]:
    return [
        strip_call(src, c)
        for c in method_calls(src, "clone")
        if not arguments(c) and not mentions_spawn(src, enclosing_fn(c))
    ]


@operator(
    "borrow_checker",
    "for_loop_by_value",
    "loop over a collection by value (`for x in v`) where it is used afterwards",
    ("E0382", "E0507"),
)
def _for_by_value(src: Source) -> list[Site]:
    sites = []
    for f in program_nodes(src, "for_expression"):
        v = field(f, "value")
        if v is None or v.type != "reference_expression":
            continue
        inner = field(v, "value")
        if inner.type == "identifier" and not used_after(src, inner, f):
            continue  # a collection never used again may be consumed: no error to make
        sites.append([src.replace(v, src.text(inner))])
    return sites


@operator(
    "borrow_checker",
    "match_by_value",
    "match on a value (`match x`) where it should be borrowed (`match &x`)",
    ("E0382", "E0507"),
)
def _match_by_value(src: Source) -> list[Site]:
    sites = []
    for m in program_nodes(src, "match_expression", "let_condition"):
        v = field(m, "value")
        if v is not None and v.type == "reference_expression" and mut_of(v) is None:
            sites.append([src.replace(v, src.text(field(v, "value")))])
    return sites


@operator(
    "borrow_checker",
    "move_out_of_borrow",
    "take a field or element by value (`v[i]`, `self.name`) instead of borrowing it",
    ("E0507", "E0382", "E0505"),
)
def _move_out_of_borrow(src: Source) -> list[Site]:
    sites = []
    for r in program_nodes(src, "reference_expression"):
        v = field(r, "value")
        if (
            mut_of(r) is None
            and v is not None
            and v.type in ("index_expression", "field_expression")
        ):
            if r.parent.type in ("let_declaration", "arguments"):
                sites.append([src.replace(r, src.text(v))])
    return sites


@operator(
    "borrow_checker",
    "move_instead_of_take",
    "move a value out of `&mut` (`self.job`) where it must be taken (`.take()`, `mem::take`)",
    ("E0507",),
)
def _move_instead_of_take(src: Source) -> list[Site]:
    sites = []
    for c in program_nodes(src, "call_expression"):
        fn = field(c, "function")
        args = arguments(c)
        name = src.text(fn) if fn is not None else ""
        if name.endswith(("mem::take", "mem::replace")) and args:
            a = args[0]
            if a.type == "reference_expression" and mut_of(a) is not None:
                sites.append([src.replace(c, src.text(field(a, "value")))])
        elif method_name(c) == "take" and not args and receiver(c).type == "field_expression":
            sites.append(strip_call(src, c))
    return sites


_MUTATORS = (
    "push", "push_str", "insert", "remove", "clear", "pop", "extend", "sort", "retain",
    "truncate", "push_back", "push_front", "pop_front", "pop_back", "dedup", "reverse",
)  # fmt: skip


@operator(
    "borrow_checker",
    "mutate_a_clone",
    "change a clone (`x.clone().push(..)`) where the original should change",
    kind="test",
)
def _mutate_a_clone(src: Source) -> list[Site]:
    sites = []
    for c in method_calls(src, *_MUTATORS):
        r = receiver(c)
        if r is not None and r.type in ("identifier", "field_expression"):
            sites.append([Edit(r.end_byte, r.end_byte, b".clone()")])
    return sites


# -- lifetimes -------------------------------------------------------------------------------------


@operator(
    "lifetimes",
    "drop_lifetime_declaration",
    "use a lifetime without declaring it (`<'a>` removed)",
    ("E0261",),
)
def _drop_lifetime_declaration(src: Source) -> list[Site]:
    sites = []
    for p in program_nodes(src, "lifetime_parameter"):
        params = p.parent
        named = [c for c in params.named_children if c.type != "line_comment"]
        if params.type != "type_parameters":
            continue
        sites.append([src.replace(params, "")] if len(named) == 1 else [src.delete_from_list(p)])
    return sites


def _lifetime_uses(src: Source, scope: Node, names: set[str]) -> list[Node]:
    return [n for n in src.walk(scope) if n.type == "lifetime" and lifetime_name(n) in names]


def _elide(src: Source, uses: list[Node]) -> Site:
    """Each use of a lifetime removed as elision would write it: `&'a T` -> `&T`,
    `Parser<'a>` -> `Parser<'_>`, `impl Trait + 'a` -> `impl Trait`."""
    edits = []
    for u in uses:
        p = u.parent
        if p.type == "reference_type":
            edits.append(src.delete_with_space(u))
        elif p.type == "bounded_type":
            plus = u.prev_sibling
            edits.append(Edit(plus.start_byte - 1 if plus else u.start_byte, u.end_byte, b""))
        elif p.type == "type_arguments":
            edits.append(src.replace(u, "'_"))
        else:
            return []
    return edits


@operator(
    "lifetimes",
    "elide_fn_lifetimes",
    "leave out a function's lifetimes where elision cannot tell which input a reference borrows",
    ("E0106",),
)
def _elide_fn_lifetimes(src: Source) -> list[Site]:
    sites = []
    for fn in program_nodes(src, "function_item"):
        tp = field(fn, "type_parameters")
        if tp is None:
            continue
        named = [c for c in tp.named_children if c.type != "line_comment"]
        if not named or any(c.type != "lifetime_parameter" for c in named):
            continue
        names = {lifetime_name(c.named_children[0]) for c in named}
        if any(c.type == "where_clause" for c in fn.children):
            continue
        uses = _lifetime_uses(src, fn, names)
        uses = [u for u in uses if u.parent.type != "lifetime_parameter"]
        edits = _elide(src, uses)
        if edits:
            sites.append([src.replace(tp, ""), *edits])
    return sites


@operator(
    "lifetimes",
    "drop_field_lifetime",
    "hold a reference in a struct field without naming its lifetime",
    ("E0106",),
)
def _drop_field_lifetime(src: Source) -> list[Site]:
    sites = []
    for f in program_nodes(src, "field_declaration"):
        t = field(f, "type")
        if t is not None and t.type == "reference_type":
            lt = next((c for c in t.children if c.type == "lifetime"), None)
            if lt is not None:
                sites.append([src.delete_with_space(lt)])
    return sites


@operator(
    "lifetimes",
    "drop_static_lifetime",
    "return or store `&str` where only `&'static str` can be meant",
    ("E0106",),
)
def _drop_static_lifetime(src: Source) -> list[Site]:
    sites = []
    for lt in program_nodes(src, "lifetime"):
        if lifetime_name(lt) != "'static" or lt.parent.type != "reference_type":
            continue
        ref = lt.parent
        owner = next(
            (a for a in ancestors(ref) if a.type in ("field_declaration", "function_item")), None
        )
        if owner is None:
            continue
        if owner.type == "function_item":
            rt = field(owner, "return_type")
            if rt is None or not (rt.start_byte <= ref.start_byte < rt.end_byte):
                continue
        sites.append([src.delete_with_space(lt)])
    return sites


@operator(
    "lifetimes",
    "borrow_a_temporary",
    "borrow from a temporary (`let r = make().as_str();`) instead of a named value",
    ("E0716",),
)
def _borrow_a_temporary(src: Source) -> list[Site]:
    sites = []
    for let in program_nodes(src, "let_declaration"):
        pat, value = field(let, "pattern"), field(let, "value")
        if pat is None or pat.type != "identifier" or value is None or mut_of(let) is not None:
            continue
        if value.type not in ("call_expression", "macro_invocation"):
            continue
        block, name = let.parent, src.text(pat)
        later = [s for s in block.named_children if s.start_byte > let.end_byte]
        if not later or later[0].type != "let_declaration":
            continue
        uses = [
            n for s in later for n in src.walk(s) if n.type == "identifier" and src.text(n) == name
        ]
        first = uses[0] if uses else None
        if len(uses) != 1 or not (later[0].start_byte <= first.start_byte < later[0].end_byte):
            continue
        if first.parent.type != "field_expression" or field(first.parent, "value") != first:
            continue
        sites.append([src.delete_lines(let), src.replace(first, paren(src, value))])
    return sites


@operator(
    "lifetimes",
    "drop_impl_trait_lifetime",
    "return `impl Trait` that borrows an input without saying so (`+ '_` removed)",
    ("E0700",),
)
def _drop_impl_trait_lifetime(src: Source) -> list[Site]:
    sites = []
    for b in program_nodes(src, "bounded_type"):
        kids = b.named_children
        if kids and kids[0].type == "abstract_type" and any(k.type == "lifetime" for k in kids):
            sites.append([src.replace(b, src.text(kids[0]))])
    return sites


_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


@operator(
    "lifetimes",
    "flip_comparison",
    "compare the wrong way round, so the wrong borrow is returned",
    kind="test",
)
def _flip_comparison(src: Source) -> list[Site]:
    sites = []
    for b in program_nodes(src, "binary_expression"):
        op = field(b, "operator")
        if op is not None and src.text(op) in _FLIP:
            sites.append([src.replace(op, _FLIP[src.text(op)])])
    return sites


# -- trait_bounds ----------------------------------------------------------------------------------

BOUND_CODES = ("E0277", "E0599", "E0369")


@operator("trait_bounds", "drop_derive", "leave out a type's whole `#[derive(...)]`", BOUND_CODES)
def _drop_derive(src: Source) -> list[Site]:
    return [[src.delete_lines(item)] for item, _, _ in derive_lists(src)]


@operator(
    "trait_bounds",
    "drop_derive_debug",
    "print a type with `{:?}` without deriving Debug",
    ("E0277",),
)
def _drop_derive_debug(src: Source) -> list[Site]:
    return without_derives(src, {"Debug"})


@operator(
    "trait_bounds",
    "drop_derive_clone",
    "clone a type that does not derive Clone",
    ("E0599", "E0277"),
)
def _drop_derive_clone(src: Source) -> list[Site]:
    return without_derives(src, {"Clone", "Copy"})


@operator(
    "trait_bounds",
    "drop_derive_partial_eq",
    "compare values of a type that does not derive PartialEq",
    ("E0369", "E0277", "E0599"),
)
def _drop_derive_partial_eq(src: Source) -> list[Site]:
    return without_derives(src, {"PartialEq", "Eq"})


@operator(
    "trait_bounds",
    "drop_derive_hash_or_ord",
    "use a type as a map key or sort it without deriving Hash or Ord",
    BOUND_CODES,
)
def _drop_derive_hash_or_ord(src: Source) -> list[Site]:
    return without_derives(src, {"Hash"}) + without_derives(src, {"PartialOrd", "Ord"})


@operator(
    "trait_bounds",
    "drop_generic_bound",
    "use a generic parameter in a way its bounds do not allow (one bound removed)",
    ("E0277", "E0369", "E0599"),
)
def _drop_generic_bound(src: Source) -> list[Site]:
    sites = []
    for tb in program_nodes(src, "trait_bounds"):
        bounds = [c for c in tb.named_children if c.type != "lifetime"]
        if tb.parent.type not in ("type_parameter", "where_predicate"):
            continue
        for b in bounds:
            if len(tb.named_children) > 1:
                sites.append([src.delete_from_list(b, sep=b"+")])
            elif tb.parent.type == "type_parameter":
                sites.append([Edit(field(tb.parent, "name").end_byte, tb.end_byte, b"")])
            else:
                pred = tb.parent
                clause = pred.parent
                preds = [c for c in clause.named_children if c.type == "where_predicate"]
                if len(preds) == 1:
                    start = clause.start_byte
                    while src.src[start - 1 : start] in (b" ", b"\n", b"\t"):
                        start -= 1
                    end = clause.end_byte
                    sites.append(
                        [Edit(start, end, b" " if src.src[end : end + 1] == b"{" else b"")]
                    )
                else:
                    sites.append([src.delete_from_list(pred)])
    return sites


@operator(
    "trait_bounds",
    "drop_trait_impl",
    "use a type through a trait it does not implement (an `impl Trait for Type` removed)",
    BOUND_CODES,
)
def _drop_trait_impl(src: Source) -> list[Site]:
    sites = []
    for impl in program_nodes(src, "impl_item"):
        trait = field(impl, "trait")
        if trait is None or src.text(trait).split("<")[0].rsplit("::", 1)[-1] in ("Drop", "From"):
            continue
        if impl.parent.type != "source_file":
            continue
        sites.append([src.delete_lines(item_with_attributes(impl), impl)])
    return sites


# -- result_handling -------------------------------------------------------------------------------

UNWRAP_CODES = ("E0308", "E0599", "E0369", "E0277", "E0609", "E0614", "E0608")


@operator(
    "result_handling",
    "drop_question_mark",
    "use a Result or Option as if it were its value (`?` removed)",
    UNWRAP_CODES,
)
def _drop_question(src: Source) -> list[Site]:
    return [
        [src.replace(t, src.text(t.named_children[0]))]
        for t in program_nodes(src, "try_expression")
    ]


def _wrapped(src: Source, name: str) -> list[Site]:
    sites = []
    for c in program_nodes(src, "call_expression"):
        fn = field(c, "function")
        args = arguments(c)
        if fn is not None and fn.type == "identifier" and src.text(fn) == name and len(args) == 1:
            sites.append([src.replace(c, src.text(args[0]))])
    return sites


@operator(
    "result_handling",
    "drop_ok_wrap",
    "return a value where the function returns a Result",
    ("E0308",),
)
def _drop_ok_wrap(src: Source) -> list[Site]:
    return _wrapped(src, "Ok")


@operator(
    "result_handling", "drop_some_wrap", "give a value where an Option is expected", ("E0308",)
)
def _drop_some_wrap(src: Source) -> list[Site]:
    return _wrapped(src, "Some")


@operator(
    "result_handling",
    "drop_unwrap",
    "use a Result or Option as its value (`.unwrap()`/`.expect(..)` removed)",
    UNWRAP_CODES,
)
def _drop_unwrap(src: Source) -> list[Site]:
    return [strip_call(src, c) for c in method_calls(src, "unwrap", "expect")]


@operator(
    "result_handling",
    "drop_error_conversion",
    "apply `?` to an error the function cannot return (`.map_err(..)`/`.ok_or(..)` removed)",
    ("E0277",),
)
def _drop_error_conversion(src: Source) -> list[Site]:
    return [
        strip_call(src, c)
        for c in method_calls(src, "map_err", "ok_or", "ok_or_else")
        if c.parent.type == "try_expression"
    ]


@operator(
    "result_handling",
    "question_in_unit_fn",
    "use `?` in a function that returns nothing (`-> Result<(), E>` removed)",
    ("E0277",),
)
def _question_in_unit_fn(src: Source) -> list[Site]:
    sites = []
    for fn in program_nodes(src, "function_item"):
        rt, body = field(fn, "return_type"), field(fn, "body")
        if rt is None or body is None or not src.text(rt).startswith("Result<()"):
            continue
        tail = tail_expression(body)
        if tail is None or src.text(tail).replace(" ", "") != "Ok(())":
            continue
        if not any(
            t.type == "try_expression" and not inside(t, "closure_expression")
            for t in src.walk(body)
        ):
            continue
        line_start = src.src.rfind(b"\n", 0, tail.start_byte) + 1
        line_end = src.src.find(b"\n", tail.end_byte)
        if src.src[line_start:line_end].strip() != tail.text:
            continue  # `Ok(())` shares its line with other code: deleting the line would take it
        arrow = rt.prev_sibling
        sites.append([Edit(arrow.start_byte - 1, rt.end_byte, b""), src.delete_lines(tail)])
    return sites


@operator(
    "result_handling",
    "drop_from_impl",
    "use `?` on an error with no `From` conversion into the function's error type",
    ("E0277",),
)
def _drop_from_impl(src: Source) -> list[Site]:
    sites = []
    for impl in program_nodes(src, "impl_item"):
        trait = field(impl, "trait")
        if (
            trait is not None
            and src.text(trait).startswith("From<")
            and impl.parent.type == "source_file"
        ):
            sites.append([src.delete_lines(item_with_attributes(impl), impl)])
    return sites


@operator(
    "result_handling",
    "unwrap_instead_of_question",
    "unwrap (panic) where the error should be passed on with `?`",
    kind="test",
)
def _unwrap_instead_of_question(src: Source) -> list[Site]:
    return [
        [src.replace(t, paren(src, t.named_children[0]) + ".unwrap()")]
        for t in program_nodes(src, "try_expression")
    ]


# -- type_mismatch ---------------------------------------------------------------------------------


@operator("type_mismatch", "drop_cast", "mix numeric types without `as`", ("E0308", "E0277"))
def _drop_cast(src: Source) -> list[Site]:
    return [
        [src.replace(c, src.text(field(c, "value")))]
        for c in program_nodes(src, "type_cast_expression")
    ]


_OTHER_INT = {
    "i32": "i64", "i64": "i32", "u32": "u64", "u64": "u32", "usize": "u32", "u8": "u32",
    "u16": "u32", "i8": "i32", "i16": "i32", "isize": "i64", "f64": "f32", "f32": "f64",
}  # fmt: skip


@operator(
    "type_mismatch",
    "swap_numeric_type",
    "declare a binding, parameter, field or return value with another numeric type",
    ("E0308", "E0277"),
)
def _swap_numeric_type(src: Source) -> list[Site]:
    sites = []
    for t in program_nodes(src, "primitive_type"):
        if src.text(t) not in _OTHER_INT:
            continue
        p = t.parent
        declared = (
            p.type in ("let_declaration", "parameter", "field_declaration")
            and field(p, "type") == t
            or p.type == "function_item"
            and field(p, "return_type") == t
        )
        if declared:
            sites.append([src.replace(t, _OTHER_INT[src.text(t)])])
    return sites


@operator(
    "type_mismatch",
    "str_for_string",
    "give a string literal where a `String` is needed (`.to_string()` removed)",
    ("E0308",),
)
def _str_for_string(src: Source) -> list[Site]:
    sites = [
        strip_call(src, c)
        for c in method_calls(src, "to_string", "to_owned", "into")
        if receiver(c).type == "string_literal" and not arguments(c)
    ]
    for c in program_nodes(src, "call_expression"):
        fn = field(c, "function")
        args = arguments(c)
        if fn is not None and src.text(fn) == "String::from" and len(args) == 1:
            if args[0].type == "string_literal":
                sites.append([src.replace(c, src.text(args[0]))])
    return sites


@operator(
    "type_mismatch",
    "trailing_semicolon",
    "end a function's value with `;`, so it returns `()`",
    ("E0308",),
)
def _trailing_semicolon(src: Source) -> list[Site]:
    sites = []
    for fn in program_nodes(src, "function_item"):
        body = field(fn, "body")
        if field(fn, "return_type") is None or body is None:
            continue
        tail = tail_expression(body)
        if tail is not None and tail.type not in ("if_expression", "match_expression", "block"):
            sites.append([Edit(tail.end_byte, tail.end_byte, b";")])
    return sites


@operator(
    "type_mismatch",
    "if_without_else",
    "use an `if` as a value without its `else`",
    ("E0317", "E0308"),
)
def _if_without_else(src: Source) -> list[Site]:
    sites = []
    for i in program_nodes(src, "if_expression"):
        alt = field(i, "alternative")
        fn = enclosing_fn(i)
        body = field(fn, "body") if fn is not None else None
        is_value = i.parent.type in ("let_declaration", "assignment_expression") or (
            body is not None and field(fn, "return_type") is not None and tail_expression(body) == i
        )
        if alt is None or not is_value:
            continue
        cons = field(i, "consequence")
        sites.append([Edit(cons.end_byte, alt.end_byte, b"")])
    return sites


@operator(
    "type_mismatch",
    "drop_deref",
    "use a reference where its value is needed (`*` removed)",
    ("E0308", "E0369", "E0277", "E0614"),
)
def _drop_deref(src: Source) -> list[Site]:
    return [
        [src.replace(u, src.text(u.named_children[0]))]
        for u in program_nodes(src, "unary_expression")
        if src.text(u).startswith("*")
        and u.named_children
        and not inside(u, "closure_expression")
        and u.parent.type != "assignment_expression"
        and u.parent.type != "compound_assignment_expr"
    ]


def _call_args(src: Source) -> list[Node]:
    return [a for c in program_nodes(src, "call_expression") for a in arguments(c)]


@operator(
    "type_mismatch",
    "owned_for_borrow",
    "pass a value where the function takes a reference (`&` removed)",
    ("E0308",),
)
def _owned_for_borrow(src: Source) -> list[Site]:
    return [
        [src.replace(a, src.text(field(a, "value")))]
        for a in _call_args(src)
        if a.type == "reference_expression" and mut_of(a) is None
    ]


@operator(
    "type_mismatch",
    "borrow_for_owned",
    "pass a reference where the function takes the value (`&` added)",
    ("E0308",),
)
def _borrow_for_owned(src: Source) -> list[Site]:
    return [
        [Edit(a.start_byte, a.start_byte, b"&")]
        for a in _call_args(src)
        if a.type in ("identifier", "field_expression", "integer_literal")
    ]


@operator(
    "type_mismatch",
    "int_literal_for_float",
    "write an integer literal where a float is needed (`2` for `2.0`)",
    ("E0308", "E0277"),
)
def _int_literal_for_float(src: Source) -> list[Site]:
    sites = []
    for f in program_nodes(src, "float_literal"):
        t = src.text(f)
        whole, _, frac = t.partition(".")
        if whole.isdigit() and frac.strip("0") == "" and frac:
            sites.append([src.replace(f, whole)])
    return sites


# -- closures_iterators ----------------------------------------------------------------------------

INFER_CODES = ("E0282", "E0283", "E0689")


def _drop_annotation(src: Source, methods: tuple[str, ...]) -> list[Site]:
    sites = []
    for let in program_nodes(src, "let_declaration"):
        t, value = field(let, "type"), field(let, "value")
        if t is None or value is None or method_name(value) not in methods:
            continue
        colon = t.prev_sibling
        sites.append([Edit(colon.start_byte, t.end_byte, b"")])
    for g in program_nodes(src, "generic_function"):
        f = field(g, "function")
        if f is not None and f.type == "field_expression":
            if src.text(field(f, "field")) in methods and g.parent.type == "call_expression":
                let = g.parent.parent
                if let is not None and let.type == "let_declaration" and field(let, "type") is None:
                    sites.append([src.replace(g, src.text(f))])
    return sites


@operator(
    "closures_iterators",
    "collect_without_type",
    "collect an iterator without saying into what",
    ("E0282", "E0283"),
)
def _collect_without_type(src: Source) -> list[Site]:
    return _drop_annotation(src, ("collect",))


@operator(
    "closures_iterators",
    "sum_without_type",
    "sum or multiply an iterator without saying the result type",
    INFER_CODES,
)
def _sum_without_type(src: Source) -> list[Site]:
    return _drop_annotation(src, ("sum", "product"))


def _spawned(c: Node) -> bool:
    """The closure is the argument of a `spawn(...)` call (a thread or a scope's spawn)."""
    args = c.parent
    call = args.parent if args is not None and args.type == "arguments" else None
    fn = field(call, "function") if call is not None else None
    return fn is not None and fn.text.decode().endswith("spawn")


@operator(
    "closures_iterators",
    "closure_without_move",
    "return or store a closure that borrows locals (`move` removed)",
    ("E0373", "E0597", "E0505"),
)
def _closure_without_move(src: Source) -> list[Site]:
    return [
        [src.delete_with_space(c.children[0])]
        for c in program_nodes(src, "closure_expression")
        if c.children and c.children[0].type == "move" and not _spawned(c)
    ]


@operator(
    "closures_iterators",
    "fnmut_binding_not_mut",
    "call a closure that changes its captures through a binding without `mut`",
    ("E0596",),
)
def _fnmut_binding_not_mut(src: Source) -> list[Site]:
    return [
        [src.delete_with_space(mut_of(n))]
        for n in program_nodes(src, "let_declaration")
        if mut_of(n) is not None
        and field(n, "value") is not None
        and field(n, "value").type == "closure_expression"
    ]


@operator(
    "closures_iterators",
    "into_iter_moves",
    "iterate with `into_iter()` where the collection is used afterwards",
    ("E0382", "E0505"),
)
def _into_iter_moves(src: Source) -> list[Site]:
    return [
        [src.replace(field(field(c, "function"), "field"), "into_iter")]
        for c in method_calls(src, "iter")
        if not arguments(c)
        and (
            receiver(c).type == "field_expression"
            or receiver(c).type == "identifier"
            and used_after(src, receiver(c), c)
        )
    ]


_ADAPTORS = (
    "map", "filter", "filter_map", "enumerate", "zip", "fold", "any", "all", "find", "position",
    "take", "skip", "rev", "max", "min", "sum", "count", "max_by_key", "min_by_key", "for_each",
)  # fmt: skip


@operator(
    "closures_iterators",
    "adaptor_on_collection",
    "call an iterator adaptor on a collection (`.iter()` removed)",
    ("E0599",),
)
def _adaptor_on_collection(src: Source) -> list[Site]:
    sites = []
    for c in method_calls(src, "iter"):
        outer = c.parent.parent if c.parent.type == "field_expression" else None
        if outer is not None and method_name(outer) in _ADAPTORS and not arguments(c):
            sites.append(strip_call(src, c))
    return sites


@operator(
    "closures_iterators",
    "drop_copied",
    "use an iterator of references as values (`.copied()`/`.cloned()` removed)",
    ("E0308", "E0277", "E0369", "E0271"),
)
def _drop_copied(src: Source) -> list[Site]:
    return [strip_call(src, c) for c in method_calls(src, "copied", "cloned") if not arguments(c)]


@operator(
    "closures_iterators",
    "closure_param_not_derefed",
    "use a closure's reference parameter as a value (`*` removed)",
    ("E0369", "E0308", "E0277", "E0614"),
)
def _closure_param_not_derefed(src: Source) -> list[Site]:
    return [
        [src.replace(u, src.text(u.named_children[0]))]
        for u in program_nodes(src, "unary_expression")
        if src.text(u).startswith("*") and u.named_children and inside(u, "closure_expression")
    ]


@operator(
    "closures_iterators",
    "adaptor_off_by_one",
    "skip or take one element too many, or end a range one step late or early",
    kind="test",
)
def _adaptor_off_by_one(src: Source) -> list[Site]:
    sites = []
    for c in method_calls(src, "skip", "take", "step_by"):
        args = arguments(c)
        if len(args) == 1 and args[0].type == "integer_literal" and src.text(args[0]).isdigit():
            sites.append([src.replace(args[0], str(int(src.text(args[0])) + 1))])
    for r in program_nodes(src, "range_expression"):
        op = next((c for c in r.children if c.type in ("..", "..=")), None)
        if op is not None and len(r.named_children) == 2:  # `a..b` <-> `a..=b`
            sites.append([src.replace(op, ".." if op.type == "..=" else "..=")])
    return sites


# -- concurrency -----------------------------------------------------------------------------------


@operator(
    "concurrency",
    "spawn_without_move",
    "spawn a thread whose closure borrows locals (`move` removed)",
    ("E0373",),
)
def _spawn_without_move(src: Source) -> list[Site]:
    return [
        [src.delete_with_space(c.children[0])]
        for c in program_nodes(src, "closure_expression")
        if c.children and c.children[0].type == "move" and _spawned(c)
    ]


@operator(
    "concurrency",
    "rc_across_threads",
    "share a value between threads with `Rc` instead of `Arc`",
    ("E0277",),
)
def _rc_across_threads(src: Source) -> list[Site]:
    arcs = [
        n
        for n in src.walk()
        if n.type in ("identifier", "type_identifier") and src.text(n) == "Arc"
    ]
    if not arcs:
        return []
    edits, imported = [], False
    for n in arcs:
        use = next((a for a in ancestors(n) if a.type == "use_declaration"), None)
        if use is None and n.parent.type in ("scoped_identifier", "scoped_type_identifier"):
            path = field(n.parent, "path")
            if field(n.parent, "name") == n and path is not None:  # std::sync::Arc
                edits.append(src.replace(n.parent, "std::rc::Rc"))
            else:
                edits.append(src.replace(n, "Rc"))
        elif use is None:
            edits.append(src.replace(n, "Rc"))
        elif n.parent.type == "use_list":
            edits.append(src.delete_from_list(n))
            imported = True
        elif n.parent.type == "scoped_identifier" and field(n.parent, "name") == n:
            edits.append(src.replace(use, "use std::rc::Rc;"))
    if imported:
        first_use = next((n for n in src.root.named_children if n.type == "use_declaration"), None)
        if first_use is None:
            return []
        edits.append(Edit(first_use.start_byte, first_use.start_byte, b"use std::rc::Rc;\n"))
    # a use list emptied to `{}` or edits that collide make no program
    try:
        src.apply(edits)
    except ValueError:
        return []
    return [edits]


@operator(
    "concurrency",
    "lock_without_unwrap",
    "use a `lock()` result as the guard (`.unwrap()` removed)",
    ("E0599", "E0609", "E0308", "E0614", "E0277", "E0369", "E0608", "E0594", "E0596"),
)
def _lock_without_unwrap(src: Source) -> list[Site]:
    return [
        strip_call(src, c)
        for c in method_calls(src, "unwrap", "expect")
        if method_name(receiver(c)) in ("lock", "read", "write")
    ]


@operator(
    "concurrency",
    "shared_value_not_cloned",
    "move the one `Arc`/`Sender` into a thread where each thread needs its own clone",
    ("E0382", "E0507"),
)
def _shared_value_not_cloned(src: Source) -> list[Site]:
    sites = []
    for c in program_nodes(src, "call_expression"):
        fn = field(c, "function")
        args = arguments(c)
        if fn is not None and src.text(fn) in ("Arc::clone", "Rc::clone") and len(args) == 1:
            a = args[0]
            if a.type == "reference_expression" and field(a, "value").type == "identifier":
                sites.append([src.replace(c, src.text(field(a, "value")))])
        elif (
            method_name(c) == "clone"
            and not args
            and receiver(c).type == "identifier"
            and mentions_spawn(src, enclosing_fn(c))
        ):
            sites.append(strip_call(src, c))
    return sites


@operator(
    "concurrency",
    "mutate_arc_without_mutex",
    "change a value shared through `Arc` without a `Mutex` around it",
    ("E0594", "E0596"),
)
def _mutate_arc_without_mutex(src: Source) -> list[Site]:
    edits = []
    for c in program_nodes(src, "call_expression"):
        fn = field(c, "function")
        args = arguments(c)
        if (
            fn is not None
            and src.text(fn) in ("Mutex::new", "std::sync::Mutex::new")
            and len(args) == 1
        ):
            edits.append(src.replace(c, src.text(args[0])))
    for g in program_nodes(src, "generic_type"):
        if src.text(field(g, "type")) == "Mutex":
            inner = field(g, "type_arguments").named_children
            if len(inner) == 1:
                edits.append(src.replace(g, src.text(inner[0])))
    locks = [c for c in method_calls(src, "unwrap", "expect") if method_name(receiver(c)) == "lock"]
    for c in locks:
        edits.append(src.replace(c, src.text(receiver(receiver(c)))))
    if not locks or not edits:
        return []
    try:
        src.apply(edits)
    except ValueError:  # a Mutex inside a Mutex: nested edits
        return []
    return [edits]


@operator(
    "concurrency",
    "join_without_unwrap",
    "use a `join()` result as the thread's value (`.unwrap()` removed)",
    ("E0308", "E0277", "E0369", "E0599", "E0608"),
)
def _join_without_unwrap(src: Source) -> list[Site]:
    return [
        strip_call(src, c)
        for c in method_calls(src, "unwrap", "expect")
        if method_name(receiver(c)) == "join" and c.parent.type != "expression_statement"
    ]
