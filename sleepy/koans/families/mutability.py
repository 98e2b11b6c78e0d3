"""Generated mutability koans: a missing `mut` on a binding, parameter or `self`, mutation through
a shared reference, and logic bugs where a copy is changed instead of the original."""

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "mutability"

_TEST_FAIL = "assertion `left == right` failed"


def _ints(v: Vocab, n: int, lo: int = 1, hi: int = 40) -> list[int]:
    return [v.int(lo, hi) for _ in range(n)]


@pattern(FAMILY, "assign_twice_immutable", code="E0384")
def assign_twice_immutable(v: Vocab) -> Draft:
    total, x = v.var(), v.var()
    ty = v.int_type()
    nums = ", ".join(str(n) for n in _ints(v, v.int(3, 5)))
    step = v.choice([f"{total} += {x};", f"{total} = {total} + {x};"])
    if v.rng.random() < 0.5:
        loop = f"    for {x} in [{nums}] {{\n        {step}\n    }}\n"
    else:
        loop = (
            f"    let {x}s: Vec<{ty}> = vec![{nums}];\n"
            f"    for &{x} in {x}s.iter() {{\n        {step}\n    }}\n"
        )
    body = """fn main() {{
    let {mut}{total}: {ty} = {start};
{fill}{loop}    println!("{total} = {{}}", {total});
}}
"""
    args = dict(total=total, ty=ty, start=v.int(0, 10), fill=v.filler(), loop=loop)
    return Draft(
        description=f"Sum a list of numbers into `{total}` and print the result.",
        buggy_code=body.format(mut="", **args),
        correct_code=body.format(mut="mut ", **args),
        expected_error="cannot assign twice to immutable variable",
    )


@pattern(FAMILY, "push_to_immutable_collection", code="E0596")
def push_to_immutable_collection(v: Vocab) -> Draft:
    c = v.var()
    kind = v.choice(["vec", "string", "btreemap", "vecdeque"])
    words = [v.word() for _ in range(v.int(2, 3))]
    ty = v.int_type()
    use = ""
    if kind == "vec":
        init, show = f"Vec<{ty}> = Vec::new()", f'"{{:?}}", {c}'
        adds = [f"{c}.push({n});" for n in _ints(v, len(words))]
    elif kind == "string":
        init, show = "String = String::new()", f'"{{}}", {c}'
        adds = [f'{c}.push_str("{w} ");' for w in words]
    elif kind == "btreemap":
        use = "use std::collections::BTreeMap;\n\n"
        init, show = f"BTreeMap<&str, {ty}> = BTreeMap::new()", f'"{{:?}}", {c}'
        adds = [
            f'{c}.insert("{w}", {n});' for w, n in zip(words, _ints(v, len(words)), strict=True)
        ]
    else:
        use = "use std::collections::VecDeque;\n\n"
        init, show = f"VecDeque<{ty}> = VecDeque::new()", f'"{{:?}}", {c}'
        adds = [f"{c}.push_back({n});" for n in _ints(v, len(words))]
    lines = "".join(f"    {a}\n" for a in adds)
    body = """{use}fn main() {{
    let {mut}{c}: {init};
{fill}{lines}    println!({show});
}}
"""
    args = dict(use=use, c=c, init=init, fill=v.filler(), lines=lines, show=show)
    return Draft(
        description=f"Build up `{c}` by adding a few entries, then print it.",
        buggy_code=body.format(mut="", **args),
        correct_code=body.format(mut="mut ", **args),
        expected_error="as it is not declared as mutable",
    )


@pattern(FAMILY, "mut_method_on_immutable_binding", code="E0596")
def mut_method_on_immutable_binding(v: Vocab) -> Draft:
    t, obj, fld = v.type_name(), v.var(), v.field()
    method = v.choice(["add", "bump", "increase", "record", "grow", "advance"])
    ty = v.int_type()
    start, a, b = v.int(0, 20), v.int(1, 9), v.int(1, 9)
    body = """struct {t} {{
    {fld}: {ty},
}}

impl {t} {{
    fn {method}(&mut self, by: {ty}) {{
        self.{fld} += by;
    }}
}}

fn main() {{
    let {mut}{obj} = {t} {{ {fld}: {start} }};
{fill}    {obj}.{method}({a});
    {obj}.{method}({b});
    println!("{fld} = {{}}", {obj}.{fld});
}}
"""
    args = dict(t=t, obj=obj, fld=fld, ty=ty, method=method, start=start, a=a, b=b, fill=v.filler())
    return Draft(
        description=f"Create a `{t}` and call `{method}` on it twice to raise its `{fld}`.",
        buggy_code=body.format(mut="", **args),
        correct_code=body.format(mut="mut ", **args),
        expected_error="as it is not declared as mutable",
    )


