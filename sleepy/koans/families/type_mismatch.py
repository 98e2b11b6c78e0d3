"""Generated type-mismatch koans: integer widths, &str vs String, stray semicolons, Option vs T,
signed indices, float-with-integer arithmetic, one reference level too many, lost fractions."""

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "type_mismatch"

# (narrow, wide) pairs where the narrow value must be widened with `as` explicitly
_WIDEN = [
    ("u32", "u64"),
    ("i32", "i64"),
    ("u8", "u32"),
    ("u16", "u64"),
    ("i32", "f64"),
    ("u32", "usize"),
    ("usize", "u64"),
]


@pattern(FAMILY, "int_needs_cast", code="E0308")
def int_needs_cast(v: Vocab) -> Draft:
    narrow, wide = v.choice(_WIDEN)
    x, y, f, p = v.var(), v.var(), v.func(), v.field()
    k, n = v.int(2, 9), v.int(1, 120)
    fill, t = v.filler(), ""
    if v.rng.random() < 0.5:
        body = """fn {f}({p}: {wide}) -> {wide} {{
    {p} * {k} as {wide}
}}

fn main() {{
    let {x}: {narrow} = {n};
{fill}    let {y} = {f}({arg});
    println!("{y} = {{}}", {y});
}}
"""
        desc = f"`{f}` scales a value of type {wide}; main passes it a variable of type {narrow}."
    else:
        t = v.type_name()
        body = """#[derive(Debug)]
struct {t} {{
    {p}: {wide},
}}

fn main() {{
    let {x}: {narrow} = {n};
{fill}    let {y} = {t} {{ {p}: {arg} }};
    println!("{{:?}} {{}}", {y}, {y}.{p} * {k} as {wide});
}}
"""
        desc = f"Build a `{t}` whose `{p}` field ({wide}) comes from a {narrow} variable."
    fmt = dict(f=f, p=p, wide=wide, narrow=narrow, k=k, x=x, y=y, n=n, fill=fill, t=t)
    return Draft(
        description=desc,
        buggy_code=body.format(arg=x, **fmt),
        correct_code=body.format(arg=f"{x} as {wide}", **fmt),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "str_literal_for_string", code="E0308")
def str_literal_for_string(v: Vocab) -> Draft:
    t, a, b, x = v.type_name(), v.field(), v.field(), v.var()
    word, n = v.word(), v.int()
    fix = v.choice(['"{w}".to_string()', 'String::from("{w}")', '"{w}".to_owned()'])
    body = """struct {t} {{
    {a}: String,
    {b}: u32,
}}

impl {t} {{
    fn describe(&self) -> String {{
        format!("{{}}#{{}}", self.{a}, self.{b})
    }}
}}

fn main() {{
{fill}    let {x} = {t} {{ {a}: {val}, {b}: {n} }};
    println!("{{}}", {x}.describe());
}}
"""
    fmt = dict(t=t, a=a, b=b, x=x, n=n, fill=v.filler())
    return Draft(
        description=f"Create a `{t}` with an owned String `{a}` and print its description.",
        buggy_code=body.format(val=f'"{word}"', **fmt),
        correct_code=body.format(val=fix.format(w=word), **fmt),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "string_needs_borrow", code="E0308")
def string_needs_borrow(v: Vocab) -> Draft:
    f, s, r = v.func(), v.var(), v.var()
    word = v.word()
    op = v.choice(
        [
            ("text.len()", "usize"),
            ("text.chars().filter(|c| *c == 'a').count()", "usize"),
            ("text.to_uppercase()", "String"),
            ("text.starts_with('a')", "bool"),
        ]
    )
    body = """fn {f}(text: &str) -> {ret} {{
    {expr}
}}

fn main() {{
    let {s} = String::from("{word}");
{fill}    let {r} = {f}({arg});
    println!("{{}} -> {{}}", {s}, {r});
}}
"""
    fmt = dict(f=f, s=s, r=r, word=word, expr=op[0], ret=op[1], fill=v.filler())
    return Draft(
        description=f"`{f}` inspects a string slice; main calls it with its own String `{s}`.",
        buggy_code=body.format(arg=s, **fmt),
        correct_code=body.format(arg=f"&{s}", **fmt),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "trailing_semicolon", code="E0308")
