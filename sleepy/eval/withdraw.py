"""Route withdrawal from the gate's evidence: a new task adapter that answered frozen koans with an
error signature it never trained on, and lost them, gives those queries back.

The frozen suite's regressions say which koans broke; each candidate episode says, step by step,
which adapter replied and on which signature it was routed (`adapter`, `route_signature`). A
route (new task, signature) is withdrawn when the task did not train on that signature and a
koan it answered by that route regressed. Its queries go where the champion sent them: the
champion's task adapter when it is still in the bundle, else the base model.
"""

from __future__ import annotations

from sleepy.adapters.router import Router


def routes_to_withdraw(
    router: Router,
    new_tasks: set[str],
    lost: list[str],
    candidate_episodes: list,
    champion_episodes: list,
) -> list[dict]:
    """[{task, signature, to, reason, koan_ids}] for the router.json of the candidate's bundle."""
    lost_set = set(lost)
    found: dict[tuple[str, str], set[str]] = {}
    for e in candidate_episodes:
        if e.task_id not in lost_set:
            continue
        for step in e.trajectory:
            task, signature = step.get("adapter"), step.get("route_signature")
            trained = router.table.get(task, {}).get("signatures", [])
            if task in new_tasks and signature and signature not in trained:
                found.setdefault((task, signature), set()).add(e.task_id)
    # where the champion sent each signature (the first step that shows it)
    before: dict[str, str | None] = {}
    for e in champion_episodes:
        for step in e.trajectory:
            if "adapter" in step and step.get("route_signature"):
                before.setdefault(step["route_signature"], step["adapter"])
    out = []
    for (task, signature), ids in sorted(found.items()):
        to = before.get(signature)
        to = to if to in router.table and to not in new_tasks else None
        why = "as the champion did" if signature in before else "the champion never saw it"
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
