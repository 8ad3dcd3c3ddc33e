"""The short soak: 5,000 RCPTs over 16 concurrent sessions (`make soak` runs 100,000)."""

from __future__ import annotations

import pytest

from conftest import StartDaemon
from knot import KnotServer
from soak import recipient, soak

pytestmark = pytest.mark.integration


def test_short_soak_all_replies_right_and_no_growth(
    knot: KnotServer, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon([knot.nameserver])
    assert daemon.process is not None
    report = soak(daemon.milter_port, daemon.process.pid, rcpts=5000)
    print(report.figures())
    assert not report.problems(), report.problems()
    assert report.result.rejected == sum(recipient(index)[1] == "556" for index in range(5000))
