"""Edit formats: how a model's reply changes src/main.rs, and the canonical reply for an edit.

`render(old, new)` writes the reply that makes an edit (training data is built from it);
`apply(code, reply)` performs a reply's edit or raises EditError with a one-line reason that the
agent shows the model as its observation.
"""

from __future__ import annotations

import difflib
import re

FILE = "src/main.rs"


class EditError(ValueError):
    """A reply that does not make a usable edit; the message is one line saying why."""


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _join(lines: list[str], like: str) -> str:
    """Lines back to text, keeping whether the original ended with a newline."""
    text = "\n".join(lines)
    return text + "\n" if (like.endswith("\n") or not like) and lines else text


def _find(hay: list[str], needle: list[str]) -> list[int]:
    """Start indices where `needle` is a run of whole lines of `hay`, trailing spaces ignored;
    if there is none, indentation is ignored too (models often get it wrong)."""
    n = len(needle)
    for key in (str.rstrip, str.strip):
        want = [key(s) for s in needle]
        have = [key(s) for s in hay]
        found = [i for i in range(len(hay) - n + 1) if have[i : i + n] == want]
        if found:
            return found
    return []


def _reindent(found: list[str], search: list[str], replace: list[str]) -> list[str]:
    """Shift the replacement by the indentation difference between the file and the SEARCH text."""
    first = next((i for i, s in enumerate(search) if s.strip()), None)
    if first is None:
        return replace
    have = len(found[first]) - len(found[first].lstrip())
    want = len(search[first]) - len(search[first].lstrip())
    if have == want:
        return replace
    if have > want:
        pad = found[first][: have - want]
        return [pad + s if s.strip() else s for s in replace]
    cut = want - have
    return [s[cut:] if s[:cut].strip() == "" else s.lstrip() for s in replace]


class EditFormat:
    name: str = ""
    #: the instruction a prompt template shows for this format
    instructions: str = ""

    def render(self, old_code: str, new_code: str) -> str:
        raise NotImplementedError

    def apply(self, code: str, reply: str) -> str:
        raise NotImplementedError


