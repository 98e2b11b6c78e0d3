"""Generated borrow-checker koans: moves, borrows that outlive their use, double mutable borrows."""

from string import Template

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "borrow_checker"


def _fill(text: str, /, **kw) -> str:
    # `$name` placeholders keep Rust's braces literal, so templates read like the Rust they emit.
    return Template(text).substitute(kw)


def _ints(v: Vocab, n: int, lo: int = 1, hi: int = 40) -> list[int]:
    return [v.int(lo, hi) for _ in range(n)]


@pattern(FAMILY, "use_after_move", code="E0382")
def use_after_move(v: Vocab) -> Draft:
    s, t, f = v.var(), v.var(), v.func()
    how = v.choice(["call", "let", "push"])
    if how == "call":
        head = f"fn {f}(text: String) -> usize {{\n    text.len()\n}}\n\n"
        line = f"    let {t} = {f}($arg);\n"
        what = f"passes `{s}` to `{f}` and then prints it"
    elif how == "let":
        head = ""
        line = f"    let {t} = $arg;\n"
        what = f"copies the text of `{s}` into `{t}` and prints both"
    else:
        head = ""
        line = f"    let mut {t} = Vec::new();\n    {t}.push($arg);\n"
        what = f"stores `{s}` in the list `{t}` and prints both"
    shown = f"{t}" if how == "call" else f"{t}.len()"
    body = head + _fill(
        """fn main() {
    let $s = String::from("$word");
$fill$line    println!("{} {}", $s, $shown);
}
""",
        s=s,
        word=v.word(),
        fill=v.filler(),
        line=line,
        shown=shown,
    )
    return Draft(
        description=f"The program {what}.",
        buggy_code=body.replace("$arg", s),
        correct_code=body.replace("$arg", f"{s}.clone()"),
        expected_error="borrow of moved value",
    )


@pattern(FAMILY, "two_mutable_borrows", code="E0499")
def two_mutable_borrows(v: Vocab) -> Draft:
    xs, a, b = v.var(), v.var(), v.var()
    if v.rng.random() < 0.5:
        t = v.int_type()
        init = "vec![" + ", ".join(str(n) for n in _ints(v, 3)) + "]"
        op_a, op_b = f"{a}.push({v.int()});", f"{b}.push({v.int()});"
        show = f'println!("{{:?}}", {xs});'
        decl = f"let mut {xs}: Vec<{t}> = {init};"
    else:
        decl = f'let mut {xs} = String::from("{v.word()}");'
        op_a, op_b = f'{a}.push_str("-{v.word()}");', f'{b}.push_str("-{v.word()}");'
        show = f'println!("{{}}", {xs});'
    template = """fn main() {
    $decl
$fill$lines    $show
}
"""
    buggy_lines = f"    let {a} = &mut {xs};\n    let {b} = &mut {xs};\n    {op_a}\n    {op_b}\n"
    fixed_lines = f"    let {a} = &mut {xs};\n    {op_a}\n    let {b} = &mut {xs};\n    {op_b}\n"
    kw = dict(decl=decl, fill=v.filler(), show=show)
    return Draft(
        description=f"Two handles `{a}` and `{b}` each append to `{xs}` before it is printed.",
        buggy_code=_fill(template, lines=buggy_lines, **kw),
        correct_code=_fill(template, lines=fixed_lines, **kw),
        expected_error="as mutable more than once at a time",
    )


