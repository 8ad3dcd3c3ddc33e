"""The man pages cannot drift: nullmx-milter.toml(5) documents every config key as the daemon
loads it, and so does the sample config; nullmx-milter(8) documents every command and option
that `--help` shows; `man --warnings` has nothing to say about either page."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from nullmx_milter import cli, status_client
from nullmx_milter.config import Config, config_from_dict
from nullmx_milter.runtime import settings_needing_restart

from config_keys import ConfigKey, config_keys, config_tables
from man_page import Entry, ManPage, entries_in, text_of

REPO = Path(__file__).resolve().parent.parent
MAN5 = REPO / "docs" / "nullmx-milter.toml.5"
MAN8 = REPO / "docs" / "nullmx-milter.8"
SAMPLE = REPO / "config" / "nullmx-milter.toml"
KEYS = config_keys()
SCREEN_LINES = 24
SCREEN_COLUMNS = 80


def by_key(keys: list[ConfigKey]) -> list[Any]:
    return [pytest.param(key, id=key.dotted) for key in keys]


def man5_entry(key: ConfigKey) -> Entry:
    page = ManPage(MAN5)
    heading = f"[{key.table}]"
    how = (
        f"add under `.SH {heading}` an entry `.TP`, `.B {key.name}`, then the lines"
        " `Type:`, `Default:`, `Allowed:` and `Reload:`, then what it does"
    )
    if heading not in page.sections:
        pytest.fail(f"docs/{MAN5.name} has no section `.SH {heading}` for {key.dotted}: {how}")
    entries = page.entries(heading)
    if key.name not in entries:
        pytest.fail(f"docs/{MAN5.name} does not document {key.dotted}: {how}")
    return entries[key.name]


def field(entry: Entry, key: ConfigKey, label: str) -> str:
    try:
        return entry.field(label)
    except KeyError:
        pytest.fail(f"docs/{MAN5.name}: the entry for {key.dotted} has no `{label}:` line")


def words(tag: str) -> set[str]:
    """The names an entry's tag gives (`-h, --help` gives -h and --help)."""
    return set(re.split(r"[\s,]+", tag))


def normal(text: str) -> str:
    """Text compared across --help and a man page: case, spacing and a final stop ignored."""
    return " ".join(text.split()).lower().rstrip(".")


# nullmx-milter.toml(5) and the sample config


@pytest.mark.parametrize("key", by_key(KEYS))
def test_man5_gives_each_keys_type_and_allowed_values(key: ConfigKey) -> None:
    entry = man5_entry(key)
    kind = field(entry, key, "Type")
    if key.toml_type is not None:
        assert kind.startswith(key.toml_type), (
            f"docs/{MAN5.name}: {key.dotted} is a TOML {key.toml_type}, but its entry says"
            f" `Type: {kind}`"
        )
    allowed = field(entry, key, "Allowed")
    assert allowed, f"docs/{MAN5.name}: {key.dotted} has an empty `Allowed:` line"
    missing = [choice for choice in key.choices if f'"{choice}"' not in allowed]
    assert not missing, (
        f"docs/{MAN5.name}: `Allowed:` of {key.dotted} does not list {', '.join(missing)}"
    )


@pytest.mark.parametrize("key", by_key(KEYS))
def test_man5_default_is_what_the_loader_gives(key: ConfigKey) -> None:
    text = field(man5_entry(key), key, "Default")
    try:
        documented = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError as error:
        pytest.fail(f"docs/{MAN5.name}: `Default:` of {key.dotted} is not a TOML value: {error}")
    loaded = key.value_in(config_from_dict(key.nested(documented)))
    assert loaded == key.default, (
        f"docs/{MAN5.name}: {key.dotted} = {text} loads as {loaded!r}; the default is"
        f" {key.default!r}"
    )


def needs_restart(key: ConfigKey) -> set[bool]:
    """Whether a reload reports a change of this key as "needs restart", for every change of
    an enumerated key between its values, and for a change of any other key."""
    base = Config()
    if key.choices:
        kind = type(key.default)
        changes = [(old, new) for old in kind for new in kind if old is not new]
    else:
        changes = [(key.default, object())]
    return {
        key.dotted in settings_needing_restart(key.replaced(base, old), key.replaced(base, new))
        for old, new in changes
    }


@pytest.mark.parametrize("key", by_key(KEYS))
def test_man5_says_whether_a_reload_applies_it(key: ConfigKey) -> None:
    reload = field(man5_entry(key), key, "Reload")
    restart = needs_restart(key)
    if restart == {False}:
        expected = "`Reload: applies it`"
        ok = reload.startswith("applies it")
    elif restart == {True}:
        expected = "`Reload: needs a restart`"
        ok = reload.startswith("needs a restart")
    else:
        expected = "`Reload: needs a restart` to ..., saying what a reload does apply"
        ok = reload.startswith("needs a restart") and "a reload" in reload
    assert ok, f"docs/{MAN5.name}: {key.dotted} should say {expected}, not `Reload: {reload}`"


def test_man5_documents_no_key_or_table_the_config_lacks() -> None:
    page = ManPage(MAN5)
    tables = {f"[{table}]" for table in config_tables()}
    stale_tables = sorted(
        heading for heading in page.sections if heading.startswith("[") and heading not in tables
    )
    assert not stale_tables, f"docs/{MAN5.name} documents tables the config lacks: {stale_tables}"
    names = {key.dotted for key in KEYS}
    stale = sorted(
        f"{heading[1:-1]}.{name}"
        for heading in tables
        if heading in page.sections
        for name in page.entries(heading)
        if f"{heading[1:-1]}.{name}" not in names
    )
    assert not stale, f"docs/{MAN5.name} documents keys the config lacks: {stale}"


