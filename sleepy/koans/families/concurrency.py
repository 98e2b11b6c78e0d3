"""Generated concurrency koans: Send/Sync errors, closures that outlive their borrows, values moved
into threads in a loop, Arc without Mutex, and logic bugs in joined threads. Every program joins
its threads and prints in a fixed order, so the output is deterministic."""

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "concurrency"

_TEST_FAIL = "assertion `left == right` failed"


def _ints(v: Vocab, n: int, lo: int = 1, hi: int = 40) -> list[int]:
    return [v.int(lo, hi) for _ in range(n)]


@pattern(FAMILY, "rc_across_threads", code="E0277")
def rc_across_threads(v: Vocab) -> Draft:
    data, h = v.var(), v.var()
    ty = v.choice(["i32", "i64", "u32", "u64"])
    nums = ", ".join(map(str, _ints(v, v.int(3, 5))))
    calc = v.choice(
        [
            (f"{data}.iter().sum::<{ty}>()", "sum"),
            (f"{data}.iter().copied().max().unwrap_or(0)", "max"),
            (f"{data}.len()", "len"),
        ]
    )
    body = """use std::{rc}::{Rc};
use std::thread;

fn main() {{
    let {data} = {Rc}::new(vec![{nums}]);
{fill}    let {h} = thread::spawn(move || {calc});
    println!("{what} = {{}}", {h}.join().unwrap());
}}
"""
    args = dict(data=data, h=h, ty=ty, nums=nums, calc=calc[0], what=calc[1], fill=v.filler())
    return Draft(
        description=f"Share the numbers in `{data}` with a worker thread that computes their {calc[1]}.",
        buggy_code=body.format(rc="rc", Rc="Rc", **args),
        correct_code=body.format(rc="sync", Rc="Arc", **args),
        expected_error="cannot be sent between threads safely",
    )


@pattern(FAMILY, "spawn_closure_without_move", code="E0373")
def spawn_closure_without_move(v: Vocab) -> Draft:
    name, h = v.var(), v.var()
    if v.rng.random() < 0.5:
        init, work = f'String::from("{v.word()}")', f"{name}.len()"
    else:
        init = f"vec![{', '.join(map(str, _ints(v, 3)))}]"
        work = f"{name}.iter().sum::<i32>()"
    body = """use std::thread;

fn main() {{
    let {name} = {init};
{fill}    let {h} = thread::spawn({move}|| {{
        let result = {work};
        result * 2
    }});
    println!("{{}}", {h}.join().unwrap());
}}
"""
    args = dict(name=name, h=h, init=init, work=work, fill=v.filler())
    return Draft(
        description=f"A worker thread computes a value from `{name}` and main prints it.",
        buggy_code=body.format(move="", **args),
        correct_code=body.format(move="move ", **args),
        expected_error="closure may outlive the current function",
    )


@pattern(FAMILY, "arc_moved_into_loop_closure", code="E0382")
def arc_moved_into_loop_closure(v: Vocab) -> Draft:
    counter, handles = v.var(), v.var()
    n, step = v.int(2, 6), v.int(1, 9)
    ty = v.choice(["u32", "u64", "usize", "i64"])
    head = """use std::sync::{{Arc, Mutex}};
use std::thread;

fn main() {{
    let {counter} = Arc::new(Mutex::new(0{suffix}));
    let mut {handles} = Vec::new();
{fill}    for _ in 0..{n} {{
"""
    clone = "        let {counter} = Arc::clone(&{counter});\n"
    tail = """        {handles}.push(thread::spawn(move || {{
            *{counter}.lock().unwrap() += {step};
        }}));
    }}
    for h in {handles} {{
        h.join().unwrap();
    }}
    println!("total = {{}}", *{counter}.lock().unwrap());
}}
"""
    args = dict(counter=counter, handles=handles, n=n, step=step, suffix=ty, fill=v.filler())
    return Draft(
        description=f"{n} threads each add {step} to a shared `{counter}`; main prints the total.",
        buggy_code=(head + tail).format(**args),
        correct_code=(head + clone + tail).format(**args),
        expected_error="borrow of moved value",
    )