@pattern(FAMILY, "mutate_while_borrowed", code="E0502")
def mutate_while_borrowed(v: Vocab) -> Draft:
    xs, first = v.var(), v.var()
    kind = v.choice(["index", "max", "string"])
    if kind == "string":
        words = ", ".join(f'String::from("{w}")' for w in [v.word(), v.word(), v.word()])
        decl = f"let mut {xs} = vec![{words}];"
        bad, good = f"let {first} = &{xs}[0];", f"let {first} = {xs}[0].clone();"
        push = f'{xs}.push(String::from("{v.word()}"));'
        what = f"remembers the first word of `{xs}`"
    else:
        t = v.int_type()
        decl = f"let mut {xs}: Vec<{t}> = vec![{', '.join(str(n) for n in _ints(v, 4))}];"
        push = f"{xs}.push({v.int()});"
        if kind == "index":
            bad, good = f"let {first} = &{xs}[0];", f"let {first} = {xs}[0];"
            what = f"remembers the first entry of `{xs}`"
        else:
            bad = f"let {first} = {xs}.iter().max().unwrap();"
            good = f"let {first} = *{xs}.iter().max().unwrap();"
            what = f"remembers the largest entry of `{xs}`"
    template = """fn main() {
    $decl
    $line
$fill    $push
    println!("{} of {}", $first, $xs.len());
}
"""
    kw = dict(decl=decl, fill=v.filler(), push=push, first=first, xs=xs)
    return Draft(
        description=f"The program {what}, appends one more, and prints both.",
        buggy_code=_fill(template, line=bad, **kw),
        correct_code=_fill(template, line=good, **kw),
        expected_error="because it is also borrowed as immutable",
    )


@pattern(FAMILY, "move_out_of_index", code="E0507")
def move_out_of_index(v: Vocab) -> Draft:
    xs, x = v.var(), v.var()
    words = ", ".join(f'String::from("{v.word()}")' for _ in range(3))
    i = v.int(0, 2)
    how = v.choice(["let", "call", "field"])
    head = ""
    if how == "let":
        bad, good = f"let {x} = {xs}[{i}];", f"let {x} = &{xs}[{i}];"
        decl = f"let {xs} = vec![{words}];"
    elif how == "call":
        f = v.func()
        head = f'fn {f}(text: String) -> String {{\n    format!("<{{}}>", text)\n}}\n\n'
        bad, good = f"let {x} = {f}({xs}[{i}]);", f"let {x} = {f}({xs}[{i}].clone());"
        decl = f"let {xs} = vec![{words}];"
    else:
        ty, fld = v.type_name(), v.field()
        head = f"struct {ty} {{\n    {fld}: String,\n}}\n\n"
        items = ", ".join(f'{ty} {{ {fld}: String::from("{v.word()}") }}' for _ in range(3))
        decl = f"let {xs} = vec![{items}];"
        bad, good = f"let {x} = {xs}[{i}].{fld};", f"let {x} = &{xs}[{i}].{fld};"
    template = (
        head
        + """fn main() {
    $decl
$fill    $line
    println!("{} / {}", $x, $xs.len());
}
"""
    )
    kw = dict(decl=decl, fill=v.filler(), x=x, xs=xs)
    return Draft(
        description=f"The program takes entry {i} of `{xs}` and prints it with the list's length.",
        buggy_code=_fill(template, line=bad, **kw),
        correct_code=_fill(template, line=good, **kw),
        expected_error="cannot move out of index of",
    )


@pattern(FAMILY, "return_ref_to_local", code="E0515")
def return_ref_to_local(v: Vocab) -> Draft:
    f, p, local, r = v.func(), v.var(), v.var(), v.var()
    kind = v.choice(["upper", "format", "repeat", "vec"])
    if kind == "vec":
        t = v.int_type()
        m = v.int(2, 5)
        sig_bad, sig_good = (
            f"fn {f}({p}: &[{t}]) -> &Vec<{t}> {{",
            f"fn {f}({p}: &[{t}]) -> Vec<{t}> {{",
        )
        build = f"let {local}: Vec<{t}> = {p}.iter().map(|x| x * {m}).collect();"
        arg = f"&[{', '.join(str(n) for n in _ints(v, 3))}]"
        show = f'println!("{{:?}}", {r});'
    else:
        sig_bad, sig_good = f"fn {f}({p}: &str) -> &str {{", f"fn {f}({p}: &str) -> String {{"
        build = {
            "upper": f"let {local} = {p}.to_uppercase();",
            "format": f'let {local} = format!("{{}}-{v.int()}", {p});',
            "repeat": f"let {local} = {p}.repeat({v.int(2, 3)});",
        }[kind]
        arg = v.string()
        show = f'println!("{{}}", {r});'
    template = """$sig
    $build
    $ret
}

fn main() {
$fill    let $r = $f($arg);
    $show
}
"""
    kw = dict(build=build, fill=v.filler(), r=r, f=f, arg=arg, show=show)
    return Draft(
        description=f"`{f}` builds a new value from `{p}` and hands it back to the caller.",
        buggy_code=_fill(template, sig=sig_bad, ret=f"&{local}", **kw),
        correct_code=_fill(template, sig=sig_good, ret=local, **kw),
        expected_error="cannot return reference to local variable",
    )