def test_man5_example_is_a_config_that_loads() -> None:
    blocks = ManPage(MAN5).literal_blocks("EXAMPLE")
    assert len(blocks) == 1, f"docs/{MAN5.name}: EXAMPLE should hold one .nf block"
    example = config_from_dict(tomllib.loads(blocks[0]))
    assert example != Config()


@pytest.mark.parametrize("key", by_key(KEYS))
def test_sample_config_sets_every_key(key: ConfigKey) -> None:
    node: Any = tomllib.loads(SAMPLE.read_text())
    for part in (*key.table.split("."), key.name):
        if not isinstance(node, dict) or part not in node:
            pytest.fail(
                f"config/{SAMPLE.name} does not set {key.dotted}: add it under [{key.table}],"
                " set to its default, with a comment"
            )
        node = node[part]


# nullmx-milter(8) and --help


def subcommands() -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Each command's name: its one-line summary and its parser."""
    for action in cli.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (summaries[name], sub) for name, sub in action.choices.items()}
    raise AssertionError("nullmx-milter has no commands")


def documented(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options and arguments a command's man page entry must list (-h is in OPTIONS)."""
    return [action for action in parser._actions if not isinstance(action, argparse._HelpAction)]


@pytest.mark.parametrize("name", list(subcommands()))
def test_man8_documents_each_command_as_help_does(name: str) -> None:
    summary, parser = subcommands()[name]
    commands = ManPage(MAN8).subsections("COMMANDS")
    assert name in commands, (
        f"docs/{MAN8.name} does not document `{name}`: add `.SS {name}` under COMMANDS"
    )
    lines = commands[name]
    text = normal(text_of(lines))
    for what, said in (("summary", summary), ("description", parser.description or "")):
        assert normal(said) in text, (
            f"docs/{MAN8.name}, `.SS {name}` does not say what `{name} --help` says"
            f" ({what}): {said!r}"
        )
    entries = entries_in(lines)
    for action in documented(parser):
        names = action.option_strings or [str(action.metavar)]
        entry = next((entry for tag, entry in entries.items() if set(names) & words(tag)), None)
        assert entry is not None, (
            f"docs/{MAN8.name}, `.SS {name}`: no `.TP` entry for {' '.join(names)}"
        )
        assert normal(action.help or "") in normal(entry.text()), (
            f"docs/{MAN8.name}, `.SS {name}`: the entry for {names[0]} does not say what"
            f" --help says: {action.help!r}"
        )


def test_man8_synopsis_lists_every_command_and_option() -> None:
    synopsis = ManPage(MAN8).section_text("SYNOPSIS")
    for name, (_, parser) in subcommands().items():
        assert f"nullmx-milter {name}" in synopsis, f"SYNOPSIS lacks `nullmx-milter {name}`"
        for action in documented(parser):
            for option in action.option_strings or [str(action.metavar)]:
                assert option in synopsis, f"SYNOPSIS lacks {option} of `{name}`"
    for action in cli.build_parser()._actions:
        for option in action.option_strings:
            assert option in synopsis, f"SYNOPSIS lacks {option}"


def test_man8_documents_the_program_options() -> None:
    options = set().union(*map(words, ManPage(MAN8).entries("OPTIONS")))
    for action in cli.build_parser()._actions:
        for option in action.option_strings:
            assert option in options, f"docs/{MAN8.name}: OPTIONS lacks {option}"


def test_man8_gives_every_exit_status() -> None:
    statuses = ManPage(MAN8).entries("EXIT STATUS")
    for status in (
        status_client.EXIT_HEALTHY,
        status_client.EXIT_UNHEALTHY,
        cli.EXIT_CONFIG,
        status_client.EXIT_UNREACHABLE,
    ):
        assert str(status) in statuses, f"docs/{MAN8.name}: EXIT STATUS lacks {status}"


def test_man8_names_the_signals_and_the_other_page() -> None:
    page = ManPage(MAN8)
    signals = " ".join(page.entries("SIGNALS"))
    for signal in ("SIGUSR1", "SIGTERM", "SIGHUP", "SIGINT"):
        assert signal in signals, f"docs/{MAN8.name}: SIGNALS lacks {signal}"
    assert "nullmx-milter.toml(5)" in page.section_text("SEE ALSO")


@pytest.mark.parametrize("command", [[], *([name] for name in subcommands())], ids=str)
def test_help_fits_one_screen(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(SCREEN_COLUMNS))
    parser = cli.build_parser()
    if command:
        parser = subcommands()[command[0]][1]
    lines = parser.format_help().splitlines()
    assert len(lines) <= SCREEN_LINES, f"{len(lines)} lines"
    assert max(map(len, lines)) <= SCREEN_COLUMNS


@pytest.mark.parametrize("page", [MAN5, MAN8], ids=lambda page: page.name)
def test_man_formats_the_page_without_a_warning(page: Path) -> None:
    result = subprocess.run(
        ["man", "--warnings", "-l", str(page)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "80", "LC_ALL": "C.UTF-8", "MANPAGER": "cat"},
        check=False,
    )
    assert result.returncode == 0
    assert result.stderr == ""
    assert "nullmx-milter" in result.stdout
