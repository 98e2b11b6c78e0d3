"""A static check that refuses the known compile-time reads of host files
(`include_str!("/etc/passwd")`, `#[path = "../.."]`, `.incbin` in asm, ...) before rustc runs.

It is an early, clear message, not the defence: a pattern list always misses a way, so the
compiler itself runs where no host file can be reached (see `Jail.compile_command`)."""

from __future__ import annotations

import re

_INCLUDE = re.compile(r"\binclude(?:_str|_bytes)?\b")
_LITERAL_CALL = re.compile(r"\s*!\s*[(\[{]\s*\"S(\d+)\"\s*[)\]}]")
_PATH_ATTR = re.compile(r"\bpath\s*=\s*\"S(\d+)\"")
# attributes that read a file into the binary
_FILE_ATTR = re.compile(r"\b(gdb_script_file|natvis_file)\s*=\s*\"S(\d+)\"")
_LINK_ATTR = re.compile(r"#\s*!?\s*\[\s*link\s*\(([^\]]*)\]")
_LINK_NAME = re.compile(r"\bname\s*=\s*\"S(\d+)\"")
# assembler directives that read a file, inside a string literal of asm!/global_asm!
_ASM_FILE = re.compile(
    r'(?:^|(?<=[\s;])|(?<=\\n)|(?<=\\t))\.(incbin|include)\b\s*(?:\\?"([^"\\]*))?'
)


def _mask(code: str) -> tuple[str, list[str]]:
    """Code with comments removed and each string literal replaced by "S<index>"."""
    out, literals, i, n = [], [], 0, len(code)
    while i < n:
        c = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j == -1 else j
        elif code.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if code.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif code.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif m := re.compile(r"b?r(#*)\"").match(code, i):
            # raw string: ends at a quote followed by as many #s
            end = code.find('"' + m.group(1), m.end())
            end = n if end == -1 else end
            literals.append(code[m.end() : end])
            out.append(f'"S{len(literals) - 1}"')
            i = end + 1 + len(m.group(1))
        elif c == '"' or (c == "b" and code.startswith('b"', i) and not _ident_before(code, i)):
            j = i + (2 if c == "b" else 1)
            buf = []
            while j < n and code[j] != '"':
                if code[j] == "\\" and j + 1 < n:
                    buf.append(code[j : j + 2])
                    j += 2
                else:
                    buf.append(code[j])
                    j += 1
            literals.append("".join(buf))
            out.append(f'"S{len(literals) - 1}"')
            i = j + 1
        elif c == "'" and (m := re.compile(r"'(?:[^'\\\n]|\\[^\n]{1,10}?)'").match(code, i)):
            out.append("'c'")  # a char literal; lifetimes ('a) fall through unchanged
            i = m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out), literals


def _ident_before(code: str, i: int) -> bool:
    return i > 0 and (code[i - 1].isalnum() or code[i - 1] == "_")


def _outside(path: str) -> bool:
    return path.startswith(("/", "\\", "~")) or ".." in path or ":" in path or "\\" in path


def deny_reason(code: str) -> str | None:
    """Why the code may not be compiled, or None. Only relative paths inside the crate pass."""
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate, as json.loads makes from "\ud800"
        line = code.count("\n", 0, e.start) + 1
        return f"the code is not valid UTF-8 ({ascii(code[e.start])} on line {line})"
    masked, literals = _mask(code)
    for m in _INCLUDE.finditer(masked):
        name = m.group(0)
        call = _LITERAL_CALL.match(masked, m.end())
        if call:
            path = literals[int(call.group(1))]
            if _outside(path):
                return f"{name}! of a path outside the crate ({path!r}) is not allowed"
            continue
        before = masked[max(0, m.start() - 2) : m.start()]
        after = masked[m.end() : m.end() + 4]
        # the bare word `include` is an ordinary name (fn include, x.include(..)); the macros
        # used through a path, a rename or a non-literal argument are how a check gets dodged
        if name != "include" or before == "::" or re.match(r"\s*!|\s+as\b", after):
            return f"{name} with a computed or renamed path is not allowed; use a string literal"
    for m in _PATH_ATTR.finditer(masked):
        path = literals[int(m.group(1))]
        if _outside(path):
            return f"#[path] to a file outside the crate ({path!r}) is not allowed"
    for m in _FILE_ATTR.finditer(masked):
        path = literals[int(m.group(2))]
        if _outside(path):
            return f"{m.group(1)} outside the crate ({path!r}) is not allowed"
    for m in _LINK_ATTR.finditer(masked):
        for name in _LINK_NAME.finditer(m.group(1)):
            lib = literals[int(name.group(1))]
            if "/" in lib or _outside(lib):
                return f"#[link] to a file path ({lib!r}) is not allowed; name a library"
    for literal in literals:
        for m in _ASM_FILE.finditer(literal):
            path = m.group(2) or ""
            if not path or _outside(path):
                return f"assembler .{m.group(1)} of {path or 'a computed path'!r} is not allowed"
    return None
