"""`make bench`: named benchmark sections, run in order (`python -m benchmarks --only sandbox`).

The sandbox section times the full verdict (compile, tests, output) of real koans three ways:
sleepy's sandbox, a fresh cargo project per koan, and bare rustc with no isolation (the floor).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from benchmarks.consolidation import bench_consolidation
from benchmarks.generation import bench_decoders, bench_generation, bench_models
from benchmarks.training import bench_training

console = Console()


def _bench_koans(n: int, root: str = "koans") -> tuple[list, str]:
    """n koans from the corpus (spread over families), or generated ones when it is too small."""
    from sleepy.koan import Koan, load_koans

    koans = load_koans(root) if Path(root).is_dir() else []
    if len(koans) >= n:
        rng = random.Random(0)
        return sorted(rng.sample(koans, n), key=lambda k: k.id), f"{root}/"
    from sleepy.koans.generator import REGISTRY, Vocab, patterns

    for fam in ("borrow_checker",):
        patterns(fam)  # imports register every family
    pats = [p for fam in REGISTRY.values() for p in fam.values()]
    rng = random.Random(0)
    for i in range(n - len(koans)):
        p = pats[i % len(pats)]
        d = p.make(Vocab(rng))
        koans.append(
            Koan(
                id=f"bench-{i}",
                family=p.family,
                description=d.description,
                buggy_code=d.buggy_code,
                correct_code=d.correct_code,
                expected_error=d.expected_error,
                kind=p.kind,
                expected_code=p.expected_code,
            )  # fmt: skip
        )
    return koans, f"{root}/ + generated templates"


def _cargo_per_koan(koan, cargo: str) -> bool:
    """The original design: a fresh cargo project per koan; cargo check, cargo test, cargo run."""
    from sleepy.sandbox.rustc import has_main

    main = has_main(koan.correct_code)
    with tempfile.TemporaryDirectory(prefix="sleepy-bench-cargo-") as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        (root / "Cargo.toml").write_text(
            '[package]\nname = "koan"\nversion = "0.1.0"\n'
            f'edition = "{koan.edition}"\n\n[dependencies]\n'
        )
        (root / "src" / ("main.rs" if main else "lib.rs")).write_text(koan.correct_code)
        steps = [["check"], ["test"]] + ([["run"]] if main else [])
        ok = True
        for step in steps:
            proc = subprocess.run(
                [cargo, *step, "--offline", "-q"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=300,
            )
            ok = ok and proc.returncode == 0
            if step == ["run"] and koan.expected_stdout is not None:
                ok = ok and proc.stdout == koan.expected_stdout
        return ok


def _bare_rustc(koan) -> bool:
    """The floor: the sandbox's own rustc work (same flags, same build plan) with no isolation."""
    from sleepy.sandbox.rustc import (
        BUILD_FLAGS,
        SOURCE,
        Toolchain,
        can_combine,
        has_main,
        has_tests,
        main_output,
        main_test_args,
        main_test_source,
    )  # fmt: skip

    tc = Toolchain.find()
    code = koan.correct_code
    main = has_main(code)
    kinds = [k for k, want in (("test", has_tests(code) or not main), ("bin", main)) if want]
    combined = can_combine(code)
    with tempfile.TemporaryDirectory(prefix="sleepy-bench-bare-") as tmp:
        root = Path(tmp)
        (root / "src").mkdir()
        (root / SOURCE).write_text(main_test_source(code, "bench") if combined else code)

        def build(kind: str) -> int:
            argv = [str(tc.rustc), SOURCE, "--edition", koan.edition, "--error-format=json"]
            argv += ["--crate-name", "main", "-o", "test" if kind == "test" else "main"]
            argv += (["--test"] if kind == "test" else []) + BUILD_FLAGS
            return subprocess.run(argv, cwd=root, capture_output=True).returncode

        if combined:
            ok = build("test") == 0
            runs = [("test", ["--skip", "__sleepy_main"]), ("test", main_test_args())]
        else:
            with ThreadPoolExecutor(len(kinds)) as pool:
                ok = all(rc == 0 for rc in pool.map(build, kinds))
            runs = [("test" if k == "test" else "main", []) for k in kinds]
        env = {"LD_LIBRARY_PATH": str(tc.libstd_dir), "PATH": "/usr/bin:/bin"}
        for i, (binary, args) in enumerate(runs):
            proc = subprocess.run(
                [str(root / binary), *args], cwd=root, env=env, capture_output=True, text=True,
                timeout=60,
            )  # fmt: skip
            ok = ok and proc.returncode == 0
            is_main = binary == "main" or (combined and i == 1)
            if is_main and koan.expected_stdout is not None:
                out = main_output(proc.stdout, "bench") if combined else proc.stdout
                ok = ok and out == koan.expected_stdout
        return ok


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_sandbox(n_koans: int = 50) -> dict[str, float]:
    """Sandbox vs cargo-per-koan vs bare rustc on the correct code of n koans; 1 vs 2 workers."""
    from sleepy.sandbox import Sandbox, run_batch
    from sleepy.sandbox.rustc import Toolchain

    koans, source = _bench_koans(n_koans)
    cargo = shutil.which("cargo") or str(Toolchain.find().cargo)
    sb = Sandbox()
    console.print(
        f"[bold]sandbox[/bold]: {len(koans)} koans from {source}; isolation {sb.isolation}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        highlight=False,
    )
    sb.judge('fn main() { println!("warm"); }')  # the runtime copy and first-call costs
    times: dict[str, list[float]] = {"sandbox": [], "cargo": [], "bare": []}
    cpu: dict[str, list[float]] = {"sandbox": [], "cargo": [], "bare": []}
    passed = {"sandbox": 0, "cargo": 0, "bare": 0}
    ways: dict[str, Callable] = {
        "sandbox": lambda k: sb.verdict(k, k.correct_code).passed,
        "cargo": lambda k: _cargo_per_koan(k, cargo),
        "bare": _bare_rustc,
    }
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("verdicts three ways", total=len(koans))
        for k in koans:
            # interleaved per koan, so a busy moment on the machine hits all three alike
            for name, way in ways.items():
                start, used = time.perf_counter(), _child_cpu()
                passed[name] += bool(way(k))
                times[name].append(time.perf_counter() - start)
                cpu[name].append(_child_cpu() - used)
            progress.advance(task)
    med = {name: statistics.median(ts) for name, ts in times.items()}
    for name in ways:
        console.print(
            f"  {name:8s} median {med[name]:.3f} s/koan  mean {statistics.mean(times[name]):.3f}"
            f"  cpu median {statistics.median(cpu[name]):.3f} s  passed {passed[name]}/{len(koans)}"
        )

    batch_sb = Sandbox()
    walls: dict[int, float] = {1: float("inf"), 2: float("inf")}
    for workers in (1, 2, 1, 2):  # alternated, best of two: the machine is shared
        start = time.perf_counter()
        run_batch(
            lambda k: batch_sb.verdict(k, k.correct_code), koans, workers=workers,
            desc=f"batch, {workers} worker(s)",
        )  # fmt: skip
        walls[workers] = min(walls[workers], time.perf_counter() - start)
    speedup = walls[1] / walls[2]
    console.print(
        f"  batch of {len(koans)}: 1 worker {walls[1]:.2f} s, "
        f"2 workers {walls[2]:.2f} s = {speedup:.2f}x"
    )
    cargo_x, overhead = med["cargo"] / med["sandbox"], med["sandbox"] / med["bare"]
    console.print(f"  load average at the end {os.getloadavg()[0]:.1f}", highlight=False)
    console.print(
        f"  ceiling: cargo-per-koan / bare rustc = {med['cargo'] / med['bare']:.1f}x — no sandbox "
        "doing the floor's rustc work can be more than this much faster than cargo-per-koan",
        highlight=False,
    )
    console.print(
        f"sandbox {med['sandbox']:.3f} s/koan; cargo-per-koan {med['cargo']:.2f} s/koan = "
        f"{cargo_x:.1f}x slower; bare rustc {med['bare']:.3f} s/koan = overhead {overhead:.2f}x",
        highlight=False,
    )
    ceiling = med["cargo"] / med["bare"]
    console.print(
        f"  the sandbox reaches {cargo_x / ceiling:.0%} of the ceiling ({cargo_x:.1f}x of "
        f"{ceiling:.1f}x), which is bare rustc / sandbox",
        highlight=False,
    )
    return {
        "sandbox_s": med["sandbox"], "cargo_s": med["cargo"], "bare_s": med["bare"],
        "cargo_x": cargo_x, "overhead_x": overhead, "two_worker_speedup": speedup,
        "ceiling_x": ceiling, "share_of_ceiling": cargo_x / ceiling,
    }  # fmt: skip


SECTIONS: dict[str, Callable[[], dict]] = {
    "sandbox": bench_sandbox,
    "generation": bench_generation,  # batched vs one-at-a-time hf generation
    "decoders": bench_decoders,  # the custom greedy decoder vs model.generate, same batch
    "training": bench_training,  # LoRA tokens/s: sleepy's CPU settings vs trl's defaults
    "consolidation": bench_consolidation,  # Share vs LoRA: trainable params and bytes per task
}
ON_REQUEST: dict[str, Callable[..., dict]] = {
    "models": bench_models,  # `--only models --model DIR`: another model's speed vs sleepy-tiny's
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", choices=sorted(SECTIONS | ON_REQUEST), help="run one section")
    parser.add_argument(
        "--model", action="append", help="with --only models: a model folder to time (repeat)"
    )
    args = parser.parse_args(argv)
    if args.only in ON_REQUEST:
        ON_REQUEST[args.only](args.model)
        return 0
    for name, section in SECTIONS.items():
        if args.only and name != args.only:
            continue
        section()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
