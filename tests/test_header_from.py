"""From header fields: RFC 5322 forms give their addresses, anything odd gives None."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nullmx_milter.address import AddressKind
from nullmx_milter.header_from import MAX_ADDRESSES, MAX_FIELD_CHARS, from_addresses


def domains(*values: str) -> list[str] | None:
    found = from_addresses(values)
    return None if found is None else [address.domain for address in found]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("x@nullmx.test", ["nullmx.test"], id="bare"),
        pytest.param('"Joe Q. Public" <joe@Example.COM>', ["example.com"], id="quoted-name"),
        pytest.param("Joe Q. Public <joe@example.com>", ["example.com"], id="obs-phrase-dots"),
        pytest.param("=?utf-8?q?J=C3=B6rg?= <j@nullmx.test>", ["nullmx.test"], id="encoded-word"),
        pytest.param(
            "Mary <m@a.test>, jdoe@b.test, Who? <one@c.test>",
            ["a.test", "b.test", "c.test"],
            id="several",
        ),
        pytest.param(
            "A Group:Ed <c@a.test>,joe@b.test;, z@c.test",
            ["a.test", "b.test", "c.test"],
            id="group-then-mailbox",
        ),
        pytest.param(
            "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
            ["silly.test"],
            id="comments",
        ),
        pytest.param("<@r1.test,@r2.test:joe @ example . org>", ["example.org"], id="obs-route"),
        pytest.param("joe.(c)smith @ a . test", ["a.test"], id="obs-spread-addr-spec"),
        pytest.param(", , a@b.test,", ["b.test"], id="obs-empty-members"),
        pytest.param("x@bücher.test", ["xn--bcher-kva.test"], id="u-label"),
        pytest.param("x@nullmx.test.", None, id="trailing-dot-is-not-rfc5322"),
        pytest.param("x@[192.0.2.1]", ["[192.0.2.1]"], id="domain-literal"),
        pytest.param("Undisclosed recipients:;", None, id="empty-group-no-address"),
        pytest.param("=?utf-8?q?a@b?= <j@nullmx.test>", None, id="at-in-encoded-word"),
        pytest.param("garbage", None, id="bare-word"),
        pytest.param("", None, id="empty"),
        pytest.param("a@b@c.test", None, id="two-at-signs"),
        pytest.param('"unterminated <x@y.test>', None, id="unterminated-quote"),
        pytest.param("x@y.test (unterminated", None, id="unterminated-comment"),
        pytest.param("<x@y.test", None, id="unbalanced-angle"),
        pytest.param("x@y.test; z", None, id="semicolon-outside-group"),
        pytest.param("x@exa_mple.test", None, id="bad-domain"),
        pytest.param("x@y.test\x00", None, id="nul"),
    ],
)
def test_from_field(value: str, expected: list[str] | None) -> None:
    assert domains(value) == expected


def test_several_from_fields_are_joined() -> None:
    assert domains("a@x.test", "Bee <b@y.test>") == ["x.test", "y.test"]


def test_one_bad_field_spoils_all() -> None:
    assert domains("a@x.test", "garbage") is None


def test_literal_kind_and_mailbox() -> None:
    found = from_addresses(['"Jane" <jane.doe@gmial.com>', "x@[192.0.2.1]"])
    assert found is not None
    assert [(a.kind, a.mailbox) for a in found] == [
        (AddressKind.DOMAIN, "jane.doe@gmial.com"),
        (AddressKind.LITERAL, "x@[192.0.2.1]"),
    ]


def test_limits() -> None:
    assert domains("x@y.test" + " " * MAX_FIELD_CHARS) is None
    many = ", ".join(f"u{n}@d{n}.test" for n in range(MAX_ADDRESSES + 1))
    assert domains(many) is None


labels = st.text(alphabet="abcxyz09-", min_size=1, max_size=8).filter(
    lambda label: not label.startswith("-") and not label.endswith("-")
)
domain_names = st.lists(labels, min_size=2, max_size=3).map(".".join)
locals_ = st.text(alphabet="abc.+_=", min_size=1, max_size=8).filter(
    lambda local: ".." not in local and not local.startswith(".") and not local.endswith(".")
)
names = st.one_of(
    st.just(""),
    st.text(alphabet="Abc ", min_size=1, max_size=10).map(lambda text: f'"{text}"'),
    st.just("=?utf-8?b?SsO2cmc=?="),
    st.just("Jane Q. Doe"),
)
comments = st.sampled_from(["", " (work)", "(x (nested) y)"])


@st.composite
def mailboxes(draw: st.DrawFn) -> tuple[str, str]:
    domain = draw(domain_names)
    local = draw(locals_)
    name = draw(names)
    comment = draw(comments)
    text = f"{name} <{local}@{domain}>{comment}" if name else f"{local}@{domain}{comment}"
    return text, domain


@settings(max_examples=500)
@given(st.lists(mailboxes(), min_size=1, max_size=5), st.booleans())
def test_generated_fields_give_their_domains(members: list[tuple[str, str]], group: bool) -> None:
    text = ", ".join(member for member, _ in members)
    if group:
        text = f"Team: {text};"
    assert domains(text) == [domain for _, domain in members]


@settings(max_examples=2000)
@given(st.text(max_size=300))
def test_any_text_never_raises_and_gives_valid_domains(value: str) -> None:
    found = from_addresses([value])
    for address in found or ():
        if address.kind is AddressKind.DOMAIN:
            assert address.domain.isascii() and address.domain == address.domain.lower()
            assert 0 < len(address.domain) <= 253
