"""parse_address field by field (kind, mailbox, domain, problem) on every branch: what the
decision log and the reply quote, not only the domain that is looked up."""

from __future__ import annotations

import pytest

from nullmx_milter.address import AddressKind, ParsedAddress, parse_address

DOMAIN = AddressKind.DOMAIN
INVALID = AddressKind.INVALID
LITERAL = AddressKind.LITERAL
NO_DOMAIN = AddressKind.NO_DOMAIN
NULL_PATH = AddressKind.NULL_PATH
POSTMASTER = AddressKind.POSTMASTER

CASES = [
    # Kinds of text the scanners must not stop at: an "X" beside the character they look for.
    ('<"q"Xy@d.example>', DOMAIN, '"q"Xy@d.example', "d.example", ""),
    ('"q"Xy@d.example SIZE=1', DOMAIN, '"q"Xy@d.example', "d.example", ""),
    ("a@b.example SIZE=1 RET=HDRS", DOMAIN, "a@b.example", "b.example", ""),
    ("<@X.example:u@d.example>", DOMAIN, "u@d.example", "d.example", ""),
    ('<"q"@Xd.example>', DOMAIN, '"q"@Xd.example', "xd.example", ""),
    # 253 characters: the longest domain name.
    (
        "<u@" + ".".join(["a" * 63] * 3 + ["b" * 61]) + ">",
        DOMAIN,
        "u@" + ".".join(["a" * 63] * 3 + ["b" * 61]),
        ".".join(["a" * 63] * 3 + ["b" * 61]),
        "",
    ),
    ("<>", NULL_PATH, "", "", ""),
    ("", NULL_PATH, "", "", ""),
    ("   ", NULL_PATH, "", "", ""),
    ("<> SIZE=10", NULL_PATH, "", "", ""),
    ("<postmaster>", POSTMASTER, "postmaster", "", ""),
    ("PostMaster", POSTMASTER, "PostMaster", "", ""),
    ("<postmaster@x.example>", DOMAIN, "postmaster@x.example", "x.example", ""),
    ("<user>", NO_DOMAIN, "user", "", ""),
    ("<a@b.example", INVALID, "<a@b.example", "", "unbalanced angle bracket"),
    ("a@b.example>", INVALID, "a@b.example>", "", "not a valid domain name"),
    ("<a@b.example>>", DOMAIN, "a@b.example", "b.example", ""),
    ("<<a@b.example>", DOMAIN, "<a@b.example", "b.example", ""),
    ("<a@b.example> <c@d.example>", DOMAIN, "a@b.example", "b.example", ""),
    ('<"x>y"@b.example>', DOMAIN, '"x>y"@b.example', "b.example", ""),
    ('<"x>y@b.example>', INVALID, '<"x>y@b.example>', "", "unbalanced angle bracket"),
    ('"a b"@b.example SIZE=1', DOMAIN, '"a b"@b.example', "b.example", ""),
    ('"a b"@b.example\tSIZE=1', DOMAIN, '"a b"@b.example', "b.example", ""),
    ('"a\\"b"@c.example', DOMAIN, '"a\\"b"@c.example', "c.example", ""),
    ('"a\\\\"@c.example', DOMAIN, '"a\\\\"@c.example', "c.example", ""),
    ('<"a\\\\"@c.example>', DOMAIN, '"a\\\\"@c.example', "c.example", ""),
    ('"ab"@c.example"', INVALID, '"ab"@c.example"', "", "unbalanced quote"),
    ("a@b.example\tNOTIFY=NEVER", DOMAIN, "a@b.example", "b.example", ""),
    ("a@b.example  x", DOMAIN, "a@b.example", "b.example", ""),
    ("<@r.example:u@d.example>", DOMAIN, "u@d.example", "d.example", ""),
    ("<@r.example,@s.example:u@d.example>", DOMAIN, "u@d.example", "d.example", ""),
    ("<@r.example>", INVALID, "@r.example", "", "source route without ':'"),
    ("<@r.example:>", INVALID, "<@r.example:>", "", "source route without a mailbox"),
    ('<@r.example,"@:":u@d.example>', DOMAIN, "u@d.example", "d.example", ""),
    ("<@r.example:@x>", INVALID, "@x", "", "empty local part"),
    ("@r.example:u@d.example", DOMAIN, "u@d.example", "d.example", ""),
    ("<@a:b:c@d.example>", DOMAIN, "b:c@d.example", "d.example", ""),
    ('<@":"x:u@d.example>', DOMAIN, "u@d.example", "d.example", ""),
    ("<@a.example u@d.example>", INVALID, "@a.example u@d.example", "", "source route without ':'"),
    ("<u@@d.example>", DOMAIN, "u@@d.example", "d.example", ""),
    ("<@d.example>", INVALID, "@d.example", "", "source route without ':'"),
    ("<u@>", INVALID, "u@", "", "not a valid domain name"),
    ("<u@d.example.>", DOMAIN, "u@d.example.", "d.example", ""),
    ("<u@d..example>", INVALID, "u@d..example", "", "not a valid domain name"),
    ("<u@-d.example>", INVALID, "u@-d.example", "", "not a valid domain name"),
    ("<u@d-.example>", INVALID, "u@d-.example", "", "not a valid domain name"),
    (
        "<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example>",
        INVALID,
        "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
        "",
        "not a valid domain name",
    ),
    (
        "<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example>",
        DOMAIN,
        "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example",
        "",
    ),
    (
        "<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa>",
        DOMAIN,
        "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "",
    ),
    (
        "<u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa>",
        INVALID,
        "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "",
        "not a valid domain name",
    ),
    ("<u@[192.0.2.1]>", LITERAL, "u@[192.0.2.1]", "[192.0.2.1]", ""),
    ("<u@[192.0.2.1>", INVALID, "u@[192.0.2.1", "", "unterminated address literal"),
    ("<u@[IPv6:2001:db8::1]>", LITERAL, "u@[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]", ""),
    ("<u@[a[b]>", INVALID, "u@[a[b]", "", "malformed address literal"),
    ("<u@[a\\b]>", INVALID, "u@[a\\b]", "", "malformed address literal"),
    ("<u@[]>", INVALID, "u@[]", "", "malformed address literal"),
    ("<u@[a b]>", INVALID, "u@[a b]", "", "malformed address literal"),
    ("<u@bücher.example>", DOMAIN, "u@bücher.example", "xn--bcher-kva.example", ""),
    ("<u@BÜCHER.example>", DOMAIN, "u@BÜCHER.example", "xn--bcher-kva.example", ""),
    ("<u@xn--bcher-kva.example>", DOMAIN, "u@xn--bcher-kva.example", "xn--bcher-kva.example", ""),
    ("<u@straße.example>", DOMAIN, "u@straße.example", "xn--strae-oqa.example", ""),
    ("<u@☃.example>", INVALID, "u@☃.example", "", "not a valid domain name"),
    ("<u@a\u200db.example>", INVALID, "u@a\u200db.example", "", "not a valid domain name"),
    ("<u@d.example\r\n>", INVALID, "u@d.example\r\n", "", "not a valid domain name"),
    ("<u@d.exa mple>", INVALID, "u@d.exa mple", "", "not a valid domain name"),
    ("<a@b@c.example>", DOMAIN, "a@b@c.example", "c.example", ""),
    ('<"a@b"@c.example>', DOMAIN, '"a@b"@c.example', "c.example", ""),
    ('<"a@b@c.example>', INVALID, '<"a@b@c.example>', "", "unbalanced angle bracket"),
    ("<u@D.EXAMPLE>", DOMAIN, "u@D.EXAMPLE", "d.example", ""),
    ("<u@d.example.com.>", DOMAIN, "u@d.example.com.", "d.example.com", ""),
    ("u@d_x.example", INVALID, "u@d_x.example", "", "not a valid domain name"),
    ("<u@_dmarc.example>", INVALID, "u@_dmarc.example", "", "not a valid domain name"),
    ('<""@d.example>', DOMAIN, '""@d.example', "d.example", ""),
]


# Plain ids: the arguments hold quotes, backslashes and tabs, which make poor test ids (and
# `make mutation` selects tests by id).
@pytest.mark.parametrize(
    ("argument", "kind", "mailbox", "domain", "problem"),
    CASES,
    ids=[f"case{index}" for index in range(len(CASES))],
)
def test_every_field(
    argument: str, kind: AddressKind, mailbox: str, domain: str, problem: str
) -> None:
    assert parse_address(argument) == ParsedAddress(kind, mailbox, domain, problem)
