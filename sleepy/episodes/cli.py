"""`sleepy episodes export|import|stats`: move episodes between databases and see how a run went."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from sleepy.episodes.store import EpisodeError, EpisodeStore
from sleepy.sandbox.text import printable

DB_HELP = "episode database (default: $SLEEPY_EPISODES_DB)"


def _store(args: argparse.Namespace, create: bool = False):
    db = args.db or os.environ.get("SLEEPY_EPISODES_DB")
    if not db:
        raise EpisodeError("no episode database given: pass --db PATH or set SLEEPY_EPISODES_DB")
    return EpisodeStore(db, create=create)


def cmd_export(args: argparse.Namespace) -> int:
    with _store(args) as store:
        n = store.export_jsonl(args.out, run_id=args.run_id, all_statuses=args.all)
    print(f"exported {n} episodes to {args.out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    with _store(args, create=True) as store:
        for path in args.files:
            added, skipped = store.import_jsonl(path)
            print(f"{path}: added {added}, already present {skipped}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _store(args) as store:
        stats = store.stats(run_id=args.run_id, cycle=args.cycle, top=args.top)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"episodes in {Path(args.db or os.environ['SLEEPY_EPISODES_DB']).name}")
    for col in ("family", "episodes", "passed", "pass rate", "top starting signatures (passed/n)"):
        table.add_column(col)
    rows = [*stats["families"].items(), ("all", stats["total"])]
    for family, s in rows:
        # signatures recorded before they were normalized free of control characters may hold them
        sigs = "\n".join(
            f"{t['passed']}/{t['episodes']}  {escape(printable(t['signature'])[:70])}"
            for t in s["top_signatures"]
        )
        table.add_row(family, str(s["episodes"]), str(s["passed"]), f"{s['pass_rate']:.1%}", sigs)
    Console().print(table)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("episodes", help="episode store: export, import, stats")
    sub = parser.add_subparsers(dest="episodes_cmd", required=True)

    p = sub.add_parser("export", help="write episodes as JSONL")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--out", required=True, help="JSONL file to write")
    p.add_argument("--run-id", help="only this run")
    p.add_argument("--all", action="store_true", help="include running/interrupted episodes")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import", help="add episodes from JSONL files (already present ones skipped)"
    )
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("files", nargs="+", help="JSONL files from `sleepy episodes export`")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("stats", help="pass rate and top error signatures per family")
    p.add_argument("--db", help=DB_HELP)
    p.add_argument("--run-id", help="only this run")
    p.add_argument("--cycle", type=int, help="only this cycle")
    p.add_argument("--top", type=int, default=5, help="signatures shown per family")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_stats)
