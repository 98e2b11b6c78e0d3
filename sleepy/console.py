"""What a person sees while sleepy works: one live display per entrypoint (an overview line, one bar
per stage in sleepy's own words) and, out of the way, other libraries' warnings, logs and progress
bars, which go to the run's log file instead (and to the console as well with -v).

    with Display("sleepy-cycle", log_file=out / "sleepy.log", verbose=cfg.verbose):
        overview(cycle=1, cycles=3)
        with stage("day", "cycle 1/3 day on trait_bounds (12)", total=12) as s:
            s.advance(note="3 passed")

A stage opened with no display running (a test, a library call) gets a display of its own.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

LOG_NAME = "sleepy.log"  # the run's log file, in its output folder (conf/hydra/job_logging)
WIDTH = 100  # closing tables are laid out for this many columns (or the terminal, if narrower)
# Loggers of the libraries sleepy runs on: their records go to the log file, not the console.
LIBRARIES = (
    "transformers",
    "datasets",
    "trl",
    "peft",
    "accelerate",
    "huggingface_hub",
    "mlflow",
    "alembic",
    "huey",
    "sqlalchemy",
    "torch",
    "urllib3",
    "httpx",
    "filelock",
    "matplotlib",
    "py.warnings",
)


def _minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class _Count(ProgressColumn):
    """n/total when the stage has a total, nothing when it does not."""

    def render(self, task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


class _Overview:
    """The top line: which entrypoint, cycle i/N, the stage, elapsed time and an estimate."""

    def __init__(self, display: Display):
        self.d = display

    def __rich__(self) -> Text:
        d = self.d
        now = time.monotonic()
        parts = [d.title]
        if d.cycles:
            parts.append(f"cycle {d.cycle}/{d.cycles}")
        if d.phase or d.stage_name:
            parts.append(d.phase or d.stage_name)
        parts.append(f"{_minutes(now - d.t0)} elapsed")
        left = d.estimate(now)
        if left is not None:
            parts.append(f"about {_minutes(left)} left")
        elif d.cycles and d.cycles > 1:
            parts.append("estimate after cycle 1")
        return Text(" · ".join(parts), style="bold")


class Display:
    """One live display: the overview line and the bars of the stages running now. A finished
    stage leaves one line above it (what it did, how long it took)."""

    def __init__(
        self,
        title: str,
        log_file: str | Path | None = None,
        verbose: bool = False,
        console: Console | None = None,
        overview: bool = True,
        quiet: bool = True,
    ):
        self.title, self.verbose, self.quiet = title, verbose, quiet
        self.log_file = Path(log_file) if log_file else None
        self.console = console or Console(stderr=True)
        self.t0 = time.monotonic()
        self.cycle = self.cycles = self.done_cycles = 0
        self.phase = ""  # what the entrypoint says it is doing (the cycle's stage)
        self.stage_name = ""  # else: the outermost running bar's
        self.cycle_seconds: list[float] = []  # cycles run (not resumed) by this process
        self._cycle_t0: float | None = None
        self.progress = Progress(
            SpinnerColumn(finished_text="✓"),
            TextColumn("{task.description}"),
            BarColumn(bar_width=28),
            _Count(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        parts = ([_Overview(self)] if overview else []) + [self.progress]
        self.live = Live(
            Group(*parts),
            console=self.console,
            refresh_per_second=4,
            transient=True,  # the bars go when it stops: each finished stage left its own line
            redirect_stdout=False,  # stdout is for results (JSON, tables); never through the bars
            redirect_stderr=True,
        )
        self._outer: Display | None = None

    # -- the overview ------------------------------------------------------------------------------

    def at(
        self,
        cycle: int | None = None,
        cycles: int | None = None,
        phase: str | None = None,
        title: str | None = None,
    ) -> None:
        if title is not None:
            self.title = title
        if phase is not None:
            self.phase = phase
        if cycles is not None:
            self.cycles = cycles
        if cycle is not None and cycle != self.cycle:
            self.cycle, self._cycle_t0 = cycle, time.monotonic()
            # the overview line, once per cycle, where the finished stages' lines are: a log
            # (or a terminal's scrollback) shows where each cycle starts and what is left
            self.console.rule(_Overview(self).__rich__(), align="left", style="dim")

    def cycle_done(self, ran: bool) -> None:
        """The current cycle has finished; `ran` is False when it was only read back (resume)."""
        if ran and self._cycle_t0 is not None:
            self.cycle_seconds.append(time.monotonic() - self._cycle_t0)
        self._cycle_t0 = None
        self.done_cycles = self.cycle

    def estimate(self, now: float) -> float | None:
        """Seconds left: the mean of the cycles this process ran times the cycles still to run,
        less the time already in the current one; without cycles, the running bar's estimate."""
        if self.cycles and self.cycle_seconds:
            per = sum(self.cycle_seconds) / len(self.cycle_seconds)
            into = now - self._cycle_t0 if self._cycle_t0 is not None else 0.0
            return max(0.0, per * (self.cycles - self.done_cycles) - into)
        if self.cycles:
            return None
        remaining = [t.time_remaining for t in self.progress.tasks if t.time_remaining]
        return max(remaining) if remaining else None

    # -- lifetime ----------------------------------------------------------------------------------

    def __enter__(self) -> Display:
        global _CURRENT
        self._outer = _CURRENT
        if self._outer is not None:  # a display is already up: it shows this one's stages
            return self._outer
        if self.quiet:
            quiet_libraries(self.log_file, self.verbose)
        self.live.start()
        _CURRENT = self
        return self

    def __exit__(self, *exc) -> None:
        global _CURRENT
        if self._outer is not None:
            return
        _CURRENT = None
        self.live.stop()

    def print(self, *args, **kwargs) -> None:
        kwargs.setdefault("highlight", False)
        self.console.print(*args, **kwargs)

    def log_to_mlflow(self, artifact_path: str = "logs") -> None:
        """The log file so far, as an artifact of the active MLflow run (if any)."""
        if self.log_file is None or not self.log_file.is_file():
            return
        import mlflow

        for h in logging.getLogger().handlers:
            h.flush()
        if mlflow.active_run() is not None:
            mlflow.log_artifact(str(self.log_file), artifact_path)