@pattern(FAMILY, "sender_moved_into_loop", code="E0382")
def sender_moved_into_loop(v: Vocab) -> Draft:
    tx, rx, got = v.var(), v.var(), v.var()
    n, k = v.int(2, 5), v.int(2, 9)
    op = v.choice([f"i * {k}", f"i + {k}", "i * i"])
    head = """use std::sync::mpsc;
use std::thread;

fn main() {{
    let ({tx}, {rx}) = mpsc::channel();
    for i in 0..{n}u32 {{
"""
    clone = "        let {tx} = {tx}.clone();\n"
    tail = """        thread::spawn(move || {{
            {tx}.send({op}).unwrap();
        }});
    }}
    drop({tx});
    let mut {got}: Vec<u32> = {rx}.iter().collect();
    {got}.sort();
    println!("{{:?}}", {got});
}}
"""
    args = dict(tx=tx, rx=rx, got=got, n=n, op=op)
    return Draft(
        description=f"{n} worker threads each send one result over a channel; main collects them.",
        buggy_code=(head + tail).format(**args),
        correct_code=(head + clone + tail).format(**args),
        expected_error="use of moved value",
    )


@pattern(FAMILY, "mutate_arc_without_mutex", code="E0596")
def mutate_arc_without_mutex(v: Vocab) -> Draft:
    log, handles, out = v.var(), v.var(), v.var()
    n, k = v.int(2, 5), v.int(2, 9)
    body = """use std::sync::{{Arc, Mutex}};
use std::thread;

fn main() {{
    let {log} = Arc::new({new});
    let mut {handles} = Vec::new();
    for i in 0..{n} {{
        let {log} = Arc::clone(&{log});
        {handles}.push(thread::spawn(move || {{
            {log}{access}.push(i * {k});
        }}));
    }}
    for h in {handles} {{
        h.join().unwrap();
    }}
    let mut {out} = {log}{access}.clone();
    {out}.sort();
    println!("{{:?}}", {out});
}}
"""
    args = dict(log=log, handles=handles, out=out, n=n, k=k)
    return Draft(
        description=f"{n} threads push a value each into a shared list `{log}`; main prints it sorted.",
        buggy_code=body.format(new="Vec::new()", access="", **args),
        correct_code=body.format(new="Mutex::new(Vec::new())", access=".lock().unwrap()", **args),
        expected_error="cannot borrow data in an `Arc` as mutable",
    )


@pattern(FAMILY, "refcell_shared_across_threads", code="E0277")
def refcell_shared_across_threads(v: Vocab) -> Draft:
    hits, h = v.var(), v.var()
    start, by = v.int(0, 20), v.int(1, 9)
    body = """use std::{{{imp}, sync::Arc, thread}};

fn main() {{
{fill}    let {hits} = Arc::new({cell}::new({start}));
    let {h} = {{
        let {hits} = Arc::clone(&{hits});
        thread::spawn(move || {{
            let mut n = {hits}.{borrow};
            *n += {by};
            println!("{hits} = {{}}", *n);
        }})
    }};
    {h}.join().unwrap();
    println!("done");
}}
"""
    args = dict(hits=hits, h=h, start=start, by=by, fill=v.filler())
    return Draft(
        description=f"A worker thread updates the shared counter `{hits}` and prints it.",
        buggy_code=body.format(imp="cell::RefCell", cell="RefCell", borrow="borrow_mut()", **args),
        correct_code=body.format(imp="sync::Mutex", cell="Mutex", borrow="lock().unwrap()", **args),
        expected_error="cannot be shared between threads safely",
    )


@pattern(FAMILY, "lock_without_unwrap", code="E0614")
def lock_without_unwrap(v: Vocab) -> Draft:
    total, handles = v.var(), v.var()
    n, step = v.int(2, 5), v.int(1, 9)
    body = """use std::sync::{{Arc, Mutex}};
use std::thread;

fn main() {{
    let {total} = Arc::new(Mutex::new(0));
    let mut {handles} = Vec::new();
    for _ in 0..{n} {{
        let {total} = Arc::clone(&{total});
        {handles}.push(thread::spawn(move || {{
            *{total}.lock(){unwrap} += {step};
        }}));
    }}
{fill}    for h in {handles} {{
        h.join().unwrap();
    }}
    println!("{{}}", *{total}.lock().unwrap());
}}
"""
    args = dict(total=total, handles=handles, n=n, step=step, fill=v.filler())
    return Draft(
        description=f"{n} threads each add {step} to a counter behind a Mutex.",
        buggy_code=body.format(unwrap="", **args),
        correct_code=body.format(unwrap=".unwrap()", **args),
        expected_error="cannot be dereferenced",
    )


