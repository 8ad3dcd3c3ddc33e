"""make mutation: mutmut on the pure modules against the fast tests, scored per module.

mutmut only strips a `src/` prefix when it turns a file path into a module name, and the
package lives in `milter/`: so the package, the tests and what they read are staged under
build/mutation/ with the package in `src/`, and mutmut runs there. Its cache (mutants/)
stays between runs, so a rerun only retests what changed.

Every surviving mutant must be listed, with a one-line reason, in tests/mutation_equivalents.txt
(`<mutant name>  # why no test can tell it apart`); a module passes with at least 90 % of its
mutants killed or listed. The scores go to build/mutation/scores.txt.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "build" / "mutation"
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.txt"
SCORES = STAGE / "scores.txt"
TARGET = 0.90
MODULES = (
    "address", "mx", "policy", "reply", "cache", "dns_health", "config", "dns_fast", "engine",
)  # fmt: skip
# The fast tests that drive those modules (no DNS server, MTA or property tests: mutmut runs
# the tests covering a mutated function once per mutant).
TESTS = (
    "test_address.py", "test_mx.py", "test_policy.py", "test_reply.py", "test_cache.py",
    "test_config.py", "test_dns_fast.py", "test_lookup_service.py", "test_metrics.py",
    "test_milter_adapter.py", "test_policy_service.py",
)  # fmt: skip
PYTEST_ARGS = ("-m", "not integration and not mta", "-p", "no:cacheprovider", "-q")
# Files the selected tests read besides the package and tests/.
ALSO = ("README.md", "docs", "config", "bench")
# mutmut's exit codes (mutmut/stats.py): 1 and 3 killed, 37 caught by the type check.
KILLED = {1, 3, 37}
SURVIVED = 0


@dataclass
class ModuleScore:
    module: str
    killed: int = 0
    equivalent: list[str] = field(default_factory=list)
    survived: list[str] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.killed + len(self.equivalent) + len(self.survived) + sum(self.other.values())

    @property
    def score(self) -> float:
        return (self.killed + len(self.equivalent)) / self.total if self.total else 1.0

    @property
    def raw_score(self) -> float:
        return self.killed / self.total if self.total else 1.0


def stage() -> None:
    """The package under src/, the tests and what they read, and a pyproject with mutmut's
    settings; unchanged files keep their mtime, so mutmut's cache stays valid."""
    STAGE.mkdir(parents=True, exist_ok=True)
    _sync(ROOT / "milter" / "nullmx_milter", STAGE / "src" / "nullmx_milter")
    _sync(ROOT / "tests", STAGE / "tests")
    for name in ALSO:
        source = ROOT / name
        if source.is_dir():
            _sync(source, STAGE / name)
        else:
            shutil.copy2(source, STAGE / name)
    only = ", ".join(f'"src/nullmx_milter/{module}.py"' for module in MODULES)
    tests = ", ".join(f'"tests/{test}"' for test in TESTS)
    args = ", ".join(f'"{arg}"' for arg in PYTEST_ARGS)
    also = ", ".join(f'"{name}"' for name in ALSO)
    settings = (
        "\n[tool.mutmut]\n"
        'source_paths = ["src/nullmx_milter"]\n'
        f"only_mutate = [{only}]\n"
        f"pytest_add_cli_args_test_selection = [{tests}]\n"
        f"pytest_add_cli_args = [{args}]\n"
        f"also_copy = [{also}]\n"
    )
    pyproject = (ROOT / "pyproject.toml").read_text() + settings
    target = STAGE / "pyproject.toml"
    if not target.exists() or target.read_text() != pyproject:
        target.write_text(pyproject)


def _sync(source: Path, target: Path) -> None:
    """Mirror `source` into `target`: copy what differs, delete what is gone."""
    wanted = set()
    for path in source.rglob("*"):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        relative = path.relative_to(source)
        wanted.add(relative)
        copy = target / relative
        if copy.exists() and copy.read_bytes() == path.read_bytes():
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    if target.exists():
        for path in target.rglob("*"):
            stale = path.is_file() and path.relative_to(target) not in wanted
            if stale and "__pycache__" not in path.parts:
                path.unlink()


def load_equivalents() -> dict[str, str]:
    """Mutant name -> the reason no test can tell it from the original."""
    listed: dict[str, str] = {}
    for number, line in enumerate(EQUIVALENTS.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, _hash, reason = text.partition("#")
        if not reason.strip():
            raise SystemExit(f"{EQUIVALENTS.name}:{number}: give a reason after '#': {line!r}")
        listed[name.strip()] = reason.strip()
    return listed


def results() -> dict[str, int | None]:
    """Mutant name -> mutmut's exit code, read from its per-file .meta files."""
    codes: dict[str, int | None] = {}
    for meta in sorted((STAGE / "mutants" / "src" / "nullmx_milter").glob("*.py.meta")):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def score(codes: dict[str, int | None], equivalents: dict[str, str]) -> dict[str, ModuleScore]:
    scores = {module: ModuleScore(module) for module in MODULES}
    for name, code in codes.items():
        module = name.split(".")[1]
        if module not in scores:
            continue
        entry = scores[module]
        if code in KILLED:
            entry.killed += 1
        elif code == SURVIVED and name in equivalents:
            entry.equivalent.append(name)
        elif code == SURVIVED:
            entry.survived.append(name)
        else:
            status = "not checked" if code is None else f"exit {code}"
            entry.other[status] = entry.other.get(status, 0) + 1
    return scores


def report(scores: dict[str, ModuleScore], stale: list[str], seconds: float) -> str:
    lines = [
        f"mutmut on {len(scores)} modules in {seconds:.0f} s; target {TARGET:.0%} killed "
        "or listed equivalent per module",
        "",
        f"{'module':<12} {'mutants':>7} {'killed':>7} {'equiv.':>6} {'survived':>8} "
        f"{'other':>5} {'killed %':>8} {'score':>6}",
    ]
    for entry in scores.values():
        lines.append(
            f"{entry.module:<12} {entry.total:>7} {entry.killed:>7} {len(entry.equivalent):>6} "
            f"{len(entry.survived):>8} {sum(entry.other.values()):>5} "
            f"{entry.raw_score:>8.1%} {entry.score:>6.1%}"
        )
    for entry in scores.values():
        for status, count in entry.other.items():
            lines.append(f"{entry.module}: {count} mutants {status}")
        lines.extend(f"survived: {name}" for name in sorted(entry.survived))
    lines.extend(f"listed as equivalent but not a surviving mutant: {name}" for name in stale)
    return "\n".join(lines) + "\n"


def main() -> int:
    started = time.monotonic()
    stage()
    mutmut = Path(sys.executable).parent / "mutmut"
    run = subprocess.run([str(mutmut), "run", "--max-children", "2"], cwd=STAGE, check=False)
    seconds = time.monotonic() - started
    equivalents = load_equivalents()
    codes = results()
    scores = score(codes, equivalents)
    surviving = {name for name, code in codes.items() if code == SURVIVED}
    stale = sorted(set(equivalents) - surviving)
    text = report(scores, stale, seconds)
    SCORES.write_text(text)
    print(text, end="")
    failed = [entry.module for entry in scores.values() if entry.score < TARGET]
    if run.returncode != 0 or failed or stale:
        print(f"make mutation: FAILED (mutmut exit {run.returncode}; below target: {failed})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
