"""The sandbox: compile, test and run untrusted Rust fast and contained, and judge a fix.

`Sandbox.verdict(koan, code)` is the one definition of "fixed" used by every pass rate.
"""

from sleepy.sandbox.batch import run_batch
from sleepy.sandbox.isolation import Limits, SandboxConfig
from sleepy.sandbox.result import STATUSES, Diagnostic, SandboxResult, Verdict
from sleepy.sandbox.rustc import Sandbox, SandboxError

__all__ = [
    "STATUSES",
    "Diagnostic",
    "Limits",
    "SandboxConfig",
    "Sandbox",
    "SandboxError",
    "SandboxResult",
    "Verdict",
    "run_batch",
]
