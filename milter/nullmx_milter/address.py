"""Parse an SMTP MAIL/RCPT argument into the mailbox and the domain to look up."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import idna

_LDH_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_MAX_DOMAIN_OCTETS = 253
# RFC 5321 address-literal: dcontent is printable ASCII except "[", "\\" and "]".
_ADDRESS_LITERAL = re.compile(r"\[[\x21-\x5a\x5e-\x7e]+\]\Z")


class AddressKind(enum.Enum):
    """What an envelope address is, as far as an MX lookup is concerned."""

    DOMAIN = "domain"
    NULL_PATH = "null_path"
    POSTMASTER = "postmaster"
    NO_DOMAIN = "no_domain"
    LITERAL = "literal"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """An envelope address: the mailbox as given and its domain in A-label form.

    `domain` is lower-case ASCII without a trailing dot for DOMAIN, the bracketed
    literal for LITERAL and empty otherwise. `problem` says why an INVALID
    address is invalid.
    """

    kind: AddressKind
    mailbox: str = ""
    domain: str = ""
    problem: str = ""


def _invalid(mailbox: str, problem: str) -> ParsedAddress:
    return ParsedAddress(AddressKind.INVALID, mailbox=mailbox, problem=problem)


def _scan_unquoted(text: str, wanted: str, start: int = 0) -> tuple[int, int, bool]:
    """Return (first, last) index of `wanted` outside quotes, and whether quotes balance.

    Indexes are -1 when absent. Inside a quoted string a backslash escapes the next
    character (RFC 5321 quoted-pairSMTP).
    """
    first = last = -1
    quoted = False
    index = start
    length = len(text)
    while index < length:
        char = text[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in wanted:
            if first < 0:
                first = index
            last = index
        index += 1
    return first, last, not quoted


def _extract_path(argument: str) -> str | None:
    """The text inside the angle brackets (or the first word), or None if unbalanced."""
    text = argument.strip()
    if text.startswith("<"):
        if '"' not in text:
            end = text.find(">")
        else:
            end, _, _ = _scan_unquoted(text, ">", 1)
        return None if end < 0 else text[1:end]
    if '"' not in text:
        return text.split(None, 1)[0] if text else ""
    end, _, _ = _scan_unquoted(text, " \t")
    return text if end < 0 else text[:end]


def to_a_label(domain: str) -> str | None:
    """Lower-case A-label form of `domain` (IDNA 2008, UTS #46), or None if not a valid name."""
    if domain.endswith("."):
        domain = domain[:-1]
    if domain.isascii():
        ascii_domain = domain.lower()
    else:
        try:
            ascii_domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError, ValueError):
            return None
    if not ascii_domain or len(ascii_domain) > _MAX_DOMAIN_OCTETS:
        return None
    for label in ascii_domain.split("."):
        if not _LDH_LABEL.match(label):
            return None
    return ascii_domain


def parse_address(argument: str) -> ParsedAddress:
    """Parse a MAIL FROM / RCPT TO argument (with or without brackets and parameters)."""
    path = _extract_path(argument)
    if path is None:
        return _invalid(argument, "unbalanced angle bracket")
    if path.startswith("@"):
        colon, _, balanced = _scan_unquoted(path, ":")
        if colon < 0 or not balanced:
            return _invalid(path, "source route without ':'")
        path = path[colon + 1 :]
        if not path:
            return _invalid(argument, "source route without a mailbox")
    if '"' in path:
        _, at_sign, balanced = _scan_unquoted(path, "@")
        if not balanced:
            return _invalid(path, "unbalanced quote")
    else:
        at_sign = path.rfind("@")
    if at_sign < 0:
        if not path:
            return ParsedAddress(AddressKind.NULL_PATH)
        if path.lower() == "postmaster":
            return ParsedAddress(AddressKind.POSTMASTER, mailbox=path)
        return ParsedAddress(AddressKind.NO_DOMAIN, mailbox=path)
    if at_sign == 0:
        return _invalid(path, "empty local part")
    domain = path[at_sign + 1 :]
    if domain.startswith("["):
        if not domain.endswith("]"):
            return _invalid(path, "unterminated address literal")
        if not _ADDRESS_LITERAL.match(domain):
            # The literal is logged as the domain: it must be plain printable text.
            return _invalid(path, "malformed address literal")
        return ParsedAddress(AddressKind.LITERAL, mailbox=path, domain=domain)
    a_label = to_a_label(domain)
    if a_label is None:
        return _invalid(path, "not a valid domain name")
    return ParsedAddress(AddressKind.DOMAIN, mailbox=path, domain=a_label)
