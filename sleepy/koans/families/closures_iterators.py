"""Generated closure and iterator koans: captured moves, FnMut without `mut`, untyped collect,
iterators used twice, unit-returning maps, borrows held by closures, off-by-one adaptors."""

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "closures_iterators"


def _ints(v: Vocab, lo: int = 3, hi: int = 6, top: int = 60) -> list[int]:
    return [v.int(1, top) for _ in range(v.int(lo, hi))]


def _csv(vals) -> str:
    return ", ".join(map(str, vals))


def _reporter(name: str) -> str:
    """A small printing helper, so short programs have some surrounding code."""
    return (
        f"fn {name}(label: &str, value: impl std::fmt::Debug) {{\n"
        f'    println!("{{}}: {{:?}}", label, value);\n}}\n\n'
    )


@pattern(FAMILY, "closure_moves_value", code="E0382")
def closure_moves_value(v: Vocab) -> Draft:
    s, f, r = v.var(), v.var(), v.var()
    word = v.word()
    if v.rng.random() < 0.5:
        use = v.choice(["{s}.len()", "{s}.to_uppercase()", "{s}.contains('a')"]).format(s=s)
        body = """{rep}fn main() {{
    let {s} = String::from("{word}");
    let {f} = {kw}|| {use};
{fill}    let {r} = {f}();
    {p}("result", {r});
    {p}("still have", &{s});
}}
"""
        p = v.func()
        fmt = dict(use=use, p=p, rep=_reporter(p))
        bug, fix = dict(kw="move "), dict(kw="")
        desc = f"A closure inspects `{s}`; main still prints `{s}` afterwards."
    else:
        g = v.func()
        body = """fn {g}(text: String) -> String {{
    format!("<{{}}>", text)
}}

fn main() {{
    let {s} = String::from("{word}");
    let {f} = || {g}({arg});
{fill}    let {r} = {f}();
    println!("{{}}", {r});
    println!("original {{}}", {s});
}}
"""
        fmt = dict(g=g)
        bug, fix = dict(arg=s), dict(arg=f"{s}.clone()")
        desc = f"A closure wraps `{s}` with `{g}`; main still prints `{s}` afterwards."
    fmt.update(s=s, f=f, r=r, word=word, fill=v.filler())
    return Draft(
        description=desc,
        buggy_code=body.format(**bug, **fmt),
        correct_code=body.format(**fix, **fmt),
        expected_error="borrow of moved value",
    )


@pattern(FAMILY, "fnmut_not_mut", code="E0596")
def fnmut_not_mut(v: Vocab) -> Draft:
    acc, f = v.var(), v.var()
    k = v.int(2, 4)
    shape = v.choice(["count", "push", "sum"])
    if shape == "count":
        init, step, show = "0", f"{acc} += 1", f"{acc}"
        call = f"{f}();"
    elif shape == "push":
        init, step, show = "Vec::new()", f"{acc}.push(x)", f"{acc}.len()"
        call = f"{f}({v.int()});"
    else:
        init, step, show = "0", f"{acc} += x", f"{acc}"
        call = f"{f}({v.int()});"
    args = "" if shape == "count" else "x"
    body = """fn main() {{
    let mut {acc} = {init};
    let {m}{f} = |{args}| {step};
{fill}    for _ in 0..{k} {{
        {call}
    }}
    println!("{acc}: {{}}", {show});
}}
"""
    fmt = dict(
        acc=acc, f=f, init=init, step=step, show=show, args=args, call=call, k=k, fill=v.filler()
    )
    return Draft(
        description=f"The closure `{f}` updates `{acc}` each time it is called in the loop.",
        buggy_code=body.format(m="", **fmt),
        correct_code=body.format(m="mut ", **fmt),
        expected_error="as it is not declared as mutable",
    )


@pattern(FAMILY, "collect_needs_type", code="E0283")
def collect_needs_type(v: Vocab) -> Draft:
    xs, ys = v.var(), v.var()
    t = v.choice(["i32", "u32", "i64", "u64"])
    k = v.int(2, 9)
    adaptor, item = v.choice(
        [
            (f".map(|x| x * {k})", t),
            (f".filter(|x| **x > {k})", f"&{t}"),
            (f".map(|x| x + {k})", t),
            (".map(|x| x.to_string())", "String"),
            (f".filter(|&&x| x % {k} == 0)", f"&{t}"),
        ]
    )
    annot = v.choice([f": Vec<{item}>", ": Vec<_>"])
    body = """fn main() {{
    let {xs}: Vec<{t}> = vec![{vals}];
{fill}    let {ys}{annot} = {xs}
        .iter()
        {adaptor}
        .collect();
    println!("{{:?}}", {ys});
}}
"""
    fmt = dict(xs=xs, ys=ys, t=t, adaptor=adaptor, vals=_csv(_ints(v, 4, 8)), fill=v.filler())
    return Draft(
        description=f"Transform `{xs}` into a new vector `{ys}` and print it.",
        buggy_code=body.format(annot="", **fmt),
        correct_code=body.format(annot=annot, **fmt),
        expected_error="type annotations needed",
    )


