"""Reply values, sanitising and templates: the limits of RFC 5321 and libmilter."""

from __future__ import annotations

import pytest

from nullmx_milter.config import DEFAULT_RECIPIENT_REPLY
from nullmx_milter.errors import ReplyError
from nullmx_milter.reply import ADDRESS_DISPLAY_CHARS, Reply, ReplyTemplate, sanitise


def test_wire_lines_repeat_code_and_enhanced_code() -> None:
    reply = Reply("556", "5.1.10", ("one", "two 100%%", "three"))
    assert reply.wire_lines() == ["556-5.1.10 one", "556-5.1.10 two 100%", "556 5.1.10 three"]


@pytest.mark.parametrize(
    ("code", "enhanced", "lines"),
    [
        pytest.param("256", "2.0.0", ("x",), id="not-4xx-5xx"),
        pytest.param("556", "4.1.10", ("x",), id="class-mismatch"),
        pytest.param("556", "5.1", ("x",), id="short-enhanced"),
        pytest.param("556", "5.1.10", (), id="no-lines"),
        pytest.param("556", "5.1.10", ("x",) * 33, id="too-many-lines"),
        pytest.param("556", "5.1.10", ("a\r\nb",), id="crlf"),
        pytest.param("556", "5.1.10", ("a\x00b",), id="nul"),
        pytest.param("556", "5.1.10", ("50% off",), id="lone-percent"),
        pytest.param("556", "5.1.10", ("x" * 500,), id="over-512"),
        pytest.param("556", "5.1.10", ("bücher",), id="non-ascii"),
    ],
)
def test_invalid_replies_are_refused(code: str, enhanced: str, lines: tuple[str, ...]) -> None:
    with pytest.raises(ReplyError):
        Reply(code, enhanced, lines)


def test_longest_allowed_line_is_exactly_512_octets() -> None:
    line = "x" * (512 - len("556-5.1.10 ") - 2)
    assert len(Reply("556", "5.1.10", (line,)).wire_lines()[0]) + 2 == 512


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a\r\nb", "a??b", id="crlf"),
        pytest.param("a\x00b\x7f", "a?b?", id="nul-del"),
        pytest.param("100%", "100%%", id="percent"),
        pytest.param("bü", "b?", id="non-ascii"),
    ],
)
def test_sanitise(text: str, expected: str) -> None:
    assert sanitise(text, 100) == expected


def test_sanitise_caps_length_without_splitting_a_doubled_percent() -> None:
    capped = sanitise("%" * 300, ADDRESS_DISPLAY_CHARS)
    assert len(capped) <= ADDRESS_DISPLAY_CHARS
    assert capped.endswith("...")
    assert (len(capped) - 3) % 2 == 0


def test_template_renders_attacker_text_safely() -> None:
    template = ReplyTemplate("556", "5.1.10", DEFAULT_RECIPIENT_REPLY)
    reply = template.render("evil\r\n250 OK %s" + "x" * 70_000, "null.example")
    assert reply.code == "556"
    assert "\r" not in "".join(reply.lines)
    assert "%%s" in reply.lines[0]
    assert all(len(line) + 2 <= 512 for line in reply.wire_lines())


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param(("{unknown}",), id="unknown-field"),
        pytest.param(("{address!r}",), id="conversion"),
        pytest.param(("{address:>10}",), id="format-spec"),
        pytest.param(("unbalanced {",), id="brace"),
        pytest.param(("bücher {domain}",), id="non-ascii"),
        pytest.param(("x" * 300 + "{address}{domain}",), id="can-exceed-512"),
        pytest.param((), id="empty"),
    ],
)
def test_bad_templates_are_refused_up_front(lines: tuple[str, ...]) -> None:
    with pytest.raises(ReplyError):
        ReplyTemplate("556", "5.1.10", lines)


def test_template_percent_is_doubled_for_libmilter() -> None:
    reply = ReplyTemplate("556", "5.1.10", ("100% sure: {domain}",)).render("a@b", "b")
    assert reply.lines == ("100%% sure: b",)
    assert reply.wire_lines() == ["556 5.1.10 100% sure: b"]


SUGGESTING = ("<{address}>: {domain} does not accept mail", "Did you mean <{suggestion}>?", "end")


