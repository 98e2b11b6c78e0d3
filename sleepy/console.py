"""What a person sees while sleepy works: one live display per entrypoint (an overview line, one bar
per stage in sleepy's own words) and, out of the way, other libraries' warnings, logs and progress
bars, which go to the run's log file instead (and to the console as well with -v).

Off a terminal (piped to a file, nohup, CI, a batch job) there are no bars to watch: each stage
prints one plain line when it starts and one when it ends, and while work goes on a heartbeat line
every HEARTBEAT_S seconds (the environment variable SLEEPY_HEARTBEAT_S overrides it) says where it
is: the stage, done/total, elapsed and time left. The same plain lines, and what the entrypoint
prints at the end, go to the run's log file, on a terminal as well.

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
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TimeElapsedColumn,
)
from rich.table import Column
from rich.text import Text

LOG_NAME = "sleepy.log"  # the run's log file, in its output folder (conf/hydra/job_logging)
WIDTH = 100  # closing tables are laid out for this many columns (or the terminal, if narrower)
HEARTBEAT_S = 60.0  # seconds between heartbeat lines while a stage runs (SLEEPY_HEARTBEAT_S)
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


def heartbeat_seconds() -> float:
    """HEARTBEAT_S, or SLEEPY_HEARTBEAT_S when it is set to a number of seconds above 0."""
    raw = os.environ.get("SLEEPY_HEARTBEAT_S", "").strip()
    if not raw:
        return HEARTBEAT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if seconds > 0:
        return seconds
    print(
        f"sleepy: SLEEPY_HEARTBEAT_S={raw!r} is not a number of seconds above 0; "
        f"using {HEARTBEAT_S:g}",
        file=sys.stderr,
    )
    return HEARTBEAT_S


def time_left(elapsed: float, done: float, total: float | None) -> float | None:
    """Seconds left at the rate so far (`done` of `total` in `elapsed`); None before the first
    step is done or without a total."""
    if total is None or done <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def _fixed() -> Column:
    """A column that keeps its width when the line is too narrow for all of them."""
    return Column(no_wrap=True)


class _Label(ProgressColumn):
    """The stage's description: the first column to give way (with an ellipsis) when the line is
    too narrow, so the count and times stay in view."""

    def __init__(self, field: str | None = None, min_width: int = 8, max_width: int | None = None):
        self.field = field
        super().__init__(table_column=Column(min_width=min_width, max_width=max_width))

    def render(self, task) -> Text:
        text = task.fields.get(self.field, "") if self.field else task.description
        return Text(str(text), no_wrap=True, overflow="ellipsis")


class _Count(ProgressColumn):
    """n/total when the stage has a total, nothing when it does not."""

    def __init__(self):
        super().__init__(table_column=_fixed())

    def render(self, task) -> Text:
        if task.total is None:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


class _Left(ProgressColumn):
    """The time the stage still needs at its rate so far (nothing before its first step)."""

    def __init__(self):
        super().__init__(table_column=_fixed())

    def render(self, task) -> Text:
        left = time_left(task.elapsed or 0.0, task.completed, task.total)
        if left is None or task.finished:
            return Text("")
        return Text(f"{_minutes(left)} left", style="progress.remaining")


class _Overview:
    """The top line: which entrypoint, cycle i/N, the stage, elapsed time and an estimate."""

    def __init__(self, display: Display):
        self.d = display

    def __rich__(self) -> Text:
        return Text(self.d.overview_text(), style="bold")


class Display:
    """One live display: the overview line and the bars of the stages running now. A finished
    stage leaves one line above it (what it did, how long it took). Off a terminal each stage
    also says when it starts, and a heartbeat line every `heartbeat` seconds says how far the
    running stages are; those lines (not the bars) go to `log_file` as well, on a terminal too."""

    def __init__(
        self,
        title: str,
        log_file: str | Path | None = None,
        verbose: bool = False,
        console: Console | None = None,
        overview: bool = True,
        quiet: bool = True,
        heartbeat: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.title, self.verbose, self.quiet = title, verbose, quiet
        self.log_file = Path(log_file) if log_file else None
        self.console = console or Console(stderr=True)
        # no bars to watch (a file, a pipe, a dumb terminal): plain lines instead
        self.plain = not self.console.is_interactive
        self.heartbeat_s = heartbeat_seconds() if heartbeat is None else heartbeat
        self.clock = clock
        self.t0 = clock()
        self.cycle = self.cycles = self.done_cycles = 0
        self.phase = ""  # what the entrypoint says it is doing (the cycle's stage)
        self.stage_name = ""  # else: the outermost running bar's
        self.stages: list[Stage] = []  # running now, outermost first
        self.cycle_seconds: list[float] = []  # cycles run (not resumed) by this process
        self._cycle_t0: float | None = None
        self.progress = Progress(
            SpinnerColumn(finished_text="✓", table_column=_fixed()),
            _Label(),
            BarColumn(bar_width=20, table_column=_fixed()),
            _Count(),
            _Label("note", min_width=0, max_width=28),  # the label keeps the rest
            TimeElapsedColumn(table_column=_fixed()),
            _Left(),
            console=self.console,
            get_time=clock,
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
        self._stop = threading.Event()
        self._pulse: threading.Thread | None = None

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
            self.cycle, self._cycle_t0 = cycle, self.clock()
            # the overview line, once per cycle, where the finished stages' lines are: a log
            # (or a terminal's scrollback) shows where each cycle starts and what is left
            text = self.overview_text()
            self.console.rule(Text(text, style="bold"), align="left", style="dim")
            self.log(text)

    def overview_text(self, now: float | None = None) -> str:
        """entrypoint · cycle i/N · stage · elapsed · what is left: of the run once a cycle has
        finished, of the running stage (at its rate so far) before."""
        now = self.clock() if now is None else now
        parts = [self.title]
        if self.cycles:
            parts.append(f"cycle {self.cycle}/{self.cycles}")
        if self.phase or self.stage_name:
            parts.append(self.phase or self.stage_name)
        parts.append(f"{_minutes(now - self.t0)} elapsed")
        left = self.estimate(now)
        if left is not None:
            parts.append(f"about {_minutes(left)} left")
        else:
            running = self.stages[0] if self.stages else None
            stage_left = running.left(now) if running is not None else None
            if stage_left is not None and self.cycles:
                parts.append(f"{running.name} about {_minutes(stage_left)} left")
            if self.cycles and self.cycles > 1:
                parts.append("run estimate after cycle 1")
        return " · ".join(parts)

    def cycle_done(self, ran: bool) -> None:
        """The current cycle has finished; `ran` is False when it was only read back (resume)."""
        if ran and self._cycle_t0 is not None:
            self.cycle_seconds.append(self.clock() - self._cycle_t0)
        self._cycle_t0 = None
        self.done_cycles = self.cycle

    def estimate(self, now: float) -> float | None:
        """Seconds left: the mean of the cycles this process ran times the cycles still to run,
        less the time already in the current one; without cycles, the running stages' estimate
        at their rate so far."""
        if self.cycles and self.cycle_seconds:
            per = sum(self.cycle_seconds) / len(self.cycle_seconds)
            into = now - self._cycle_t0 if self._cycle_t0 is not None else 0.0
            return max(0.0, per * (self.cycles - self.done_cycles) - into)
        if self.cycles:
            return None
        remaining = [left for s in list(self.stages) if (left := s.left(now)) is not None]
        return max(remaining) if remaining else None

    # -- plain lines: off a terminal, and in the log file ------------------------------------------

    def heartbeat_lines(self, now: float | None = None) -> list[str]:
        """One line per running stage (the overview when none is): what it is, done/total, its
        note, elapsed and time left."""
        now = self.clock() if now is None else now
        running = list(self.stages)
        if not running:
            return [f"… {self.overview_text(now)}"]
        where = f"cycle {self.cycle}/{self.cycles} · " if self.cycles else ""
        return [f"… {where}{line}" for s in running if (line := s.progress_line(now))]

    def beat(self) -> None:
        """The heartbeat: on the console off a terminal, and in the log file."""
        for line in self.heartbeat_lines():
            self.plain_line(line)

    def plain_line(self, text: str) -> None:
        """`text` as it is (no markup, never wrapped) on the console off a terminal (on one the
        bars say it), and in the log file."""
        if self.plain:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.log(text)

    def line(self, text: str) -> None:
        """A line in rich markup on the console (above the bars), and as plain text in the log."""
        self.print(text, soft_wrap=self.plain)
        self.log(Text.from_markup(text).plain)

    def log(self, text: str) -> None:
        """`text` into the log file, as one record (nothing without a log file)."""
        if self.log_file is not None:
            log_text(self.log_file, text)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except Exception as e:  # a heartbeat never stops the work
                logging.getLogger("sleepy.console").warning("heartbeat failed: %s", e)

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
        if self.heartbeat_s and (self.plain or self.log_file is not None):
            self._stop.clear()
            self._pulse = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
            self._pulse.start()
        return self

    def __exit__(self, *exc) -> None:
        global _CURRENT
        if self._outer is not None:
            return
        _CURRENT = None
        self._stop.set()
        if self._pulse is not None:
            self._pulse.join(timeout=5)
            self._pulse = None
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
    """One line of plain text above the bars, and in the run's log file (on stderr without a
    display)."""
    if _CURRENT is not None:
        _CURRENT.line(escape(text))
    else:
        Console(stderr=True).print(text, highlight=False, markup=False)


def log_text(log_file: str | Path, text: str) -> None:
    """`text` into the run's log file as one record, through the handler that already writes
    there (Hydra's, or quiet_libraries'), else through one opened for it."""
    path = Path(log_file).resolve()
    handler = next(
        (
            h
            for h in logging.getLogger().handlers
            if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path
        ),
        None,
    )
    own = handler is None
    if own:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    try:
        handler.handle(logging.LogRecord("sleepy", logging.INFO, __file__, 0, text, None, None))
    finally:
        if own:
            handler.close()


def report(log_file: str | Path, text: str) -> None:
    """What an entrypoint prints when it is done: on stdout, and in the run's log file."""
    print(text)
    log_text(log_file, text)


