"""Programs people wrote, from the Rust documentation a package manager installs.

Debian's `rust-doc` holds the Book, Rust by Example and the standard library's documentation as
HTML: thousands of small complete programs and doc examples written by people. `harvest` pulls the
Rust code blocks out of those pages, wraps a snippet without `main` in one as rustdoc does for a
doc test, drops near-copies (by normalized form, so a renamed copy is the same program), keeps what
compiles alone with rustc and runs cleanly in the sandbox, and writes each as a `.rs` file that
`sleepy koans mutate --from` reads. Nothing is vendored: the files are made on the machine that
installed the package.

Every program has a side, decided by a hash of its normalized form, so a program and its renamed
copies always land together: `train` programs may feed pretraining and sleeps, `eval` programs
only ever measure (`program_side`).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sleepy.files import write_atomic
from sleepy.koan.model import normalized_form

# Where Debian's rust-doc puts the HTML, and the books harvested from it, with their licence
# (each book's COPYRIGHT/LICENSE files in the package; the std docs are the Rust project's).
RUST_DOC = Path("/usr/share/doc/rust-doc/html")
BOOKS = {
    "book": ("The Rust Programming Language", "MIT OR Apache-2.0"),
    "rust-by-example": ("Rust by Example", "MIT OR Apache-2.0"),
    "std": ("The Rust standard library documentation", "MIT OR Apache-2.0"),
}
# Code block attributes whose code is not meant to build and run as it stands.
SKIP_ATTRS = {
    "ignore", "compile_fail", "no_run", "should_panic", "text", "console", "toml", "edition2015",
}  # fmt: skip
EVAL_SHARE = 5  # one program in 5 is held out for evaluation
SIDES = ("train", "eval")
MIN_LINES = 4  # shorter snippets (`let x = 5;`) teach nothing about a program's shape

_MDBOOK = re.compile(r'<code class="language-rust([^"]*)">(.*?)</code>', re.S)
_RUSTDOC = re.compile(r'<pre class="rust rust-example-rendered([^"]*)"><code>(.*?)</code>', re.S)
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Block:
    """One code block of one page, as the reader sees it (hidden setup lines included)."""

    book: str
    page: str  # path under the book's folder
    index: int  # the block's place on its page
    attrs: frozenset[str]
    code: str


def program_side(code: str) -> str:
    """ "train" or "eval", fixed by the program's normalized form (names and literals aside)."""
    digest = hashlib.sha256(normalized_form(code).encode()).digest()
    return "eval" if digest[0] % EVAL_SHARE == 0 else "train"


def blocks_of(page_html: str, book: str, page: str) -> list[Block]:
    """The Rust code blocks of one HTML page (mdbook's or rustdoc's markup)."""
    pattern = _RUSTDOC if book == "std" else _MDBOOK
    out = []
    for i, m in enumerate(pattern.finditer(page_html)):
        attrs = frozenset(m.group(1).replace(",", " ").split())
        code = html.unescape(_TAG.sub("", m.group(2)))
        out.append(Block(book, page, i, attrs, code))
    return out


def as_program(block: Block) -> str | None:
    """The block as a program rustc builds alone, or None when it is not meant to run.

    As rustdoc makes a doc test: a snippet without `fn main` has its inner attributes and
    `extern crate` lines kept at the top and the rest wrapped in `fn main() { ... }`."""
    if block.attrs & SKIP_ATTRS or any(a.startswith("edition2015") for a in block.attrs):
        return None
    lines = [line.rstrip() for line in block.code.strip("\n").splitlines()]
    if sum(1 for line in lines if line.strip()) < MIN_LINES:
        return None
    code = "\n".join(lines) + "\n"
    if re.search(r"\bfn\s+main\s*\(", code):
        return code
    head = [x for x in lines if x.startswith(("#![", "extern crate"))]
    body = [x for x in lines if not x.startswith(("#![", "extern crate"))]
    inner = "\n".join(("    " + x) if x else "" for x in body)
    return "\n".join([*head, "fn main() {", inner, "}"]) + "\n"


