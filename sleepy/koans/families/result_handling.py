"""Generated result-handling koans: `?` where it cannot go, Ok/Err wrapping, error conversions,
Option and Result used as if they were plain values, and error-handling logic that is wrong."""

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "result_handling"

# Unsigned types keep the parse inputs and the printed values simple and deterministic.
_NUM_TYPES = ["i32", "i64", "u32", "u64", "usize"]


def _nums(v: Vocab, k: int, hi: int = 60) -> list[int]:
    return [v.int(1, hi) for _ in range(k)]


@pattern(FAMILY, "question_in_non_result_fn", code="E0277")
def question_in_non_result_fn(v: Vocab) -> Draft:
    f, t = v.func(), v.choice(_NUM_TYPES)
    fill = v.filler()
    if v.rng.random() < 0.5:
        acc, xs = v.var(), v.var()
        a, b, c = _nums(v, 3)
        body = """use std::num::ParseIntError;

fn {f}(items: &[&str]) -> {ret} {{
    let mut {acc} = 0;
    for s in items {{
        {acc} += s.trim().parse::<{t}>()?;
    }}
    {tail}
}}

fn main() {{
    let {xs} = ["{a}", " {b}", "{c}"];
{fill}    println!("{{:?}}", {f}(&{xs}));
}}
"""
        args = dict(f=f, t=t, acc=acc, xs=xs, a=a, b=b, c=c, fill=fill)
        buggy = body.format(ret=t, tail=acc, **args)
        correct = body.format(ret=f"Result<{t}, ParseIntError>", tail=f"Ok({acc})", **args)
        desc = f"`{f}` adds up numbers given as text and should report a parse error to its caller."
    else:
        n, k = v.var(), v.int(2, 9)
        x = v.int(1, 50)
        body = """use std::num::ParseIntError;

fn {f}(text: &str){ret} {{
    let {n}: {t} = text.parse()?;
    println!("{{}} times {k} is {{}}", text, {n} * {k});{tail}
}}

fn main() {{
{fill}    {f}("{x}"){call};
}}
"""
        args = dict(f=f, t=t, n=n, k=k, x=x, fill=fill)
        buggy = body.format(ret="", tail="", call="", **args)
        correct = body.format(
            ret=" -> Result<(), ParseIntError>", tail="\n    Ok(())", call=".unwrap()", **args
        )
        desc = (
            f"`{f}` parses a number and prints it scaled; a parse failure should go to the caller."
        )
    return Draft(
        description=desc,
        buggy_code=buggy,
        correct_code=correct,
        expected_error="the `?` operator can only be used in a function that returns",
    )


@pattern(FAMILY, "missing_ok_wrap", code="E0308")
def missing_ok_wrap(v: Vocab) -> Draft:
    f, t = v.func(), v.choice(_NUM_TYPES)
    x, lim = v.var(), v.field()
    k = v.int(2, 5)
    limit = v.int(20, 80)
    under, over = v.int(1, limit), v.int(limit + 1, 120)
    fill = v.filler()
    if v.rng.random() < 0.5:
        body = """fn {f}({x}: {t}, {lim}: {t}) -> Result<{t}, String> {{
    if {x} > {lim} {{
        return Err(format!("{{}} is over the {lim} {{}}", {x}, {lim}));
    }}
    {ret}
}}

fn main() {{
{fill}    println!("{{:?}}", {f}({under}, {limit}));
    println!("{{:?}}", {f}({over}, {limit}));
}}
"""
        buggy_ret, correct_ret = f"{x} * {k}", f"Ok({x} * {k})"
        desc = f"`{f}` scales a value by {k}, or reports an error when it is over the limit."
    else:
        body = """fn {f}({x}: &[{t}], {lim}: {t}) -> Option<usize> {{
    for (i, item) in {x}.iter().enumerate() {{
        if *item > {lim} {{
            return {ret};
        }}
    }}
    None
}}

fn main() {{
    let data = vec![{under}, {k}, {over}, {limit}];
{fill}    println!("{{:?}}", {f}(&data, {limit}));
    println!("{{:?}}", {f}(&data, 500));
}}
"""
        buggy_ret, correct_ret = "i", "Some(i)"
        desc = f"`{f}` returns the index of the first item over the limit, if there is one."
    args = dict(f=f, t=t, x=x, lim=lim, k=k, limit=limit, under=under, over=over, fill=fill)
    return Draft(
        description=desc,
        buggy_code=body.format(ret=buggy_ret, **args),
        correct_code=body.format(ret=correct_ret, **args),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "question_missing_from", code="E0277")