class WholeFile(EditFormat):
    """The reply holds the whole new program in one ```rust fenced block."""

    name = "whole_file"
    instructions = "Reply with the whole fixed program in one ```rust code block."
    _FENCE = re.compile(r"^```[ \t]*([\w+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)

    def render(self, old_code: str, new_code: str) -> str:
        body = new_code if new_code.endswith("\n") else new_code + "\n"
        return f"```rust\n{body}```\n"

    def apply(self, code: str, reply: str) -> str:
        blocks = self._FENCE.findall(reply)
        if not blocks:
            raise EditError(
                "no ```rust code block found: reply with the whole fixed program in one"
            )
        rust = [b for lang, b in blocks if lang in ("rust", "rs")] or [b for _, b in blocks]
        new = max(rust, key=len)
        if not new.strip():
            raise EditError("the code block is empty: reply with the whole fixed program")
        return new if code.endswith("\n") or not code else new.rstrip("\n")


class SearchReplace(EditFormat):
    """Aider-style blocks holding only the changed lines plus enough context to be unique."""

    name = "search_replace"
    instructions = (
        "Reply with SEARCH/REPLACE blocks only:\n<<<<<<< SEARCH\nlines to change\n=======\n"
        "new lines\n>>>>>>> REPLACE"
    )
    _HEAD = re.compile(r"^<{5,9} ?SEARCH\s*$")
    _MID = re.compile(r"^={5,9}\s*$")
    _TAIL = re.compile(r"^>{5,9} ?REPLACE\s*$")

    def blocks(self, reply: str) -> list[tuple[list[str], list[str]]]:
        out, lines, i = [], reply.splitlines(), 0
        while i < len(lines):
            if not self._HEAD.match(lines[i]):
                i += 1
                continue
            j = i + 1
            while j < len(lines) and not self._MID.match(lines[j]):
                if self._HEAD.match(lines[j]) or self._TAIL.match(lines[j]):
                    raise EditError(f"SEARCH block at reply line {i + 1} has no ======= divider")
                j += 1
            if j == len(lines):
                raise EditError(f"SEARCH block at reply line {i + 1} has no ======= divider")
            k = j + 1
            while k < len(lines) and not self._TAIL.match(lines[k]):
                if self._HEAD.match(lines[k]) or self._MID.match(lines[k]):
                    raise EditError(
                        f"SEARCH block at reply line {i + 1} is not closed by >>>>>>> REPLACE"
                    )
                k += 1
            if k == len(lines):
                raise EditError(
                    f"SEARCH block at reply line {i + 1} is not closed by >>>>>>> REPLACE"
                )
            out.append((lines[i + 1 : j], lines[j + 1 : k]))
            i = k + 1
        return out

    def apply(self, code: str, reply: str) -> str:
        blocks = self.blocks(reply)
        if not blocks:
            raise EditError(
                "no SEARCH/REPLACE block found: reply with <<<<<<< SEARCH ... ======= ... >>>>>>> REPLACE"
            )
        lines = _lines(code)
        for search, replace in blocks:
            if not any(s.strip() for s in search):
                raise EditError("a SEARCH section is empty: copy the lines to change from the code")
            at = _find(lines, search)
            if not at:
                raise EditError(
                    f"SEARCH text not found in {FILE}: `{next(s for s in search if s.strip()).strip()}`"
                )
            if len(at) > 1:
                raise EditError(
                    f"SEARCH text matches {len(at)} places in {FILE}: add a nearby line to make it unique"
                )
            i, n = at[0], len(search)
            lines[i : i + n] = _reindent(lines[i : i + n], search, replace)
        new = _join(lines, code)
        if new == code:
            raise EditError("the SEARCH/REPLACE blocks change nothing")
        return new

    def render(self, old_code: str, new_code: str) -> str:
        old, new = _lines(old_code), _lines(new_code)
        ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
        hunks = [[i1, i2, j1, j2] for tag, i1, i2, j1, j2 in ops if tag != "equal"]
        hunks = self._grow(old, hunks)
        reply = "".join(self._block(old, new, h) for h in hunks)
        try:
            if self.apply(old_code, reply) == new_code:
                return reply
        except EditError:
            pass
        # Blocks applied in turn can interact (an edit creating a later block's text):
        # one block spanning every change is always exact.
        span = [[hunks[0][0], hunks[-1][1], hunks[0][2], hunks[-1][3]]]
        return "".join(self._block(old, new, h) for h in self._grow(old, span))

    @staticmethod
    def _block(old: list[str], new: list[str], h: list[int]) -> str:
        i1, i2, j1, j2 = h
        body = [*old[i1:i2]], [*new[j1:j2]]
        text = "<<<<<<< SEARCH\n" + "".join(s + "\n" for s in body[0]) + "=======\n"
        return text + "".join(s + "\n" for s in body[1]) + ">>>>>>> REPLACE\n"

    @staticmethod
    def _grow(old: list[str], hunks: list[list[int]]) -> list[list[int]]:
        """Add context lines, alternating above and below, until each SEARCH text is unique and
        not blank; merge a hunk into its neighbour when there is no room left between them."""
        k = 0
        while k < len(hunks):
            h, up = hunks[k], True
            while not (
                any(s.strip() for s in old[h[0] : h[1]]) and len(_find(old, old[h[0] : h[1]])) == 1
            ):
                lo = hunks[k - 1][1] if k > 0 else 0
                hi = hunks[k + 1][0] if k + 1 < len(hunks) else len(old)
                if h[0] > lo and (up or h[1] >= hi):
                    h[0], h[2] = h[0] - 1, h[2] - 1
                elif h[1] < hi:
                    h[1], h[3] = h[1] + 1, h[3] + 1
                elif k + 1 < len(hunks):
                    nxt = hunks.pop(k + 1)
                    h[1], h[3] = nxt[1], nxt[3]
                elif k > 0:
                    prev = hunks.pop(k - 1)
                    h[0], h[2] = prev[0], prev[2]
                    k -= 1
                else:
                    break  # the whole file
                up = not up
            k += 1
        return hunks


class UnifiedDiff(EditFormat):
    """A unified diff of src/main.rs; hunks are located by their text, the line numbers are hints."""

    name = "udiff"
    instructions = (
        "Reply with a unified diff of src/main.rs (--- a/src/main.rs, +++ b/src/main.rs, @@ hunks)."
    )
    _HUNK = re.compile(r"^@@ ?-?(\d+)?(?:,\d+)?(?: \+\d+(?:,\d+)?)? ?@@")

    def render(self, old_code: str, new_code: str) -> str:
        diff = difflib.unified_diff(
            _lines(old_code), _lines(new_code), f"a/{FILE}", f"b/{FILE}", lineterm=""
        )
        return "\n".join(diff) + "\n"

    def hunks(self, reply: str) -> list[tuple[int | None, list[str], list[str]]]:
        text = reply
        fenced = re.search(r"^```[\w-]*\n(.*?)^```", reply, re.S | re.M)
        if fenced and "@@" in fenced.group(1):
            text = fenced.group(1)
        out, cur = [], None
        for line in text.splitlines():
            m = self._HUNK.match(line)
            if m:
                cur = (int(m.group(1)) if m.group(1) else None, [], [])
                out.append(cur)
            elif cur is None or line.startswith(("--- ", "+++ ", "\\ No newline")):
                continue
            elif line.startswith("-"):
                cur[1].append(line[1:])
            elif line.startswith("+"):
                cur[2].append(line[1:])
            elif line.startswith(" ") or line == "":
                cur[1].append(line[1:])
                cur[2].append(line[1:])
            elif line.startswith("```"):
                cur = None
            else:
                raise EditError(
                    f"diff line does not start with ' ', '-' or '+': `{line.strip()[:60]}`"
                )
        return out

    def apply(self, code: str, reply: str) -> str:
        hunks = self.hunks(reply)
        if not hunks:
            raise EditError("no @@ hunk found: reply with a unified diff of src/main.rs")
        lines, shift = _lines(code), 0
        for start, before, after in hunks:
            while (
                before
                and after
                and before[-1] == after[-1] == ""
                and not (lines and lines[-1] == "")
            ):
                before, after = before[:-1], after[:-1]  # a trailing blank line the model added
            if not before:
                at = (
                    [min(max((start or 1) - 1 + shift, 0), len(lines))] if start is not None else []
                )
                if not at:
                    raise EditError(
                        "a hunk has no context lines: include the lines around the change"
                    )
            else:
                at = _find(lines, before)
                if not at:
                    first = next((s for s in before if s.strip()), before[0]).strip()
                    raise EditError(f"hunk context not found in {FILE}: `{first}`")
                if len(at) > 1:
                    near = (start or 1) - 1 + shift
                    at = [min(at, key=lambda i: abs(i - near))]
            i = at[0]
            lines[i : i + len(before)] = _reindent(lines[i : i + len(before)], before, after)
            shift += len(after) - len(before)
        new = _join(lines, code)
        if new == code:
            raise EditError("the diff changes nothing")
        return new


class LineEdits(EditFormat):
    """Blocks anchored on line numbers: `@@ 12` (or `@@ 12-14`) and the new text of those lines.

    The reply names lines instead of copying them, so a small model writes only the lines it
    changes; the numbers are those of the program it was shown (rustc's diagnostics carry them),
    and every block refers to the program before any of the reply's edits.
    """

    name = "lines"
    instructions = (
        "Reply with line edits only: a header `@@ N` (or `@@ N-M`) naming lines of the program, "
        "then their new text (nothing to delete them)."
    )
    _HEAD = re.compile(r"^@@ ?(\d+)(?: ?- ?(\d+))? ?(?:@@)?\s*$")

    def blocks(self, reply: str) -> list[tuple[int, int, list[str]]]:
        """(first, last, new lines) for each block, 1-based and inclusive."""
        out: list[tuple[int, int, list[str]]] = []
        for line in reply.splitlines():
            m = self._HEAD.match(line)
            if m:
                first = int(m.group(1))
                out.append((first, int(m.group(2) or first), []))
            elif out:
                out[-1][2].append(line)
        return out

    def apply(self, code: str, reply: str) -> str:
        blocks = self.blocks(reply)
        if not blocks:
            raise EditError("no `@@ N` line edit found: reply with @@ N and the new text of line N")
        lines = _lines(code)
        taken: list[tuple[int, int]] = []
        for first, last, _ in blocks:
            if not 1 <= first <= last <= len(lines):
                raise EditError(
                    f"@@ {first}-{last}: {FILE} has lines 1-{len(lines)}, name lines within it"
                )
            if any(first <= b and a <= last for a, b in taken):
                raise EditError(f"@@ {first}-{last} overlaps another block: edit each line once")
            taken.append((first, last))
        for first, last, new in sorted(blocks, key=lambda b: -b[0]):
            lines[first - 1 : last] = new
        out = _join(lines, code)
        if out == code:
            raise EditError("the line edits change nothing")
        return out

    def render(self, old_code: str, new_code: str) -> str:
        old, new = _lines(old_code), _lines(new_code)
        ops = difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes()
        hunks = []
        for tag, i1, i2, j1, j2 in ops:
            if tag == "equal":
                continue
            if i1 == i2:  # an insertion is anchored on the line above it (or below, at the top)
                if i1 > 0:
                    i1, j1 = i1 - 1, j1 - 1
                else:
                    i2, j2 = i2 + 1, j2 + 1
            hunks.append((i1, i2, j1, j2))
        reply = "".join(self._block(old, new, h) for h in hunks)
        try:
            if self.apply(old_code, reply) == new_code:
                return reply
        except EditError:
            pass
        # neighbouring anchors can collide: one block over every change is always exact
        span = (hunks[0][0], hunks[-1][1], hunks[0][2], hunks[-1][3])
        return self._block(old, new, span)

    @staticmethod
    def _block(old: list[str], new: list[str], h: tuple[int, int, int, int]) -> str:
        i1, i2, j1, j2 = h
        head = f"@@ {i1 + 1}" if i2 - i1 == 1 else f"@@ {i1 + 1}-{i2}"
        return head + "\n" + "".join(s + "\n" for s in new[j1:j2])


EDIT_FORMATS: dict[str, type[EditFormat]] = {
    f.name: f for f in (WholeFile, SearchReplace, UnifiedDiff, LineEdits)
}


def get_edit_format(name: str) -> EditFormat:
    try:
        return EDIT_FORMATS[name]()
    except KeyError:
        raise ValueError(
            f"unknown edit format '{name}' (choose one of {sorted(EDIT_FORMATS)})"
        ) from None
