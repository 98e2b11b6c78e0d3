"""A parallel runner for batches of sandbox work (validation, benchmarks, evaluation): threads
are enough, since the work happens in rustc and the programs' own processes."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from sleepy.console import stage

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
    if not items:
        return results
    name = (desc or "working").split()[0]
    with stage(name, desc or "working", total=len(items)) as bar:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(call, item): i for i, item in enumerate(items)}
            try:
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.advance()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    return results
