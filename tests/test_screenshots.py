"""The MLflow UI in a real headless Chromium against `mlflow server` on 127.0.0.1: the runs table
shows the key metrics as columns, a run's plots are artifacts, the registry shows the aliases and
the gate's reasons. Skipped where Chromium is not installed (apt-get install -y chromium)."""

from __future__ import annotations

import shutil
import socket

import mlflow
import pytest
from matplotlib.image import imread

from sleepy.plots import learning_curve
from sleepy.screenshots import WIDTH, _free_port, take
from sleepy.tracking import mlflow_run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium installed"),
]


@pytest.fixture
def store(tmp_path):
    """Two sweep jobs of two cycles each, a plot on the last cycle, a model with two versions."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    png = learning_curve(
        [{"cycle": c, "pass_rate": 0.25 * c} for c in (1, 2)], tmp_path / "learning_curve.png"
    )
    for rank in (4, 8):
        for c in (1, 2):
            tags = {
                "stage": "cycle",
                "cycle": str(c),
                "lineage": f"s-{rank}",
                "swept": f"rank={rank}",
                "families": "lifetimes",
                "gate.decision": "promote",
            }
            with mlflow_run(uri, "sleepy-cycle", run_name=f"rank={rank} · cycle {c}", tags=tags):
                mlflow.log_params({"adapter.rank": rank, "cycle": c})
                mlflow.log_metrics(
                    {"learning_pass_rate": 0.25 * c, "champion_learning_pass_rate": 0.1, "pass_rate": 0.4,
                     "regressions": 0, "repeat_error_rate": 0.5, "promoted": 1}
                )  # fmt: skip
                if c == 2:
                    mlflow.log_artifact(str(png), "plots")
                run = mlflow.active_run()
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.create_registered_model("sleepy-fixer")
    for v in (1, 2):
        client.create_model_version(
            "sleepy-fixer", f"{run.info.artifact_uri}/plots", run.info.run_id
        )
        client.update_model_version(
            "sleepy-fixer",
            str(v),
            description=f"gate: promote\n- learning-set pass rate 0.{v}00 >= champion 0.000",
        )
    client.set_registered_model_alias("sleepy-fixer", "previous", "1")
    client.set_registered_model_alias("sleepy-fixer", "champion", "2")
    return uri


def test_ui_pages_show_metrics_plots_and_the_gate(store, tmp_path):
    port = _free_port()
    shots = take(store, tmp_path / "shots", port=port, timeout=240)
    runs, plots, registry, version = shots
    for s in shots:
        img = imread(s.path)
        assert img.shape[1] == WIDTH and img.std() > 0.05, s.name  # a page, not a blank
    for text in (
        "rank=8 · cycle 2",
        "learning_pass_rate",
        "champion_learning_pass_rate",
        "gate.decision",
    ):
        assert text in runs.text
    assert "learning_curve.png" in plots.text
    # MLflow's model-training view (runs, models, registry), not its GenAI one
    assert "Model registry" in runs.text and "Evaluation runs" not in runs.text + plots.text
    assert "champion" in registry.text and "previous" in registry.text
    assert "gate: promote" in version.text and "learning-set pass rate 0.200" in version.text
    # the server's process group was stopped with the screenshots
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
