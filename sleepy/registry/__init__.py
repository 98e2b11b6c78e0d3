"""The MLflow model registry for adapters: versions, the champion and previous aliases the gate
moves, and `sleepy registry` to list, show, promote and roll back by hand."""

from sleepy.registry.versions import (
    CHAMPION,
    PREVIOUS,
    RegistryError,
    alias_version,
    aliases,
    describe_version,
    download_adapter,
    get_version,
    list_versions,
    model_uri,
    portable_base,
    promote,
    register_adapter,
    registered_models,
    resolve_base,
    rollback,
    tag_version,
)

__all__ = [
    "CHAMPION",
    "PREVIOUS",
    "RegistryError",
    "alias_version",
    "aliases",
    "describe_version",
    "download_adapter",
    "get_version",
    "list_versions",
    "model_uri",
    "portable_base",
    "promote",
    "register_adapter",
    "registered_models",
    "resolve_base",
    "rollback",
    "tag_version",
]
