"""Read sample values out of Prometheus exposition text."""

from __future__ import annotations

import re


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from exposition text; KeyError when the sample is not exposed.

    Every label value is pre-initialised to 0 by the daemon, so a missing sample means a
    misspelt name or label here, never a zero count.
    """
    label_text = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "")
    match = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    if match is None:
        raise KeyError(f"no sample {name}{{{label_text}}} in the exposition text")
    return float(match.group(1))
