"""Generated borrow-checker koans: moves, borrows that outlive their use, double mutable borrows."""

from sleepy.koans.generator import Draft, Vocab, pattern

FAMILY = "borrow_checker"


@pattern(FAMILY, "use_after_move", code="E0382")
def use_after_move(v: Vocab) -> Draft:
    s, t, f = v.var(), v.var(), v.func()
    word = v.word()
    body = """fn {f}(text: String) -> usize {{
    text.len()
}}

fn main() {{
    let {s} = String::from("{word}");
{fill}    let {t} = {f}({arg});
    println!("{{}} {{}}", {s}, {t});
}}
"""
    fill = v.filler()
    return Draft(
        description=f"`{s}` is moved into `{f}` and then used again.",
        buggy_code=body.format(f=f, s=s, t=t, word=word, fill=fill, arg=s),
        correct_code=body.format(f=f, s=s, t=t, word=word, fill=fill, arg=f"{s}.clone()"),
        expected_error="borrow of moved value",
    )