@pattern(FAMILY, "mutate_through_shared_ref", code="E0596")
def mutate_through_shared_ref(v: Vocab) -> Draft:
    f, lst = v.func(), v.var()
    if v.rng.random() < 0.5:
        elem, items, arg_ty = (
            "String",
            ", ".join(f'"{v.word()}".to_string()' for _ in range(2)),
            "&str",
        )
        push, new = "item.to_string()", v.string()
    else:
        elem = v.int_type()
        items, arg_ty, push, new = ", ".join(map(str, _ints(v, 3))), elem, "item", str(v.int())
    body = """fn {f}({lst}: {ref}Vec<{elem}>, item: {arg_ty}) {{
    {lst}.push({push});
}}

fn main() {{
    let mut {lst} = vec![{items}];
{fill}    {f}({call}{lst}, {new});
    println!("{{:?}}", {lst});
}}
"""
    args = dict(
        f=f, lst=lst, elem=elem, arg_ty=arg_ty, push=push, items=items, new=new, fill=v.filler()
    )
    return Draft(
        description=f"`{f}` should append an item to the caller's `{lst}`.",
        buggy_code=body.format(ref="&", call="&", **args),
        correct_code=body.format(ref="&mut ", call="&mut ", **args),
        expected_error="as it is behind a `&` reference",
    )


@pattern(FAMILY, "assign_field_of_immutable_binding", code="E0594")
def assign_field_of_immutable_binding(v: Vocab) -> Draft:
    t, obj, f1, f2 = v.type_name(), v.var(), v.field(), v.field()
    ty = v.int_type()
    a, b, c = v.int(), v.int(), v.int()
    body = """struct {t} {{
    {f1}: {ty},
    {f2}: {ty},
}}

fn main() {{
    let {mut}{obj} = {t} {{ {f1}: {a}, {f2}: {b} }};
{fill}    {obj}.{f1} = {c};
    println!("{f1} = {{}}, {f2} = {{}}", {obj}.{f1}, {obj}.{f2});
}}
"""
    args = dict(t=t, obj=obj, f1=f1, f2=f2, ty=ty, a=a, b=b, c=c, fill=v.filler())
    return Draft(
        description=f"Create a `{t}`, then change its `{f1}` and print it.",
        buggy_code=body.format(mut="", **args),
        correct_code=body.format(mut="mut ", **args),
        expected_error="is not declared as mutable",
    )


@pattern(FAMILY, "missing_mut_parameter", code="E0384")
def missing_mut_parameter(v: Vocab) -> Draft:
    f, n = v.func(), v.var()
    ty = v.choice(["u32", "u64", "usize"])
    base = v.choice([2, 3, 10])
    body = """fn {f}({mut}{n}: {ty}) -> {ty} {{
    let mut steps = 0;
    while {n} > 0 {{
        {n} /= {base};
        steps += 1;
    }}
    steps
}}

fn main() {{
{fill}    println!("{{}}", {f}({arg}));
}}
"""
    args = dict(f=f, n=n, ty=ty, base=base, arg=v.int(1, 5000), fill=v.filler())
    return Draft(
        description=f"`{f}` counts how many times `{n}` can be divided by {base} before it is 0.",
        buggy_code=body.format(mut="", **args),
        correct_code=body.format(mut="mut ", **args),
        expected_error="cannot assign to immutable argument",
    )


@pattern(FAMILY, "shared_self_assigns_field", code="E0594")
def shared_self_assigns_field(v: Vocab) -> Draft:
    t, obj, fld = v.type_name(), v.var(), v.field()
    method = v.choice(["reset", "clear", "restart", "zero"])
    ty = v.int_type()
    body = """struct {t} {{
    {fld}: {ty},
}}

impl {t} {{
    fn {method}({self_}) {{
        self.{fld} = 0;
    }}
}}

fn main() {{
    let mut {obj} = {t} {{ {fld}: {start} }};
{fill}    {obj}.{method}();
    println!("{fld} = {{}}", {obj}.{fld});
}}
"""
    args = dict(t=t, obj=obj, fld=fld, ty=ty, method=method, start=v.int(), fill=v.filler())
    return Draft(
        description=f"`{method}` should set the `{fld}` of a `{t}` back to zero.",
        buggy_code=body.format(self_="&self", **args),
        correct_code=body.format(self_="&mut self", **args),
        expected_error="which is behind a `&` reference",
    )


@pattern(FAMILY, "iter_instead_of_iter_mut", code="E0594")
def iter_instead_of_iter_mut(v: Vocab) -> Draft:
    lst, x = v.var(), v.var()
    ty = v.int_type()
    op = v.choice(["+= 1", "*= 2", f"+= {v.int(2, 9)}"])
    nums = ", ".join(map(str, _ints(v, v.int(3, 5))))
    style = v.rng.random() < 0.5
    bad_iter, good_iter = (
        (f"{lst}.iter()", f"{lst}.iter_mut()") if style else (f"&{lst}", f"&mut {lst}")
    )
    body = """fn main() {{
    let mut {lst}: Vec<{ty}> = vec![{nums}];
{fill}    for {x} in {it} {{
        *{x} {op};
    }}
    println!("{{:?}}", {lst});
}}
"""
    args = dict(lst=lst, x=x, ty=ty, op=op, nums=nums, fill=v.filler())
    return Draft(
        description=f"Update every element of `{lst}` in place and print the list.",
        buggy_code=body.format(it=bad_iter, **args),
        correct_code=body.format(it=good_iter, **args),
        expected_error="which is behind a `&` reference",
    )


