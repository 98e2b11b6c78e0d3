"""Route withdrawal from the gate's evidence: a new task adapter that answered frozen koans with an
error signature it never trained on, and lost them, gives those queries back.

The frozen suite's regressions say which koans broke; each candidate episode says, step by step,
which adapter replied and on which signature it was routed (`adapter`, `route_signature`). A
route (new task, signature) is withdrawn when the task did not train on that signature and a
koan it answered by that route regressed. Its queries go where the champion's own router sends
them (fed the text the candidate was routed on, which each step records as `route_text`): the
champion's task adapter when it is still in the bundle, else the base model. The champion's
router is asked, not its episodes, because a champion result served from the eval cache has none.
"""

from __future__ import annotations

from sleepy.adapters.router import Router


def routes_to_withdraw(
    router: Router,
    new_tasks: set[str],
    lost: list[str],
    candidate_episodes: list,
    champion: Router | None,
) -> list[dict]:
    """[{task, signature, to, reason, koan_ids}] for the router.json of the candidate's bundle;
    `champion`: the champion bundle's router (None: the champion is the base model or a plain
    adapter, which answers every query itself)."""
    lost_set = set(lost)
    found: dict[tuple[str, str], set[str]] = {}
    texts: dict[tuple[str, str], str | None] = {}
    for e in candidate_episodes:
        if e.task_id not in lost_set:
            continue
        for step in e.trajectory:
            task, signature = step.get("adapter"), step.get("route_signature")
            trained = router.table.get(task, {}).get("signatures", [])
            if task in new_tasks and signature and signature not in trained:
                found.setdefault((task, signature), set()).add(e.task_id)
                texts.setdefault((task, signature), step.get("route_text"))
    out = []
    for (task, signature), ids in sorted(found.items()):
        before = champion.decide(signature, texts[(task, signature)]).task if champion else None
        to = before if before in router.table and before not in new_tasks else None
        why = (
            f"where the champion's router sends it ({before or 'the base model'})"
            if champion
            else "the champion has no router: it answered every query itself"
        )
        out.append(
            {
                "task": task,
                "signature": signature,
                "to": to,
                "reason": (
                    f"{len(ids)} frozen koan(s) regressed when {task} answered an error it never "
                    f"trained on; now sent to {to or 'the base model'} ({why})"
                ),
                "koan_ids": sorted(ids),
            }
        )
    return out
