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
    assert lines[0].split()[:2] == ["version", "aliases"] and len(lines) == 4
    assert lines[1].split()[:2] == [v1, PREVIOUS] and lines[2].split()[:2] == [v2, CHAMPION]

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
