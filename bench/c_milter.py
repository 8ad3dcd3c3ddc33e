"""Build the do-nothing C milter (bench/null_milter.c) against Debian's libmilter."""

from __future__ import annotations

import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "null_milter.c"


def build_null_milter(workdir: Path) -> Path:
    """Compile it into `workdir`; returns the binary."""
    binary = workdir / "null_milter"
    subprocess.run(
        ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(SOURCE),
         "-lmilter", "-lpthread"],
        check=True,
    )  # fmt: skip
    return binary