@pattern(FAMILY, "join_result_discarded", kind="test")
def join_result_discarded(v: Vocab) -> Draft:
    f, parts = v.func(), v.var()
    nums = ", ".join(map(str, _ints(v, v.int(4, 7))))
    body = """use std::thread;

fn {f}(chunks: Vec<Vec<u64>>) -> u64 {{
    let {parts}: Vec<_> = chunks
        .into_iter()
        .map(|c| thread::spawn(move || c.iter().sum::<u64>()))
        .collect();
    let mut total = 0;
    for h in {parts} {{
        {line}
    }}
    total
}}

fn main() {{
    let data = vec![{nums}];
    let chunks = data.chunks(2).map(|c| c.to_vec()).collect();
    println!("{{}}", {f}(chunks));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn adds_every_chunk() {{
        assert_eq!({f}(vec![vec![1, 2], vec![3, 4]]), 10);
    }}
}}
"""
    args = dict(f=f, parts=parts, nums=nums)
    return Draft(
        description=f"`{f}` sums each chunk in its own thread and adds up the partial sums.",
        buggy_code=body.format(line="h.join().unwrap();", **args),
        correct_code=body.format(line="total += h.join().unwrap();", **args),
        expected_error=_TEST_FAIL,
    )


@pattern(FAMILY, "mutex_value_copied_out", kind="test")
def mutex_value_copied_out(v: Vocab) -> Draft:
    f, counter = v.func(), v.var()
    step = v.int(1, 9)
    body = """use std::sync::{{Arc, Mutex}};
use std::thread;

fn {f}(workers: usize) -> u64 {{
    let {counter} = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..workers)
        .map(|_| {{
            let {counter} = Arc::clone(&{counter});
            thread::spawn(move || {{
                {line}
            }})
        }})
        .collect();
    for h in handles {{
        h.join().unwrap();
    }}
    let result = *{counter}.lock().unwrap();
    result
}}

fn main() {{
    println!("{{}}", {f}({n}));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn every_worker_counts() {{
        assert_eq!({f}(3), {expect});
    }}
}}
"""
    buggy = f"let mut n = *{counter}.lock().unwrap();\n                n += {step};"
    good = f"let mut n = {counter}.lock().unwrap();\n                *n += {step};"
    args = dict(f=f, counter=counter, n=v.int(2, 6), expect=3 * step)
    return Draft(
        description=f"`{f}` starts some workers that each add {step} to a shared counter.",
        buggy_code=body.format(line=buggy, **args),
        correct_code=body.format(line=good, **args),
        expected_error=_TEST_FAIL,
    )


@pattern(FAMILY, "chunk_remainder_lost", kind="test")
def chunk_remainder_lost(v: Vocab) -> Draft:
    f = v.func()
    nums = ", ".join(map(str, _ints(v, v.int(5, 9))))
    body = """use std::thread;

fn {f}(data: &[i64], workers: usize) -> i64 {{
    let size = {size};
    thread::scope(|s| {{
        let handles: Vec<_> = data
            .chunks(size)
            .take(workers)
            .map(|c| s.spawn(move || c.iter().sum::<i64>()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    }})
}}

fn main() {{
    println!("{{}}", {f}(&[{nums}], {w}));
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn sums_every_element() {{
        assert_eq!({f}(&[1, 2, 3, 4, 5], 2), 15);
    }}
}}
"""
    args = dict(f=f, nums=nums, w=v.int(2, 4))
    return Draft(
        description=f"`{f}` splits the data among worker threads and sums all of it.",
        buggy_code=body.format(size="(data.len() / workers).max(1)", **args),
        correct_code=body.format(size="data.len().div_ceil(workers)", **args),
        expected_error=_TEST_FAIL,
    )
