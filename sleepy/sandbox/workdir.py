"""A fresh temp dir per sandbox call, removed after: src/main.rs (or a crate) in, binaries out."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SOURCE = "src/main.rs"


class Workdir:
    """A fresh temp dir per call, removed after: src/main.rs in, binaries out."""

    def __init__(self, code: str | None = None):
        self.path = Path(tempfile.mkdtemp(prefix="sleepy-sbx-"))
        try:
            # the program's uid must reach its binary to bind it; nothing here is secret
            os.chmod(self.path, 0o711)
            if code is not None:
                (self.path / "src").mkdir()
                (self.path / SOURCE).write_text(code)
        except BaseException:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def __enter__(self) -> Workdir:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
