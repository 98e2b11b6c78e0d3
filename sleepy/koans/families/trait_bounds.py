"""Generated trait-bound koans: missing derives, generic functions missing a bound, traits a
std API needs (Ord for sort, Hash for map keys), and trait impls whose logic is wrong."""

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "trait_bounds"


def _struct(v: Vocab, k: int = 2) -> tuple[str, list[tuple[str, str]]]:
    """A struct name and k (field, type) pairs with plain integer or String fields."""
    name = v.type_name()
    fields = [(v.field(), v.choice(["u32", "i64", "u64", "usize", "i32"])) for _ in range(k)]
    return name, fields


def _decl(name: str, fields: list[tuple[str, str]], derive: str) -> str:
    body = "".join(f"    {f}: {t},\n" for f, t in fields)
    attr = f"#[derive({derive})]\n" if derive else ""
    return f"{attr}struct {name} {{\n{body}}}\n"


def _init(name: str, fields: list[tuple[str, str]], v: Vocab) -> str:
    return f"{name} {{ " + ", ".join(f"{f}: {v.int(1, 99)}" for f, _ in fields) + " }"


@pattern(FAMILY, "missing_derive_debug", code="E0277")
def missing_derive_debug(v: Vocab) -> Draft:
    name, fields = _struct(v, v.int(2, 3))
    x = v.var()
    pretty = v.choice(["{:?}", "{:#?}"])
    extra = v.choice(["", "Clone", "PartialEq", "Clone, PartialEq"])
    buggy_derive = extra
    correct_derive = "Debug" + (f", {extra}" if extra else "")
    fill = v.filler()
    body = """{decl}
fn main() {{
    let {x} = {init};
{fill}    println!("{pretty}", {x});
    println!("{shown}", {reads});
}}
"""
    init = _init(name, fields, v)
    shown = " ".join("{}" for _ in fields)
    reads = ", ".join(f"{x}.{f}" for f, _ in fields)
    return Draft(
        description=f"Build a `{name}` and print it with its debug representation.",
        buggy_code=body.format(
            decl=_decl(name, fields, buggy_derive),
            x=x,
            init=init,
            fill=fill,
            pretty=pretty,
            shown=shown,
            reads=reads,
        ),
        correct_code=body.format(
            decl=_decl(name, fields, correct_derive),
            x=x,
            init=init,
            fill=fill,
            pretty=pretty,
            shown=shown,
            reads=reads,
        ),
        expected_error="doesn't implement `Debug`",
    )


@pattern(FAMILY, "missing_derive_clone", code="E0599")
def missing_derive_clone(v: Vocab) -> Draft:
    name, fields = _struct(v, 2)
    a, b = v.var(), v.var()
    (f1, _), (f2, _) = fields
    k = v.int(1, 9)
    fill = v.filler()
    base = v.choice([["Debug"], ["Debug", "PartialEq"], ["PartialEq", "Debug"]])
    buggy_derive = ", ".join(base)
    correct_derive = ", ".join(base + ["Clone"])
    body = """{decl}
fn main() {{
    let {a} = {init};
    let mut {b} = {a}.clone();
{fill}    {b}.{f1} += {k};
    println!("{{:?}} {{:?}}", {a}, {b});
    println!("{{}}", {b}.{f2});
}}
"""
    init = _init(name, fields, v)
    args = dict(a=a, b=b, init=init, fill=fill, f1=f1, f2=f2, k=k)
    return Draft(
        description=f"Copy a `{name}` and change the copy, keeping the original as it was.",
        buggy_code=body.format(decl=_decl(name, fields, buggy_derive), **args),
        correct_code=body.format(decl=_decl(name, fields, correct_derive), **args),
        expected_error="no method named `clone` found for struct",
    )


@pattern(FAMILY, "missing_derive_partialeq", code="E0369")
def missing_derive_partialeq(v: Vocab) -> Draft:
    name, fields = _struct(v, 2)
    a, b = v.var(), v.var()
    op = v.choice(["==", "!="])
    vals = [v.int(1, 99) for _ in fields]
    same = v.rng.random() < 0.5
    init_a = (
        f"{name} {{ "
        + ", ".join(f"{f}: {n}" for (f, _), n in zip(fields, vals, strict=True))
        + " }"
    )
    vals_b = vals if same else [vals[0], vals[1] + 1]
    init_b = (
        f"{name} {{ "
        + ", ".join(f"{f}: {n}" for (f, _), n in zip(fields, vals_b, strict=True))
        + " }"
    )
    fill = v.filler()
    base = v.choice([[], ["Debug"], ["Debug", "Clone"]])
    buggy_derive = ", ".join(base)
    correct_derive = ", ".join(base + ["PartialEq"])
    body = """{decl}
fn main() {{
    let {a} = {init_a};
    let {b} = {init_b};
{fill}    if {a} {op} {b} {{
        println!("the check holds");
    }} else {{
        println!("the check fails");
    }}
}}
"""
    args = dict(a=a, b=b, init_a=init_a, init_b=init_b, fill=fill, op=op)
    return Draft(
        description=f"Compare two `{name}` values field by field with `{op}`.",
        buggy_code=body.format(decl=_decl(name, fields, buggy_derive), **args),
        correct_code=body.format(decl=_decl(name, fields, correct_derive), **args),
        expected_error=f"binary operation `{op}` cannot be applied to type",
    )