def test_suggestion_line_is_kept_with_a_suggestion_and_dropped_without() -> None:
    template = ReplyTemplate("556", "5.1.10", SUGGESTING)
    assert template.uses_suggestion
    with_it = template.render("jane@gmial.com", "gmial.com", "jane@gmail.com")
    assert with_it.lines == (
        "<jane@gmial.com>: gmial.com does not accept mail",
        "Did you mean <jane@gmail.com>?",
        "end",
    )
    without = template.render("jane@gmial.com", "gmial.com")
    assert without.lines == ("<jane@gmial.com>: gmial.com does not accept mail", "end")


def test_suggestion_is_sanitised_like_the_address() -> None:
    template = ReplyTemplate("556", "5.1.10", SUGGESTING)
    reply = template.render("a@b.test", "b.test", "x%\r\ny" * 100 + "@gmail.com")
    assert "\r" not in reply.lines[1] and "\n" not in reply.lines[1]
    assert len(reply.lines[1]) <= len("Did you mean <>?") + ADDRESS_DISPLAY_CHARS


def test_a_template_only_of_suggestion_lines_is_refused() -> None:
    with pytest.raises(ReplyError, match="suggestion"):
        ReplyTemplate("556", "5.1.10", ("Did you mean <{suggestion}>?",))


@pytest.mark.parametrize(
    ("code", "enhanced", "lines", "message"),
    [
        pytest.param("250", "2.0.0", ("x",), "reply code '250' is not a 4xx or 5xx code", id="2xx"),
        pytest.param(
            "556",
            "4.1.10",
            ("x",),
            "enhanced code '4.1.10' does not match reply code 556",
            id="cls",
        ),
        pytest.param("556", "5.1.10", (), "a reply has 1 to 32 lines", id="no-lines"),
        pytest.param("556", "5.1.10", ("x",) * 33, "a reply has 1 to 32 lines", id="33-lines"),
        pytest.param(
            "556",
            "5.1.10",
            ("é",),
            "reply line has a character outside printable ASCII: 'é'",
            id="non-ascii",
        ),
        pytest.param(
            "556", "5.1.10", ("50%",), "reply line has a '%' that is not doubled: '50%'", id="pct"
        ),
        pytest.param(
            "556",
            "5.1.10",
            ("x" * 600,),
            "reply line is 613 octets on the wire, over 512",
            id="long",
        ),
    ],
)
def test_refused_replies_say_why(
    code: str, enhanced: str, lines: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ReplyError) as caught:
        Reply(code, enhanced, lines)
    assert str(caught.value) == message


def test_limits_that_pass() -> None:
    assert len(Reply("556", "5.1.10", ("x",) * 32).lines) == 32
    # 512 octets exactly: code, space, enhanced code, space, text and CRLF.
    longest = "x" * (512 - len("556 5.1.10 ") - 2)
    assert Reply("556", "5.1.10", (longest,)).lines == (longest,)
    with pytest.raises(ReplyError):
        Reply("556", "5.1.10", (longest + "x",))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param(
            ("a{",), "template line 'a{': Single '{' encountered in format string", id="brace"
        ),
        pytest.param(
            ("{0}",),
            "unknown template field {0}; use {address}, {domain} or {suggestion}",
            id="field",
        ),
        pytest.param(
            ("caf\u00e9 {domain}",),
            "template text must be printable ASCII: 'café {domain}'",
            id="non-ascii",
        ),
    ],
)
def test_refused_templates_say_why(lines: tuple[str, ...], message: str) -> None:
    with pytest.raises(ReplyError) as caught:
        ReplyTemplate("556", "5.1.10", lines)
    assert str(caught.value) == message


def test_escaped_braces_and_percent_in_template_text() -> None:
    template = ReplyTemplate("556", "5.1.10", ("50 {{x}} % {domain}", "tail }} {{"))
    assert template.render("a", "b.example") == Reply(
        "556", "5.1.10", ("50 {x} %% b.example", "tail } {")
    )


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        pytest.param("a" * 10, 10, "a" * 10, id="exactly-the-limit"),
        pytest.param("a" * 11, 10, "aaaaaaa...", id="one-over"),
        pytest.param("abc%xyzw", 8, "abc%%...", id="cut-after-a-doubled-percent"),
        pytest.param("abcd%%xyz", 8, "abcd...", id="cut-inside-a-doubled-percent"),
        pytest.param("abc%%%xyz", 9, "abc%%...", id="cut-inside-the-third"),
        pytest.param("a\r\nb\x00é", 10, "a??b??", id="unprintable"),
        pytest.param("50%", 10, "50%%", id="percent-doubled"),
    ],
)
def test_sanitise_edges(text: str, limit: int, shown: str) -> None:
    assert sanitise(text, limit) == shown
