"""`sleepy sandbox run FILE [--test] [--json]`: the verdict on one Rust file or Cargo crate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sleepy.sandbox import Sandbox
from sleepy.sandbox.result import SandboxResult, Verdict
from sleepy.sandbox.text import printable


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("sandbox", help="compile, test and run Rust in the sandbox")
    sub = parser.add_subparsers(dest="sandbox_command", required=True)
    run = sub.add_parser("run", help="the verdict on one .rs file (or a Cargo crate folder)")
    run.add_argument("file", type=Path, help="a .rs file, or a folder with Cargo.toml")
    run.add_argument("--test", action="store_true", help="only build and run the tests")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--expected-stdout", type=Path, help="a file with what main must print")
    run.add_argument("--edition", default="2021", help="Rust edition (default 2021)")
    run.add_argument(
        "--isolation", default="auto", choices=["auto", "bwrap", "netns", "none"],
        help="containment to use (auto: the strongest this host allows)",
    )  # fmt: skip
    run.set_defaults(func=run_command)
    return parser


def run_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.exists():
        print(f"error: {path}: no such file or folder", file=sys.stderr)
        return 2
    sb = Sandbox(isolation=args.isolation)
    if path.is_dir():
        if not (path / "Cargo.toml").is_file():
            print(
                f"error: {path}: a folder needs a Cargo.toml (or give a .rs file)", file=sys.stderr
            )
            return 2
        result: SandboxResult | Verdict = sb.cargo(path, "test" if args.test else "run")
    else:
        code = path.read_text(errors="replace")
        if args.test:
            result = sb.test(code, args.edition)
        else:
            expected = args.expected_stdout.read_text() if args.expected_stdout else None
            result = sb.judge(code, args.edition, expected)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print(result)
    return 0 if result.status == "ok" else 1


def _print(result: SandboxResult | Verdict) -> None:
    from rich.console import Console

    con = Console()

    def show(text: str) -> None:
        # the program's own text (and rustc quoting it): no escape sequences reach the terminal
        con.print(printable(text), highlight=False, markup=False)

    style = "green" if result.status == "ok" else "red"
    con.print(
        f"status: [{style}]{result.status}[/{style}]  ({result.wall_time:.2f} s)", highlight=False
    )
    if result.detail and result.status != "ok":
        show(f"detail: {result.detail}")
    signature = getattr(result, "signature", None)
    if signature is not None:
        show(f"signature: {signature}  [{signature.hash}]")
    for d in result.diagnostics:
        show(d.rendered.rstrip())
    if result.passed_tests or result.failed_tests:
        con.print(f"tests: {len(result.passed_tests)} passed, {len(result.failed_tests)} failed")
        for name, msg in result.failed_tests.items():
            show(f"  FAILED {name}: {msg}")
    if result.stdout:
        con.print("stdout:", highlight=False)
        show(result.stdout.rstrip("\n"))
    isolation = getattr(result, "isolation", "")
    if isolation:
        con.print(f"isolation: {isolation}", style="dim", highlight=False, markup=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sleepy")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main(["sandbox", *sys.argv[1:]]))
