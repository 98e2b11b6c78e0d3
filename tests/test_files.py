"""sleepy.files.write_atomic: whole files only, with the permissions a plain write would give."""

import os
import stat

from sleepy.files import write_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_written_file_has_the_mode_a_plain_write_gives_it(tmp_path):
    old = os.umask(0o022)
    try:
        (tmp_path / "plain.json").write_text("{}")
        write_atomic(tmp_path / "atomic.json", "{}")
        assert mode(tmp_path / "atomic.json") == mode(tmp_path / "plain.json") == 0o644
        # a file that is there keeps its own mode, as it does when written in place
        (tmp_path / "atomic.json").chmod(0o640)
        write_atomic(tmp_path / "atomic.json", "{}\n")
        assert mode(tmp_path / "atomic.json") == 0o640
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.json", "plain.json"]
