"""Property tests: whatever the input and whatever DNS says, replies stay well-formed."""

from __future__ import annotations

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from nullmx_milter.address import AddressKind, parse_address
from nullmx_milter.config import (
    DEFAULT_RECIPIENT_REPLY,
    DEFAULT_SENDER_REPLY,
    DEFAULT_TEMPFAIL_REPLY,
    config_from_dict,
)
from nullmx_milter.daemon import build
from nullmx_milter.errors import ReplyError
from nullmx_milter.mx import MxClass, MxLookup
from nullmx_milter.policy import Verdict
from nullmx_milter.reply import Reply, ReplyTemplate

from fakes import ZONE_CLASSES
from reply_checks import check_reply, valid_reply

# What pymilter hands a callback: any bytes, decoded as UTF-8 with surrogateescape.
milter_text = st.binary(max_size=600).map(lambda raw: raw.decode("utf-8", "surrogateescape"))
any_text = st.one_of(st.text(max_size=600), milter_text)
# Arguments shaped like addresses, so that the interesting paths are reached often.
pieces = st.sampled_from(
    ["<", ">", "@", '"', "\\", ":", ",", ".", "[", "]", "%", "\r", "\n", "\0", " ", "xn--", "a"]
)
domains = st.sampled_from([*ZONE_CLASSES, "x.broken.test", "nx.test", "bücher.test", "a" * 70])
address_like = st.builds(
    lambda prefix, local, domain, suffix: f"{prefix}{local}@{domain}{suffix}",
    st.lists(pieces, max_size=6).map("".join),
    st.one_of(st.text(max_size=40), st.lists(pieces, max_size=10).map("".join)),
    st.one_of(domains, st.text(max_size=80)),
    st.lists(pieces, max_size=6).map("".join),
)
arguments = st.one_of(any_text, address_like)
TEMPLATES = [
    ReplyTemplate("556", "5.1.10", DEFAULT_RECIPIENT_REPLY),
    ReplyTemplate("550", "5.7.27", DEFAULT_SENDER_REPLY),
    ReplyTemplate("451", "4.4.3", DEFAULT_TEMPFAIL_REPLY),
]


@settings(max_examples=1500, deadline=None)
@given(arguments)
def test_parse_address_never_raises_and_domain_is_plain(argument: str) -> None:
    parsed = parse_address(argument)
    # The domain is logged and looked up: printable ASCII, never a CR/LF or NUL.
    assert all("\x21" <= char <= "\x7e" for char in parsed.domain)
    if parsed.kind is AddressKind.DOMAIN:
        assert 0 < len(parsed.domain) <= 253
        assert parsed.domain == parsed.domain.lower()


@settings(max_examples=1000, deadline=None)
@given(any_text, any_text, st.sampled_from(TEMPLATES))
def test_template_render_never_raises(address: str, domain: str, template: ReplyTemplate) -> None:
    check_reply(template.render(address, domain))


# Mostly printable ASCII, so that most templates are valid and the property is exercised.
ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
template_piece = st.one_of(
    st.sampled_from(["{address}", "{domain}", "%", "%%", "<", ">"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
        lambda text: text.replace("{", "(").replace("}", ")")
    ),
)
# What the config must refuse: lone braces, other fields, conversions, non-ASCII, CR.
refused_piece = st.sampled_from(["{", "}", "{user}", "{address!r}", "é", "\r"])
template_line = st.one_of(
    st.lists(template_piece, max_size=5).map("".join),
    st.lists(st.one_of(template_piece, refused_piece), min_size=1, max_size=5).map("".join),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(template_line, min_size=1, max_size=4),
    st.sampled_from([("556", "5.1.10"), ("550", "5.7.27"), ("451", "4.4.3")]),
    any_text,
    any_text,
)
def test_any_template_the_config_accepts_renders_valid_replies(
    lines: list[str], codes: tuple[str, str], address: str, domain: str
) -> None:
    try:
        template = ReplyTemplate(*codes, tuple(lines))
    except ReplyError:
        event("template refused")
        assume(False)
        return
    event("template accepted")
    check_reply(template.render(address, domain))


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["451", "452", "550", "553", "556", "499", "599"]),
    st.from_regex(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
    st.one_of(
        st.lists(ascii_text, min_size=1, max_size=3),
        st.lists(st.one_of(ascii_text, st.text(max_size=600)), max_size=34),
    ),
)
def test_a_reply_constructs_exactly_when_it_is_valid_on_the_wire(
    code: str, enhanced: str, lines: list[str]
) -> None:
    valid = valid_reply(code, enhanced, tuple(lines))
    event(f"valid={valid}")
    try:
        reply = Reply(code, enhanced, tuple(lines))
    except ReplyError:
        assert not valid, (code, enhanced, lines)
        return
    assert valid, (code, enhanced, lines)
    check_reply(reply)


class ScriptedDns:
    """Answers every lookup with the class the example chose."""

    timeout = 1.0

    def __init__(self) -> None:
        self.mx_class = MxClass.MX

    def lookup(self, domain: str) -> MxLookup:
        return MxLookup(self.mx_class, 60.0, "scripted")


@pytest.mark.parametrize("on_dns_error", ["accept", "tempfail"])
def test_engine_never_rejects_unless_dns_said_null_mx(on_dns_error: str) -> None:
    dns = ScriptedDns()
    config = config_from_dict(
        {
            "policy": {"on_dns_error": on_dns_error, "sender_null_mx": "reject"},
            "cache": {"max_entries": 0},
            # Scripted timeouts in a row would trip the fail-fast breaker, which then answers
            # TIMEOUT whatever the script says next: keep it out of this property.
            "dns": {"fail_fast_after": 0},
        }
    )
    engine = build(config, source=dns).engine

    @settings(max_examples=700, deadline=None)
    @given(arguments, st.sampled_from(MxClass), st.booleans())
    def check(argument: str, mx_class: MxClass, recipient: bool) -> None:
        dns.mx_class = mx_class
        decision = (engine.check_recipient if recipient else engine.check_sender)(argument)
        if decision.reply is not None:
            check_reply(decision.reply)
        if decision.verdict is Verdict.REJECTED:
            assert mx_class is MxClass.NULL_MX
            assert decision.reply is not None
            assert decision.reply.code == ("556" if recipient else "550")
        elif decision.verdict is Verdict.TEMPFAILED:
            assert mx_class.is_failure and on_dns_error == "tempfail"
            assert decision.reply is not None and decision.reply.code == "451"
        else:
            assert decision.reply is None

    check()
