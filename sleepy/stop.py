"""Ctrl-C and SIGTERM end an entrypoint cleanly: one line saying how to carry on, exit status
128 + the signal's number (130, 143), and no traceback.

    def main():
        with stops("sleepy-day"):
            ...                                   # Hydra runs the stage in here
            resume_with("sleepy-day run_id=X resume=true")  # once the run knows its id

Both signals raise `Stopped` (a KeyboardInterrupt), so every `with` on the way out ends what it
opened: an MLflow run ends KILLED (sleepy.tracking.mlflow_run), the episodes a day was recording
end `interrupted` (EpisodeStore.own_run), and a resumed day does them again. SIGTERM is what
SLURM, nohup's parent, CI runners and `kill` send; by default it ended the process where it
stood, with its MLflow run left RUNNING and its episodes `running` for good.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; unwinds the stack like Ctrl-C does."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_resume: list[str] = []  # the command that carries this process's run on, once it is known


def resume_with(command: str) -> None:
    """Name the command that carries the run on where it stopped (a day's `run_id=...
    resume=true`, a cycle's `run_id=...`); a stop's line gives it."""
    _resume[:] = [command]


def rerun(prog: str, argv: list[str] | None = None, **pinned: str) -> str:
    """`prog` with the command line's arguments, `pinned` key=value in place of any given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    kept = [a for a in argv if a.split("=", 1)[0].lstrip("+~") not in pinned]
    return shlex.join([prog, *kept, *(f"{k}={v}" for k, v in pinned.items())])


@contextmanager
def stops(prog: str) -> Iterator[None]:
    """Run the block with SIGINT and SIGTERM turned into `Stopped`; when one ends it, print one
    line on stderr (how to resume, or how to run it again) and exit with 128 + the signal.

    A repeated signal while the first unwinds is ignored, so that a double Ctrl-C does not cut
    short the clean-up that ends the MLflow run and the episodes; a third one stops it anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers (and receives the signals)
        return
    received: list[int] = []

    def handler(signum: int, frame) -> None:
        received.append(signum)
        if len(received) != 2:
            raise Stopped(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    _resume.clear()
    try:
        yield
    except KeyboardInterrupt as e:
        signum = received[0] if received else getattr(e, "signum", signal.SIGINT)
        if _resume:
            line = f"stopped; resume with `{_resume[0]}`"
        else:
            line = f"stopped before it finished; run it again with `{rerun(prog)}`"
        print(f"{prog}: {line}", file=sys.stderr, flush=True)
        raise SystemExit(128 + int(signum)) from None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
