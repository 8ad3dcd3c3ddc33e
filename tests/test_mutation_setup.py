"""The mutation-testing set-up (`make mutation`, scripts/mutation.py), without running mutmut:
the equivalents file, the test selection, the scoring and the block in docs/development.md."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
MUTANT_NAME = re.compile(r"nullmx_milter\.(\w+)\.x(?:_\w+|ǁ\w+ǁ\w+)__mutmut_\d+\Z")


@pytest.fixture(scope="module")
def mutation() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation", ROOT / "scripts" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation"] = module
    spec.loader.exec_module(module)
    return module


def test_every_equivalent_is_a_mutant_of_a_mutated_module_with_a_reason(
    mutation: ModuleType,
) -> None:
    equivalents = mutation.load_equivalents()
    for name, listed in equivalents.items():
        match = MUTANT_NAME.match(name)
        assert match, name
        assert match.group(1) in mutation.MODULES, name
        assert len(listed.reason) >= 10, (name, listed.reason)


def test_an_equivalent_without_its_fingerprint_is_refused(
    mutation: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = tmp_path / "equivalents.txt"
    listed.write_text("# comment\nnullmx_milter.mx.x_f__mutmut_1  # a reason\n")
    monkeypatch.setattr(mutation, "EQUIVALENTS", listed)
    with pytest.raises(SystemExit, match=r"equivalents.txt:2: write `<name> \[<fingerprint>\]"):
        mutation.load_equivalents()
    listed.write_text("nullmx_milter.mx.x_f__mutmut_1 [0123abcd]  # a reason\n")
    assert mutation.load_equivalents() == {
        "nullmx_milter.mx.x_f__mutmut_1": mutation.Equivalent("0123abcd", "a reason", 1)
    }


MUTANTS = """\
class C:
    def xǁCǁm__mutmut_orig(self, a):
        b = a + 1
        return b

    def xǁCǁm__mutmut_1(self, a):
        b = a - 1
        return b

    def xǁCǁm__mutmut_2(self, a):
        b = a + 2
        return b

    def xǁCǁm__mutmut_3(self, a):
        return b
"""


def test_a_listed_name_that_now_means_another_mutant_is_caught(
    mutation: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "mutants" / "src" / "nullmx_milter" / "mx.py"
    source.parent.mkdir(parents=True)
    source.write_text(MUTANTS)
    monkeypatch.setattr(mutation, "STAGE", tmp_path)
    changes = mutation.mutations()
    first, second = "nullmx_milter.mx.xǁCǁm__mutmut_1", "nullmx_milter.mx.xǁCǁm__mutmut_2"
    assert sorted(changes) == [first, second, "nullmx_milter.mx.xǁCǁm__mutmut_3"]
    assert changes[first].change == "b = a - 1"
    assert changes["nullmx_milter.mx.xǁCǁm__mutmut_3"].change == "removed: b = a + 1"
    fingerprint = changes[first].fingerprint
    assert fingerprint != changes[second].fingerprint
    assert mutation.drifted({first: mutation.Equivalent(fingerprint, "why", 7)}, changes) == []
    [problem] = mutation.drifted({second: mutation.Equivalent(fingerprint, "why", 7)}, changes)
    assert problem.startswith(f"mutation_equivalents.txt:7: {second} is now [")
    assert "`b = a + 2`" in problem


def test_the_selected_tests_exist_and_are_fast_ones(mutation: ModuleType) -> None:
    for test in mutation.TESTS:
        text = (ROOT / "tests" / test).read_text()
        assert "pytestmark = pytest.mark.integration" not in text, test
        assert "hypothesis" not in text, test
    for module in mutation.MODULES:
        assert (ROOT / "milter" / "nullmx_milter" / f"{module}.py").is_file(), module


def test_scoring(mutation: ModuleType) -> None:
    prefix = "nullmx_milter.mx.x_classify_exchanges__mutmut_"
    codes = {
        f"{prefix}1": 1,
        f"{prefix}2": 0,
        f"{prefix}3": 0,
        f"{prefix}4": None,
        f"{prefix}5": 37,
    }
    scores = mutation.score(codes, {f"{prefix}3": mutation.Equivalent("0123abcd", "why", 1)})
    mx = scores["mx"]
    assert (mx.killed, mx.equivalent, mx.survived) == (2, [f"{prefix}3"], [f"{prefix}2"])
    assert mx.other == {"not checked": 1}
    assert mx.total == 5
    assert mx.score == 0.6
    assert scores["address"].total == 0


def test_the_readme_block_is_replaced(mutation: ModuleType, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{mutation.BEGIN}\nSTALE\n{mutation.END}\nafter\n")
    scores = mutation.score({"nullmx_milter.mx.x_f__mutmut_1": 1}, {})
    mutation.write_readme(readme, mutation.markdown(scores, 0, 120.0, fresh=True))
    text = readme.read_text()
    assert "STALE" not in text
    assert "| `mx` | 1 | 1 | 0 | 0 | 0 | 100.0% |" in text
    assert "(every mutant tested): 1 mutants, 2.0 min" in text
    assert text.startswith("before\n") and text.endswith(f"{mutation.END}\nafter\n")
    assert mutation.BEGIN in (ROOT / "docs" / "development.md").read_text()
