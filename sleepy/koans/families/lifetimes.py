"""Generated lifetime koans: missing lifetime parameters, references that outlive their owner,
temporaries dropped while borrowed, and slice-returning functions with logic bugs."""

from string import Template

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "lifetimes"


def _fill(text: str, /, **kw) -> str:
    # `$name` placeholders keep Rust's braces and lifetimes literal, so templates read like Rust.
    return Template(text).substitute(kw)


def _words(v: Vocab, n: int) -> list[str]:
    return [v.word() for _ in range(n)]


@pattern(FAMILY, "missing_lifetime_in_return", code="E0106")
def missing_lifetime_in_return(v: Vocab) -> Draft:
    f, a, b, r = v.func(), v.var(), v.var(), v.var()
    kind = v.choice(["longest", "nonempty", "bigger_list"])
    if kind == "bigger_list":
        t = v.int_type()
        sig_bad = f"fn {f}({a}: &[{t}], {b}: &[{t}]) -> &[{t}] {{"
        sig_good = f"fn {f}<'a>({a}: &'a [{t}], {b}: &'a [{t}]) -> &'a [{t}] {{"
        body = f"if {a}.iter().sum::<{t}>() >= {b}.iter().sum() {{ {a} }} else {{ {b} }}"
        xs = ", ".join(str(v.int()) for _ in range(3))
        ys = ", ".join(str(v.int()) for _ in range(2))
        call, show = f"{f}(&[{xs}], &[{ys}])", f'println!("{{:?}}", {r});'
        what = "the list with the larger sum"
    else:
        sig_bad = f"fn {f}({a}: &str, {b}: &str) -> &str {{"
        sig_good = f"fn {f}<'a>({a}: &'a str, {b}: &'a str) -> &'a str {{"
        if kind == "longest":
            body = f"if {a}.len() >= {b}.len() {{ {a} }} else {{ {b} }}"
            what = "the longer of two texts"
        else:
            body = f"if {a}.is_empty() {{ {b} }} else {{ {a} }}"
            what = "the first text unless it is empty"
        x, y = _words(v, 2)
        call = f'{f}("{x}", "{y}")' if v.rng.random() < 0.7 else f'{f}("", "{y}")'
        show = f'println!("{{}}", {r});'
    template = """$sig
    $body
}

fn main() {
$fill    let $r = $call;
    $show
}
"""
    kw = dict(body=body, fill=v.filler(), r=r, call=call, show=show)
    return Draft(
        description=f"`{f}` returns {what}, borrowed from its arguments.",
        buggy_code=_fill(template, sig=sig_bad, **kw),
        correct_code=_fill(template, sig=sig_good, **kw),
        expected_error="missing lifetime specifier",
    )


@pattern(FAMILY, "struct_field_missing_lifetime", code="E0106")
def struct_field_missing_lifetime(v: Vocab) -> Draft:
    ty, fld, other, x, f = v.type_name(), v.field(), v.field(), v.var(), v.func()
    if v.rng.random() < 0.5:
        ref_t, val, shown = "str", f'"{v.word()}"', f"{x}.{fld}.len()"
    else:
        t = v.int_type()
        ref_t = f"[{t}]"
        val = "&[" + ", ".join(str(v.int()) for _ in range(3)) + "]"
        shown = f"{x}.{fld}.len()"
    template = """struct $head {
    $fld: &$lt$ref_t,
    $other: u32,
}

fn $f($x: &$ty) -> usize {
    $shown + $x.$other as usize
}

fn main() {
    let $x = $ty { $fld: $val, $other: $n };
$fill    println!("{}", $f(&$x));
}
"""
    kw = dict(fld=fld, ref_t=ref_t, other=other, f=f, x=x, ty=ty, shown=shown, val=val)
    kw.update(n=v.int(), fill=v.filler())
    return Draft(
        description=f"`{ty}` keeps a borrowed `{fld}` next to a number; `{f}` combines the two.",
        buggy_code=_fill(template, head=ty, lt="", **kw),
        correct_code=_fill(template, head=f"{ty}<'a>", lt="'a ", **kw),
        expected_error="missing lifetime specifier",
    )