@pattern(FAMILY, "generic_missing_partialord", code="E0369")
def generic_missing_partialord(v: Vocab) -> Draft:
    f, xs = v.func(), v.var()
    nums = ", ".join(str(v.int(1, 500)) for _ in range(v.int(3, 6)))
    words = ", ".join(f'"{v.word()}"' for _ in range(3))
    want_max = v.rng.random() < 0.5
    op = ">" if want_max else "<"
    fill = v.filler()
    body = """fn {f}<{bound}>(items: &[T]) -> &T {{
    let mut best = &items[0];
    for item in items {{
        if item {op} best {{
            best = item;
        }}
    }}
    best
}}

fn main() {{
    let {xs} = vec![{nums}];
{fill}    println!("{{}}", {f}(&{xs}));
    println!("{{}}", {f}(&[{words}]));
}}
"""
    args = dict(f=f, xs=xs, nums=nums, words=words, op=op, fill=fill)
    which = "largest" if want_max else "smallest"
    return Draft(
        description=f"`{f}` returns the {which} item of any slice whose items can be ordered.",
        buggy_code=body.format(bound="T", **args),
        correct_code=body.format(bound="T: PartialOrd", **args),
        expected_error=f"binary operation `{op}` cannot be applied to type `&T`",
    )


@pattern(FAMILY, "generic_missing_display", code="E0277")
def generic_missing_display(v: Vocab) -> Draft:
    f, label = v.func(), v.word()
    n = v.int(1, 999)
    fill = v.filler()
    if v.rng.random() < 0.5:
        sig = "fn {f}<{bound}>(value: T) -> String"
        correct_bound = v.choice(["T: std::fmt::Display", "T: Display"])
    else:
        sig = "fn {f}<{bound}>(value: &T) -> String"
        correct_bound = v.choice(["T: std::fmt::Display", "T: Display"])
    use = "use std::fmt::Display;\n\n" if correct_bound == "T: Display" else ""
    body = (
        "{use}"
        + sig
        + """ {{
    format!("[{label}] {{}}", value)
}}

fn main() {{
{fill}    println!("{{}}", {f}({a}));
    println!("{{}}", {f}({b}));
}}
"""
    )
    by_ref = "&T" in sig
    a = f"&{n}" if by_ref else str(n)
    b = f'&"{v.word()}"' if by_ref else f'"{v.word()}"'
    args = dict(f=f, label=label, fill=fill, a=a, b=b)
    return Draft(
        description=f"`{f}` labels any value that can be shown to a user.",
        buggy_code=body.format(use=use, bound="T", **args),
        correct_code=body.format(use=use, bound=correct_bound, **args),
        expected_error="doesn't implement `std::fmt::Display`",
    )


@pattern(FAMILY, "generic_missing_add", code="E0369")
def generic_missing_add(v: Vocab) -> Draft:
    f, xs = v.func(), v.var()
    nums = ", ".join(str(v.int(1, 90)) for _ in range(v.int(3, 5)))
    floats = ", ".join(f"{v.int(1, 9)}.5" for _ in range(2))
    fill = v.filler()
    body = """fn {f}<{bound}>(items: &[T], start: T) -> T {{
    let mut acc = start;
    for item in items {{
        acc = acc + *item;
    }}
    acc
}}

fn main() {{
    let {xs} = [{nums}];
{fill}    println!("{{}}", {f}(&{xs}, 0));
    println!("{{}}", {f}(&[{floats}], 0.0));
}}
"""
    args = dict(f=f, xs=xs, nums=nums, floats=floats, fill=fill)
    correct = v.choice(
        ["T: Copy + std::ops::Add<Output = T>", "T: std::ops::Add<Output = T> + Copy"]
    )
    return Draft(
        description=f"`{f}` adds up a slice of any numeric type, starting from a given value.",
        buggy_code=body.format(bound="T: Copy", **args),
        correct_code=body.format(bound=correct, **args),
        expected_error="cannot add `T` to `T`",
    )


@pattern(FAMILY, "missing_derive_ord_for_sort", code="E0277")
def missing_derive_ord_for_sort(v: Vocab) -> Draft:
    name, fields = _struct(v, 2)
    xs = v.var()
    rows = ", ".join(_init(name, fields, v) for _ in range(3))
    fill = v.filler()
    base = v.choice([["Debug"], ["Debug", "Clone"]])
    buggy_derive = ", ".join(base)
    correct_derive = ", ".join(base + ["PartialEq", "Eq", "PartialOrd", "Ord"])
    body = """{decl}
fn main() {{
    let mut {xs} = vec![{rows}];
{fill}    {xs}.sort();
    println!("{{:?}}", {xs});
}}
"""
    args = dict(xs=xs, rows=rows, fill=fill)
    return Draft(
        description=f"Sort a list of `{name}` values by their fields, in order.",
        buggy_code=body.format(decl=_decl(name, fields, buggy_derive), **args),
        correct_code=body.format(decl=_decl(name, fields, correct_derive), **args),
        expected_error="Ord` is not satisfied",
    )


