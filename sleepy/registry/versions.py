"""The MLflow model registry for adapters: register a version, resolve aliases, load a version.

A version is a pyfunc model whose artifact is the PEFT adapter folder; the base model is named in its
config (a hub id, or `sleepy-tiny` for the shipped model), so loading works offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from types import EllipsisType

from sleepy.adapters import load_adapter_info
from sleepy.tiny import MODEL_DIR
from sleepy.tracking import ensure_store


def portable_base(base_model: str | Path) -> str:
    """`sleepy-tiny` for the shipped model (its path differs per checkout), else the id/path as given."""
    try:
        if Path(base_model).resolve() == MODEL_DIR.resolve():
            return "sleepy-tiny"
    except OSError:
        pass
    return str(base_model)


def resolve_base(name: str) -> str:
    return str(MODEL_DIR) if name == "sleepy-tiny" else name


def register_adapter(
    adapter_dir: str | Path,
    base_model: str | Path,
    name: str,
    tags: dict | None = None,
) -> str:
    """Log the adapter as a model in the active run and register it; returns the version number."""
    import mlflow

    # the pyfunc wrapper imports mlflow.pyfunc (seconds, and a warning on import): only
    # registering needs it, not every stage that reads the registry
    from sleepy.registry.pyfunc import AdapterModel

    load_adapter_info(adapter_dir, base_model)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.exceptions import MlflowException

    info = mlflow.pyfunc.log_model(
        name="adapter",
        python_model=AdapterModel(),
        artifacts={"adapter": str(adapter_dir)},
        model_config={"base_model": portable_base(base_model)},
        pip_requirements=[sleepy_requirement()],
    )
    # Registered through the client, not log_model(registered_model_name=...): that path prints
    # "Successfully registered model ..." to the console past every logging switch.
    client = _client(None)  # the active run's store
    try:
        client.create_registered_model(name)
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    mv = client.create_model_version(
        name,
        info.model_uri,
        run_id=info.run_id,
        tags={k: str(v) for k, v in (tags or {}).items()},
        await_creation_for=60,
        model_id=info.model_id,
    )
    return str(mv.version)


def sleepy_requirement() -> str:
    """sleepy as pip can install it again: the source it was installed from (a path or URL, from
    the installed distribution's direct_url.json), else the exact version installed. The bare name
    would install whatever a package index holds under it."""
    try:
        dist = distribution("sleepy")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return f"sleepy @ {Path(__file__).resolve().parents[2].as_uri()}"
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    return f"sleepy @ {direct['url']}" if direct.get("url") else f"sleepy=={dist.version}"


def model_uri(name: str, version_or_alias: str) -> str:
    return (
        f"models:/{name}@{version_or_alias}"
        if not str(version_or_alias).isdigit()
        else f"models:/{name}/{version_or_alias}"
    )


def download_adapter(uri: str, dst: str | Path | None = None, store: str | None = None) -> Path:
    """A registry URI (`models:/sleepy-fixer/3`, `models:/sleepy-fixer@champion`) -> local adapter
    folder, from the registry of the tracking store `store` (the active one when None)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if store:
        ensure_store(store)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri,
            dst_path=str(dst) if dst else None,
            tracking_uri=store,
            registry_uri=store,
        )
    except MlflowException as e:
        raise ValueError(f"cannot load {uri}: {str(e).splitlines()[0]}") from None
    path = Path(local) / "artifacts" / "adapter"
    if (
        not path.is_dir()
    ):  # MLflow keeps the logged folder's own name (e.g. a consolidated `merged/`)
        found = sorted(p.parent for p in (Path(local) / "artifacts").glob("*/adapter_config.json"))
        path = found[0] if len(found) == 1 else path
    if not path.is_dir():
        raise ValueError(
            f"{uri} holds no adapter folder (artifacts/adapter): not a sleepy adapter model"
        )
    return path


# -- champion and previous: the aliases the gate moves ---------------------------------------------

CHAMPION = "champion"
PREVIOUS = "previous"


class RegistryError(ValueError):
    """A registry request that cannot be met; the message is one line saying what to fix."""