@pattern(FAMILY, "missing_static_lifetime", code="E0106")
def missing_static_lifetime(v: Vocab) -> Draft:
    f, r = v.func(), v.var()
    names = _words(v, 3)
    if v.rng.random() < 0.5:
        param, arg = "", ""
        body = f'"{names[0]}"'
        what = "a fixed default label"
    else:
        t = v.choice(["u8", "u32", "usize"])
        param, arg = f"code: {t}", str(v.int(0, 3))
        body = (
            f'match code {{\n        0 => "{names[0]}",\n        1 => "{names[1]}",\n'
            f'        _ => "{names[2]}",\n    }}'
        )
        what = "the name for a numeric code"
    template = """fn $f($param) -> &${lt}str {
    $body
}

fn main() {
$fill    let $r = $f($arg);
    println!("{} ({} chars)", $r, $r.len());
}
"""
    kw = dict(f=f, param=param, body=body, fill=v.filler(), r=r, arg=arg)
    return Draft(
        description=f"`{f}` returns {what}, a string literal known at compile time.",
        buggy_code=_fill(template, lt="", **kw),
        correct_code=_fill(template, lt="'static ", **kw),
        expected_error="missing lifetime specifier",
    )


@pattern(FAMILY, "ref_outlives_scope", code="E0597")
def ref_outlives_scope(v: Vocab) -> Draft:
    owner, r = v.var(), v.var()
    if v.rng.random() < 0.5:
        make = f'let {owner} = String::from("{v.word()}");'
        take = f"{r} = {owner}.as_str();" if v.rng.random() < 0.5 else f"{r} = &{owner};"
        show = f'println!("{{}}", {r});'
    else:
        t = v.int_type()
        make = f"let {owner}: Vec<{t}> = vec![{', '.join(str(v.int()) for _ in range(3))}];"
        take = f"{r} = &{owner}[{v.int(0, 2)}];"
        show = f'println!("{{}}", {r});'
    # The owner is created inside the block in the buggy version and before it in the fix.
    template = """fn main() {
    let $r;
$outer    {
$inner$fill        $take
    }
    $show
}
"""
    kw = dict(r=r, take=take, show=show, fill=v.filler("        "))
    return Draft(
        description=f"`{r}` borrows from `{owner}` inside a block and is printed after it.",
        buggy_code=_fill(template, outer="", inner=f"        {make}\n", **kw),
        correct_code=_fill(template, outer=f"    {make}\n", inner="", **kw),
        expected_error="does not live long enough",
    )


@pattern(FAMILY, "push_ref_to_loop_local", code="E0597")
def push_ref_to_loop_local(v: Vocab) -> Draft:
    xs, label, i = v.var(), v.var(), v.choice(["i", "n", "k", "idx"])
    prefix = v.word()
    kind = v.choice(["format", "upper"])
    make = (
        f'let {label} = format!("{prefix}-{{}}", {i});'
        if kind == "format"
        else f'let {label} = "{prefix}".repeat({i} + 1);'
    )
    template = """fn main() {
    let mut $xs: Vec<$elem> = Vec::new();
    for $i in 0..$n {
        $make
        $xs.push($arg);
    }
$fill    println!("{:?}", $xs);
}
"""
    kw = dict(xs=xs, i=i, n=v.int(2, 4), make=make, fill=v.filler())
    return Draft(
        description=f"Each round of the loop builds a label and keeps it in `{xs}`.",
        buggy_code=_fill(template, elem="&str", arg=f"&{label}", **kw),
        correct_code=_fill(template, elem="String", arg=label, **kw),
        expected_error="does not live long enough",
    )


@pattern(FAMILY, "explicit_lifetime_required", code="E0621")
def explicit_lifetime_required(v: Vocab) -> Draft:
    f, a, b, r = v.func(), v.var(), v.var(), v.var()
    if v.rng.random() < 0.5:
        head = f"fn {f}<'a>({a}: &'a str, {b}: &${{lt}}str) -> &'a str {{"
        body = f"if {a}.starts_with('{v.word()[0]}') {{ {a} }} else {{ {b} }}"
        x, y = _words(v, 2)
        call, what = f'{f}("{x}", "{y}")', "one of two words depending on its first letter"
    else:
        t = v.int_type()
        head = f"fn {f}<'a>({a}: &'a [{t}], {b}: &${{lt}}[{t}]) -> &'a [{t}] {{"
        body = f"if {a}.len() > {v.int(1, 3)} {{ {a} }} else {{ {b} }}"
        xs = ", ".join(str(v.int()) for _ in range(v.int(1, 4)))
        call, what = f"{f}(&[{xs}], &[{v.int()}])", "one of two lists depending on its length"
    template = (
        head
        + """
    $body
}

fn main() {
$fill    let $r = $call;
    println!("{:?}", $r);
}
"""
    )
    kw = dict(body=body, fill=v.filler(), r=r, call=call)
    return Draft(
        description=f"`{f}` returns {what}.",
        buggy_code=_fill(template, lt="", **kw),
        correct_code=_fill(template, lt="'a ", **kw),
        expected_error="explicit lifetime required in the type of",
    )


