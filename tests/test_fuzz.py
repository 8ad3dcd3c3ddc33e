"""Run the atheris fuzz target for a bounded time (NULLMX_FUZZ_SECONDS, default 30)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpus import encode_argument

FUZZ_TARGET = Path(__file__).parent / "fuzz_target.py"
FUZZ_SECONDS = int(os.environ.get("NULLMX_FUZZ_SECONDS", "30"))

pytestmark = pytest.mark.fuzz


@pytest.mark.timeout(FUZZ_SECONDS + 180)
def test_fuzz_address_parsing_and_replies(tmp_path: Path) -> None:
    seconds = FUZZ_SECONDS
    env = {**os.environ, "PYTHONPATH": str(FUZZ_TARGET.parent)}
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZ_TARGET),
            f"-max_total_time={seconds}",
            "-max_len=4096",
            "-rss_limit_mb=1024",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path / "corpus"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        check=False,
    )
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*"))
    # A finding, in corpus syntax (its first byte is the role), ready to add to the corpus.
    found = [encode_argument(crash.read_bytes()) for crash in crashes]
    assert result.returncode == 0 and not crashes, (found, result.stderr[-3000:])
    assert "Done " in result.stderr