def pages(root: Path, book: str) -> list[Path]:
    folder = root / book
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.html") if p.is_file() and not p.is_symlink())


def candidates(
    root: Path = RUST_DOC, books=tuple(BOOKS)
) -> tuple[list[tuple[Block, str]], Counter]:
    """Every block that could be a program, one per normalized form; and counts of what was
    dropped, by reason."""
    seen: set[str] = set()
    out, dropped = [], Counter()
    for book in books:
        for page in pages(root, book):
            text = page.read_text(errors="replace")
            for block in blocks_of(text, book, str(page.relative_to(root / book))):
                dropped["blocks"] += 1
                code = as_program(block)
                if code is None:
                    dropped["not meant to run, or under 4 lines"] += 1
                    continue
                form = normalized_form(code)
                if form in seen:
                    dropped["a copy of another block (normalized form)"] += 1
                    continue
                seen.add(form)
                out.append((block, code))
    return out, dropped


def _header(block: Block) -> str:
    title = BOOKS[block.book][0]
    return f"// From {title}: {block.page} (example {block.index + 1}).\n"


def harvest(
    out: Path, root: Path = RUST_DOC, books=tuple(BOOKS), limit: int | None = None, workers=None
) -> dict:
    """Write the programs that build and run cleanly as `out/<side>/<book>/<page>-<n>.rs`, and
    `out/README.md` with the counts, sides and licences. Returns those figures."""
    from sleepy.koans.validate import shared_sandbox
    from sleepy.sandbox import run_batch

    if not root.is_dir():
        raise FileNotFoundError(
            f"{root}: no Rust documentation here; install Debian's rust-doc package "
            "(apt-get install rust-doc) or give --root"
        )
    found, counts = candidates(root, books)
    if limit is not None:
        found = found[:limit]

    def judge(item: tuple[Block, str]):
        return shared_sandbox().judge(item[1])

    verdicts = run_batch(judge, found, workers=workers, desc="harvesting programs")
    per_book: Counter = Counter()
    sides: Counter = Counter()
    for (block, code), verdict in zip(found, verdicts, strict=True):
        if not verdict.passed:
            counts[f"does not build and run alone ({verdict.status})"] += 1
            continue
        side = program_side(code)
        slug = re.sub(r"[^a-z0-9]+", "-", block.page.removesuffix(".html").lower()).strip("-")
        path = out / side / block.book / f"{slug}-{block.index + 1}.rs"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, _header(block) + code)
        per_book[block.book] += 1
        sides[side] += 1
    manifest = {
        "root": str(root),
        "programs": sum(per_book.values()),
        "by_book": {
            b: {"title": BOOKS[b][0], "licence": BOOKS[b][1], "programs": per_book[b]}
            for b in books
        },
        "by_side": dict(sides),
        "dropped": dict(counts),
    }
    write_atomic(out / "README.md", manifest_text(manifest))
    return manifest


def manifest_text(manifest: dict) -> str:
    """What a harvest folder holds, for people: counts by book and side, what was dropped and why,
    and the licences. Markdown, so `koans mutate --from` (which reads .rs and .json) passes it by;
    the same figures as JSON at the end."""
    lines = [
        "# Programs people wrote, harvested from Debian's rust-doc",
        "",
        f"{manifest['programs']} programs from `{manifest['root']}` "
        "(`sleepy koans harvest`): one folder per side (train, eval), one per book.",
        "",
        "| book | programs | licence |",
        "|---|---|---|",
        *(
            f"| {b['title']} | {b['programs']} | {b['licence']} |"
            for b in manifest["by_book"].values()
        ),
        "",
        "Sides: " + ", ".join(f"{k} {v}" for k, v in sorted(manifest["by_side"].items())) + ".",
        "",
        "Dropped:",
        *(f"- {n} {why}" for why, n in sorted(manifest["dropped"].items(), key=lambda x: -x[1])),
        "",
        "```json",
        json.dumps(manifest, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def read_manifest(folder: Path) -> dict:
    """The figures a harvest wrote into `folder/README.md`."""
    text = (Path(folder) / "README.md").read_text()
    return json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
