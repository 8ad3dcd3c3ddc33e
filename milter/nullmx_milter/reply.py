"""SMTP replies as validated values, and the templates that annotate them."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from nullmx_milter.errors import ReplyError

# RFC 5321 §4.5.3.1.5: 512 octets per reply line, code and CRLF included.
SMTP_LINE_OCTETS = 512
# libmilter refuses longer lines and more lines than this.
LIBMILTER_LINE_CHARS = 980
LIBMILTER_MAX_LINES = 32
# Longest address text quoted in a reply, '%' doubling included.
ADDRESS_DISPLAY_CHARS = 128
MAX_DOMAIN_CHARS = 253

# The reply codes this milter sends (code, enhanced code): RFC 7505 §4.1 for a null-MX
# recipient and sender, RFC 3463 X.4.3 "directory server failure" for a failed DNS lookup.
NULL_MX_RECIPIENT_CODES = ("556", "5.1.10")
NULL_MX_SENDER_CODES = ("550", "5.7.27")
DNS_TEMPFAIL_CODES = ("451", "4.4.3")

_REPLY_CODE = re.compile(r"[45][0-9][0-9]\Z")
_ENHANCED_CODE = re.compile(r"([245])\.[0-9]{1,3}\.[0-9]{1,3}\Z")
_PRINTABLE = re.compile(r"[\x20-\x7e]*\Z")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_LONE_PERCENT = re.compile(r"(?<!%)(?:%%)*%(?!%)")
TEMPLATE_FIELDS = frozenset({"address", "domain", "suggestion"})


def sanitise(text: str, limit: int) -> str:
    """Printable ASCII only, '%' doubled for libmilter, at most `limit` characters in all."""
    escaped = _UNPRINTABLE.sub("?", text).replace("%", "%%")
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 3]
    if (len(cut) - len(cut.rstrip("%"))) % 2:
        cut = cut[:-1]
    return cut + "..."


def _check_line(code: str, enhanced: str, line: str) -> None:
    if not _PRINTABLE.match(line):
        raise ReplyError(f"reply line has a character outside printable ASCII: {line!r}")
    if _LONE_PERCENT.search(line):
        raise ReplyError(f"reply line has a '%' that is not doubled: {line!r}")
    wire = len(code) + 1 + len(enhanced) + 1 + len(line) + 2
    if wire > SMTP_LINE_OCTETS or wire > LIBMILTER_LINE_CHARS:
        raise ReplyError(f"reply line is {wire} octets on the wire, over {SMTP_LINE_OCTETS}")


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply: code, enhanced code and text lines (with "%" doubled, as libmilter wants)."""

    code: str
    enhanced: str
    lines: tuple[str, ...]

    def __post_init__(self) -> None:
        if not _REPLY_CODE.match(self.code):
            raise ReplyError(f"reply code {self.code!r} is not a 4xx or 5xx code")
        match = _ENHANCED_CODE.match(self.enhanced)
        if not match or match.group(1) != self.code[0]:
            raise ReplyError(
                f"enhanced code {self.enhanced!r} does not match reply code {self.code}"
            )
        if not 1 <= len(self.lines) <= LIBMILTER_MAX_LINES:
            raise ReplyError(f"a reply has 1 to {LIBMILTER_MAX_LINES} lines")
        for line in self.lines:
            _check_line(self.code, self.enhanced, line)

    def wire_lines(self) -> list[str]:
        """The reply as the MTA sends it, without CRLF ('%%' shown as '%')."""
        last = len(self.lines) - 1
        return [
            f"{self.code}{' ' if index == last else '-'}{self.enhanced} {line.replace('%%', '%')}"
            for index, line in enumerate(self.lines)
        ]


class ReplyTemplate:
    """Reply lines with {address}, {domain} and {suggestion} fields, checked once so that
    rendering cannot fail. A line that uses {suggestion} is left out when there is none."""

    def __init__(self, code: str, enhanced: str, lines: tuple[str, ...]) -> None:
        escaped = tuple(_escape_literal(line) for line in lines)
        self._suggesting = tuple("{suggestion}" in line for line in escaped)
        if lines and all(self._suggesting):
            raise ReplyError("every template line uses {suggestion}: one must not")
        worst = {
            "address": "x" * ADDRESS_DISPLAY_CHARS,
            "domain": "x" * MAX_DOMAIN_CHARS,
            "suggestion": "x" * ADDRESS_DISPLAY_CHARS,
        }
        # Validates code, enhanced code, line count and the longest possible lines.
        Reply(code, enhanced, tuple(line.format_map(worst) for line in escaped))
        self.code = code
        self.enhanced = enhanced
        self._lines = escaped

    @property
    def uses_suggestion(self) -> bool:
        return any(self._suggesting)

    def render(self, address: str, domain: str, suggestion: str = "") -> Reply:
        """The reply for one address; the addresses are sanitised and shortened here."""
        fields = {
            "address": sanitise(address, ADDRESS_DISPLAY_CHARS),
            "domain": sanitise(domain, MAX_DOMAIN_CHARS),
            "suggestion": sanitise(suggestion, ADDRESS_DISPLAY_CHARS),
        }
        return Reply(
            self.code,
            self.enhanced,
            tuple(
                line.format_map(fields)
                for line, suggesting in zip(self._lines, self._suggesting, strict=True)
                if suggestion or not suggesting
            ),
        )


def _escape_literal(line: str) -> str:
    """Double '%' in the template's own text and reject unknown or formatted fields."""
    pieces: list[str] = []
    try:
        parsed = list(string.Formatter().parse(line))
    except ValueError as error:
        raise ReplyError(f"template line {line!r}: {error}") from None
    for literal, field, spec, conversion in parsed:
        if not _PRINTABLE.match(literal):
            raise ReplyError(f"template text must be printable ASCII: {line!r}")
        pieces.append(literal.replace("%", "%%").replace("{", "{{").replace("}", "}}"))
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            raise ReplyError(
                f"unknown template field {{{field}}}; use {{address}}, {{domain}} or {{suggestion}}"
            )
        pieces.append("{" + field + "}")
    return "".join(pieces)
