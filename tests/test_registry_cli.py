"""`sleepy registry` on a real MLflow sqlite store with real adapters of sleepy-tiny: promote moves
champion and previous, rollback restores the previous champion and says why."""

from __future__ import annotations

import pytest
from support import make_adapter, register

from sleepy.cli import main
from sleepy.registry import CHAMPION, PREVIOUS, alias_version, get_version, tag_version


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp}/mlflow.db"
    adapter = make_adapter(tmp / "adapter", seed=3)
    return uri, [register(adapter, uri, cycle=c) for c in (1, 2, 3)]


def sleepy(uri, *args):
    return main(["registry", "--uri", uri, *args])


def test_promote_promote_rollback(store, capsys):
    uri, (v1, v2, v3) = store
    assert alias_version("sleepy-fixer", CHAMPION, uri) is None

    assert sleepy(uri, "promote", v1, "--reason", "first adapter") == 0
    assert "there was no champion before" in capsys.readouterr().out
    assert sleepy(uri, "promote", v2, "--reason", "beat v1") == 0
    assert capsys.readouterr().out.strip() == f"champion -> version {v2}; previous -> version {v1}"
    assert alias_version("sleepy-fixer", CHAMPION, uri) == v2
    assert alias_version("sleepy-fixer", PREVIOUS, uri) == v1
    assert get_version("sleepy-fixer", v2, uri).tags["promoted_reason"] == "beat v1"

    assert sleepy(uri, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sleepy-fixer:"  # the store's one model, named
    assert lines[1].split()[:2] == ["version", "aliases"] and len(lines) == 5
    assert lines[2].split()[:2] == [v1, PREVIOUS] and lines[3].split()[:2] == [v2, CHAMPION]

    assert sleepy(uri, "rollback", "--reason", "v2 loops on E0499") == 0
    assert f"champion -> version {v1}" in capsys.readouterr().out
    assert alias_version("sleepy-fixer", CHAMPION, uri) == v1
    assert alias_version("sleepy-fixer", PREVIOUS, uri) is None
    assert get_version("sleepy-fixer", v2, uri).tags["rolled_back"] == "v2 loops on E0499"
    assert "v2 loops on E0499" in get_version("sleepy-fixer", v1, uri).tags["restored_reason"]

    assert sleepy(uri, "show", CHAMPION) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"sleepy-fixer version {v1}") and "restored_reason: rollback from" in out

    # nothing left to roll back to: one line, champion unchanged
    assert sleepy(uri, "rollback", "--reason", "again") == 1
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "sleepy registry: error: model 'sleepy-fixer' has no 'previous' version to roll back to"
    )
    assert alias_version("sleepy-fixer", CHAMPION, uri) == v1


def test_a_gate_rejected_version_needs_force(store, capsys):
    uri, (_, _, v3) = store
    tag_version(
        "sleepy-fixer",
        v3,
        {"gate.decision": "reject", "gate.reasons": "1 regression > max 0: k1"},
        uri,
    )
    before = alias_version("sleepy-fixer", CHAMPION, uri)
    assert sleepy(uri, "promote", v3) == 1
    err = capsys.readouterr().err
    assert "rejected by the gate (1 regression > max 0: k1)" in err and "--force" in err
    assert alias_version("sleepy-fixer", CHAMPION, uri) == before
    assert sleepy(uri, "promote", v3, "--force", "--reason", "trying it live") == 0
    assert alias_version("sleepy-fixer", CHAMPION, uri) == v3
    assert (
        "forced past a gate rejection"
        in get_version("sleepy-fixer", v3, uri).tags["promoted_reason"]
    )


def test_unknown_version_is_one_line(store, capsys):
    uri, versions = store
    assert sleepy(uri, "show", "99") == 1
    err = capsys.readouterr().err.strip()
    assert (
        err == "sleepy registry: error: no version '99' of model 'sleepy-fixer' "
        f"(versions: {', '.join(versions)})"
    )


def test_a_version_requires_the_sleepy_it_was_registered_with_not_the_bare_name(store):
    """pip_requirements name where this sleepy came from (a path or URL) or its exact version:
    the bare name would install whatever a package index holds under it."""
    import mlflow

    from sleepy.registry.versions import sleepy_requirement

    uri, (v1, _, _) = store
    deps = mlflow.pyfunc.get_model_dependencies(
        f"models:/sleepy-fixer/{v1}", format="pip"
    )  # a local requirements.txt of the logged model
    with open(deps) as f:
        required = [line.strip() for line in f if line.strip().startswith("sleepy")]
    assert required == [sleepy_requirement()]
    assert required[0].startswith(("sleepy @ file:", "sleepy=="))


def test_registry_calls_leave_mlflows_global_store_where_it_was(store, tmp_path):
    """The registry reads and writes the store it is given through its own client: a run that
    starts later in the process still goes to the store the process chose."""
    import mlflow

    uri, (v1, _, _) = store
    before = mlflow.get_tracking_uri()
    elsewhere = f"sqlite:///{tmp_path}/elsewhere.db"
    mlflow.set_tracking_uri(elsewhere)
    try:
        tag_version("sleepy-fixer", v1, {"checked": "yes"}, uri)
        assert get_version("sleepy-fixer", v1, uri).tags["checked"] == "yes"
        assert mlflow.get_tracking_uri() == elsewhere
    finally:
        mlflow.set_tracking_uri(before)


