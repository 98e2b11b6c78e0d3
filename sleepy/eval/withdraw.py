"""Route withdrawal from the gate's evidence: a new task adapter that answered frozen koans with an
error signature it never trained on, and lost them, gives those queries back.

The frozen suite's regressions say which koans broke; the candidate's outcome of each (its
episode's routed steps, kept in the eval cache too) says which adapter replied and on which
signature it was routed (`adapter`, `route_signature`). A
route (new task, signature) is withdrawn when the task did not train on that signature and a
koan it answered by that route regressed. Its queries go where the champion's own router sends
them (fed the text the candidate was routed on, which each step records as `route_text`): the
champion's task adapter when it is still in the bundle, else the base model. The champion's
router is asked, not its episodes, because a champion result served from the eval cache has none.

Families fail with one error too: concurrency's lock without unwrap and result_handling's method
called on a Result are both `E0599 no method named … found for enum Result`. When the task trained
on the signature and the koan it broke is of a family it did not learn, the route is withdrawn for
that koan's text only (`text`): a query on it goes back where the champion sent it when its text is
nearer that koan's than any example the task trained on, and stays with the task otherwise. A
regression in the task's own family is the task's own, and no route is withdrawn for it.
"""

from __future__ import annotations

from sleepy.adapters.router import Router


def routes_to_withdraw(
    router: Router,
    new_tasks: set[str],
    lost: list[str],
    candidate: dict,
    champion: Router | None,
) -> list[dict]:
    """[{task, signature, to, reason, koan_ids}, and `text` for a route withdrawn by text] for the
    router.json of the candidate's bundle; `candidate`: koan id -> the candidate's KoanOutcome
    (its routed steps); `champion`: the champion bundle's router (None: the champion is the base
    model or a plain adapter, which answers every query itself)."""
    found: dict[tuple[str, str, str | None], set[str]] = {}
    families: dict[tuple[str, str, str | None], set[str]] = {}
    texts: dict[tuple[str, str], str | None] = {}
    for e in (candidate[k] for k in lost if k in candidate):
        for step in e.routes:
            task, signature = step.get("adapter"), step.get("route_signature")
            if task not in new_tasks or not signature:
                continue
            entry = router.table.get(task, {})
            text = step.get("route_text")
            if signature not in entry.get("signatures", []):
                key = (task, signature, None)  # an error the task never trained on: all of it
            elif e.family and e.family not in entry.get("families", []) and text:
                key = (task, signature, text)  # its own error, in another family's koan
            else:
                continue  # the task's own mistake in its own family: that regression is its own
            found.setdefault(key, set()).add(e.koan_id)
            families.setdefault(key, set()).add(e.family or "?")
            texts.setdefault((task, signature), text)
    out = []
    for (task, signature, text), ids in sorted(found.items(), key=lambda kv: str(kv[0])):
        asked = text if text is not None else texts[(task, signature)]
        before = champion.decide(signature, asked).task if champion else None
        to = before if before in router.table and before not in new_tasks else None
        why = (
            f"where the champion's router sends it ({before or 'the base model'})"
            if champion
            else "the champion has no router: it answered every query itself"
        )
        where = to or "the base model"
        if text is None:
            reason = (
                f"{len(ids)} frozen koan(s) regressed when {task} answered an error it never "
                f"trained on; now sent to {where} ({why})"
            )
        else:
            reason = (
                f"{len(ids)} frozen koan(s) of {', '.join(sorted(families[(task, signature, text)]))} "
                f"regressed when {task} answered an error it trained on for "
                f"{', '.join(router.table[task].get('families', [])) or 'its own family'}; queries "
                f"nearer this koan's text than {task}'s own examples now go to {where} ({why})"
            )
        entry = {"task": task, "signature": signature, "to": to, "reason": reason}
        if text is not None:
            entry["text"] = text
        out.append(entry | {"koan_ids": sorted(ids)})
    return out
