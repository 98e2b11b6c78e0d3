"""Programs people wrote, harvested from rust-doc's HTML: blocks, rustdoc's main wrapping, copies,
sides by program, and only what builds and runs alone (real rustc)."""

from __future__ import annotations

from sleepy.koans.cli import main as koans_main
from sleepy.koans.harvest import Block, as_program, blocks_of, program_side, read_manifest

MDBOOK = """<h1>Vectors</h1>
<pre><pre class="playground"><code class="language-rust"><span class="boring">fn main() {
</span>    let mut v: Vec&lt;i32&gt; = Vec::new();
    v.push(5);
    v.push(6);
    println!(&quot;{:?}&quot;, v);
<span class="boring">}
</span></code></pre></pre>
<pre><code class="language-rust ignore">let broken: i32 = &quot;x&quot;;
let a = 1;
let b = 2;
let c = 3;
</code></pre>
<pre><code class="language-rust">let mut w: Vec&lt;i32&gt; = Vec::new();
w.push(7);
w.push(8);
println!(&quot;{:?}&quot;, w);
</code></pre>
<pre><code class="language-rust">fn main() {
    let s = String::from(&quot;a&quot;);
    let t = s;
    println!(&quot;{}&quot;, s);
}
</code></pre>
"""
RUSTDOC = """<div class="example-wrap"><pre class="rust rust-example-rendered"><code><span class="kw">let</span> total: i32 = [1, 2, 3]
    .iter()
    .sum();
<span class="macro">assert_eq!</span>(total, 6);
</code></pre></div>"""


def test_blocks_keep_hidden_lines_and_unescape_the_markup():
    blocks = blocks_of(MDBOOK, "book", "ch08.html")
    assert len(blocks) == 4 and blocks[1].attrs == {"ignore"}
    assert blocks[0].code.startswith("fn main() {\n    let mut v: Vec<i32>")
    (doc,) = blocks_of(RUSTDOC, "std", "iter.html")
    assert "assert_eq!(total, 6);" in doc.code and "<span" not in doc.code


def test_a_snippet_without_main_is_wrapped_as_rustdoc_does_and_ignored_ones_are_not_programs():
    blocks = blocks_of(MDBOOK, "book", "ch08.html")
    assert as_program(blocks[1]) is None
    wrapped = as_program(blocks[2])
    assert wrapped.startswith("fn main() {\n    let mut w") and wrapped.endswith("}\n")
    short = Block("book", "p.html", 0, frozenset(), "let x = 5;\n")
    assert as_program(short) is None


def test_a_renamed_copy_has_the_programs_side():
    code = as_program(blocks_of(MDBOOK, "book", "ch08.html")[2])
    renamed = code.replace("w", "items").replace("7", "70")
    assert program_side(code) == program_side(renamed)


def test_harvest_writes_what_builds_and_runs_alone(tmp_path, capsys):
    root = tmp_path / "html"
    (root / "book").mkdir(parents=True)
    (root / "book" / "ch08.html").write_text(MDBOOK)
    (root / "std" / "iter").mkdir(parents=True)
    (root / "std" / "iter" / "sum.html").write_text(RUSTDOC)
    out = tmp_path / "programs"
    assert (
        koans_main(["koans", "harvest", "--root", str(root), "--out", str(out), "--workers", "1"])
        == 0
    )
    manifest = read_manifest(out)
    assert (
        "| The Rust standard library documentation | 1 | MIT OR Apache-2.0 |"
        in (out / "README.md").read_text()
    )
    files = sorted(out.rglob("*.rs"))
    # the vectors program (its wrapped twin is a copy), the std example; not the moved String
    assert manifest["programs"] == len(files) == 2
    assert manifest["dropped"]["a copy of another block (normalized form)"] == 1
    assert manifest["dropped"]["does not build and run alone (compile_error)"] == 1
    assert manifest["by_book"]["std"]["licence"] == "MIT OR Apache-2.0"
    for f in files:
        side = f.relative_to(out).parts[0]
        assert side == program_side(f.read_text().split("\n", 1)[1])
    assert "2 programs" in capsys.readouterr().out
    # the folder is a tree of programs `koans mutate --from` reads, its README passed by
    from sleepy.koans.mutate import load_programs

    programs, _ = load_programs([out], evalsets=[])
    assert len(programs) == 2


def test_harvest_without_rust_doc_says_what_to_install(tmp_path, capsys):
    assert (
        koans_main(["koans", "harvest", "--root", str(tmp_path / "none"), "--out", str(tmp_path)])
        == 1
    )
    assert "apt-get install rust-doc" in capsys.readouterr().err