# A promoter in its own process: the slow imports and the store's first open happen before the
# start signal, so the promotions themselves are what run at the same time.
RACER = """
import sys, time
from pathlib import Path
from sleepy.cli import main
from sleepy.registry import alias_version
go, ready, uri = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
alias_version("sleepy-fixer", "champion", uri)
ready.touch()
while not go.exists():
    time.sleep(0.002)
sys.exit(main(["registry", "--uri", uri, "--name", "sleepy-fixer", *sys.argv[4:]]))
"""


def test_promotions_at_once_leave_one_champion_and_a_true_history(tmp_path):
    """Four processes promote four versions into one sqlite store at the same moment: they take
    turns, so the aliases and tags tell one history, and any that cannot go says so in one line."""
    import itertools
    import subprocess
    import sys
    import time

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    adapter = make_adapter(tmp_path / "adapter", seed=5)
    first, *racing = [register(adapter, uri, cycle=c) for c in range(5)]
    assert sleepy(uri, "promote", first, "--reason", "the first") == 0

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(go), str(tmp_path / f"ready{v}"), uri]
            + ["promote", v, "--reason", f"race {v}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in racing
    ]
    deadline = time.monotonic() + 300
    while not all((tmp_path / f"ready{v}").exists() for v in racing):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.touch()
    done = {v: (p.wait(timeout=300), *p.communicate()) for v, p in zip(racing, procs, strict=True)}

    # each winner says which version it replaced; together they are one chain from `first`
    replaced = {}
    for v, (rc, out, err) in done.items():
        if rc == 0:
            assert out.startswith(f"champion -> version {v}; previous -> version "), out
            replaced[out.split()[-1]] = v
        else:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("sleepy registry: error: "), err
    chain = [first]
    while chain[-1] in replaced:
        chain.append(replaced.pop(chain[-1]))
    assert replaced == {} and len(chain) >= 2  # no two winners replaced the same champion

    assert alias_version("sleepy-fixer", CHAMPION, uri) == chain[-1]
    assert alias_version("sleepy-fixer", PREVIOUS, uri) == chain[-2]
    for old, new in itertools.pairwise(chain):
        assert get_version("sleepy-fixer", new, uri).tags["promoted_reason"] == f"race {new}"
        demoted = get_version("sleepy-fixer", old, uri).tags["demoted_reason"]
        assert demoted == f"replaced by version {new}: race {new}"
    for v in set(racing) - set(chain):  # a loser left no trace of a promotion
        assert "promoted_reason" not in get_version("sleepy-fixer", v, uri).tags


def test_a_promotion_compared_with_a_champion_that_has_moved_since_is_refused(store):
    """The eval promotes naming the champion it measured; another promotion in between makes
    that comparison stale, so nothing moves and the error says what to do, in one line."""
    from sleepy.registry import RegistryError, promote

    uri, versions = store
    champion = alias_version("sleepy-fixer", CHAMPION, uri)
    previous = alias_version("sleepy-fixer", PREVIOUS, uri)
    candidate, measured = [v for v in versions if v != champion][:2]
    tags = get_version("sleepy-fixer", candidate, uri).tags
    with pytest.raises(RegistryError, match="the champion moved") as e:
        promote("sleepy-fixer", candidate, "gate passed", uri, expected_champion=measured)
    assert "\n" not in str(e.value) and "evaluate it again" in str(e.value)
    assert alias_version("sleepy-fixer", CHAMPION, uri) == champion
    assert alias_version("sleepy-fixer", PREVIOUS, uri) == previous
    assert get_version("sleepy-fixer", candidate, uri).tags == tags


def test_two_runs_registered_models_are_told_apart(tmp_path, capsys):
    """Each sleepy-cycle run registers its own model: `list` names them all, and a command that
    needs one is told which to pick instead of guessing."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    adapter = make_adapter(tmp_path / "adapter", seed=5)
    v = register(adapter, uri, cycle=1, name="sleepy-fixer-run-a")
    register(adapter, uri, cycle=1, name="sleepy-fixer-run-b")
    assert sleepy(uri, "list") == 0
    out = capsys.readouterr().out
    assert "sleepy-fixer-run-a" in out and "sleepy-fixer-run-b" in out and "--name NAME" in out
    assert sleepy(uri, "show", v) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("sleepy registry: error: 2 registered models") and "--name" in err
    assert "sleepy-fixer-run-a" in err and "\n" not in err
    assert sleepy(uri, "--name", "sleepy-fixer-run-a", "show", v) == 0
    assert capsys.readouterr().out.startswith(f"sleepy-fixer-run-a version {v}")


def test_a_versions_description_keeps_a_signatures_placeholders_through_markdown(store):
    """The registry's pages render a description as Markdown, where `<id>` is an HTML tag: the
    gate's reasons name signatures with those placeholders, so they are stored as code."""
    from mlflow import MlflowClient

    from sleepy.registry import describe_version

    uri, versions = store
    version = versions[0]
    describe_version(
        "sleepy-fixer", version, "gate: promote\n- withdrew c3: E0599 no method named <id>", uri
    )
    text = MlflowClient(uri).get_model_version("sleepy-fixer", version).description
    assert text == "gate: promote\n- withdrew c3: E0599 no method named `<id>`"