class Stage:
    """A running stage's bar: `advance` a step, `note` what the count means so far. Only an
    outermost stage leaves a line when it ends (and, off a terminal, one when it starts); a stage
    inside one (a batch of rustc checks inside a day) shows its bar while it runs and then goes.
    `unit` names what is counted in the heartbeat line ("step 40/100")."""

    def __init__(
        self,
        display: Display,
        name: str,
        description: str,
        total: float | None,
        inner: bool,
        unit: str = "",
    ):
        self.display, self.name, self.description, self.inner = display, name, description, inner
        self.unit = unit
        self.t0 = display.clock()
        self.task = display.progress.add_task(description, total=total, note="")
        display.stages.append(self)
        if not inner:
            n = int(total) if total is not None else None
            what = f"{unit}{'s' if n != 1 else ''}" if unit else "to do"
            todo = f" · {n} {what}" if n is not None else ""
            display.plain_line(f"start: {description}{todo}")

    def _task(self):
        return next((t for t in self.display.progress.tasks if t.id == self.task), None)

    def advance(self, n: float = 1, note: str | None = None) -> None:
        fields = {"note": note} if note is not None else {}
        self.display.progress.update(self.task, advance=n, **fields)

    def update(self, **kwargs) -> None:
        """total=, completed=, description=, note=."""
        if "description" in kwargs:
            self.description = kwargs["description"]
        self.display.progress.update(self.task, **kwargs)

    def left(self, now: float) -> float | None:
        """Seconds this stage still needs at its rate so far."""
        task = self._task()
        if task is None:
            return None
        return time_left(now - self.t0, task.completed, task.total)

    def progress_line(self, now: float) -> str:
        """description: done/total · note · elapsed · time left (empty once the stage is gone)."""
        task = self._task()
        if task is None:
            return ""
        done = int(task.completed)
        count = f"{done}/{int(task.total)}" if task.total is not None else f"{done} done"
        parts = [f"{self.unit} {count}" if self.unit else count]
        if note := task.fields.get("note", ""):
            parts.append(str(note))
        parts.append(f"{_minutes(now - self.t0)} elapsed")
        left = time_left(now - self.t0, task.completed, task.total)
        parts.append(f"about {_minutes(left)} left" if left is not None else "time left unknown")
        return f"{self.description}: " + " · ".join(parts)

    def close(self, failed: bool = False) -> None:
        p = self.display.progress
        task = self._task()
        count = f" {int(task.completed)}/{int(task.total)}" if task.total is not None else ""
        note = task.fields.get("note", "")
        mark = "[red]✗[/]" if failed else "[green]✓[/]"
        p.remove_task(self.task)
        if self in self.display.stages:
            self.display.stages.remove(self)
        if self.inner and not failed:
            return
        self.display.line(
            f"{mark} {escape(self.description)}{count}{'  ' + escape(note) if note else ''}  "
            f"[dim]{_minutes(self.display.clock() - self.t0)}[/]"
        )


@contextmanager
def stage(name: str, description: str, total: float | None = None, unit: str = ""):
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
    s = Stage(display, name, description, total, inner=not outermost or own is not None, unit=unit)
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


def table_console(record: bool = False) -> Console:
    """A console for closing tables: the terminal's width up to WIDTH, WIDTH when not a terminal.
    With `record`, what it printed can be written to the log file too (export_text)."""
    probe = Console()
    width = min(probe.width, WIDTH) if probe.is_terminal else WIDTH
    return Console(width=width, record=record)
