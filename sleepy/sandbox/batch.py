"""A parallel runner for batches of sandbox work (validation, benchmarks, evaluation): threads
are enough, since the work happens in rustc and the programs' own processes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")
R = TypeVar("R")

_local = threading.local()


def in_batch() -> bool:
    """True on a run_batch worker thread (the cores are already shared out)."""
    return getattr(_local, "in_batch", False)


def run_batch(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, desc: str = ""
) -> list[R]:
    """fn over items on `workers` threads (default: all cores), with progress; order kept.

    The first exception raised by fn is re-raised after the pool stops.
    """
    items = list(items)
    workers = max(1, workers or os.cpu_count() or 1)

    def call(item: T) -> R:
        _local.in_batch = True
        return fn(item)

    results: list[R] = [None] * len(items)  # type: ignore[list-item]
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True, disable=not items,
    )  # fmt: skip
    with progress, ThreadPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task(desc or "working", total=len(items))
        futures = {pool.submit(call, item): i for i, item in enumerate(items)}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                progress.advance(task)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results