def trailing_semicolon(v: Vocab) -> Draft:
    t = v.choice(["i32", "i64", "u32", "u64", "f64"])
    f, a, b, x = v.func(), v.var(), v.var(), v.var()
    k = v.int(1, 9)
    lit = (lambda n: f"{n}.0") if t == "f64" else str
    expr = v.choice(
        [
            "{a} * {b} + {k}",
            "({a} + {b}) * {k}",
            "{a} * {k} + {b}",
            "if {a} > {b} {{ {a} }} else {{ {b} + {k} }}",
        ]
    )
    expr = expr.format(a=a, b=b, k=lit(k))
    body = """fn {f}({a}: {t}, {b}: {t}) -> {t} {{
    {expr}{semi}
}}

fn main() {{
{fill}    let {x} = {f}({va}, {vb});
    println!("{{}}", {x});
}}
"""
    fmt = dict(
        f=f, a=a, b=b, t=t, x=x, expr=expr, va=lit(v.int()), vb=lit(v.int()), fill=v.filler()
    )
    return Draft(
        description=f"`{f}` combines two {t} values and returns the result.",
        buggy_code=body.format(semi=";", **fmt),
        correct_code=body.format(semi="", **fmt),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "option_not_unwrapped", code="E0308")
def option_not_unwrapped(v: Vocab) -> Draft:
    f, x, items = v.func(), v.var(), v.var()
    vals = [v.int(1, 50) for _ in range(v.int(3, 6))]
    target = v.choice(vals)
    unwrap = v.choice([".unwrap()", ".unwrap_or(0)", '.expect("present")'])
    if v.rng.random() < 0.5:
        body = """fn {f}(values: &[i32], wanted: i32) -> Option<usize> {{
    values.iter().position(|&x| x == wanted)
}}

fn main() {{
    let {items} = vec![{vals}];
{fill}    let {x}: usize = {f}(&{items}, {target}){fix};
    println!("found at {{}}", {x});
}}
"""
        desc = f"Find where {target} sits in `{items}` and print its index."
    else:
        body = """fn {f}(text: &str) -> &str {{
    text.trim()
}}

fn main() {{
    let {items} = String::from(" {word}-{target} ");
{fill}    let {x}: usize = {f}(&{items}).find('-'){fix};
    println!("dash at {{}} in {{}}", {x}, {f}(&{items}));
}}
"""
        desc = f"Find the dash in the trimmed `{items}` and print where it is."
    fmt = dict(
        f=f,
        x=x,
        items=items,
        vals=", ".join(map(str, vals)),
        target=target,
        fill=v.filler(),
        word=v.word(),
    )
    return Draft(
        description=desc,
        buggy_code=body.format(fix="", **fmt),
        correct_code=body.format(fix=unwrap, **fmt),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "index_not_usize", code="E0277")
def index_not_usize(v: Vocab) -> Draft:
    it = v.choice(["i32", "i64", "u32", "u64", "u8"])
    xs, i, y = v.var(), v.var(), v.var()
    vals = [v.int(1, 99) for _ in range(v.int(4, 7))]
    k = v.int(0, len(vals) - 1)
    body = """fn main() {{
    let {xs} = vec![{vals}];
    let {i}: {it} = {k};
{fill}    let {y} = {xs}[{idx}];
    let total: i32 = {xs}.iter().sum();
    println!("{xs}[{{}}] = {{}}", {i}, {y});
    println!("total = {{}}", total);
}}
"""
    if v.rng.random() < 0.5:
        body = """fn pick(values: &[u32], {i}: {it}) -> u32 {{
    values[{idx}]
}}

fn main() {{
    let {xs} = vec![{vals}];
{fill}    let {y} = pick(&{xs}, {k});
    println!("picked {{}}", {y});
}}
"""
    fmt = dict(xs=xs, i=i, y=y, it=it, k=k, vals=", ".join(map(str, vals)), fill=v.filler())
    return Draft(
        description=f"Read one element of `{xs}` using a {it} position.",
        buggy_code=body.format(idx=i, **fmt),
        correct_code=body.format(idx=f"{i} as usize", **fmt),
        expected_error="cannot be indexed by",
    )


_OPS = {"*": "cannot multiply", "+": "cannot add", "-": "cannot subtract", "/": "cannot divide"}


@pattern(FAMILY, "float_int_arithmetic", code="E0277")
def float_int_arithmetic(v: Vocab) -> Draft:
    op = v.choice(list(_OPS))
    it = v.choice(["u32", "i32", "usize", "u8", "i64"])
    t, a, n, x = v.type_name(), v.field(), v.var(), v.var()
    price = v.int(1, 40) + v.choice([0.5, 0.25, 0.0])
    body = """struct {t} {{
    {a}: f64,
}}

fn main() {{
    let {x} = {t} {{ {a}: {price} }};
    let {n}: {it} = {k};
{fill}    let result = {x}.{a} {op} {rhs};
    println!("{{:.2}}", result);
}}
"""
    fmt = dict(t=t, a=a, n=n, x=x, it=it, price=repr(price), k=v.int(1, 9), op=op, fill=v.filler())
    return Draft(
        description=f"Combine the f64 `{a}` of a `{t}` with a {it} count and print the result.",
        buggy_code=body.format(rhs=n, **fmt),
        correct_code=body.format(rhs=f"{n} as f64", **fmt),
        expected_error=_OPS[op],
    )