_CURRENT: Display | None = None


def current() -> Display | None:
    return _CURRENT


def overview(
    cycle: int | None = None,
    cycles: int | None = None,
    phase: str | None = None,
    title: str | None = None,
) -> None:
    """Tell the running display which cycle and stage this is (a no-op without one)."""
    if _CURRENT is not None:
        _CURRENT.at(cycle, cycles, phase, title)


def say(text: str) -> None:
    """One line above the bars (or on stderr without a display)."""
    if _CURRENT is not None:
        _CURRENT.print(text)
    else:
        Console(stderr=True).print(text, highlight=False)


class Stage:
    """A running stage's bar: `advance` a step, `note` what the count means so far. Only an
    outermost stage leaves a line when it ends; a stage inside one (a batch of rustc checks
    inside a day) shows its bar while it runs and then goes."""

    def __init__(
        self, display: Display, name: str, description: str, total: float | None, inner: bool
    ):
        self.display, self.name, self.description, self.inner = display, name, description, inner
        self.t0 = time.monotonic()
        self.task = display.progress.add_task(description, total=total, note="")

    def advance(self, n: float = 1, note: str | None = None) -> None:
        fields = {"note": note} if note is not None else {}
        self.display.progress.update(self.task, advance=n, **fields)

    def update(self, **kwargs) -> None:
        """total=, completed=, description=, note=."""
        if "description" in kwargs:
            self.description = kwargs["description"]
        self.display.progress.update(self.task, **kwargs)

    def close(self, failed: bool = False) -> None:
        p = self.display.progress
        task = next(t for t in p.tasks if t.id == self.task)
        count = f" {int(task.completed)}/{int(task.total)}" if task.total is not None else ""
        note = task.fields.get("note", "")
        mark = "[red]✗[/]" if failed else "[green]✓[/]"
        p.remove_task(self.task)
        if self.inner and not failed:
            return
        self.display.print(
            f"{mark} {self.description}{count}{'  ' + note if note else ''}  "
            f"[dim]{_minutes(time.monotonic() - self.t0)}[/]"
        )


