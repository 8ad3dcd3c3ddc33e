"""Read sample values out of Prometheus exposition text."""

from __future__ import annotations

import re


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from exposition text (0 when absent)."""
    label_text = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(label_text) + r"\}" if labels else "")
    match = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
