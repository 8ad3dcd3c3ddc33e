"""The invariants every reply the milter sends must obey, as reusable assertions.

Written without reply.py's patterns on purpose: an oracle that copies the code under test
agrees with it whatever it does.
"""

from __future__ import annotations

from nullmx_milter.reply import Reply

_DIGITS = frozenset("0123456789")


def _number(text: str, shortest: int, longest: int) -> bool:
    return shortest <= len(text) <= longest and all(char in _DIGITS for char in text)


def _printable_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


def has_lone_percent(text: str) -> bool:
    """Whether `text` has a run of '%' of odd length (libmilter wants every '%' doubled)."""
    run = 0
    for char in [*text, ""]:
        if char == "%":
            run += 1
            continue
        if run % 2:
            return True
        run = 0
    return False


def valid_codes(code: str, enhanced: str) -> bool:
    """A 4xx/5xx code and an enhanced code X.Y.Z of the same class (RFC 3463)."""
    parts = enhanced.split(".")
    return (
        _number(code, 3, 3)
        and code[0] in "45"
        and len(parts) == 3
        and _number(parts[0], 1, 1)
        and all(_number(part, 1, 3) for part in parts[1:])
        and parts[0] == code[0]
    )


def check_smtp_lines(lines: list[str], code: str, percent_doubled: bool = True) -> None:
    """`lines` (without CRLF) form one valid reply as an MTA would send it.

    Every line fits 512 octets with CRLF (RFC 5321 §4.5.3.1.5), is printable ASCII (no CR,
    LF or NUL inside), repeats the code and an enhanced code of the same class, carries '-'
    after the code on every line but the last and ' ' on the last; with `percent_doubled`
    (the text handed to libmilter) no '%' stands alone (Sendmail would replace the reply).
    """
    assert lines, "empty reply"
    for index, line in enumerate(lines):
        assert len(line.encode()) + 2 <= 512, f"line over 512 octets: {line[:80]!r}"
        assert _printable_ascii(line), f"unprintable character in {line!r}"
        assert line[:3] == code, f"code changed inside the reply: {line!r}"
        marker = " " if index == len(lines) - 1 else "-"
        assert line[3:4] == marker, f"bad continuation marker (want {marker!r}): {line!r}"
        enhanced, space, _text = line[4:].partition(" ")
        assert space and valid_codes(code, enhanced), f"bad enhanced code: {line!r}"
        if percent_doubled:
            assert not has_lone_percent(line), f"lone %: {line!r}"


def check_reply(reply: Reply) -> None:
    """A Reply value obeys the wire invariants: its lines as handed to libmilter (with '%'
    doubled) and as the MTA sends them (`wire_lines`, markers built by reply.py)."""
    assert valid_codes(reply.code, reply.enhanced), (reply.code, reply.enhanced)
    assert 1 <= len(reply.lines) <= 32, "libmilter sends 1 to 32 lines"
    for line in reply.lines:
        assert not has_lone_percent(line), f"lone %: {line!r}"
        # libmilter's own limit on a line it is handed, code and enhanced code included.
        assert len(reply.code) + len(reply.enhanced) + len(line) + 4 <= 512, line
    wire = reply.wire_lines()
    assert len(wire) == len(reply.lines)
    check_smtp_lines(wire, reply.code, percent_doubled=False)
    prefix = len(reply.code) + 1 + len(reply.enhanced) + 1
    for sent, line in zip(wire, reply.lines, strict=True):
        assert sent[prefix - 1 - len(reply.enhanced) : prefix - 1] == reply.enhanced, sent
        assert sent[prefix:] == line.replace("%%", "%"), (sent, line)


def valid_reply(code: str, enhanced: str, lines: tuple[str, ...]) -> bool:
    """Whether a reply with these parts can be sent at all (the oracle for Reply's checks)."""
    return (
        valid_codes(code, enhanced)
        and 1 <= len(lines) <= 32
        and all(
            _printable_ascii(line)
            and not has_lone_percent(line)
            and len(code) + len(enhanced) + len(line) + 4 <= 512
            for line in lines
        )
    )
