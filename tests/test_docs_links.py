"""Every relative link in the README and the guides in docs/ leads somewhere: the file exists
and, for a `#fragment`, the Markdown file has a heading with that anchor (GitHub's rules).
Generated blocks live where their generator writes them."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from report import BEGIN, END

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\]\(([^()\s]+)\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)
# How code, configs and tests point at a section: README or docs/NAME.md, then the quoted title.
_SECTION_MENTION = re.compile(r'\b(README|docs/[\w-]+\.md),? "([^"\n]+)"')


def prose(path: Path) -> str:
    """The Markdown outside code blocks and code spans, where a link is a link."""
    return _CODE.sub("", _FENCE.sub("", path.read_text()))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated one also as GitHub numbers it (`-1`, `-2`)."""
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", path.read_text())):
        name = anchor(heading)
        count = seen.get(name, 0)
        found.add(f"{name}-{count}" if count else name)
        seen[name] = count + 1
    return found


def relative_links(path: Path) -> list[str]:
    return [
        target
        for target in _LINK.findall(prose(path))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)
    ]


def by_page() -> list[Any]:
    return [pytest.param(page, id=str(page.relative_to(REPO))) for page in PAGES]


def test_the_guides_are_there() -> None:
    assert len(PAGES) > 1, "no guides in docs/"


@pytest.mark.parametrize("page", by_page())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        file_part, _, fragment = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: {linked.relative_to(REPO)} has no heading #{fragment}")
    assert not broken, f"{page.relative_to(REPO)}: broken links:\n" + "\n".join(broken)


def test_anchors_follow_githubs_rules() -> None:
    assert anchor("Postfix: milter or policy service?") == "postfix-milter-or-policy-service"
    assert anchor("Status: `nullmx-milter status`, `/status`, `/healthz`") == (
        "status-nullmx-milter-status-status-healthz"
    )
    assert anchor("See it work: `make demo`") == "see-it-work-make-demo"


def test_the_benchmark_block_lives_where_make_bench_writes_it() -> None:
    performance = (REPO / "docs" / "performance.md").read_text()
    assert performance.count(BEGIN) == 1
    assert performance.count(END) == 1
    assert performance.index(BEGIN) < performance.index(END)
    for page in PAGES:
        if page.name != "performance.md":
            assert BEGIN not in page.read_text(), f"{page.relative_to(REPO)} has a bench block"
    makefile = (REPO / "Makefile").read_text()
    assert "bench/run.py --readme docs/performance.md" in makefile


def test_the_mutation_block_lives_where_make_mutation_writes_it() -> None:
    begin = "<!-- mutation:begin"
    development = (REPO / "docs" / "development.md").read_text()
    assert development.count(begin) == 1
    for page in PAGES:
        if page.name != "development.md":
            assert begin not in page.read_text(), f"{page.relative_to(REPO)} has a mutation block"
    makefile = (REPO / "Makefile").read_text()
    assert "scripts/mutation.py --readme docs/development.md" in makefile


def headings(path: Path) -> set[str]:
    return {heading.replace("`", "") for heading in _HEADING.findall(path.read_text())}


def test_section_references_in_code_and_configs_name_real_sections() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    broken = []
    for name in tracked:
        path = REPO / name
        if path.suffix == ".md" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for document, title in _SECTION_MENTION.findall(text):
            target = REPO / ("README.md" if document == "README" else document)
            if not target.is_file() or title.replace("`", "") not in headings(target):
                broken.append(f'{name}: {document} "{title}"')
    assert not broken, "references to sections that do not exist:\n" + "\n".join(broken)


def test_development_guide_lists_every_test_tier() -> None:
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"][
        "markers"
    ]
    guide = (REPO / "docs" / "development.md").read_text()
    for marker in markers:
        name = marker.split(":", 1)[0]
        assert f"| `{name}` |" in guide, f"docs/development.md: no row for the `{name}` tier"
