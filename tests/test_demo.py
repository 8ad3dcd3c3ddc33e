"""`make demo` works: it is what a newcomer runs first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.mta

DEMO = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


def test_demo_shows_a_556_and_a_delivery() -> None:
    run = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "<** 556-5.1.10 <nobody@null.test>: Recipient address rejected" in run.stdout
    assert "<** 556 5.1.10 " in run.stdout
    assert "<-  250 2.0.0 Ok: queued as " in run.stdout
    assert 'nullmx_replies_total{code="556",enhanced="5.1.10"} 1.0' in run.stdout
    assert "=== done: the null-MX recipient got 556 5.1.10" in run.stdout
