"""`sleepy koans ...`: generate, mutate, import, validate, list, show and freeze koans.

`sleepy.cli` calls `add_parser(subparsers)`; each command's `func(args)` returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from sleepy.config import DATA_ROOT, KOANS_DIR
from sleepy.koan.model import FAMILIES, KINDS, SOURCES, KoanError, known_hashes, load_koans
from sleepy.koans.freeze import FreezeError, freeze
from sleepy.koans.generate import GenerateError, generate
from sleepy.koans.generator import patterns
from sleepy.koans.harvest import BOOKS, RUST_DOC, harvest
from sleepy.koans.importer import import_pairs
from sleepy.koans.validate import DEFAULT_PATHS, family_of, fill_stdout_files, validate_paths
from sleepy.sandbox.text import printable

console = Console()
errors = Console(stderr=True)


def _fails_cleanly(fn):
    """Known failures (bad koans, broken templates) print one line and exit 1, not a traceback."""

    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except (KoanError, GenerateError, FreezeError) as e:
            errors.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            return 1

    return run


def _quiet_stdout(as_json: bool):
    # with --json, stdout carries only the JSON document; progress goes to stderr
    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


@_fails_cleanly
def cmd_generate(args: argparse.Namespace) -> int:
    families = [f for f in FAMILIES if patterns(f)] if args.family == "all" else [args.family]
    exclude = None
    if args.exclude is not None:
        exclude = known_hashes(*args.exclude)

    def one(family: str, exclude: set[str] | None) -> tuple[list, str]:
        koans = generate(
            family,
            args.n,
            args.seed,
            out=args.out,
            exclude_hashes=exclude,
            workers=args.workers,
            validate=not args.no_validate,
            patterns=args.pattern,
        )
        return koans, ", ".join(
            f"{p} {c}" for p, c in sorted(Counter(k.pattern for k in koans).items())
        )

    return _each_family(families, exclude, one, "koans", args.out)


def _each_family(families, exclude, one, noun: str, out) -> int:
    """Run `one(family, exclude)` per family, each kept clear of the koans the ones before made,
    and print a line per family and the total."""
    total = 0
    for family in families:
        koans, detail = one(family, exclude)
        if exclude is not None:
            exclude |= {k.content_hash for k in koans}
        console.print(
            f"{family}: {len(koans)} {noun} -> {out / family}  {detail}",
            highlight=False,
            soft_wrap=True,
        )
        total += len(koans)
    if len(families) > 1:
        console.print(f"{total} {noun} in {len(families)} families")
    return 0


@_fails_cleanly
def cmd_mutate(args: argparse.Namespace) -> int:
    from sleepy.koans.mutate import MutateStats, load_programs, mutate
    from sleepy.koans.operators import OPERATORS

    families = [f for f in FAMILIES if f in OPERATORS] if args.family == "all" else [args.family]
    skipped: list[tuple[str, str]] = []
    programs, evalset_programs = load_programs(args.sources, args.evalsets, skipped, args.side)
    for path, reason in skipped:
        console.print(f"[yellow]skipped[/yellow] {path}: {reason}", highlight=False, soft_wrap=True)
    console.print(
        f"{len(programs)} {args.side + '-side ' if args.side else ''}programs from "
        f"{', '.join(map(str, args.sources))}"
        + (f" ({evalset_programs} evalset programs left out)" if evalset_programs else ""),
        highlight=False,
    )
    exclude = None
    if args.exclude is not None:
        from sleepy.koan.model import known_hashes

        exclude = known_hashes(*args.exclude)

    def one(family: str, exclude: set[str] | None) -> tuple[list, str]:
        stats = MutateStats()
        koans = mutate(
            family,
            args.n,
            args.seed,
            programs,
            out=args.out,
            exclude_hashes=exclude,
            evalsets=args.evalsets,
            operator_names=args.operator,
            vary=not args.no_vary,
            workers=args.workers,
            stats=stats,
        )
        return koans, (
            ", ".join(f"{o} {c}" for o, c in sorted(stats.by_operator.items()))
            + f"  ({stats.validated} checked, {sum(stats.failures.values())} rejected by rustc)"
            + stats.unreproducible_note()
        )

    return _each_family(families, exclude, one, "mutants", args.out)


@_fails_cleanly
def cmd_harvest(args: argparse.Namespace) -> int:
    try:
        m = harvest(args.out, args.root, tuple(args.book or BOOKS), args.limit, args.workers)
    except FileNotFoundError as e:
        raise KoanError(str(e)) from None
    books = ", ".join(f"{v['title']} {v['programs']}" for v in m["by_book"].values())
    sides = ", ".join(f"{k} {v}" for k, v in sorted(m["by_side"].items()))
    console.print(f"{m['programs']} programs -> {args.out} ({books}; {sides})", highlight=False)
    for reason, n in sorted(m["dropped"].items(), key=lambda x: -x[1]):
        console.print(f"  {n} {reason}", highlight=False)
    return 0


@_fails_cleanly
def cmd_import(args: argparse.Namespace) -> int:
    report = import_pairs(args.buggy_dir, args.fixed_dir, args.out, args.family, args.workers)
    for rel, reason in report.skipped:
        # a reason quotes what rustc and the program printed: no escapes, no rich markup
        shown = escape(printable(reason))
        console.print(f"[yellow]skipped[/yellow] {rel}: {shown}", highlight=False, soft_wrap=True)
    for k in report.koans:
        rel = k.meta["imported_from"]
        note = "; output not compared: " + k.meta["stdout_varies"] if k.stdout_varies else ""
        console.print(
            f"imported {rel} -> {k.family}/{k.id} ({k.kind}, "
            f"{k.expected_code or 'error without a code' if k.kind == 'compile' else 'failing test'}"
            f"; family {k.family} {report.families[rel]}{note})",
            highlight=False,
            soft_wrap=True,
        )
    families = Counter(k.family for k in report.koans)
    console.print(
        f"{len(report.koans)} imported -> {args.out}"
        + (
            " (" + ", ".join(f"{f} {n}" for f, n in sorted(families.items())) + ")"
            if families
            else ""
        ),
        highlight=False,
    )
    varies = sum(k.stdout_varies for k in report.koans)
    if varies:
        console.print(f"  {varies} without an output check: their output varies between runs")
    by_reason = report.skipped_by_reason()
    console.print(f"{len(report.skipped)} skipped" + (":" if by_reason else ""), highlight=False)
    for reason, n in by_reason.most_common():
        console.print(f"  {n} {reason}", highlight=False)
    return 0


def _default_paths() -> list[Path]:
    return [p for p in DEFAULT_PATHS if p.exists()]


@_fails_cleanly
def cmd_validate(args: argparse.Namespace) -> int:
    paths = args.paths or _default_paths()
    if not paths:
        raise KoanError(
            f"nothing to validate: no koans/ or evalsets/frozen.json in {DATA_ROOT}; pass PATH"
        )
    with _quiet_stdout(args.json):
        if args.fill_stdout:
            changed = fill_stdout_files(paths, workers=args.workers)
            errors.print(f"expected_stdout written into {len(changed)} koan file(s)")
        report = validate_paths(paths, corpus_dir=args.corpus, workers=args.workers)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return 0 if not report.failed else 1
    table = Table(title="koan validation")
    for col in ("family", "koans", "ok", "failed"):
        table.add_column(col, justify="left" if col == "family" else "right")
    counts: dict[str, Counter] = {}
    for e in report.entries:
        c = counts.setdefault(family_of(e), Counter())
        c["koans"] += 1
        c["failed" if e.reasons else "ok"] += 1
    for family in sorted(
        counts, key=lambda f: (f not in FAMILIES, FAMILIES.index(f) if f in FAMILIES else 0, f)
    ):
        c = counts[family]
        table.add_row(
            family,
            str(c["koans"]),
            str(c["ok"]),
            f"[red]{c['failed']}[/red]" if c["failed"] else "0",
        )
    console.print(table)
    for f in report.failed:
        console.print(
            f"[red]FAIL[/red] {f['id']}: {escape(printable(f['reason']))}",
            highlight=False,
            soft_wrap=True,
        )
    colour = "red" if report.failed else "green"
    console.print(
        f"[{colour}]{report.total} koans: {report.ok} ok, {len(report.failed)} failed[/{colour}]"
    )
    return 0 if not report.failed else 1


def _selected(args: argparse.Namespace):
    koans = load_koans(*(args.paths or _default_paths()))
    return [
        k
        for k in koans
        if (args.family is None or k.family == args.family)
        and (args.kind is None or k.kind == args.kind)
        and (args.source is None or k.source == args.source)
        and (args.pattern is None or k.pattern == args.pattern)
    ]


@_fails_cleanly
def cmd_list(args: argparse.Namespace) -> int:
    koans = _selected(args)
    cols = ("id", "family", "pattern", "kind", "source")
    if args.json:
        print(json.dumps([{c: getattr(k, c) for c in cols} for k in koans], indent=2))
        return 0
    if not console.is_terminal:
        # piped: whole ids, one koan a line, for grep and cut
        for k in koans:
            print("\t".join(getattr(k, c) for c in cols))
        return 0
    table = Table(title=f"{len(koans)} koans")
    for c in cols:
        # ids are what `show` takes: never cut them short, let the rest wrap
        width = max((len(k.id) for k in koans), default=2) if c == "id" else None
        table.add_column(c, min_width=width, overflow="fold")
    for k in koans:
        table.add_row(*(getattr(k, c) for c in cols))
    console.print(table)
    return 0


@_fails_cleanly
def cmd_show(args: argparse.Namespace) -> int:
    found = [k for k in load_koans(*(args.paths or _default_paths())) if k.id == args.id]
    if not found:
        raise KoanError(f"no koan with id '{args.id}' (list them with `sleepy koans list`)")
    k = found[0]
    if args.json:
        print(json.dumps(k.to_dict() | {"content_hash": k.content_hash}, indent=2))
        return 0
    console.print(
        f"[bold]{k.id}[/bold]  {k.family} / {k.pattern or '-'}  {k.kind}  {k.source}",
        highlight=False,
    )
    console.print(k.description, highlight=False)
    console.print(
        f"expected: {k.expected_code + ' ' if k.expected_code else ''}{k.expected_error!r}",
        highlight=False,
    )
    console.print("[bold]buggy_code[/bold]")
    console.print(Syntax(printable(k.buggy_code), "rust", line_numbers=True, word_wrap=True))
    console.print("[bold]correct_code[/bold]")
    console.print(Syntax(printable(k.correct_code), "rust", line_numbers=True, word_wrap=True))
    if k.expected_stdout is not None:
        console.print("[bold]expected_stdout[/bold]")
        console.print(printable(k.expected_stdout), highlight=False, markup=False, end="")
    return 0


@_fails_cleanly
def cmd_freeze(args: argparse.Namespace) -> int:
    koans = freeze(
        out=args.out,
        handwritten_dir=args.handwritten,
        koans_dir=args.koans,
        generated_per_family=args.generated_per_family,
        seed=args.seed,
        families=args.families,
        workers=args.workers,
    )
    per = Counter((k.family, k.source) for k in koans)
    for family in dict.fromkeys(k.family for k in koans):
        console.print(
            f"{family}: {per[family, 'handwritten']} hand-written, {per[family, 'generated']} generated",
            highlight=False,
        )
    console.print(f"{len(koans)} koans frozen -> {args.out}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `koans` and its commands on the `sleepy` CLI's subparsers."""
    koans = subparsers.add_parser(
        "koans", help="generate, mutate, import, validate, list, show, freeze koans"
    )
    sub = koans.add_subparsers(dest="koans_command", required=True)
    workers = argparse.ArgumentParser(add_help=False)
    workers.add_argument(
        "--workers", type=int, default=None, help="parallel rustc jobs (default: all cores)"
    )

    p = sub.add_parser(
        "generate", parents=[workers], help="fresh validated koans from a family's templates"
    )
    p.add_argument("--family", required=True, choices=[*FAMILIES, "all"])
    p.add_argument("--n", type=int, required=True, help="koans per family")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument(
        "--out", type=Path, required=True, help="corpus root: writes OUT/<family>/<id>.json"
    )
    p.add_argument("--pattern", action="append", help="only this pattern (repeatable)")
    p.add_argument(
        "--exclude",
        nargs="*",
        type=Path,
        default=None,
        help="keep clear of koans in these files/folders (default: koans/ and evalsets/)",
    )
    p.add_argument(
        "--no-validate", action="store_true", help="skip rustc validation (not for real data)"
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "mutate",
        parents=[workers],
        help="koans from real programs: one mistake injected per copy, checked with rustc",
    )
    p.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        type=Path,
        required=True,
        help="koan files/folders (their hand-written and imported fixes) or trees of .rs files",
    )
    p.add_argument(
        "--side",
        choices=["train", "eval"],
        help="only the programs of this side (by a hash of the program's normalized form): "
        "train for training data, eval for held-out measurement",
    )
    p.add_argument("--family", required=True, choices=[*FAMILIES, "all"])
    p.add_argument("--n", type=int, required=True, help="mutants per family")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument(
        "--out", type=Path, required=True, help="corpus root: writes OUT/<family>/<id>.json"
    )
    p.add_argument("--operator", action="append", help="only this operator (repeatable)")
    p.add_argument(
        "--evalsets",
        nargs="*",
        type=Path,
        default=[Path("evalsets")],
        help="evalset files/folders whose programs are never mutated (default: evalsets/)",
    )
    p.add_argument(
        "--exclude",
        nargs="*",
        type=Path,
        default=None,
        help="keep clear of koans in these files/folders (default: koans/ and evalsets/)",
    )
    p.add_argument(
        "--no-vary",
        action="store_true",
        help="no renaming, literal changes, reordering or added items",
    )
    p.set_defaults(func=cmd_mutate)

    p = sub.add_parser(
        "import", parents=[workers], help="koans from exercise/solution trees of .rs files"
    )
    p.add_argument("--buggy-dir", type=Path, required=True)
    p.add_argument("--fixed-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--family",
        choices=FAMILIES,
        help="default: a first folder named after a family, else what the error's message "
        "(or code) and the folders' topics agree on; the report says which rules chose it",
    )
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("validate", parents=[workers], help="check koans with rustc")
    p.add_argument("paths", nargs="*", type=Path, help="default: koans/ and evalsets/frozen.json")
    p.add_argument("--json", action="store_true", help="print {total, ok, failed} as JSON")
    p.add_argument(
        "--fill-stdout",
        action="store_true",
        help="first write missing expected_stdout into koan files",
    )
    p.add_argument(
        "--corpus", type=Path, default=KOANS_DIR, help="corpus an evalset must be disjoint from"
    )
    p.set_defaults(func=cmd_validate)

    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument(
        "paths", nargs="*", type=Path, help="default: koans/ and evalsets/frozen.json"
    )
    filters.add_argument("--json", action="store_true")

    p = sub.add_parser("list", parents=[filters], help="list koans")
    p.add_argument("--family", choices=FAMILIES)
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--source", choices=SOURCES)
    p.add_argument("--pattern")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="print one koan")
    p.add_argument("id")
    p.add_argument("paths", nargs="*", type=Path, help="default: koans/ and evalsets/frozen.json")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("freeze", parents=[workers], help="build the frozen evalset")
    p.add_argument("--out", type=Path, default=Path("evalsets/frozen.json"))
    p.add_argument("--handwritten", type=Path, default=Path("evalsets/handwritten"))
    p.add_argument(
        "--koans", type=Path, default=Path("koans"), help="the corpus it must be disjoint from"
    )
    p.add_argument("--generated-per-family", type=int, default=0)
    p.add_argument("--seed", type=int, default=1000, help="use a different seed from the corpus")
    p.add_argument("--families", nargs="+", choices=FAMILIES)
    p.set_defaults(func=cmd_freeze)

    p = sub.add_parser(
        "harvest",
        parents=[workers],
        help="programs people wrote, from Debian's rust-doc (the Book, Rust by Example, std)",
    )
    p.add_argument("--out", type=Path, required=True, help="writes OUT/<train|eval>/<book>/*.rs")
    p.add_argument("--root", type=Path, default=RUST_DOC, help="the rust-doc HTML folder")
    p.add_argument("--book", action="append", choices=sorted(BOOKS), help="default: all")
    p.add_argument("--limit", type=int, default=None, help="judge at most this many blocks")
    p.set_defaults(func=cmd_harvest)
    return koans


def main(argv: list[str] | None = None) -> int:
    """`python -m sleepy.koans.cli koans ...`, the same commands without the rest of sleepy."""
    parser = argparse.ArgumentParser(prog="sleepy")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