@pattern(FAMILY, "move_in_loop", code="E0382")
def move_in_loop(v: Vocab) -> Draft:
    f, xs, out = v.func(), v.var(), v.var()
    i = v.choice(["i", "round", "step", "n"])
    rounds = v.int(2, 4)
    if v.rng.random() < 0.5:
        t = v.int_type()
        sig_bad, sig_good = (
            f"fn {f}(values: Vec<{t}>) -> {t} {{",
            f"fn {f}(values: &[{t}]) -> {t} {{",
        )
        body = "values.iter().sum()"
        decl = f"let {xs}: Vec<{t}> = vec![{', '.join(str(n) for n in _ints(v, 3))}];"
    else:
        sig_bad, sig_good = f"fn {f}(text: String) -> usize {{", f"fn {f}(text: &str) -> usize {{"
        body = "text.split('-').count()"
        decl = f'let {xs} = String::from("{v.word()}-{v.word()}");'
    template = """$sig
    $body
}

fn main() {
    $decl
    for $i in 0..$rounds {
        let $out = $f($arg);
        println!("{} {}", $i, $out);
    }
}
"""
    kw = dict(body=body, decl=decl, i=i, rounds=rounds, out=out, f=f)
    return Draft(
        description=f"`{f}` is called on `{xs}` once per round of a loop, printing each result.",
        buggy_code=_fill(template, sig=sig_bad, arg=xs, **kw),
        correct_code=_fill(template, sig=sig_good, arg=f"&{xs}", **kw),
        expected_error="use of moved value",
    )


@pattern(FAMILY, "for_loop_consumes_vec", code="E0382")
def for_loop_consumes_vec(v: Vocab) -> Draft:
    xs, x, acc = v.var(), v.var(), v.var()
    if v.rng.random() < 0.5:
        t = v.int_type()
        decl = f"let {xs}: Vec<{t}> = vec![{', '.join(str(n) for n in _ints(v, 4))}];"
        init = f"let mut {acc}: {t} = 0;"
        step = f"{acc} += {x};"
        what = "adds up"
    else:
        words = ", ".join(f'"{v.word()}"' for _ in range(3))
        decl = f"let {xs}: Vec<String> = vec![{words}].into_iter().map(String::from).collect();"
        init = f"let mut {acc} = 0;"
        step = f"{acc} += {x}.len();"
        what = "measures the total length of"
    template = """fn main() {
    $decl
    $init
$fill    for $x in $iter {
        $step
    }
    println!("{} entries, {}", $xs.len(), $acc);
}
"""
    kw = dict(decl=decl, init=init, fill=v.filler(), x=x, step=step, xs=xs, acc=acc)
    return Draft(
        description=f"The program {what} the entries of `{xs}` and prints how many there were.",
        buggy_code=_fill(template, iter=xs, **kw),
        correct_code=_fill(template, iter=f"&{xs}", **kw),
        expected_error="borrow of moved value",
    )


