# The part of pymilter's Milter package that nullmx-milter uses.
from collections.abc import Callable
from typing import Any

__version__: str
CONTINUE: int
REJECT: int
TEMPFAIL: int
ACCEPT: int
DISCARD: int
NOREPLY: int
P_NOCONNECT: int
P_NOHELO: int
P_NOMAIL: int
P_NORCPT: int
P_NODATA: int
P_NOHDRS: int
P_NOEOH: int
P_NOBODY: int
P_NOUNKNOWN: int

factory: Callable[[], Base]

def uniqueID() -> int: ...
def set_exception_policy(code: int) -> None: ...
def runmilter(name: str, socketname: str, timeout: int = 0, rmsock: bool = True) -> None: ...

class Base:
    _ctx: Any
    def _setctx(self, ctx: Any) -> None: ...
    def getsymval(self, sym: str) -> str | None: ...
    def setreply(
        self, rcode: str, xcode: str | None = None, msg: str | None = None, *ml: str
    ) -> int: ...
    @classmethod
    def protocol_mask(cls) -> int: ...
    def connect(self, hostname: str, family: int, hostaddr: Any) -> int: ...
    def envfrom(self, mailfrom: str, *params: str) -> int: ...
    def envrcpt(self, to: str, *params: str) -> int: ...
    def data(self) -> int: ...
    def close(self) -> int: ...
