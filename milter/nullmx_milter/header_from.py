"""The addresses of RFC 5322 From header fields, or None when the fields cannot be trusted.

Parsed per RFC 5322 §3.4 with its obsolete forms (§4.4): display names (atoms, quoted
strings, encoded words, dots), comments anywhere, angle addresses with an obsolete
route, groups (RFC 6854 allows them in From), empty list members, and local parts and
domains spread over several atoms with spaces or comments between the dots. Anything
else (an unbalanced quote or bracket, an '@' in a display name, a bare word) makes the
whole field unparseable: the header check then never rejects.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nullmx_milter.address import AddressKind, ParsedAddress, to_a_label

# More than this is not a From field written by a mail program; it is not checked.
MAX_FIELD_CHARS = 8192
MAX_ADDRESSES = 32

_SPECIALS = frozenset('()<>[]:;@\\,."')
_WHITESPACE = frozenset(" \t\r\n")
_ATOM, _QUOTED, _LITERAL = "atom", "quoted", "literal"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # _ATOM, _QUOTED, _LITERAL, or the special character itself
    text: str


class _UnparseableError(Exception):
    """The field is not RFC 5322 (or is too odd to act on)."""


def _skip_comment(text: str, index: int) -> int:
    """The index after the comment opening at `index` (comments nest)."""
    depth = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise _UnparseableError("unterminated comment")


def _quoted(text: str, index: int, closing: str) -> tuple[str, int]:
    """The content of a quoted string or domain literal opening at `index`, and the end."""
    pieces: list[str] = []
    index += 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            pieces.append(text[index + 1])
            index += 2
            continue
        if char == closing:
            return "".join(pieces), index + 1
        if closing == "]" and char == "[":
            raise _UnparseableError("'[' inside a domain literal")
        pieces.append(char)
        index += 1
    raise _UnparseableError("unterminated quoted string or domain literal")


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char in _WHITESPACE:
            index += 1
        elif char == "(":
            index = _skip_comment(text, index)
        elif char == '"':
            content, index = _quoted(text, index, '"')
            tokens.append(_Token(_QUOTED, content))
        elif char == "[":
            content, index = _quoted(text, index, "]")
            tokens.append(_Token(_LITERAL, content))
        elif char in _SPECIALS:
            if char in ")]\\":
                raise _UnparseableError(f"stray {char!r}")
            tokens.append(_Token(char, char))
            index += 1
        elif ord(char) < 0x20 or char == "\x7f":
            raise _UnparseableError("control character")
        else:
            start = index
            while (
                index < len(text)
                and text[index] not in _SPECIALS
                and text[index] not in _WHITESPACE
                and ord(text[index]) >= 0x20
                and text[index] != "\x7f"
            ):
                index += 1
            tokens.append(_Token(_ATOM, text[start:index]))
    return tokens


def _is_phrase(tokens: list[_Token]) -> bool:
    """A display name: words (atoms, quoted strings, encoded words) and obsolete dots."""
    return all(token.kind in (_ATOM, _QUOTED, ".") for token in tokens)


def _addr_spec(tokens: list[_Token]) -> ParsedAddress:
    """local-part "@" domain, with the obsolete spread-out forms."""
    at_signs = [index for index, token in enumerate(tokens) if token.kind == "@"]
    if len(at_signs) != 1:
        raise _UnparseableError("an address needs exactly one '@'")
    local, domain = tokens[: at_signs[0]], tokens[at_signs[0] + 1 :]
    if not local or not _is_word_list(local):
        raise _UnparseableError("bad local part")
    local_text = "".join(token.text for token in local)
    if len(domain) == 1 and domain[0].kind == _LITERAL:
        literal = f"[{domain[0].text.strip()}]"
        return ParsedAddress(AddressKind.LITERAL, mailbox=f"{local_text}@{literal}", domain=literal)
    if not _is_dotted_atoms(domain):
        raise _UnparseableError("bad domain")
    domain_text = "".join(token.text for token in domain)
    a_label = to_a_label(domain_text)
    if a_label is None:
        raise _UnparseableError("not a valid domain name")
    return ParsedAddress(AddressKind.DOMAIN, mailbox=f"{local_text}@{domain_text}", domain=a_label)


def _is_word_list(tokens: list[_Token]) -> bool:
    """word *("." word), obsolete local parts allowing empty words between dots."""
    return all(token.kind in (_ATOM, _QUOTED, ".") for token in tokens)


def _is_dotted_atoms(tokens: list[_Token]) -> bool:
    if not tokens or len(tokens) % 2 == 0:
        return False
    return all(
        token.kind == (_ATOM if index % 2 == 0 else ".") for index, token in enumerate(tokens)
    )


def _mailbox(tokens: list[_Token]) -> ParsedAddress:
    opens = [index for index, token in enumerate(tokens) if token.kind == "<"]
    if not opens:
        return _addr_spec(tokens)
    if len(opens) != 1 or tokens[-1].kind != ">":
        raise _UnparseableError("bad angle address")
    if not _is_phrase(tokens[: opens[0]]):
        raise _UnparseableError("bad display name")
    inner = tokens[opens[0] + 1 : -1]
    if any(token.kind in "<>" for token in inner):
        raise _UnparseableError("nested angle brackets")
    colons = [index for index, token in enumerate(inner) if token.kind == ":"]
    if colons:
        # obs-route: "@a,@b:" before the address.
        route = inner[: colons[-1]]
        if len(colons) > 1 or not route or route[0].kind != "@":
            raise _UnparseableError("bad route")
        inner = inner[colons[-1] + 1 :]
    return _addr_spec(inner)


def _first(tokens: list[_Token], kinds: str) -> int:
    """The index of the first token of one of `kinds` outside angle brackets, or -1."""
    depth = 0
    for index, token in enumerate(tokens):
        if token.kind == "<":
            depth += 1
        elif token.kind == ">":
            depth -= 1
        elif depth == 0 and token.kind in kinds:
            return index
    return -1


def _members(tokens: list[_Token]) -> list[list[_Token]]:
    """`tokens` cut at top-level commas, empty members dropped (obs-mbox-list)."""
    members: list[list[_Token]] = []
    rest = tokens
    while rest:
        comma = _first(rest, ",")
        member = rest if comma < 0 else rest[:comma]
        if member:
            members.append(member)
        rest = [] if comma < 0 else rest[comma + 1 :]
    return members


def _field_addresses(tokens: list[_Token]) -> list[ParsedAddress]:
    """address-list: mailboxes and groups ("name: a, b;")."""
    addresses: list[ParsedAddress] = []
    rest = tokens
    while rest:
        separator = _first(rest, ":,;")
        if separator >= 0 and rest[separator].kind == ":":
            if not rest[:separator] or not _is_phrase(rest[:separator]):
                raise _UnparseableError("bad group name")
            group = rest[separator + 1 :]
            end = _first(group, ";:")
            if end < 0 or group[end].kind != ";":
                raise _UnparseableError("group without ';'")
            addresses.extend(_mailbox(member) for member in _members(group[:end]))
            rest = group[end + 1 :]
            if rest and rest[0].kind != ",":
                raise _UnparseableError("text after a group")
            rest = rest[1:]
            continue
        if separator >= 0 and rest[separator].kind == ";":
            raise _UnparseableError("';' outside a group")
        member = rest if separator < 0 else rest[:separator]
        if member:
            addresses.append(_mailbox(member))
        rest = [] if separator < 0 else rest[separator + 1 :]
    return addresses


def from_addresses(values: Iterable[str]) -> tuple[ParsedAddress, ...] | None:
    """Every address in the From fields `values` (several fields are joined), or None.

    None means: unparseable, too long, too many addresses or no address at all. A
    caller that acts on the result must treat None as "do nothing".
    """
    found: list[ParsedAddress] = []
    for value in values:
        if len(value) > MAX_FIELD_CHARS:
            return None
        try:
            found.extend(_field_addresses(_tokens(value)))
        except _UnparseableError:
            return None
        if len(found) > MAX_ADDRESSES:
            return None
    return tuple(found) or None