@pattern(FAMILY, "mutate_clone_not_original", kind="test")
def mutate_clone_not_original(v: Vocab) -> Draft:
    ty, fld, f, xs = v.type_name(), v.field(), v.func(), v.var()
    t = v.int_type()
    a, b, c = _ints(v, 3)
    idx = v.int(0, 1)
    template = """#[derive(Debug, Clone)]
struct $ty {
    $fld: $t,
}

fn $f(items: &mut Vec<$ty>, idx: usize, amount: $t) {
    $line
    item.$fld += amount;
}

fn main() {
    let mut $xs = vec![$ty { $fld: $a }, $ty { $fld: $b }];
    $f(&mut $xs, $idx, $c);
    println!("{:?}", $xs);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_in_place() {
        let mut items = vec![$ty { $fld: $a }, $ty { $fld: $b }];
        $f(&mut items, 1, $c);
        assert_eq!(items[1].$fld, $b + $c, "the stored value is updated in place");
    }
}
"""
    kw = dict(ty=ty, fld=fld, t=t, f=f, xs=xs, a=a, b=b, c=c, idx=idx)
    return Draft(
        description=f"`{f}` adds an amount to the `{fld}` of one `{ty}` stored in a list.",
        buggy_code=_fill(template, line="let mut item = items[idx].clone();", **kw),
        correct_code=_fill(template, line="let item = &mut items[idx];", **kw),
        expected_error="the stored value is updated in place",
    )


@pattern(FAMILY, "clone_instead_of_drain", kind="test")
def clone_instead_of_drain(v: Vocab) -> Draft:
    f, src, dst = v.func(), v.var(), v.var()
    t = v.int_type()
    xs = ", ".join(str(n) for n in _ints(v, 3))
    ys = ", ".join(str(n) for n in _ints(v, 2))
    template = """fn $f(from: &mut Vec<$t>, to: &mut Vec<$t>) {
    $line
}

fn main() {
    let mut $src: Vec<$t> = vec![$xs];
    let mut $dst: Vec<$t> = vec![$ys];
    $f(&mut $src, &mut $dst);
    println!("{:?} {:?}", $src, $dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_everything() {
        let mut from: Vec<$t> = vec![$xs];
        let mut to: Vec<$t> = vec![$ys];
        $f(&mut from, &mut to);
        assert_eq!(to.len(), 5);
        assert!(from.is_empty(), "the source list is left empty");
    }
}
"""
    kw = dict(f=f, t=t, src=src, dst=dst, xs=xs, ys=ys)
    return Draft(
        description=f"`{f}` moves every entry of one list onto the end of another, emptying the first.",
        buggy_code=_fill(template, line="to.extend(from.clone());", **kw),
        correct_code=_fill(template, line="to.extend(from.drain(..));", **kw),
        expected_error="the source list is left empty",
    )


@pattern(FAMILY, "move_while_borrowed", code="E0505")
def move_while_borrowed(v: Vocab) -> Draft:
    f, xs, first, n = v.func(), v.var(), v.var(), v.var()
    if v.rng.random() < 0.5:
        t = v.int_type()
        elem = t
        init = ", ".join(str(x) for x in _ints(v, 3))
        bad, good = f"let {first} = &{xs}[0];", f"let {first} = {xs}[0];"
    else:
        elem = "String"
        init = ", ".join(f'String::from("{w}")' for w in [v.word(), v.word()])
        bad, good = f"let {first} = &{xs}[0];", f"let {first} = {xs}[0].clone();"
    template = """fn $f(values: Vec<$elem>) -> usize {
    values.len()
}

fn main() {
    let $xs: Vec<$elem> = vec![$init];
    $line
$fill    let $n = $f($xs);
    println!("{} of {}", $first, $n);
}
"""
    kw = dict(f=f, elem=elem, xs=xs, init=init, fill=v.filler(), n=n, first=first)
    return Draft(
        description=f"The program keeps the first entry of `{xs}`, hands the list to `{f}`, "
        "and prints both results.",
        buggy_code=_fill(template, line=bad, **kw),
        correct_code=_fill(template, line=good, **kw),
        expected_error="because it is borrowed",
    )