def question_missing_from(v: Vocab) -> Draft:
    f, t, e = v.func(), v.choice(_NUM_TYPES), v.type_name() + "Error"
    k = v.int(1, 40)
    good = v.int(1, 99)
    bad = v.word()[:3] + str(v.int(1, 9))
    fill = v.filler("        ")
    body = """use std::num::ParseIntError;

enum {e} {{
    Empty,
    BadNumber(ParseIntError),
}}

fn {f}(text: &str) -> Result<{t}, {e}> {{
    if text.is_empty() {{
        return Err({e}::Empty);
    }}
    let n = text.trim().parse::<{t}>(){conv}?;
    Ok(n + {k})
}}

fn main() {{
    for s in ["{good}", "", "{bad}"] {{
{fill}        match {f}(s) {{
            Ok(n) => println!("ok {{}}", n),
            Err({e}::Empty) => println!("empty input"),
            Err({e}::BadNumber(err)) => println!("bad number: {{}}", err),
        }}
    }}
}}
"""
    args = dict(f=f, t=t, e=e, k=k, good=good, bad=bad, fill=fill)
    return Draft(
        description=f"`{f}` parses a number and reports failures as `{e}` values.",
        buggy_code=body.format(conv="", **args),
        correct_code=body.format(conv=f".map_err({e}::BadNumber)", **args),
        expected_error="couldn't convert the error to",
    )


@pattern(FAMILY, "method_on_result", code="E0599")
def method_on_result(v: Vocab) -> Draft:
    f, text = v.func(), v.var()
    word = v.word()
    use, shown = v.choice(
        [
            (f"{text}.trim().len()", "usize"),
            (f"{text}.len()", "usize"),
            (f"{text}.to_uppercase()", "String"),
            (f"{text}.chars().rev().collect()", "String"),
        ]
    )
    fill = v.filler()
    body = """use std::string::FromUtf8Error;

fn {f}(raw: &[u8]) -> Result<{shown}, FromUtf8Error> {{
    let {text} = String::from_utf8(raw.to_vec()){q};
    Ok({use})
}}

fn main() {{
{fill}    println!("{{:?}}", {f}(b"{word}"));
    println!("{{}}", {f}(&[0xff, 0xfe]).is_err());
}}
"""
    args = dict(f=f, text=text, shown=shown, use=use, word=word, fill=fill)
    return Draft(
        description=f"`{f}` decodes bytes as UTF-8 and works on the text, passing decode errors on.",
        buggy_code=body.format(q="", **args),
        correct_code=body.format(q="?", **args),
        expected_error="found for enum `Result",
    )


@pattern(FAMILY, "option_used_as_value", code="E0369")
def option_used_as_value(v: Vocab) -> Draft:
    m, total = v.var(), v.var()
    w1, w2 = v.word(), v.word() + "_b"
    n1, n2, k = v.int(1, 50), v.int(1, 50), v.int(1, 20)
    fill = v.filler()
    key = v.choice([w1, w2, "missing"])
    body = """use std::collections::HashMap;

fn main() {{
    let mut {m} = HashMap::new();
    {m}.insert("{w1}", {n1});
    {m}.insert("{w2}", {n2});
{fill}    let {total} = {m}.get("{key}"){conv} + {k};
    println!("{key}: {{}}", {total});
}}
"""
    args = dict(m=m, total=total, w1=w1, w2=w2, n1=n1, n2=n2, k=k, fill=fill, key=key)
    return Draft(
        description=f"Look up `{key}` in the map and add {k}, counting a missing key as 0.",
        buggy_code=body.format(conv="", **args),
        correct_code=body.format(conv=".copied().unwrap_or(0)", **args),
        expected_error="cannot add",
    )


@pattern(FAMILY, "wrong_error_type", code="E0308")
def wrong_error_type(v: Vocab) -> Draft:
    f, t = v.func(), v.choice(_NUM_TYPES)
    good = v.int(1, 500)
    bad = v.word()
    fill = v.filler()
    body = """fn {f}(text: &str) -> Result<{t}, String> {{
    text.trim().parse::<{t}>(){conv}
}}

fn main() {{
{fill}    println!("{{:?}}", {f}(" {good} "));
    println!("{{:?}}", {f}("{bad}"));
}}
"""
    args = dict(f=f, t=t, good=good, bad=bad, fill=fill)
    return Draft(
        description=f"`{f}` parses a number and reports failures as a `String` message.",
        buggy_code=body.format(conv="", **args),
        correct_code=body.format(conv=".map_err(|e| e.to_string())", **args),
        expected_error="mismatched types",
    )


