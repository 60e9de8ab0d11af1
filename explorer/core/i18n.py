"""The message catalogue: one JSON file per area per language under ``explorer/locales/<lang>/``."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

LOCALES_DIR = Path(__file__).parent.parent / "locales"
LANGUAGES: dict[str, str] = {"en": "English", "ko": "한국어"}
DEFAULT_LANGUAGE = "en"


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """Every message of ``lang``, merged from its area files; a key defined twice is an error."""
    merged: dict[str, str] = {}
    folder = LOCALES_DIR / lang
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for key, value in data.items():
            if key in merged:
                raise ValueError(f"message key {key!r} is defined twice ({path.name})")
            merged[key] = value
    return merged


def translate(key: str, lang: str = DEFAULT_LANGUAGE, **fmt: object) -> str:
    """The message for ``key`` in ``lang`` (English, then the key itself, when missing), formatted."""
    text = catalogue(lang).get(key) or catalogue(DEFAULT_LANGUAGE).get(key) or key
    if fmt:
        try:
            return text.format(**fmt)
        except (KeyError, IndexError, ValueError):
            return text
    return text


def key_differences() -> dict[str, set[str]]:
    """Keys present in one language and not another (empty sets when the catalogues agree)."""
    keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
    union = set().union(*keys.values())
    return {lang: union - present for lang, present in keys.items()}
