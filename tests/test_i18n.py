"""Message catalogues and the library/UI boundary."""
import ast
import json
import re
from pathlib import Path

import pytest

from explorer.core import LANGUAGES, LOCALES_DIR, catalogue, key_differences, translate

ROOT = Path(__file__).resolve().parents[1]


def test_every_key_exists_in_every_language():
    diff = key_differences()
    assert all(not missing for missing in diff.values()), {k: sorted(v)[:20] for k, v in diff.items() if v}


def test_area_files_match_between_languages():
    names = {lang: sorted(p.name for p in (LOCALES_DIR / lang).glob("*.json")) for lang in LANGUAGES}
    assert names["en"] == names["ko"]
    for name in names["en"]:
        en = json.loads((LOCALES_DIR / "en" / name).read_text(encoding="utf-8"))
        ko = json.loads((LOCALES_DIR / "ko" / name).read_text(encoding="utf-8"))
        assert set(en) == set(ko), name


def test_placeholders_agree():
    en, ko = catalogue("en"), catalogue("ko")
    field = re.compile(r"{(\w+)")
    for key in en:
        assert set(field.findall(en[key])) == set(field.findall(ko[key])), key


def test_korean_is_really_korean():
    ko = catalogue("ko")
    hangul = sum(1 for v in ko.values() if re.search(r"[\uac00-\ud7a3]", v))
    assert hangul / len(ko) > 0.8
    assert "수용 영역 (receptive field)" in translate("nav.receptive_field", "ko")


def test_missing_key_falls_back():
    assert translate("no.such.key", "ko") == "no.such.key"


def test_library_never_imports_streamlit():
    offenders = []
    for path in (ROOT / "explorer").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders


def test_pages_use_the_catalogue():
    """No page passes a bare English string literal as a title/header/label."""
    pattern = re.compile(r"st\.(title|header|subheader)\(\s*[\"']")
    for path in (ROOT / "pages").glob("*.py"):
        assert not pattern.search(path.read_text(encoding="utf-8")), path.name


@pytest.mark.parametrize("page, kind, key, value", [
    ("build", "radio", "build_mode", "table"),
    ("compare", "radio", "cmp_y", "weight_layers"),
    ("feature_maps", "radio", "maps_order", "mean"),
    ("receptive_field", "radio", "rf_show", "all"),
])
def test_korean_pages_take_a_widget_change(app_factory, page, kind, key, value):
    at = app_factory(page, lang="ko", sel_model="mnist_cnn", sel_weights="none")
    getattr(at, kind)(key=key).set_value(value).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[key] == value
