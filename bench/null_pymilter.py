"""A do-nothing pymilter milter: answers RCPT (and DATA) with CONTINUE (the floor for ours).

It negotiates the same stages as nullmx-milter, so the difference between the two is the
work nullmx-milter does, not the protocol. With --no-data it leaves DATA negotiated away,
which over TCP makes Postfix stall ~40 ms per message (Nagle and delayed ACK on the
lone DATA-stage macro packet; docs/performance.md).
Usage: null_pymilter.py [--no-data] SOCKET
"""

from __future__ import annotations

import os
import sys

import Milter


class RcptOnlyMilter(Milter.Base):
    """Overrides envrcpt only: libmilter negotiates every other stage away."""

    def envrcpt(self, to: str, *params: str) -> int:
        return Milter.CONTINUE


class NullMilter(RcptOnlyMilter):
    """The callbacks nullmx-milter overrides (envrcpt and data), doing nothing in them."""

    def data(self) -> int:
        return Milter.CONTINUE


def main() -> int:
    arguments = sys.argv[1:]
    no_data = "--no-data" in arguments
    socket_spec = next(argument for argument in arguments if not argument.startswith("--"))
    # Postfix (user postfix) must be able to connect to a unix socket.
    os.umask(0)
    Milter.factory = RcptOnlyMilter if no_data else NullMilter
    Milter.runmilter("null-pymilter", socket_spec, timeout=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