@pattern(FAMILY, "missing_derive_hash_for_key", code="E0277")
def missing_derive_hash_for_key(v: Vocab) -> Draft:
    name, fields = _struct(v, 2)
    m, key = v.var(), v.var()
    val = v.int(1, 999)
    fill = v.filler()
    base = v.choice([["Debug"], ["Debug", "Clone"], ["Debug", "Clone", "Copy"]])
    buggy_derive = ", ".join(base + ["PartialEq", "Eq"])
    correct_derive = ", ".join(base + ["PartialEq", "Eq", "Hash"])
    body = """use std::collections::HashMap;

{decl}
fn main() {{
    let mut {m} = HashMap::new();
    let {key} = {init};
{fill}    {m}.insert({key}, {val});
    println!("{{}} entry: {{:?}}", {m}.len(), {m});
}}
"""
    args = dict(m=m, key=key, init=_init(name, fields, v), val=val, fill=fill)
    return Draft(
        description=f"Use `{name}` values as the keys of a `HashMap`.",
        buggy_code=body.format(decl=_decl(name, fields, buggy_derive), **args),
        correct_code=body.format(decl=_decl(name, fields, correct_derive), **args),
        expected_error="Hash` is not satisfied",
    )


@pattern(FAMILY, "wrong_ord_impl", kind="test")
def wrong_ord_impl(v: Vocab) -> Draft:
    name = v.type_name()
    key, other = v.field(), v.field()
    items = v.var()
    words = v.rng.sample(["ash", "bay", "elm", "fir", "oak", "yew", "ivy"], 3)
    # keys all differ and `other` runs the opposite way, so ordering by the wrong field is visible
    keys = sorted(v.rng.sample(range(1, 99), 3))
    others = sorted(v.rng.sample(range(1, 99), 3), reverse=True)
    perm = v.rng.sample(range(3), 3)
    rows = ", ".join(
        f'{name} {{ tag: "{words[i]}", {key}: {keys[i]}, {other}: {others[i]} }}' for i in perm
    )
    expect = ", ".join(f'"{w}-{o}"' for w, o in zip(words, others, strict=True))
    body = """use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq)]
struct {name} {{
    tag: &'static str,
    {key}: u32,
    {other}: u32,
}}

impl Ord for {name} {{
    fn cmp(&self, other: &Self) -> Ordering {{
        self.{by}.cmp(&other.{by})
    }}
}}

impl PartialOrd for {name} {{
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {{
        Some(self.cmp(other))
    }}
}}

fn sorted_labels(mut {items}: Vec<{name}>) -> Vec<String> {{
    {items}.sort();
    {items}.iter().map(|x| format!("{{}}-{{}}", x.tag, x.{other})).collect()
}}

fn sample() -> Vec<{name}> {{
    vec![{rows}]
}}

fn main() {{
    println!("{{:?}}", sorted_labels(sample()));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn orders_by_{key}() {{
        assert_eq!(sorted_labels(sample()), vec![{expect}]);
    }}
}}
"""
    args = dict(name=name, key=key, other=other, items=items, rows=rows, expect=expect)
    return Draft(
        description=f"`{name}` values are ordered by `{key}`, smallest first.",
        buggy_code=body.format(by=other, **args),
        correct_code=body.format(by=key, **args),
        expected_error="assertion `left == right` failed",
    )


@pattern(FAMILY, "wrong_default_impl", kind="test")
def wrong_default_impl(v: Vocab) -> Draft:
    name = v.type_name() + "Config"
    f1, f2 = v.field(), v.field()
    d1, d2 = v.int(2, 60), v.int(2, 60)
    wrong = v.choice(["0", "1", str(d1 * 10)])
    fill = v.filler()
    body = """struct {name} {{
    {f1}: u32,
    {f2}: u32,
}}

impl Default for {name} {{
    fn default() -> Self {{
        {name} {{ {f1}: {v1}, {f2}: {d2} }}
    }}
}}

fn main() {{
    let cfg = {name}::default();
{fill}    println!("{f1} = {{}}, {f2} = {{}}", cfg.{f1}, cfg.{f2});
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn defaults_match_the_docs() {{
        let cfg = {name}::default();
        assert_eq!(cfg.{f1}, {d1}, "default {f1}");
        assert_eq!(cfg.{f2}, {d2}, "default {f2}");
    }}
}}
"""
    args = dict(name=name, f1=f1, f2=f2, d2=d2, fill=fill)
    return Draft(
        description=f"`{name}::default()` gives {f1} = {d1} and {f2} = {d2}.",
        buggy_code=body.format(v1=wrong, d1=d1, **args),
        correct_code=body.format(v1=d1, d1=d1, **args),
        expected_error="assertion `left == right` failed",
    )
