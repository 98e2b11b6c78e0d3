"""A wheel carries the corpus and the frozen suite (koans/, evalsets/) as sleepy/data/, so an
installed sleepy runs from any directory; `sleepy.config.DATA_ROOT` finds them there. An editable
install reads them from the checkout instead, so it gets no copy."""

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        if version == "standard":
            build_data["force_include"]["koans"] = "sleepy/data/koans"
            build_data["force_include"]["evalsets"] = "sleepy/data/evalsets"