@contextmanager
def stage(name: str, description: str, total: float | None = None):
    """A bar for one stage (`name` is what the overview calls it: day, sleep, eval, ...)."""
    own = None
    if _CURRENT is None:  # no entrypoint display: this stage shows its own bar, briefly
        own = Display(name, overview=False, quiet=False)
        own.__enter__()
    display = _CURRENT
    outermost = not display.stage_name
    if outermost:
        display.stage_name = name
    # a bar of its own goes when it ends (as rich's transient bars do): only an entrypoint's
    # display keeps a line per stage
    s = Stage(display, name, description, total, inner=not outermost or own is not None)
    failed = True
    try:
        yield s
        failed = False
    finally:
        s.close(failed)
        if outermost:
            display.stage_name = ""
        if own is not None:
            own.__exit__(None, None, None)


# -- other libraries: their noise goes to the log file ---------------------------------------------


def _is_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    if isinstance(handler, logging.FileHandler):
        return False
    return stream is not None and (
        stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
        or type(stream).__name__ == "MlflowLoggingStream"
    )


def quiet_libraries(log_file: Path | None = None, verbose: bool = False) -> None:
    """Send the libraries' warnings and log records to `log_file` and switch off their progress
    bars, with each library's own switch. With `verbose` they stay on the console as well."""
    # mlflow configures its loggers (and alembic's) with console handlers when it is imported
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    root = logging.getLogger()
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    if log_file is not None:
        log_file = Path(log_file).resolve()
        have = {Path(h.baseFilename) for h in root.handlers if isinstance(h, logging.FileHandler)}
        if log_file not in have:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(log_file)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            root.addHandler(handler)
    logging.captureWarnings(True)  # warnings.warn -> the py.warnings logger -> the log file
    if verbose:
        if not any(_is_console(h) for h in root.handlers):
            root.addHandler(logging.StreamHandler(sys.stderr))
        return
    for h in [h for h in root.handlers if _is_console(h)]:
        root.removeHandler(h)

    import datasets
    import huggingface_hub.utils
    import mlflow.utils.logging_utils
    import transformers.utils.logging

    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()  # "Loading weights"
    transformers.utils.logging.disable_default_handler()
    transformers.utils.logging.enable_propagation()
    mlflow.utils.logging_utils.disable_logging()  # its console stream ("Successfully registered")
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        for h in [h for h in logger.handlers if _is_console(h)]:
            logger.removeHandler(h)
        logger.propagate = True
    for name in ("alembic", "sqlalchemy", "huey"):  # migration chatter: warnings only
        logging.getLogger(name).setLevel(logging.WARNING)


def verbose_flag(argv: list[str] | None = None) -> bool:
    """Take -v/--verbose off the command line (Hydra does not know it) and turn it into the
    `verbose=true` override; True when it was there."""
    argv = sys.argv if argv is None else argv
    found = [a for a in argv[1:] if a in ("-v", "--verbose")]
    for a in found:
        argv.remove(a)
    if found:
        argv.append("verbose=true")
    return bool(found)


def table_console() -> Console:
    """A console for closing tables: the terminal's width up to WIDTH, WIDTH when not a terminal."""
    probe = Console()
    width = min(probe.width, WIDTH) if probe.is_terminal else WIDTH
    return Console(width=width)