@pattern(FAMILY, "reference_not_derefed", code="E0308")
def reference_not_derefed(v: Vocab) -> Draft:
    xs, m, f = v.var(), v.var(), v.func()
    t = v.choice(["i32", "u32", "i64", "u64"])
    vals = ", ".join(str(v.int(1, 99)) for _ in range(v.int(3, 6)))
    shape = v.rng.random()
    if shape < 0.5:
        method = v.choice(["max", "min", "last", "first"])
        src = f"{xs}.iter().{method}()" if method in ("max", "min") else f"{xs}.{method}()"
        body = """fn {f}(label: &str, value: {t}) -> String {{
    format!("{{}} = {{}}", label, value)
}}

fn main() {{
    let {xs}: Vec<{t}> = vec![{vals}];
{fill}    let {m}: {t} = {star}{src}.unwrap();
    println!("{{}}", {f}("{method}", {m}));
}}
"""
        fmt = dict(src=src, method=method)
        desc = f"Print the {method} element of `{xs}` as a plain {t}."
    else:
        body = """fn {f}(x: {t}) -> {t} {{
    x * 2 + 1
}}

fn main() {{
    let {xs}: Vec<{t}> = vec![{vals}];
    let mut {m}: {t} = 0;
{fill}    for x in &{xs} {{
        {m} += {f}({star}x);
    }}
    println!("total = {{}}", {m});
}}
"""
        fmt = {}
        desc = f"Sum `{f}` over every element of `{xs}`."
    fmt.update(xs=xs, m=m, f=f, t=t, vals=vals, fill=v.filler())
    return Draft(
        description=desc,
        buggy_code=body.format(star="", **fmt),
        correct_code=body.format(star="*", **fmt),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "if_without_else", code="E0317")
def if_without_else(v: Vocab) -> Draft:
    f, x, y = v.func(), v.var(), v.var()
    t = v.choice(["i32", "i64", "u32", "u64"])
    k = v.int(5, 50)
    default = v.choice(["0", f"{k}", "1"])
    body = """fn {f}({x}: {t}) -> {t} {{
    if {x} > {k} {{
        {x} - {k}
    }}{els}
}}

fn main() {{
{fill}    let {y} = {f}({a}) + {f}({b});
    println!("{{}}", {y});
}}
"""
    fmt = dict(f=f, x=x, y=y, t=t, k=k, a=v.int(1, 99), b=v.int(1, 99), fill=v.filler())
    return Draft(
        description=f"`{f}` returns how far a value is above {k}, or a default otherwise.",
        buggy_code=body.format(els="", **fmt),
        correct_code=body.format(els=f" else {{\n        {default}\n    }}", **fmt),
        expected_error="may be missing an `else` clause",
    )


@pattern(FAMILY, "integer_division", kind="test")
def integer_division(v: Vocab) -> Draft:
    f, xs = v.func(), v.var()
    t = v.choice(["u32", "i32", "u64", "i64"])
    # two values with an odd sum, so the true mean ends in .5 and integer division loses it
    a = v.int(1, 40)
    b = a + 2 * v.int(0, 10) + 1
    main_vals = ", ".join(str(v.int(1, 30)) for _ in range(4))
    body = """fn {f}(values: &[{t}]) -> f64 {{
    let sum: {t} = values.iter().sum();
    {expr}
}}

fn main() {{
    let {xs}: Vec<{t}> = vec![{main_vals}];
    println!("mean = {{:.2}}", {f}(&{xs}));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn mean_keeps_the_fraction() {{
        assert_eq!({f}(&[{a}, {b}]), {mean});
    }}
}}
"""
    fmt = dict(f=f, xs=xs, t=t, main_vals=main_vals, a=a, b=b, mean=repr((a + b) / 2))
    return Draft(
        description=f"`{f}` returns the arithmetic mean of the values, including any fraction.",
        buggy_code=body.format(expr=f"(sum / values.len() as {t}) as f64", **fmt),
        correct_code=body.format(expr="sum as f64 / values.len() as f64", **fmt),
        expected_error="assertion `left == right` failed",
    )