@pattern(FAMILY, "map_get_instead_of_get_mut", code="E0594")
def map_get_instead_of_get_mut(v: Vocab) -> Draft:
    m, c = v.var(), v.var()
    ty = v.int_type()
    w1, w2 = v.word(), v.word()
    if w1 == w2:
        w2 = w2 + "_b"
    body = """use std::collections::BTreeMap;

fn main() {{
    let mut {m}: BTreeMap<&str, {ty}> = BTreeMap::new();
    {m}.insert("{w1}", {a});
    {m}.insert("{w2}", {b});
{fill}    if let Some({c}) = {m}.{get}("{w1}") {{
        *{c} += {d};
    }}
    println!("{{:?}}", {m});
}}
"""
    args = dict(m=m, c=c, ty=ty, w1=w1, w2=w2, a=v.int(), b=v.int(), d=v.int(1, 9), fill=v.filler())
    return Draft(
        description=f'Increase the count stored under "{w1}" in `{m}`.',
        buggy_code=body.format(get="get", **args),
        correct_code=body.format(get="get_mut", **args),
        expected_error="which is behind a `&` reference",
    )


@pattern(FAMILY, "mutate_clone_not_original", kind="test")
def mutate_clone_not_original(v: Vocab) -> Draft:
    t, fld, f = v.type_name(), v.field(), v.func()
    obj = v.var()
    w1, w2 = v.word(), v.word()
    head = """#[derive(Clone, Debug)]
struct {t} {{
    {fld}: Vec<String>,
}}

fn {f}(target: &mut {t}, entry: &str) {{
"""
    buggy_mid = """    let mut {fld} = target.{fld}.clone();
    {fld}.push(entry.to_string());
"""
    good_mid = """    target.{fld}.push(entry.to_string());
"""
    tail = """}}

fn main() {{
    let mut {obj} = {t} {{ {fld}: vec!["{w1}".to_string()] }};
    {f}(&mut {obj}, "{w2}");
    println!("{{:?}}", {obj}.{fld});
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn adds_to_the_original() {{
        let mut {obj} = {t} {{ {fld}: Vec::new() }};
        {f}(&mut {obj}, "{w2}");
        assert_eq!({obj}.{fld}.len(), 1);
    }}
}}
"""
    args = dict(t=t, fld=fld, f=f, obj=obj, w1=w1, w2=w2)
    return Draft(
        description=f"`{f}` should add an entry to the `{fld}` of the `{t}` it is given.",
        buggy_code=(head + buggy_mid + tail).format(**args),
        correct_code=(head + good_mid + tail).format(**args),
        expected_error=_TEST_FAIL,
    )


@pattern(FAMILY, "mutate_copy_not_element", kind="test")
def mutate_copy_not_element(v: Vocab) -> Draft:
    t, fld, f, lst = v.type_name(), v.field(), v.func(), v.var()
    a, b, by = v.int(1, 50), v.int(1, 50), v.int(1, 9)
    body = """#[derive(Clone, Copy, Debug)]
struct {t} {{
    {fld}: i64,
}}

fn {f}(items: &mut [{t}], by: i64) {{
    for i in 0..items.len() {{
        {line}
        item.{fld} += by;
    }}
}}

fn main() {{
    let mut {lst} = vec![{t} {{ {fld}: {a} }}, {t} {{ {fld}: {b} }}];
    {f}(&mut {lst}, {by});
    println!("{{:?}}", {lst});
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn raises_every_item() {{
        let mut {lst} = vec![{t} {{ {fld}: 1 }}];
        {f}(&mut {lst}, 2);
        assert_eq!({lst}[0].{fld}, 3);
    }}
}}
"""
    args = dict(t=t, fld=fld, f=f, lst=lst, a=a, b=b, by=by)
    return Draft(
        description=f"`{f}` should raise the `{fld}` of every `{t}` in the slice.",
        buggy_code=body.format(line="let mut item = items[i];", **args),
        correct_code=body.format(line="let item = &mut items[i];", **args),
        expected_error=_TEST_FAIL,
    )


@pattern(FAMILY, "shadow_instead_of_assign", kind="test")
def shadow_instead_of_assign(v: Vocab) -> Draft:
    f, acc = v.func(), v.var()
    ty = v.choice(["i32", "i64", "u32", "u64"])
    nums = _ints(v, 3, 1, 20)
    body = """fn {f}(values: &[{ty}]) -> {ty} {{
    let mut {acc} = 0;
    for v in values {{
        {line}
    }}
    {acc}
}}

fn main() {{
    println!("{{}}", {f}(&[{nums}]));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn sums_all_values() {{
        assert_eq!({f}(&[1, 2, 3]), 6);
    }}
}}
"""
    args = dict(f=f, acc=acc, ty=ty, nums=", ".join(map(str, nums)))
    return Draft(
        description=f"`{f}` should return the sum of all the values.",
        buggy_code=body.format(line=f"let {acc} = {acc} + v;", **args),
        correct_code=body.format(line=f"{acc} += v;", **args),
        expected_error=_TEST_FAIL,
    )
