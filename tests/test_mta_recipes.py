"""The guides' MTA recipes are the shipped files the MTA tests run, not copies that drift."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from nullmx_milter.config import config_from_dict

from mta_postfix import SHIPPED_MAIN_CF, UNIX_SOCKET
from mta_sendmail import SHIPPED_MC

DOCS = Path(__file__).resolve().parent.parent / "docs"


def guide(name: str) -> str:
    """A guide up to its first second-level heading: its own recipe, not the alternatives."""
    text = (DOCS / name).read_text()
    end = text.find("\n## ")
    return text[: end if end >= 0 else None]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def test_sendmail_lines_in_readme_are_the_shipped_mc() -> None:
    shipped = SHIPPED_MC.read_text().splitlines()
    (block,) = blocks(guide("sendmail.md"), "m4")
    for line in block.splitlines():
        assert line in shipped, line


def test_readme_milter_configs_are_valid_and_match_the_mta_side() -> None:
    postfix, sendmail = guide("postfix.md"), guide("sendmail.md")
    (postfix_toml,) = blocks(postfix, "toml")
    (sendmail_toml,) = blocks(sendmail, "toml")
    postfix_socket = config_from_dict(tomllib.loads(postfix_toml)).milter.socket
    sendmail_socket = config_from_dict(tomllib.loads(sendmail_toml)).milter.socket
    # Postfix names the socket relative to its queue directory, /var/spool/postfix.
    assert postfix_socket == f"unix:/var/spool/postfix/{UNIX_SOCKET}"
    assert f"S={sendmail_socket}," in SHIPPED_MC.read_text()


def test_postfix_recipe_appends_the_shipped_main_cf() -> None:
    assert f"cat config/postfix/{SHIPPED_MAIN_CF.name} >> /etc/postfix/main.cf" in guide(
        "postfix.md"
    )
    assert f"\nsmtpd_milters = unix:{UNIX_SOCKET}\n" in SHIPPED_MAIN_CF.read_text()


def test_readme_postfix_setup_is_the_guides() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    start = readme.index("\n## Postfix in 30 seconds\n")
    quick = readme[start : readme.index("\n## ", start + 1)]
    assert f"cat config/postfix/{SHIPPED_MAIN_CF.name} >> /etc/postfix/main.cf" in quick
    assert f"smtpd_milters = unix:{UNIX_SOCKET}" in quick
