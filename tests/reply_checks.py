"""The invariants every reply the milter sends must obey, as reusable assertions."""

from __future__ import annotations

import re

from nullmx_milter.reply import Reply

_LINE = re.compile(r"([45][0-9][0-9])([- ])([245])\.[0-9]{1,3}\.[0-9]{1,3} [\x20-\x7e]*\Z")
_LONE_PERCENT = re.compile(r"(?<!%)(?:%%)*%(?!%)")


def check_smtp_lines(lines: list[str], code: str) -> None:
    """`lines` (without CRLF, '%' still doubled as libmilter sends it) form one valid reply.

    Every line fits 512 octets with CRLF (RFC 5321 §4.5.3.1.5), is printable ASCII (no CR,
    LF or NUL inside), repeats the code and an enhanced code of the same class, and has no
    lone '%' (Sendmail would replace the whole reply).
    """
    assert lines, "empty reply"
    for index, line in enumerate(lines):
        assert len(line.encode()) + 2 <= 512, f"line over 512 octets: {line[:80]!r}"
        match = _LINE.match(line)
        assert match, f"malformed reply line {line!r}"
        assert match.group(1) == code, f"code changed inside the reply: {line!r}"
        assert match.group(3) == code[0], f"enhanced code class differs: {line!r}"
        last = index == len(lines) - 1
        assert match.group(2) == (" " if last else "-"), f"bad continuation: {line!r}"
        assert not _LONE_PERCENT.search(line), f"lone %: {line!r}"


def check_reply(reply: Reply) -> None:
    """A Reply value obeys the wire invariants (checked on the text handed to libmilter)."""
    last = len(reply.lines) - 1
    check_smtp_lines(
        [
            f"{reply.code}{' ' if index == last else '-'}{reply.enhanced} {line}"
            for index, line in enumerate(reply.lines)
        ],
        reply.code,
    )
    for line in reply.wire_lines():
        assert len(line.encode()) + 2 <= 512, f"line over 512 octets after %%->%: {line!r}"