@pattern(FAMILY, "temporary_dropped_while_borrowed", code="E0716")
def temporary_dropped_while_borrowed(v: Vocab) -> Draft:
    src, key, line = v.var(), v.var(), v.var()
    kind = v.choice(["lower", "split"])
    if kind == "lower":
        decl = f'let {src} = String::from("{v.word().capitalize()}");'
        bad = f"let {key}: &str = {src}.to_uppercase().as_str();"
        good = f"let {key} = {src}.to_uppercase();"
        show = f'println!("{{}} -> {{}}", {src}, {key});'
        what = f"prints `{src}` next to its upper-case form"
    else:
        a, b, c = _words(v, 3)
        decl = f'let {src} = "{a} {b}";'
        bad = f"let {key}: Vec<&str> = format!(\"{{}} {c}\", {src}).split(' ').collect();"
        good = (
            f'let {line} = format!("{{}} {c}", {src});\n'
            f"    let {key}: Vec<&str> = {line}.split(' ').collect();"
        )
        show = f'println!("{{}} {{:?}}", {key}.len(), {key});'
        what = f"adds a word to `{src}` and prints the words"
    template = """fn main() {
    $decl
    $line
$fill    $show
}
"""
    kw = dict(decl=decl, fill=v.filler(), show=show)
    return Draft(
        description=f"The program {what}.",
        buggy_code=_fill(template, line=bad, **kw),
        correct_code=_fill(template, line=good, **kw),
        expected_error="temporary value dropped while borrowed",
    )


@pattern(FAMILY, "return_ref_to_temporary", code="E0515")
def return_ref_to_temporary(v: Vocab) -> Draft:
    ty, a, b, x, m = v.type_name(), v.field(), v.field(), v.var(), v.func()
    w, n = v.word(), v.int()
    template = """struct $ty {
    $a: String,
    $b: u32,
}

impl $ty {
    fn $m(&self) -> $ret {
        $expr
    }
}

fn main() {
    let $x = $ty { $a: String::from("$w"), $b: $n };
$fill    println!("{}", $x.$m());
}
"""
    fmt = f'format!("{{}}#{{}}", self.{a}, self.{b})'
    kw = dict(ty=ty, a=a, b=b, m=m, x=x, w=w, n=n, fill=v.filler())
    return Draft(
        description=f"`{ty}::{m}` builds a label from both fields of the `{ty}`.",
        buggy_code=_fill(template, ret="&str", expr=f"&{fmt}", **kw),
        correct_code=_fill(template, ret="String", expr=fmt, **kw),
        expected_error="cannot return reference to temporary value",
    )


@pattern(FAMILY, "impl_missing_lifetime", code="E0726")
def impl_missing_lifetime(v: Vocab) -> Draft:
    ty, fld, m, x = v.type_name(), v.field(), v.func(), v.var()
    words = " ".join(_words(v, v.int(2, 4)))
    template = """struct $ty<'a> {
    $fld: &'a str,
}

impl$impl_head {
    fn $m(&self) -> usize {
        self.$fld.split(' ').count()
    }
}

fn main() {
    let $x = $ty { $fld: "$words" };
$fill    println!("{}", $x.$m());
}
"""
    kw = dict(ty=ty, fld=fld, m=m, x=x, words=words, fill=v.filler())
    return Draft(
        description=f"`{ty}` borrows a text; `{m}` counts its words.",
        buggy_code=_fill(template, impl_head=f" {ty}", **kw),
        correct_code=_fill(template, impl_head=f"<'a> {ty}<'a>", **kw),
        expected_error="implicit elided lifetime not allowed here",
    )


@pattern(FAMILY, "longest_wrong_branch", kind="test")
def longest_wrong_branch(v: Vocab) -> Draft:
    f = v.func()
    short, long = v.word()[:3], v.word() + v.word()
    template = """fn $f<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() $op b.len() {
        a
    } else {
        b
    }
}

fn main() {
    println!("{}", $f("$long", "$short"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_longer_text() {
        assert_eq!($f("$short", "$long"), "$long", "the longer text is returned");
        assert_eq!($f("$long", "$short"), "$long", "the longer text is returned");
    }
}
"""
    kw = dict(f=f, short=short, long=long)
    return Draft(
        description=f"`{f}` returns whichever of its two texts is longer (the first on a tie).",
        buggy_code=_fill(template, op="<=", **kw),
        correct_code=_fill(template, op=">=", **kw),
        expected_error="the longer text is returned",
    )


