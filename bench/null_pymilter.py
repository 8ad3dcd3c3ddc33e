"""A do-nothing pymilter milter: answers RCPT and DATA with CONTINUE (the floor for ours).

It negotiates the same stages as nullmx-milter, so the difference between the two is
the work nullmx-milter does, not the protocol. Usage: null_pymilter.py SOCKET
"""

from __future__ import annotations

import os
import sys

import Milter


class NullMilter(Milter.Base):
    """Overrides exactly the callbacks nullmx-milter overrides, and does nothing in them."""

    def envrcpt(self, to: str, *params: str) -> int:
        return Milter.CONTINUE

    def data(self) -> int:
        return Milter.CONTINUE


def main() -> int:
    # Postfix (user postfix) must be able to connect to a unix socket.
    os.umask(0)
    Milter.factory = NullMilter
    Milter.runmilter("null-pymilter", sys.argv[1], timeout=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
