"""`sleepy registry list|show|promote|rollback`: the adapter versions in the MLflow registry and the
champion alias that the day loop and eval use.

    sleepy registry list
    sleepy registry show 3
    sleepy registry promote 3 --reason "beat v2 by 6 points on frozen"
    sleepy registry rollback --reason "v3 loops on E0499"
"""

from __future__ import annotations

import argparse
import datetime as dt

from sleepy.config import default_store
from sleepy.registry import (
    CHAMPION,
    PREVIOUS,
    RegistryError,
    aliases,
    get_version,
    list_versions,
    promote,
    registered_models,
    rollback,
)
from sleepy.tracking import require_store


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "registry", help="MLflow model registry: list, show, promote, rollback"
    )
    p.add_argument("--uri", default=None, help="MLflow tracking store (default: tracking.uri)")
    p.add_argument(
        "--name",
        default=None,
        help="registered model (default: the store's only one; every sleepy-cycle run has its own)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{list,show,promote,rollback}")

    sub.add_parser("list", help="every version with its aliases and gate decision").set_defaults(
        func=cmd_list
    )
    show = sub.add_parser("show", help="one version: aliases, tags, source run")
    show.add_argument("version", help="a version number or an alias (champion, previous)")
    show.set_defaults(func=cmd_show)

    promote = sub.add_parser(
        "promote", help="make a version the champion (old champion -> previous)"
    )
    promote.add_argument("version", help="a version number or an alias")
    promote.add_argument("--reason", default="promoted by hand", help="why (kept as a version tag)")
    promote.add_argument(
        "--force", action="store_true", help="promote even a version the gate rejected"
    )
    promote.set_defaults(func=cmd_promote)

    rollback = sub.add_parser("rollback", help="move the champion back to the previous version")
    rollback.add_argument("--reason", required=True, help="why (kept as tags on both versions)")
    rollback.set_defaults(func=cmd_rollback)


def _store(args: argparse.Namespace, listing: bool = False) -> list:
    """--uri, or the configs' tracking.uri; a sqlite store that is not there ends the command
    (every one of them reads versions the store already holds). Without --name: the store's one
    registered model, or (for `list`) none, and the registered models, newest first."""
    if args.uri is None:
        args.uri, _ = default_store()
    require_store(args.uri, "sleepy registry")
    models = registered_models(args.uri)
    names = [m.name for m in models]
    if args.name is None and len(names) == 1:
        args.name = names[0]
    elif args.name is None and not listing:
        raise RegistryError(
            f"{len(names)} registered models in {args.uri}: pass --name NAME "
            f"({', '.join(names) or 'none yet: run sleepy-cycle first'})"
        )
    return models


def cmd_list(args: argparse.Namespace) -> int:
    models = _store(args, listing=True)
    if args.name is None:  # several models (each sleepy-cycle run has its own): say which
        if not models:
            print(f"no registered models in {args.uri}")
            return 0
        print(f"{'registered model':<48} {'versions':>8}  {'champion':>8}  updated")
        for m in models:
            updated = dt.datetime.fromtimestamp(m.last_updated_timestamp / 1000)
            champion = (m.aliases or {}).get(CHAMPION, "-")
            count = len(list_versions(m.name, args.uri))
            print(f"{m.name:<48} {count:>8}  {champion:>8}  {updated:%Y-%m-%d %H:%M}")
        print("versions of one: sleepy registry --name NAME list")
        return 0

    versions = list_versions(args.name, args.uri)
    named = aliases(args.name, args.uri)
    if not versions:
        print(f"no versions of '{args.name}' in {args.uri}")
        return 0
    print(f"{args.name}:")
    print(f"{'version':>7}  {'aliases':<18} {'gate':<8} {'pass':>6}  {'cycle':>5}  created")
    for v in versions:
        tags = v.tags or {}
        created = dt.datetime.fromtimestamp(v.creation_timestamp / 1000).strftime("%Y-%m-%d %H:%M")
        print(
            f"{v.version:>7}  {','.join(named.get(str(v.version), [])) or '-':<18} "
            f"{tags.get('gate.decision', '-'):<8} {tags.get('eval.pass_rate', '-'):>6}  "
            f"{tags.get('cycle', '-'):>5}  {created}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _store(args)

    v = get_version(args.name, args.version, args.uri)
    print(f"{args.name} version {v.version}")
    print(f"  aliases: {', '.join(sorted(v.aliases or [])) or '-'}")
    print(f"  source:  {v.source}   run: {v.run_id}")
    for k, val in sorted((v.tags or {}).items()):
        print(f"  {k}: {val}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    _store(args)

    v = get_version(args.name, args.version, args.uri)
    tags = v.tags or {}
    if tags.get("gate.decision") == "reject" and not args.force:
        raise RegistryError(
            f"version {v.version} was rejected by the gate ({tags.get('gate.reasons', '')}): "
            "pass --force to promote it anyway"
        )
    reason = args.reason + (" (forced past a gate rejection)" if args.force else "")
    old = promote(args.name, v.version, reason, args.uri)
    print(
        f"{CHAMPION} -> version {v.version}"
        + (f"; {PREVIOUS} -> version {old}" if old else " (there was no champion before)")
    )
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    _store(args)

    was, now = rollback(args.name, args.reason, args.uri)
    print(f"{CHAMPION} -> version {now} (rolled back from version {was}: {args.reason})")
    return 0