@pattern(FAMILY, "iterator_used_twice", code="E0382")
def iterator_used_twice(v: Vocab) -> Draft:
    xs, it = v.var(), v.var()
    t = v.choice(["i32", "u32", "i64", "u64"])
    k = v.int(2, 9)
    adaptor = v.choice([f".map(|x| x * {k})", f".map(|x| x + {k})", f".filter(|x| **x > {k})"])
    first, second = v.rng.sample(
        [
            (f"let total: {t} = {{it}}.sum();", "total"),
            ("let n = {it}.count();", "n"),
            ("let biggest = {it}.max();", "biggest"),
            ("let smallest = {it}.min();", "smallest"),
        ],
        2,
    )
    body = """{rep}fn main() {{
    let {xs}: Vec<{t}> = vec![{vals}];
    let {it} = {xs}.iter(){adaptor};
{fill}    {first}
    {second}
    {p}("{a}", {a});
    {p}("{b}", {b});
}}
"""
    p = v.func()
    fmt = dict(
        xs=xs,
        it=it,
        t=t,
        adaptor=adaptor,
        vals=_csv(_ints(v)),
        fill=v.filler(),
        second=second[0].format(it=it),
        a=first[1],
        b=second[1],
        p=p,
        rep=_reporter(p),
    )
    return Draft(
        description=f"Compute two different summaries of the same iterator `{it}` over `{xs}`.",
        buggy_code=body.format(first=first[0].format(it=it), **fmt),
        correct_code=body.format(first=first[0].format(it=f"{it}.clone()"), **fmt),
        expected_error="use of moved value",
    )


@pattern(FAMILY, "map_returns_unit", code="E0277")
def map_returns_unit(v: Vocab) -> Draft:
    xs, ys, f = v.var(), v.var(), v.func()
    t = v.choice(["i32", "u32", "i64", "u64"])
    k, m = v.int(2, 9), v.int(1, 9)
    expr = v.choice([f"scaled + {m}", f"scaled - scaled / {k}", f"scaled * {m}"])
    body = """fn {f}(values: &[{t}]) -> Vec<{t}> {{
    values
        .iter()
        .map(|x| {{
            let scaled = x * {k};
            {expr}{semi}
        }})
        .collect()
}}

fn main() {{
    let {xs}: Vec<{t}> = vec![{vals}];
{fill}    let {ys} = {f}(&{xs});
    println!("{{:?}}", {ys});
}}
"""
    fmt = dict(xs=xs, ys=ys, f=f, t=t, k=k, expr=expr, vals=_csv(_ints(v)), fill=v.filler())
    return Draft(
        description=f"`{f}` maps every value through a small formula and collects the results.",
        buggy_code=body.format(semi=";", **fmt),
        correct_code=body.format(semi="", **fmt),
        expected_error="cannot be built from an iterator over elements of type `()`",
    )


@pattern(FAMILY, "closure_borrow_conflict", code="E0502")
def closure_borrow_conflict(v: Vocab) -> Draft:
    xs, f = v.var(), v.var()
    t = v.choice(["i32", "u32", "i64", "u64"])
    summary = v.choice(
        [
            (f"{xs}.iter().sum::<{t}>()", "sum", "sum"),
            (f"{xs}.len()", "len", "length"),
            (f"{xs}.iter().max().copied()", "max", "largest value"),
            (f"{xs}.contains(&{v.int()})", "contains", "membership of one value"),
        ]
    )
    push = f"{xs}.push({v.int()});"
    body = """{rep}fn main() {{
    let mut {xs}: Vec<{t}> = vec![{vals}];
{fill}{before}    let {f} = || {expr};
{after}    {p}("{what}", {f}());
    {p}("{xs}", &{xs});
}}
"""
    p = v.func()
    fmt = dict(
        xs=xs, f=f, t=t, expr=summary[0], what=summary[1], vals=_csv(_ints(v)), fill=v.filler()
    )
    fmt.update(p=p, rep=_reporter(p))
    return Draft(
        description=f"Add one value to `{xs}`, then report its {summary[2]} through the closure "
        f"`{f}`.",
        buggy_code=body.format(before="", after=f"    {push}\n", **fmt),
        correct_code=body.format(before=f"    {push}\n", after="", **fmt),
        expected_error="because it is also borrowed as immutable",
    )