@pattern(FAMILY, "first_word_slice_bounds", kind="test")
def first_word_slice_bounds(v: Vocab) -> Draft:
    ty, fld, x = v.type_name(), v.field(), v.var()
    a, b, c = _words(v, 3)
    template = """struct $ty<'a> {
    $fld: &'a str,
}

impl<'a> $ty<'a> {
    fn first_word(&self) -> &'a str {
        match self.$fld.find(' ') {
            Some(i) => &self.$fld[..$end],
            None => self.$fld,
        }
    }
}

fn main() {
    let $x = $ty { $fld: "$a $b" };
    println!("[{}]", $x.first_word());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_word_has_no_space() {
        let t = $ty { $fld: "$c $a" };
        assert_eq!(t.first_word(), "$c", "the first word has no trailing space");
        assert_eq!($ty { $fld: "$b" }.first_word(), "$b");
    }
}
"""
    kw = dict(ty=ty, fld=fld, x=x, a=a, b=b, c=c)
    return Draft(
        description=f"`{ty}::first_word` returns the text before the first space, borrowed from the `{ty}`.",
        buggy_code=_fill(template, end="i + 1", **kw),
        correct_code=_fill(template, end="i", **kw),
        expected_error="the first word has no trailing space",
    )


@pattern(FAMILY, "impl_trait_captures_lifetime", code="E0700")
def impl_trait_captures_lifetime(v: Vocab) -> Draft:
    f, p, xs = v.func(), v.var(), v.var()
    kind = v.choice(["filter", "map", "split"])
    if kind == "split":
        item, arg_t = "String", "&str"
        body = f"{p}.split(' ').map(|w| w.to_uppercase())"
        arg = '"' + " ".join(_words(v, 3)) + '"'
        what = "the upper-case words of a text"
    else:
        t = v.int_type()
        item, arg_t = t, f"&[{t}]"
        k = v.int(2, 5)
        if kind == "filter":
            body = f"{p}.iter().copied().filter(|x| x % {k} == 0)"
            what = f"the entries divisible by {k}"
        else:
            body = f"{p}.iter().map(|x| x * {k})"
            what = f"every entry times {k}"
        arg = "&[" + ", ".join(str(v.int()) for _ in range(4)) + "]"
    template = """fn $f($p: $arg_t) -> impl Iterator<Item = $item>$bound {
    $body
}

fn main() {
$fill    let $xs: Vec<$item> = $f($arg).collect();
    println!("{:?}", $xs);
}
"""
    kw = dict(f=f, p=p, arg_t=arg_t, item=item, body=body, fill=v.filler(), xs=xs, arg=arg)
    return Draft(
        description=f"`{f}` lazily yields {what}, reading from its borrowed argument.",
        buggy_code=_fill(template, bound="", **kw),
        correct_code=_fill(template, bound=" + '_", **kw),
        expected_error="captures lifetime that does not appear in bounds",
    )


@pattern(FAMILY, "undeclared_lifetime", code="E0261")
def undeclared_lifetime(v: Vocab) -> Draft:
    if v.rng.random() < 0.5:
        ty, fld, m, x = v.type_name(), v.field(), v.func(), v.var()
        template = """struct $ty<'a> {
    $fld: &'a str,
}

impl$decl $ty<'a> {
    fn $m(&self) -> usize {
        self.$fld.chars().filter(|c| *c == '$ch').count()
    }
}

fn main() {
    let $x = $ty { $fld: "$text" };
$fill    println!("{}", $x.$m());
}
"""
        text = " ".join(_words(v, 3))
        kw = dict(ty=ty, fld=fld, m=m, x=x, text=text, ch=v.choice(text.replace(" ", "")))
        what = f"`{ty}` borrows a text; `{m}` counts one letter in it."
    else:
        f, a, b, r = v.func(), v.var(), v.var(), v.var()
        template = """fn $f$decl($a: &'a str, $b: &'a str) -> &'a str {
    if $a.len() $op $b.len() { $a } else { $b }
}

fn main() {
$fill    let $r = $f("$x", "$y");
    println!("{}", $r);
}
"""
        x, y = _words(v, 2)
        kw = dict(f=f, a=a, b=b, r=r, x=x, y=y, op=v.choice(["<", ">", "<=", ">="]))
        what = f"`{f}` returns one of two borrowed texts, chosen by length."
    kw["fill"] = v.filler()
    return Draft(
        description=what,
        buggy_code=_fill(template, decl="", **kw),
        correct_code=_fill(template, decl="<'a>", **kw),
        expected_error="use of undeclared lifetime name",
    )
