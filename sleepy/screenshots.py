"""Screenshots of the MLflow UI on a sleepy store, taken in a real headless Chromium: the cycle
experiment's runs side by side with the key metrics as columns, a run's plots as artifacts, and
the registry's model page (versions, champion/previous aliases, the gate's reasons).

    make screenshots                      # outputs/mlflow.db -> docs/screenshots/*.png
    python -m sleepy.screenshots --uri sqlite:///outputs/mlflow.db --out docs/screenshots

`mlflow server` runs on 127.0.0.1 in a process group of its own, and so does Chromium (Debian's
`chromium`: `apt-get install -y chromium`), driven over the DevTools protocol; both groups are
stopped when the screenshots are taken, or when anything fails.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# the columns a person compares cycles by (the runs table shows none of them by default)
KEY_METRICS = (
    "learning_pass_rate",
    "champion_learning_pass_rate",
    "pass_rate",
    "regressions",
    "repeat_error_rate",
    "promoted",
)
KEY_TAGS = ("gate.decision", "families")  # a sweep job's values are in its runs' names
WIDTH, HEIGHT = 1680, 1000
TRAINING_VIEW = "workflowType=machine_learning"  # MLflow 3's "Model training" side of the UI


class ScreenshotError(RuntimeError):
    """Screenshots cannot be taken; one line saying what to fix."""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    raise ScreenshotError("no Chromium found: install it (Debian: apt-get install -y chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def process_group(argv: list[str], log: Path):
    """Run argv in a process group of its own; on exit the whole group is stopped (TERM, then
    KILL), so no server or renderer outlives the screenshots."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue


def _wait_http(url: str, seconds: float, what: str, log: Path) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
    raise ScreenshotError(f"{what} did not answer at {url} in {seconds:.0f} s: {' | '.join(tail)}")


class Page:
    """One Chromium tab over the DevTools protocol (a websocket of JSON messages)."""

    def __init__(self, ws_url: str):
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._id = 0
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise ScreenshotError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, texts: list[str], seconds: float = 60) -> str:
        """Wait until the page shows every text; returns the page's text."""
        end, body = time.monotonic() + seconds, ""
        while time.monotonic() < end:
            body = self.js("document.body ? document.body.innerText : ''") or ""
            if all(t in body for t in texts):
                time.sleep(1.0)  # let the last requests draw
                return self.js("document.body.innerText") or body
            time.sleep(0.5)
        missing = [t for t in texts if t not in body]
        raise ScreenshotError(f"the page never showed {missing} (it shows: {body[:200]!r})")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.ws.close()


@dataclass
class Shot:
    name: str  # the PNG's name
    what: str  # what it shows, for the README
    path: Path | None = None
    text: str = ""  # the page's text when it was taken


