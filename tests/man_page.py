"""Read a man page's source: its sections, its `.TP`/`.B name` entries, their plain text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# The troff escapes the pages use, and what they stand for in plain text.
_ESCAPES = {r"\-": "-", r"\(dq": '"', r"\(aq": "'", r"\e": "\\", r"\&": "", r"\(em": "--"}
_FONT = re.compile(r"\\f(?:[BIRP]|\(CR)")
_MACRO_WITH_TEXT = re.compile(r"\.(B|I|BR|RB|BI|IB|IR|RI|SS|SH)\s+(.*)\Z")
_MACRO_ARGUMENT = re.compile(r'"([^"]*)"|(\S+)')
_HEADINGS = frozenset({"SS", "SH"})
_PARAGRAPH = frozenset({".PP", ".P", ".LP"})


@dataclass(frozen=True)
class Entry:
    """One `.TP` entry: the text of its bold tag line, and its body as plain text lines
    grouped by the line breaks (`.br`) between them."""

    name: str
    parts: tuple[tuple[str, ...], ...]

    def text(self) -> str:
        return " ".join(line for part in self.parts for line in part)

    def field(self, label: str) -> str:
        """The text after `label:` up to the next line break (a value may span lines)."""
        for part in self.parts:
            if part and part[0].startswith(f"{label}:"):
                return " ".join((part[0].removeprefix(f"{label}:"), *part[1:])).strip()
        raise KeyError(label)


def plain(text: str) -> str:
    """A line of troff text without escapes and font changes."""
    text = _FONT.sub("", text)
    for escape, meaning in _ESCAPES.items():
        text = text.replace(escape, meaning)
    return text


def plain_line(line: str) -> str | None:
    """The text a source line contributes (macro arguments run together), or None when it
    contributes none (a comment or a macro without text)."""
    if line.startswith('.\\"'):
        return None
    if not line.startswith("."):
        return plain(line)
    match = _MACRO_WITH_TEXT.match(line)
    if match is None:
        return None
    arguments = [quoted or bare for quoted, bare in _MACRO_ARGUMENT.findall(match.group(2))]
    # One-font macros set their arguments apart; alternating ones (.BR, .IR ...) run them on.
    separator = " " if len(match.group(1)) == 1 or match.group(1) in _HEADINGS else ""
    return plain(separator.join(arguments))


class ManPage:
    """A man page's source, split into its `.SH` sections."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = path.read_text()
        self.sections: dict[str, list[str]] = {}
        current: list[str] = []
        for line in self.source.splitlines():
            if line.startswith(".SH "):
                heading = plain_line(line) or ""
                current = self.sections.setdefault(heading, [])
            else:
                current.append(line)

    def section(self, heading: str) -> list[str]:
        if heading not in self.sections:
            raise AssertionError(f"{self.path.name} has no section .SH {heading}")
        return self.sections[heading]

    def section_text(self, heading: str) -> str:
        return text_of(self.section(heading))

    def subsections(self, heading: str) -> dict[str, list[str]]:
        """The `.SS` subsections of a section, by their plain heading."""
        found: dict[str, list[str]] = {}
        current: list[str] = []
        for line in self.section(heading):
            if line.startswith(".SS "):
                current = found.setdefault(plain_line(line) or "", [])
            else:
                current.append(line)
        return found

    def entries(self, heading: str) -> dict[str, Entry]:
        """The `.TP` entries of a section, by the plain text of their bold tag line."""
        return entries_in(self.section(heading))

    def literal_blocks(self, heading: str) -> list[str]:
        """The `.nf` ... `.fi` blocks of a section as plain text."""
        blocks: list[str] = []
        current: list[str] | None = None
        for line in self.section(heading):
            if line == ".nf":
                current = []
            elif line == ".fi" and current is not None:
                blocks.append("\n".join(current))
                current = None
            elif current is not None:
                text = plain_line(line)
                if text is not None:
                    current.append(text)
        return blocks


def text_of(lines: list[str]) -> str:
    """The plain text of source lines, run together."""
    return " ".join(text for text in map(plain_line, lines) if text is not None)


def entries_in(lines: list[str]) -> dict[str, Entry]:
    """The `.TP` entries among `lines` whose tag is bold (`.B`, `.BI`, `.BR`)."""
    found: dict[str, Entry] = {}
    starts = [index for index, line in enumerate(lines) if line == ".TP"]
    for start, next_start in zip(starts, [*starts[1:], len(lines)], strict=True):
        tag = lines[start + 1] if start + 1 < len(lines) else ""
        if not re.match(r"\.B[IR]? ", tag):
            continue
        # A paragraph macro ends the entry too.
        end = next(
            (index for index in range(start + 2, next_start) if lines[index] in _PARAGRAPH),
            next_start,
        )
        parts: list[list[str]] = [[]]
        for line in lines[start + 2 : end]:
            if line == ".br":
                parts.append([])
            elif text := plain_line(line):
                parts[-1].append(text.strip())
        name = plain_line(tag) or ""
        found[name] = Entry(name, tuple(tuple(part) for part in parts if part))
    return found