def _client(uri: str | None = None):
    """An MlflowClient of the store at `uri` (the registry lives in the tracking store), or of the
    active one when None. MLflow's global tracking URI stays where it was: a run started later in
    this process is not moved to another store."""
    import mlflow

    if uri:
        ensure_store(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(name: str, alias: str, uri: str | None = None) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client(uri).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def get_version(name: str, version_or_alias: str, uri: str | None = None):
    """The ModelVersion for a number or an alias; RegistryError when there is none."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    try:
        if str(version_or_alias).isdigit():
            return client.get_model_version(name, str(version_or_alias))
        return client.get_model_version_by_alias(name, str(version_or_alias))
    except MlflowException:
        known = ", ".join(str(v.version) for v in list_versions(name, uri)) or "none"
        raise RegistryError(
            f"no version '{version_or_alias}' of model '{name}' (versions: {known})"
        ) from None


def registered_models(uri: str | None = None) -> list:
    """Every registered model of the store, the most recently updated first."""
    found = _client(uri).search_registered_models()
    return sorted(found, key=lambda m: m.last_updated_timestamp or 0, reverse=True)


def list_versions(name: str, uri: str | None = None) -> list:
    """Every version of a registered model, oldest first ([] when the model does not exist)."""
    versions = _client(uri).search_model_versions(f"name = '{name}'")
    return sorted(versions, key=lambda v: int(v.version))


# How long a promotion waits for another one on the same store before it gives up: each holds the
# lock for a few registry writes, so a wait this long means a stuck process, not a queue.
ALIAS_LOCK_WAIT_S = 120.0


def _alias_lock_path(uri: str) -> Path:
    """The lock file that promotions and rollbacks of one store take turns on.

    Beside a sqlite store, so every process on this machine that writes the store sees it. An
    MLflow server (or any other store) cannot be locked from here: the lock then lives in this
    user's cache, keyed by the URI, which serialises this machine's promotions; one from another
    machine is caught by reading the aliases back after the move (`promote`).
    """
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :]).expanduser().resolve().with_suffix(".aliases.lock")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sleepy"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / f"aliases-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"


@contextmanager
def _moving_aliases(name: str, uri: str | None) -> Iterator[None]:
    """Held around read champion -> set previous -> set champion -> tags: two promotions at once
    would both read the same old champion, both set `previous` to it (sqlite refuses the second
    insert of the alias with an IntegrityError) and leave tags that tell a history that never
    happened."""
    import mlflow
    from filelock import FileLock, Timeout

    lock = _alias_lock_path(uri or mlflow.get_tracking_uri())
    try:
        with FileLock(str(lock), timeout=ALIAS_LOCK_WAIT_S):
            yield
    except Timeout:
        raise RegistryError(
            f"another promotion or rollback of '{name}' has held {lock} for "
            f"{ALIAS_LOCK_WAIT_S:.0f} s: wait for it, or remove the lock file if no sleepy "
            "process is running"
        ) from None


def promote(
    name: str,
    version: str,
    reason: str,
    uri: str | None = None,
    expected_champion: str | None | EllipsisType = ...,
) -> str | None:
    """Point `champion` at `version` and `previous` at the old champion; returns the old one.

    The reason is kept as a tag on the new champion's version, so `registry show` says why.
    `expected_champion` (a version, or None for "no champion yet") is the champion the caller
    compared `version` with: when another promotion moved the alias since, this one is refused,
    since the comparison no longer says anything about the champion it would replace.
    """
    client = _client(uri)
    version = str(get_version(name, version, uri).version)
    with _moving_aliases(name, uri):
        old = alias_version(name, CHAMPION, uri)
        if old == version:
            raise RegistryError(f"version {version} of '{name}' is already the champion")
        if expected_champion is not ... and old != expected_champion:
            raise RegistryError(
                f"not promoting version {version} of '{name}': the champion moved from "
                f"{_named(expected_champion)} to {_named(old)} while it was being evaluated; "
                f"evaluate it again against {_named(old)}"
            )
        if old is not None:
            client.set_registered_model_alias(name, PREVIOUS, old)
        client.set_registered_model_alias(name, CHAMPION, version)
        # A writer that does not share the lock (another machine on an MLflow server) shows
        # here; the tags are written only for a move that held, so they stay true.
        champion_now, previous_now = (alias_version(name, a, uri) for a in (CHAMPION, PREVIOUS))
        if champion_now != version or (old is not None and previous_now != old):
            raise RegistryError(
                f"promoting version {version} of '{name}' raced another promotion: the "
                f"champion is now {_named(champion_now)} and previous {_named(previous_now)}; "
                "check 'sleepy registry list' and promote again"
            )
        client.set_model_version_tag(name, version, "promoted_reason", reason)
        if old is not None:
            why = f"replaced by version {version}: {reason}"
            client.set_model_version_tag(name, old, "demoted_reason", why)
    return old


def _named(version: str | None) -> str:
    return f"version {version}" if version is not None else "no champion"


def rollback(name: str, reason: str, uri: str | None = None) -> tuple[str, str]:
    """Move `champion` back to `previous`; returns (from_version, to_version). Why goes in tags."""
    client = _client(uri)
    with _moving_aliases(name, uri):
        current = alias_version(name, CHAMPION, uri)
        prev = alias_version(name, PREVIOUS, uri)
        if prev is None:
            raise RegistryError(f"model '{name}' has no '{PREVIOUS}' version to roll back to")
        if current is None:
            raise RegistryError(f"model '{name}' has no '{CHAMPION}' to roll back from")
        client.set_registered_model_alias(name, CHAMPION, prev)
        client.delete_registered_model_alias(name, PREVIOUS)
        client.set_model_version_tag(name, current, "rolled_back", reason)
        why = f"rollback from version {current}: {reason}"
        client.set_model_version_tag(name, prev, "restored_reason", why)
    return current, prev


def tag_version(name: str, version: str, tags: dict, uri: str | None = None) -> None:
    client = _client(uri)
    for k, v in tags.items():
        # MLflow caps tag values at 5000 characters
        client.set_model_version_tag(name, str(version), k, str(v)[:4900])


def describe_version(name: str, version: str, text: str, uri: str | None = None) -> None:
    """The version's description: what the registry's pages show in full (the gate's decision).
    The pages render it as Markdown, where a signature's `<id>` or `<type>` would be read as an
    HTML tag and vanish: each is set as code."""
    text = re.sub(r"(?<!`)(<\w+>)(?!`)", r"`\1`", text)
    _client(uri).update_model_version(name, str(version), description=text[:4900])


def aliases(name: str, uri: str | None = None) -> dict[str, list[str]]:
    """version -> its aliases ({} without the model); version searches leave aliases out."""
    from mlflow.exceptions import MlflowException

    try:
        found = _client(uri).get_registered_model(name).aliases or {}
    except MlflowException:
        return {}
    out: dict[str, list[str]] = {}
    for alias, version in found.items():
        out.setdefault(str(version), []).append(alias)
    return {v: sorted(a) for v, a in out.items()}
