"""IDNA under Debian's own python3-idna, which the .deb runs on (3.3 on bookworm).

The virtualenv has a newer idna from PyPI, where `transitional` has no effect. Older releases
still honour it, and transitional processing would turn "ß" into "ss". So `to_a_label` must
pass `transitional=False`, and only the system idna can show it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent / "milter"
SYSTEM_PYTHON = "/usr/bin/python3"


def system_python(code: str) -> str:
    """What `code` prints under the system interpreter, isolated from the virtualenv and
    importing this checkout's package."""
    prelude = f"import sys; sys.path.insert(0, {str(SOURCE_ROOT)!r}); "
    done = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-c", prelude + code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_the_system_idna_still_honours_transitional_processing() -> None:
    # The reason for the next test: under this idna, transitional=True maps ß to ss.
    mapped = system_python(
        "import warnings, idna; warnings.simplefilter('ignore');"
        " print(idna.__version__, idna.encode('straße.de', uts46=True, transitional=True))"
    )
    assert mapped.endswith("b'strasse.de'"), mapped


def test_sharp_s_stays_a_sharp_s_under_the_system_idna() -> None:
    a_labels = system_python(
        "from nullmx_milter.address import to_a_label;"
        " print(to_a_label('straße.de'), to_a_label('strasse.de'), to_a_label('bücher.example'))"
    )
    assert a_labels == "xn--strae-oqa.de strasse.de xn--bcher-kva.example"
