"""Read tests/corpus/adversarial.txt: hostile MAIL/RCPT arguments and the outcome each must get.

Format, one entry a line: `ROLE EXPECT ARGUMENT`. ROLE is `rcpt` or `mail`; EXPECT is
`continue` or the reply code (556 for a null-MX recipient, 550 for a null-MX sender when the
sender check is on); `ENGINE|MILTER` when the milter protocol changes the outcome (libmilter
ends an argument at its first NUL, and drops a session, `closed`, for a packet over 64 KB).
ARGUMENT is the raw bytes an MTA could pass on: backslash escapes as in a Python bytes
literal (`\\x00`, `\\r`, `\\xff` for a byte that is not UTF-8), and `$(TEXT*N)` repeats TEXT
N times, so a 64 KB address fits on one line. Lines starting with # are comments.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus" / "adversarial.txt"
_REPEAT = re.compile(r"\$\((.*?)\*([0-9]+)\)")
_ROLES = ("rcpt", "mail")
_OUTCOMES = ("continue", "556", "550")
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("\\")}


@dataclass(frozen=True)
class CorpusEntry:
    role: str
    expect: str
    milter_expect: str
    argument: bytes
    line: int

    @property
    def text(self) -> str:
        """The argument as pymilter hands it to a callback (UTF-8, surrogateescape)."""
        return self.argument.decode("utf-8", "surrogateescape")

    @property
    def id(self) -> str:
        return f"{CORPUS.name}:{self.line}"


def decode_argument(text: str) -> bytes:
    expanded = _REPEAT.sub(lambda match: match.group(1) * int(match.group(2)), text)
    return bytes(codecs.escape_decode(expanded.encode("ascii"))[0])


def encode_argument(raw: bytes) -> str:
    """The escaped form of `raw`; spaces at either end are escaped so editors keep them."""
    text = "".join(
        chr(byte) if byte in _PLAIN else "\\\\" if byte == ord("\\") else f"\\x{byte:02x}"
        for byte in raw
    )
    lead = len(text) - len(text.lstrip(" "))
    trail = len(text) - len(text.rstrip(" ")) if lead < len(text) else 0
    return "\\x20" * lead + text[lead : len(text) - trail] + "\\x20" * trail


def load_corpus(path: Path = CORPUS) -> list[CorpusEntry]:
    entries = []
    for number, line in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        if not line or line.startswith("#"):
            continue
        role, expect, argument = line.split(" ", 2)
        engine, _, milter = expect.partition("|")
        milter = milter or engine
        if role not in _ROLES or engine not in _OUTCOMES or milter not in (*_OUTCOMES, "closed"):
            raise ValueError(f"{path}:{number}: bad entry {line[:80]!r}")
        entries.append(CorpusEntry(role, engine, milter, decode_argument(argument), number))
    return entries
