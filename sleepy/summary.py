"""The closing table of a lineage of cycles, in words: what each cycle learned, before and after,
whether earlier families kept their rate, and the gate's decision. sleepy-cycle prints it,
`sleepy report` writes it as markdown, a sweep's summary puts one line per job beside it.
"""

from __future__ import annotations

import re

from rich.console import Console, ConsoleOptions
from rich.table import Table
from rich.text import Text


class ReportError(ValueError):
    """Nothing to report; the message says where it looked."""


def _family_metrics(metrics: dict, prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}


def cycle_summaries(uri: str, experiment: str, lineage: str | None = None) -> tuple[str, list]:
    """The cycle rows of one lineage (default: the newest), as sleepy-cycle summarised them."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise ReportError(f"no experiment '{experiment}' in {uri}: run sleepy-cycle first")
    query = "tags.stage = 'cycle' and status = 'FINISHED'"
    runs = client.search_runs([exp.experiment_id], query, order_by=["attributes.start_time DESC"])
    runs = [r for r in runs if "learning_pass_rate" in r.data.metrics]
    if lineage is None and runs:
        lineage = runs[0].data.tags.get("lineage")
    runs = [r for r in runs if r.data.tags.get("lineage") == lineage]
    if not runs:
        raise ReportError(f"no finished cycle with a learning set for lineage '{lineage}' in {uri}")
    rows = []
    for r in sorted(runs, key=lambda r: int(r.data.tags.get("cycle", 0))):
        m = r.data.metrics
        rows.append(
            {
                "cycle": int(r.data.tags["cycle"]),
                "families": [f for f in r.data.tags.get("families", "").split(",") if f],
                **{
                    k: m.get(k, 0.0)
                    for k in (
                        "learning_pass_rate",
                        "champion_learning_pass_rate",
                        "repeat_error_rate",
                        "champion_repeat_error_rate",
                        "regressions",
                        "promoted",
                    )
                },
                "learning_family": _family_metrics(m, "learning_pass_rate_"),
                "champion_learning_family": _family_metrics(m, "champion_learning_pass_rate_"),
                "decision": r.data.tags.get("decision", ""),
                **{k: m[k] for k in NEW_PROGRAMS if k in m},
            }
        )
    return str(lineage), rows


LEGEND = (
    "its set: the learned family's share of its learning set (fresh programs with the mistakes "
    "the days failed on, never trained on), before (champion) → after (candidate); learning set: "
    "the whole set; new programs: the same mistakes in programs people wrote that the lineage never "
    "saw (when learning_set.programs is set); repeat errors: failures with an error the lineage already failed with; "
    "frozen: koans of the frozen suite the champion passed and the candidate fails; earlier "
    "families: their rate right after their own sleep → now (kept: within 5 points)."
)


NEW_PROGRAMS = ("new_programs_pass_rate", "champion_new_programs_pass_rate")


def new_programs(s: dict) -> str:
    """The learning set's new programs (mistakes in programs never seen), before → after; "—"
    for a cycle measured without them (learning_set.programs unset)."""
    if "new_programs_pass_rate" not in s:
        return "—"
    return f"{s['champion_new_programs_pass_rate']:.0%} → {s['new_programs_pass_rate']:.0%}"


def kept_families(summaries: list[dict], tolerance: float = 0.05) -> list[dict[str, tuple]]:
    """Per cycle, each earlier family: (rate right after its own sleep, rate now, kept?)."""
    learned_at: dict[str, float] = {}
    out = []
    for s in summaries:
        now = s["learning_family"]
        out.append(
            {
                f: (post, now.get(f, 0.0), now.get(f, 0.0) >= post - tolerance)
                for f, post in learned_at.items()
            }
        )
        if s["promoted"]:
            learned_at.update({f: now.get(f, 0.0) for f in s["families"]})
    return out


def own_gain(s: dict) -> str:
    """The learned family's own learning-set rate, before → after this cycle's sleep."""
    return "; ".join(
        f"{s['champion_learning_family'].get(f, 0.0):.0%} → {s['learning_family'].get(f, 0.0):.0%}"
        for f in s["families"]
    )


def _longest_word(text: str) -> int:
    """The longest run a line may not break: a word, or `before → after` as a whole."""
    words = re.split(r"(?<!→) (?!→)|\n", text)
    return max((len(w) for w in words), default=0)


class FittedTable:
    """A table that wraps between words, never inside one: each column is at least as wide as
    its longest word, so at 100 columns nothing is cut to `…`. On a console too narrow for that
    it prints as a list instead, a block per row with the column names before the values."""

    def __init__(self, title: str, headers: list[str], rows: list[list[str]]):
        self.title, self.headers, self.rows = title, headers, rows

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def min_widths(self) -> list[int]:
        """Per column, its longest word (header or cell): narrower would cut a word."""
        return [
            max([_longest_word(h)] + [_longest_word(_plain(r[i])) for r in self.rows])
            for i, h in enumerate(self.headers)
        ]

    def widths(self, available: int) -> list[int] | None:
        """Column widths within `available` characters: each column's longest line, the
        columns with the most room to wrap narrowed first, none below its longest word; None
        when even that does not fit."""
        mins = self.min_widths()
        widths = [
            max([len(h)] + [max(map(len, _plain(r[i]).splitlines() or [""])) for r in self.rows])
            for i, h in enumerate(self.headers)
        ]
        room = available - 2 * (len(widths) - 1)  # a space each side between columns
        if sum(mins) > room:
            return None
        while sum(widths) > room:
            i = max(range(len(widths)), key=lambda j: widths[j] - mins[j])
            widths[i] -= 1
        return widths

    def table(self, widths: list[int]) -> Table:
        table = Table(title=self.title, box=None, pad_edge=False, header_style="bold underline")
        for h, width in zip(self.headers, widths, strict=True):
            table.add_column(h, width=width, overflow="fold")
        for r in self.rows:
            table.add_row(*r)
        return table

    def __rich_console__(self, console: Console, options: ConsoleOptions):
        widths = self.widths(options.max_width)
        if widths is not None:
            yield self.table(widths)
            return
        yield Text(self.title, style="bold")
        for r in self.rows:
            yield Text.from_markup(f"[bold]{self.headers[0]} {r[0]}[/]")
            for h, v in zip(self.headers[1:], r[1:], strict=True):
                yield Text.from_markup(f"  {h}: " + v.replace("\n", "; "))


def fitted_table(title: str, headers: list[str], rows: list[list[str]]) -> FittedTable:
    return FittedTable(title, headers, rows)


def _plain(cell: str) -> str:
    return re.sub(r"\[/?[a-z ]*\]", "", cell)


def summary_table(summaries: list[dict], title: str) -> FittedTable:
    """The closing table, in words: what each cycle learned and whether it kept the rest."""
    headers = [
        "cycle",
        "learned",
        "its set",
        "learning set",
        "repeat errors",
        "frozen regressions",
        "earlier families",
        "gate",
    ]
    with_new = any("new_programs_pass_rate" in s for s in summaries)
    if with_new:
        headers.insert(4, "new programs")
    # a routing backend: koans of families the cycle did not learn that its new adapter answered
    routed = any(s.get("other_families_by_family") for s in summaries)
    if routed:
        headers.insert(-1, "other families → new adapter")
    rows = []
    for s, kept in zip(summaries, kept_families(summaries), strict=True):
        earlier = (
            "\n".join(
                f"{f} {post:.0%} → {now:.0%} {'kept' if ok else '[red]LOST[/]'}"
                for f, (post, now, ok) in kept.items()
            )
            or "—"
        )
        verdict = s["decision"].split(":")[0]
        rows.append(
            [
                str(s["cycle"]),
                ", ".join(s["families"]),
                own_gain(s),
                f"{s['champion_learning_pass_rate']:.0%} → {s['learning_pass_rate']:.0%}",
                f"{s['champion_repeat_error_rate']:.0%} → {s['repeat_error_rate']:.0%}",
                str(int(s["regressions"])),
                earlier,
                f"[green]{verdict}[/]" if verdict == "promote" else f"[red]{verdict}[/]",
            ]
        )
        if with_new:
            rows[-1].insert(4, new_programs(s))
        if routed:
            by_family = s.get("other_families_by_family") or {}
            rows[-1].insert(-1, "\n".join(f"{f} {n}" for f, n in sorted(by_family.items())) or "0")
    return fitted_table(title, headers, rows)