@pattern(FAMILY, "question_on_option_in_result_fn", code="E0277")
def question_on_option_in_result_fn(v: Vocab) -> Draft:
    f, t, xs = v.func(), v.choice(_NUM_TYPES), v.var()
    k = v.int(2, 9)
    nums = ", ".join(str(n) for n in _nums(v, v.int(2, 4)))
    which = v.choice(["first", "last"])
    fill = v.filler()
    body = """fn {f}(items: &[{t}]) -> Result<{t}, String> {{
    let x = items.{which}(){conv}?;
    Ok(*x * {k})
}}

fn main() {{
    let {xs} = vec![{nums}];
{fill}    println!("{{:?}}", {f}(&{xs}));
    println!("{{:?}}", {f}(&[]));
}}
"""
    args = dict(f=f, t=t, xs=xs, k=k, nums=nums, which=which, fill=fill)
    return Draft(
        description=f"`{f}` scales the {which} item, with an error message for an empty list.",
        buggy_code=body.format(conv="", **args),
        correct_code=body.format(conv='.ok_or("empty list".to_string())', **args),
        expected_error="the `?` operator can only be used on `Result`s",
    )


@pattern(FAMILY, "wrong_unwrap_default", kind="test")
def wrong_unwrap_default(v: Vocab) -> Draft:
    f, fld = v.func(), v.field()
    const = f"DEFAULT_{fld.upper()}"
    t = v.choice(["u32", "u64", "usize", "i32"])
    default = v.int(5, 90)
    wrong = v.choice(["0", "1", str(default + 1)])
    good = v.int(1, 200)
    body = """const {const}: {t} = {default};

fn {f}(setting: &str) -> {t} {{
    setting.trim().parse().unwrap_or({arg})
}}

fn main() {{
    println!("{fld} = {{}}", {f}("{good}"));
    println!("{fld} = {{}}", {f}("oops"));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn bad_text_gives_default() {{
        assert_eq!({f}("{good}"), {good});
        assert_eq!({f}("oops"), {const});
    }}
}}
"""
    args = dict(f=f, fld=fld, const=const, t=t, default=default, good=good)
    return Draft(
        description=f"`{f}` reads the {fld} setting; text that is not a number gives {const}.",
        buggy_code=body.format(arg=wrong, **args),
        correct_code=body.format(arg=const, **args),
        expected_error="assertion `left == right` failed",
    )


@pattern(FAMILY, "wrong_error_variant", kind="test")
def wrong_error_variant(v: Vocab) -> Draft:
    f, t, e = v.func(), v.choice(_NUM_TYPES), v.type_name() + "Error"
    good = v.int(1, 300)
    bad = v.word()
    wrong_first = v.rng.random() < 0.5
    body = """#[derive(Debug, PartialEq)]
enum {e} {{
    Missing,
    Invalid,
}}

fn {f}(input: Option<&str>) -> Result<{t}, {e}> {{
    let text = input.ok_or({e}::{a})?;
    text.parse::<{t}>().map_err(|_| {e}::{b})
}}

fn main() {{
    println!("{{:?}}", {f}(Some("{good}")));
    println!("{{:?}}", {f}(None));
    println!("{{:?}}", {f}(Some("{bad}")));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn errors_name_the_cause() {{
        assert_eq!({f}(Some("{good}")), Ok({good}));
        assert_eq!({f}(None), Err({e}::Missing));
        assert_eq!({f}(Some("{bad}")), Err({e}::Invalid));
    }}
}}
"""
    args = dict(f=f, t=t, e=e, good=good, bad=bad)
    buggy = (
        body.format(a="Invalid", b="Invalid", **args)
        if wrong_first
        else body.format(a="Missing", b="Missing", **args)
    )
    return Draft(
        description=f"`{f}` parses an optional number: no input is `Missing`, bad text is `Invalid`.",
        buggy_code=buggy,
        correct_code=body.format(a="Missing", b="Invalid", **args),
        expected_error="assertion `left == right` failed",
    )
