"""atheris fuzz target: address parsing, the engine's decision and reply building.

Run: `python tests/fuzz_target.py [libFuzzer options] [corpus dirs]` (see `make fuzz`).
Any input that raises, or yields a reply breaking the wire invariants, is a crash;
libFuzzer saves it as crash-<sha1> and it belongs in tests/corpus/adversarial.txt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

from corpus import load_corpus

with atheris.instrument_imports():
    from nullmx_milter.address import parse_address
    from nullmx_milter.config import config_from_dict
    from nullmx_milter.engine import log_decision
    from nullmx_milter.policy import Role

    from fakes import engine_from_config
    from reply_checks import check_reply

# The sender check is on so that MAIL FROM takes the full path too.
ENGINE = engine_from_config(config_from_dict({"policy": {"sender_null_mx": "reject"}}))


def test_one_input(data: bytes) -> None:
    """The first byte picks the role; the rest is the argument as pymilter decodes it."""
    role = Role.SENDER if data[:1] == b"M" else Role.RECIPIENT
    argument = data[1:].decode("utf-8", "surrogateescape")
    parse_address(argument)
    check = ENGINE.check_sender if role is Role.SENDER else ENGINE.check_recipient
    decision = check(argument)
    if decision.reply is not None:
        check_reply(decision.reply)
    log_decision(decision, role, argument, "conn=fuzz qid=-")


def seed_corpus(directory: Path, max_len: int = 4096) -> None:
    """Start an empty corpus directory from tests/corpus/adversarial.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    for entry in load_corpus():
        role = b"M" if entry.role == "mail" else b"R"
        (directory / f"seed-{entry.line}").write_bytes((role + entry.argument)[:max_len])


def main() -> None:
    for argument in sys.argv[1:]:
        if not argument.startswith("-"):
            seed_corpus(Path(argument))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