@pattern(FAMILY, "filter_double_ref", code="E0369")
def filter_double_ref(v: Vocab) -> Draft:
    xs, n, f = v.var(), v.var(), v.func()
    t = v.choice(["i32", "u32", "i64", "u64"])
    k = v.int(2, 7)
    r = v.int(0, k - 1)
    body = """fn {f}(values: &[{t}]) -> usize {{
    values
        .iter()
        .filter(|x| {x} % {k} == {r})
        .count()
}}

fn main() {{
    let {xs}: Vec<{t}> = vec![{vals}];
{fill}    let {n} = {f}(&{xs});
    println!("{{}} of {{}} values match", {n}, {xs}.len());
}}
"""
    fmt = dict(xs=xs, n=n, f=f, t=t, k=k, r=r, vals=_csv(_ints(v, 4, 8)), fill=v.filler())
    return Draft(
        description=f"`{f}` counts the values that leave remainder {r} when divided by {k}.",
        buggy_code=body.format(x="x", **fmt),
        correct_code=body.format(x="*x", **fmt),
        expected_error="cannot calculate the remainder",
    )


@pattern(FAMILY, "iterator_off_by_one", kind="test")
def iterator_off_by_one(v: Vocab) -> Draft:
    f = v.func()
    shape = v.choice(["take", "skip", "threshold", "range"])
    if shape == "take":
        n = v.int(2, 4)
        vals = sorted(set(_ints(v, 6, 8, 90)), reverse=True)
        sig, ret = "values: &[u32], n: usize", "Vec<u32>"
        bug = "values.iter().take(n - 1).copied().collect()"
        fix = "values.iter().take(n).copied().collect()"
        call, want = f"&[{_csv(vals)}], {n}", f"vec![{_csv(vals[:n])}]"
        desc = f"`{f}` returns the first n values of a list."
    elif shape == "skip":
        vals = _ints(v, 4, 6, 90)
        sig, ret = "rows: &[u32]", "u32"
        bug = "rows.iter().skip(2).sum()"
        fix = "rows.iter().skip(1).sum()"
        call, want = f"&[{_csv(vals)}]", str(sum(vals[1:]))
        desc = f"`{f}` sums every row except the first one, which is a header count."
    elif shape == "threshold":
        k = v.int(40, 60)
        vals = _ints(v, 4, 6, 90) + [k]
        sig, ret = "scores: &[u32], pass: u32", "usize"
        bug = "scores.iter().filter(|s| **s > pass).count()"
        fix = "scores.iter().filter(|s| **s >= pass).count()"
        call, want = f"&[{_csv(vals)}], {k}", str(sum(1 for x in vals if x >= k))
        desc = f"`{f}` counts the scores that reach the pass mark (a score equal to it passes)."
    else:
        n = v.int(4, 12)
        vals = []
        sig, ret = "n: u64", "u64"
        bug = "(1..n).sum()"
        fix = "(1..=n).sum()"
        call, want = str(n), str(n * (n + 1) // 2)
        desc = f"`{f}` adds up every whole number from 1 to n, n included."
    body = """fn {f}({sig}) -> {ret} {{
    {expr}
}}

fn main() {{
    println!("{{:?}}", {f}({call}));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn {f}_matches_spec() {{
        assert_eq!({f}({call}), {want});
    }}
}}
"""
    fmt = dict(f=f, sig=sig, ret=ret, call=call, want=want)
    return Draft(
        description=desc,
        buggy_code=body.format(expr=bug, **fmt),
        correct_code=body.format(expr=fix, **fmt),
        expected_error="assertion `left == right` failed",
    )


@pattern(FAMILY, "fold_wrong_seed", kind="test")
def fold_wrong_seed(v: Vocab) -> Draft:
    f, xs = v.func(), v.var()
    vals = [v.int(1, 6) for _ in range(v.int(3, 5))]
    prod = 1
    for x in vals:
        prod *= x
    body = """/// Multiplies all values together; an empty list gives 1.
fn {f}(values: &[u64]) -> u64 {{
    values.iter().fold({seed}, |acc, x| acc * x)
}}

fn main() {{
    let {xs} = vec![{vals}];
    println!("product = {{}}", {f}(&{xs}));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn multiplies_everything() {{
        assert_eq!({f}(&[{vals}]), {prod});
    }}
}}
"""
    fmt = dict(f=f, xs=xs, vals=_csv(vals), prod=prod)
    return Draft(
        description=f"`{f}` multiplies every value in the slice together.",
        buggy_code=body.format(seed="0", **fmt),
        correct_code=body.format(seed="1", **fmt),
        expected_error="assertion `left == right` failed",
    )
