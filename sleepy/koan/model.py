"""The koan: a broken Rust program, the error it gives, and its fix. Loading, hashing, saving."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from sleepy.files import write_atomic

FAMILIES: tuple[str, ...] = (
    "borrow_checker",
    "lifetimes",
    "trait_bounds",
    "result_handling",
    "type_mismatch",
    "mutability",
    "closures_iterators",
    "concurrency",
)
KINDS = ("compile", "test")
SOURCES = ("handwritten", "generated", "imported", "mutated")
EDITIONS = ("2015", "2018", "2021", "2024")
_CODE_RE = re.compile(r"^E\d{4}$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
# An id is its koan's file name (<family>/<id>.json), and file systems cap a name at 255 bytes; a
# path-derived id (an imported file 1,000 folders deep) would pass that. 100 is well past the
# longest id sleepy makes from a name (60 in the corpus) and keeps ids readable in a table row.
MAX_ID_LEN = 100


class KoanError(ValueError):
    """A koan file that cannot be used; the message names the file, the field and what to fix."""


@dataclass(frozen=True)
class Koan:
    id: str
    family: str
    description: str
    buggy_code: str
    correct_code: str
    expected_error: str
    kind: str = "compile"
    expected_code: str | None = None
    pattern: str = ""
    source: str = "handwritten"
    edition: str = "2021"
    expected_stdout: str | None = None
    # the program's output differs between runs (it reads the clock, threads race to print):
    # its stdout is not compared, only that it runs and exits cleanly
    stdout_varies: bool = False
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def has_main(self) -> bool:
        return re.search(r"\bfn\s+main\s*\(", self.correct_code) is not None

    @property
    def content_hash(self) -> str:
        return content_hash(self.buggy_code, self.correct_code)

    @property
    def frozen_hash(self) -> str:
        """Every field that decides a verdict or what the agent is shown, byte for byte.

        `content_hash` forgives comments and whitespace (it names the code, and generated ids are
        built from it); a frozen koan must not change at all, so this one forgives nothing.
        """
        return frozen_hash(self)

    @property
    def normalized_hash(self) -> str:
        """The code with names, literals and layout abstracted (`normalized_form`): equal for a
        koan and its renamed copy, which the leakage guard must treat as the same koan."""
        h = hashlib.sha256()
        h.update(normalized_form(self.buggy_code).encode())
        h.update(b"\x00")
        h.update(normalized_form(self.correct_code).encode())
        return h.hexdigest()[:16]

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["meta"]:
            d.pop("meta")
        if not d["stdout_varies"]:  # left out when false: koans written before it hash the same
            d.pop("stdout_varies")
        return d

    @classmethod
    def from_dict(cls, data: dict, where: str = "<dict>") -> Koan:
        return _parse(data, where)


def normalize_code(code: str) -> str:
    """Code with comments removed and whitespace collapsed: equal for cosmetic variants."""
    code = re.sub(r"//[^\n]*", "", code)
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    return " ".join(code.split())


# Words of Rust that are not the program's own names: kept as they are by `normalized_form`.
_RUST_WORDS = frozenset(
    "as async await break const continue crate dyn else enum extern false fn for if impl in let "
    "loop match mod move mut pub ref return self Self static struct super trait true type unsafe "
    "use where while union macro_rules "
    "i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str".split()
)
_TOKEN_RE = re.compile(
    r"""(?P<comment>//[^\n]*|/\*.*?\*/)
    |(?P<str>b?r(?P<hashes>\#*)".*?"(?P=hashes)|b?"(?:[^"\\]|\\.)*")
    |(?P<char>b?'(?:[^'\\]|\\.[^']*)')
    |(?P<lifetime>'[A-Za-z_]\w*)
    |(?P<num>\d[\w.]*)
    |(?P<ident>[A-Za-z_]\w*)
    |(?P<space>\s+)
    |(?P<other>.)""",
    re.S | re.X,
)


def normalized_form(code: str) -> str:
    """The code as error signatures see messages: names, literals and layout abstracted.

    Comments and whitespace go; string, char and number literals become `<str>`, `<char>`,
    `<num>`; each of the program's own names (anything but a Rust keyword or primitive type)
    becomes `v<n>`, numbered by first appearance, so a consistently renamed copy of a program has
    the same form while programs that use names differently do not. Public: the leakage guard and
    the eval's learning-set checks compare koans with it.
    """
    names: dict[str, str] = {}
    out: list[str] = []
    for m in _TOKEN_RE.finditer(code):
        kind, tok = m.lastgroup, m.group()
        if kind == "hashes":  # the inner group of a raw string; its outer group is "str"
            kind = "str"
        if kind in ("comment", "space"):
            continue
        if kind == "ident":
            tok = tok if tok in _RUST_WORDS else names.setdefault(tok, f"v{len(names)}")
        elif kind == "lifetime":
            tok = "'" + names.setdefault(tok, f"v{len(names)}")
        elif kind in ("str", "char", "num"):
            tok = f"<{kind}>"
        out.append(tok)
    return " ".join(out)


def frozen_hash(koan: Koan) -> str:
    fields_ = {k: v for k, v in koan.to_dict().items() if k != "meta"}
    return hashlib.sha256(json.dumps(fields_, sort_keys=True).encode()).hexdigest()[:16]


def capped_id(slug: str, room: int = MAX_ID_LEN) -> str:
    """`slug` in at most `room` characters: a longer one is cut and ends in a hash of the whole,
    so two long slugs that begin alike stay apart."""
    if len(slug) <= room:
        return slug
    tail = hashlib.sha256(slug.encode()).hexdigest()[:8]
    return f"{slug[: room - len(tail) - 1].rstrip('-_')}-{tail}"


def content_hash(buggy_code: str, correct_code: str) -> str:
    h = hashlib.sha256()
    h.update(normalize_code(buggy_code).encode())
    h.update(b"\x00")
    h.update(normalize_code(correct_code).encode())
    return h.hexdigest()[:16]


def _parse(data: dict, where: str) -> Koan:
    if not isinstance(data, dict):
        raise KoanError(f"{where}: expected a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(Koan)} | {"content_hash", "frozen_hash"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise KoanError(f"{where}: field '{unknown[0]}': unknown field (allowed: {sorted(known)})")

    def text(name: str, required: bool = True) -> str | None:
        if name not in data or data[name] is None:
            if required:
                raise KoanError(f"{where}: field '{name}': missing")
            return None
        if not isinstance(data[name], str):
            raise KoanError(
                f"{where}: field '{name}': must be a string, got {type(data[name]).__name__}"
            )
        if required and not data[name].strip():
            raise KoanError(f"{where}: field '{name}': must not be empty")
        return data[name]

    kid = text("id")
    if not _ID_RE.match(kid):
        raise KoanError(
            f"{where}: field 'id': '{kid}' must be lowercase letters, digits, '_' or '-'"
        )
    if len(kid) > MAX_ID_LEN:
        raise KoanError(
            f"{where}: field 'id': {len(kid)} characters, more than {MAX_ID_LEN} (the id is the "
            f"koan's file name): shorten it"
        )
    family = text("family")
    if family not in FAMILIES:
        raise KoanError(f"{where}: field 'family': '{family}' is not one of {list(FAMILIES)}")
    kind = text("kind", required=False) or "compile"
    if kind not in KINDS:
        raise KoanError(f"{where}: field 'kind': '{kind}' must be 'compile' or 'test'")
    code = text("expected_code", required=False)
    # a compile koan without a code is an error rustc gives none for (a parse or macro error):
    # it is keyed by its message
    if kind == "compile" and code is not None and not _CODE_RE.match(code):
        raise KoanError(
            f"{where}: field 'expected_code': '{code}' is not a rustc code like E0382 "
            "(or null for an error without a code)"
        )
    source = text("source", required=False) or "handwritten"
    if source not in SOURCES:
        raise KoanError(f"{where}: field 'source': '{source}' must be one of {list(SOURCES)}")
    edition = str(data.get("edition") or "2021")
    if edition not in EDITIONS:
        raise KoanError(f"{where}: field 'edition': '{edition}' must be one of {list(EDITIONS)}")
    buggy, correct = text("buggy_code"), text("correct_code")
    if normalize_code(buggy) == normalize_code(correct):
        raise KoanError(f"{where}: field 'correct_code': identical to buggy_code")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise KoanError(f"{where}: field 'meta': must be an object")
    varies = data.get("stdout_varies", False)
    if not isinstance(varies, bool):
        raise KoanError(f"{where}: field 'stdout_varies': must be true or false")
    if varies and data.get("expected_stdout") is not None:
        raise KoanError(
            f"{where}: field 'stdout_varies': true, but expected_stdout is set: a program whose "
            "output varies has none to compare (remove one of them)"
        )
    koan = Koan(
        id=kid,
        family=family,
        description=text("description"),
        buggy_code=buggy,
        correct_code=correct,
        expected_error=text("expected_error"),
        kind=kind,
        expected_code=code,
        pattern=text("pattern", required=False) or "",
        source=source,
        edition=edition,
        expected_stdout=text("expected_stdout", required=False),
        stdout_varies=varies,
        meta=meta,
    )
    stored = data.get("content_hash")
    if stored is not None and stored != koan.content_hash:
        raise KoanError(
            f"{where}: field 'content_hash': stored {stored} but the code hashes to "
            f"{koan.content_hash} — the koan was edited after it was frozen"
        )
    stored = data.get("frozen_hash")
    if stored is not None and stored != koan.frozen_hash:
        raise KoanError(
            f"{where}: field 'frozen_hash': stored {stored} but the koan hashes to "
            f"{koan.frozen_hash} — the koan was edited after it was frozen; restore it, or "
            "re-freeze the evalset with `sleepy koans freeze`"
        )
    return koan


def parse_frozen(item: Any, where: str) -> Koan:
    """One koan of an evalset: it must carry its hashes, and they must match what it holds now."""
    for name in ("content_hash", "frozen_hash"):
        if not isinstance(item, dict) or name not in item:
            raise KoanError(
                f"{where}: field '{name}': missing (frozen koans carry their hashes; "
                "re-freeze the evalset with `sleepy koans freeze`)"
            )
    return _parse(item, where)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise KoanError(f"{path}: no such {what} file") from None
    except json.JSONDecodeError as e:
        raise KoanError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None


def load_koan(path: str | Path) -> Koan:
    path = Path(path)
    koan = _parse(_read_json(path, "koan"), str(path))
    if path.parent.name in FAMILIES and path.parent.name != koan.family:
        raise KoanError(
            f"{path}: field 'family': '{koan.family}' but the file is under {path.parent.name}/"
        )
    return koan


def evalset_path(name: str, evalsets_dir: str | Path) -> Path:
    """An evalset named in config: a path to a .json file, or a name in the evalsets folder."""
    return Path(name) if name.endswith(".json") else Path(evalsets_dir) / f"{name}.json"


def load_evalset(path: str | Path) -> list[Koan]:
    """An evalset file: {"name": ..., "koans": [koan with content_hash, ...]}."""
    path = Path(path)
    data = _read_json(path, "evalset")
    items = data.get("koans") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise KoanError(
            f'{path}: field \'koans\': missing (an evalset is {{"name": ..., "koans": [...]}})'
        )
    return [parse_frozen(item, f"{path}[{i}]") for i, item in enumerate(items)]


def load_koans(*paths: str | Path) -> list[Koan]:
    """Koans from files, family folders, corpus roots or evalset files, in a stable order."""
    out: list[Koan] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(load_koan(f) for f in sorted(p.rglob("*.json")))
        elif p.suffix == ".json" and p.exists():
            try:
                data = json.loads(p.read_text())
            except json.JSONDecodeError as e:
                raise KoanError(
                    f"{p}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
                ) from None
            out.extend(
                load_evalset(p) if isinstance(data, dict) and "koans" in data else [load_koan(p)]
            )
        else:
            raise KoanError(f"{p}: no such koan file or folder")
    return out


def twin_of(training: Iterable[Koan]) -> Callable[[Koan], bool]:
    """A test for held-out koans: True for one that is a training koan, by content or up to
    names, literals and layout (`normalized_hash`: a renamed copy is the same program). Every
    held-out set goes through this one guard."""
    train = list(training)
    hashes = {t.content_hash for t in train}
    forms = {t.normalized_hash for t in train}
    return lambda k: k.content_hash in hashes or k.normalized_hash in forms


def without_twins(koans: Iterable[Koan], training: Iterable[Koan]) -> list[Koan]:
    """The koans that are no training koan (`twin_of`)."""
    is_twin = twin_of(training)
    return [k for k in koans if not is_twin(k)]


def known_hashes(*paths: str | Path) -> set[str]:
    """Content hashes of every koan in these files or folders (koan files and evalsets).

    Read leniently, straight from the JSON: a half-written koan elsewhere in the corpus must not
    stop the generator from keeping clear of the rest. Paths that do not exist are skipped.
    """
    hashes: set[str] = set()
    for p in map(Path, paths):
        files = sorted(p.rglob("*.json")) if p.is_dir() else [p] if p.is_file() else []
        for f in files:
            try:
                data = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            items = data.get("koans") if isinstance(data, dict) and "koans" in data else [data]
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict):
                    buggy, correct = item.get("buggy_code"), item.get("correct_code")
                    if isinstance(buggy, str) and isinstance(correct, str):
                        hashes.add(content_hash(buggy, correct))
    return hashes


def save_koan(koan: Koan, root: str | Path) -> Path:
    """Write `root/<family>/<id>.json` whole or not at all: a write that fails (a full disk)
    leaves the file that was there, never a truncated koan."""
    path = Path(root) / koan.family / f"{koan.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(koan.to_dict(), indent=2) + "\n")
    return path


def save_evalset(koans: list[Koan], path: str | Path, name: str = "frozen") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    items = [
        {**k.to_dict(), "content_hash": k.content_hash, "frozen_hash": k.frozen_hash} for k in koans
    ]
    write_atomic(path, json.dumps({"name": name, "koans": items}, indent=2) + "\n")
    return path
