"""Sarcasm / irony: an empty slot, on purpose.

Nothing usable for sarcasm runs offline from PyPI (see docs/enrichment.md and /work/shared/NLP.md section 3):
the packages that claim it are empty wheels or casing toys, a zero-shot sentence-embedding attempt scored at
chance (3/10 detected, 4/10 false alarms) and no labelled sarcasm corpus ships in a PyPI package to train on.
Rather than store a number that means nothing, the pipeline keeps this slot and always stores ``None``. A
future detector plugs in here (same signature) and bumps ``ENRICHMENT_VERSION``.
"""

from __future__ import annotations

VERSION = "none"


def detect(text: str) -> None:
    """Always ``None``: no offline sarcasm detector is good enough to store."""
    return None
