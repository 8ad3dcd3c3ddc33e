"""parse_address: every RFC 5321 address form the milter meets."""

from __future__ import annotations

import pytest

from nullmx_milter.address import AddressKind, parse_address, to_a_label

D = AddressKind.DOMAIN


@pytest.mark.parametrize(
    ("argument", "kind", "domain", "mailbox"),
    [
        pytest.param("<user@example.com>", D, "example.com", "user@example.com", id="brackets"),
        pytest.param("user@example.com", D, "example.com", "user@example.com", id="no-brackets"),
        pytest.param("  <user@example.com>  ", D, "example.com", "user@example.com", id="spaces"),
        pytest.param(
            "<user@example.com> NOTIFY=NEVER ORCPT=rfc822;x@y",
            D,
            "example.com",
            "user@example.com",
            id="esmtp-params",
        ),
        pytest.param(
            "user@example.com SIZE=100", D, "example.com", "user@example.com", id="bare-params"
        ),
        pytest.param(
            "<@a.example,@b.example:user@dom.example>",
            D,
            "dom.example",
            "user@dom.example",
            id="source-route",
        ),
        pytest.param('<"a@b"@dom.example>', D, "dom.example", '"a@b"@dom.example', id="quoted-at"),
        pytest.param(
            '<"a\\"@x"@dom.example>', D, "dom.example", '"a\\"@x"@dom.example', id="quoted-escape"
        ),
        pytest.param('<"a b>c"@dom.example>', D, "dom.example", '"a b>c"@dom.example', id="q-gt"),
        pytest.param("<User@EXAMPLE.Com>", D, "example.com", "User@EXAMPLE.Com", id="case"),
        pytest.param("<u@example.com.>", D, "example.com", "u@example.com.", id="trailing-dot"),
        pytest.param("<u@bücher.example>", D, "xn--bcher-kva.example", "u@bücher.example", id="ul"),
        pytest.param("<u@BÜCHER.example>", D, "xn--bcher-kva.example", "u@BÜCHER.example", id="UL"),
        pytest.param("<u@xn--bcher-kva.example>", D, "xn--bcher-kva.example", None, id="a-label"),
        pytest.param("<u@straße.de>", D, "xn--strae-oqa.de", None, id="idna2008-sharp-s"),
        pytest.param("<>", AddressKind.NULL_PATH, "", "", id="null-path"),
        pytest.param("<> SIZE=10", AddressKind.NULL_PATH, "", "", id="null-path-params"),
        pytest.param("<Postmaster>", AddressKind.POSTMASTER, "", "Postmaster", id="postmaster"),
        pytest.param("postmaster", AddressKind.POSTMASTER, "", "postmaster", id="postmaster-bare"),
        pytest.param("<someone>", AddressKind.NO_DOMAIN, "", "someone", id="local-only"),
        pytest.param(
            "<u@[192.0.2.1]>", AddressKind.LITERAL, "[192.0.2.1]", "u@[192.0.2.1]", id="literal4"
        ),
        pytest.param(
            "<u@[IPv6:2001:db8::1]>",
            AddressKind.LITERAL,
            "[IPv6:2001:db8::1]",
            None,
            id="literal6",
        ),
    ],
)
def test_valid_forms(argument: str, kind: AddressKind, domain: str, mailbox: str | None) -> None:
    parsed = parse_address(argument)
    assert parsed.kind is kind
    assert parsed.domain == domain
    if mailbox is not None:
        assert parsed.mailbox == mailbox


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param("<user@example.com", id="unbalanced-bracket"),
        pytest.param('<"user@example.com>', id="unbalanced-quote"),
        pytest.param("<@a.example:>", id="empty-after-route"),
        pytest.param("<@a.example,user@dom>", id="route-without-colon"),
        pytest.param("<@dom.example>", id="empty-local-part"),
        pytest.param("<u@[192.0.2.1>", id="open-literal"),
        pytest.param("<u@exa mple.com>", id="space-in-domain"),
        pytest.param("<u@example..com>", id="empty-label"),
        pytest.param("<u@example.com..>", id="two-trailing-dots"),
        pytest.param("<u@-bad.example>", id="leading-hyphen"),
        pytest.param("<u@" + "a" * 64 + ".example>", id="label-over-63"),
        pytest.param("<u@" + ("a" * 60 + ".") * 5 + "example>", id="name-over-253"),
        pytest.param("<u@exa\x00mple.com>", id="nul"),
        pytest.param("<u@exa\rmple.com>", id="cr"),
        pytest.param("<u@\udcffexample.com>", id="undecodable-byte"),
        pytest.param("<u@ex%ample.com>", id="percent"),
        pytest.param("<u@>", id="empty-domain"),
        pytest.param("<u@.>", id="root-domain"),
    ],
)
def test_garbage_is_invalid_never_an_exception(argument: str) -> None:
    parsed = parse_address(argument)
    assert parsed.kind is AddressKind.INVALID
    assert parsed.problem
    assert parsed.domain == ""


def test_a_label_and_u_label_agree() -> None:
    assert to_a_label("bücher.example") == to_a_label("xn--bcher-kva.example.")
    assert to_a_label("straße.de") != to_a_label("strasse.de")