def _store_facts(uri: str, experiment: str) -> dict:
    """What the pages show: the experiment, its newest cycle run with plots, a registered model."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ScreenshotError(
            f"no experiment '{experiment}' in {uri}: run `make demo` (or sleepy-cycle) first"
        )
    cycles = client.search_runs(
        [exp.experiment_id],
        "tags.stage = 'cycle' and status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    if not cycles:
        raise ScreenshotError(f"experiment '{experiment}' in {uri} has no finished cycle run")
    with_plots = next(
        (r for r in cycles if any(a.path == "plots" for a in client.list_artifacts(r.info.run_id))),
        None,
    )
    if with_plots is None:
        raise ScreenshotError(f"no cycle run in '{experiment}' has plots (run with plots=true)")
    models = sorted(
        client.search_registered_models(),
        key=lambda m: -max((int(v.version) for v in m.latest_versions or []), default=0),
    )
    model = next((m for m in models if m.aliases), None)
    if model is None:
        raise ScreenshotError(f"no registered model in {uri} has a champion alias yet")
    return {
        "experiment_id": exp.experiment_id,
        "run": with_plots,
        "model": model.name,
        "champion": str(model.aliases.get("champion") or max(model.aliases.values(), key=int)),
    }


def _ui_state(experiment_id: str) -> dict[str, str]:
    """What the UI keeps in localStorage, set before it loads: the runs table's view with the key
    metrics and tags as columns, wide enough for their names, and the assistant panel closed."""
    cols = [f"metrics.`{m}`" for m in KEY_METRICS] + [f"tags.`{t}`" for t in KEY_TAGS]
    view = {
        "searchFilter": "tags.stage = 'cycle'",  # the cycles, each with its stages nested
        "selectedColumns": cols,
        # the grid's own column ids; widths only apply to columns placed in the order
        "columnOrder": ["0", "attributes.`Run Name`", "runDateAndNestInfo", "duration", *cols],
        "columnWidths": {
            "attributes.`Run Name`": 190,
            **{c: 26 + 6 * len(c.split("`")[1]) for c in cols if c.startswith("metrics")},
            **{c: 110 for c in cols if c.startswith("tags")},
        },
    }
    key = f"MLflowLocalStorage-1.1-ExperimentPage-{json.dumps([experiment_id])}-ReactComponentState"
    return {
        key: json.dumps(view),
        "mlflow.assistant.panelOpen_v1": "false",
        # the model-training view (runs, metrics, registry), not the GenAI one (traces, judges)
        "mlflow.workflowType_v1": json.dumps("machine_learning"),
        "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    }


def take(
    uri: str,
    out: Path,
    experiment: str = "sleepy-cycle",
    timeout: float = 120,
    port: int | None = None,
) -> list[Shot]:
    """Start mlflow server (on `port`, default a free one) and Chromium, take the screenshots,
    stop both process groups."""
    facts = _store_facts(uri, experiment)
    browser = chromium()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sleepy-shots-"))
    port, debug = port or _free_port(), _free_port()
    mlflow_exe = Path(sys.executable).parent / "mlflow"
    server = [
        str(mlflow_exe if mlflow_exe.exists() else "mlflow"),
        "server",
        "--backend-store-uri",
        uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    chrome = [
        browser,
        "--headless=new",
        "--no-sandbox",  # runs as root in containers; the page is our own local server
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={work / 'profile'}",
        f"--remote-debugging-port={debug}",
        f"--window-size={WIDTH},{HEIGHT}",
        "about:blank",
    ]
    base = f"http://127.0.0.1:{port}"
    shots = [
        Shot("runs_compared.png", "the cycle runs side by side, key metrics as columns"),
        Shot("run_plots.png", "a cycle run's plots, as artifacts"),
        Shot("registry_model.png", "the registered model: its versions and their aliases"),
        Shot("registry_version.png", "the champion version: the gate's reasons, uncut"),
    ]
    try:
        with (
            process_group(server, work / "mlflow-server.log") as _srv,
            process_group(chrome, work / "chromium.log") as _chrome,
        ):
            _wait_http(f"{base}/health", timeout, "mlflow server", work / "mlflow-server.log")
            _wait_http(
                f"http://127.0.0.1:{debug}/json/version", 30, "Chromium", work / "chromium.log"
            )
            req = urllib.request.Request(
                f"http://127.0.0.1:{debug}/json/new?about:blank", method="PUT"
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                page = Page(json.loads(r.read())["webSocketDebuggerUrl"])
            try:
                _shoot(page, base, facts, shots, out, timeout)
            except ScreenshotError:
                page.screenshot(out / "failed.png")  # what the page showed instead
                raise
            finally:
                page.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return shots


def _shoot(page: Page, base: str, facts: dict, shots: list[Shot], out: Path, timeout: float):
    exp, run, model = facts["experiment_id"], facts["run"], facts["model"]
    # 1. the runs table, with the key metrics as columns: a saved view, as if picked by hand,
    # written from a plain page of the same origin before the UI loads (it saves its own on exit)
    page.goto(base + "/health")
    page.wait_for(["OK"], timeout)
    for key, value in _ui_state(exp).items():
        page.js(f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)})")
    page.goto(f"{base}/#/experiments/{exp}/runs?{TRAINING_VIEW}")
    runs, plots, registry, version = shots
    runs.text = page.wait_for(["learning_pass_rate", "cycle"], timeout)
    runs.path = page.screenshot(out / runs.name)
    # 2. one cycle run's artifacts, the learning curve open
    run_id = run.info.run_id
    page.goto(
        f"{base}/#/experiments/{exp}/runs/{run_id}/artifacts/plots/learning_curve.png"
        f"?{TRAINING_VIEW}"
    )
    plots.text = page.wait_for(["plots", "learning_curve.png"], timeout)
    page.js(
        "new Promise(r => { const i = [...document.images].find(i => /learning_curve/.test(i.src)"
        " || i.naturalWidth > 400); if (!i || i.complete) r(1); else i.onload = () => r(1); })"
    )
    time.sleep(2)
    plots.path = page.screenshot(out / plots.name)
    # 3. the registered model: its versions, the champion/previous aliases, the gate's reasons
    page.goto(f"{base}/#/models/{model}")
    registry.text = page.wait_for(["champion", "Version"], timeout)
    registry.path = page.screenshot(out / registry.name)
    # 4. the champion's version page: the gate's decision and every reason, in its description
    page.goto(f"{base}/#/models/{model}/versions/{facts['champion']}")
    version.text = page.wait_for(["gate:", "champion"], timeout)
    time.sleep(2)  # the source run and model links load last
    version.path = page.screenshot(out / version.name)


def main(argv: list[str] | None = None) -> int:
    from sleepy.config import default_store
    from sleepy.tracking import require_store

    DEFAULT_URI = default_store()[0]

    p = argparse.ArgumentParser(
        prog="python -m sleepy.screenshots", description=__doc__.split("\n")[0]
    )
    p.add_argument("--uri", default=DEFAULT_URI, help=f"the MLflow store (default {DEFAULT_URI})")
    p.add_argument("--experiment", default="sleepy-cycle")
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = p.parse_args(argv)
    if not re.match(r"^(sqlite|file|https?|postgresql|mysql)", args.uri):
        print(f"screenshots: error: --uri {args.uri}: not a tracking store URI", file=sys.stderr)
        return 2
    require_store(args.uri, "screenshots")
    from mlflow.exceptions import MlflowException

    try:
        shots = take(args.uri, args.out, args.experiment)
    except ScreenshotError as e:
        print(f"screenshots: error: {e}", file=sys.stderr)
        return 2
    except MlflowException as e:  # a store this MLflow cannot read (a newer schema, say)
        print(f"screenshots: error: {args.uri}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    for s in shots:
        print(f"{s.path}  ({s.what})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
