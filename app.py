"""Streamlit entry: navigation between the pages and the sidebar they all share."""
from pathlib import Path

import streamlit as st

st.set_page_config(page_title="CNN Architecture Explorer", layout="wide")

from ui.common import render_sidebar, t  # noqa: E402  (after set_page_config)

# (section key, [(page file stem, title key)]); a page appears once its file exists.
SECTIONS = [
    ("nav.section.architecture", ["home", "architecture", "receptive_field", "conv_arithmetic"]),
    ("nav.section.inside", ["feature_maps", "gradcam"]),
    ("nav.section.images", ["filters", "augmentation"]),
    ("nav.section.training", ["training"]),
    ("nav.section.history", ["compare", "papers", "build"]),
]
HERE = Path(__file__).parent
# URL slugs deliberately differ from the file names: a url_path equal to a file's stem in pages/ makes
# AppTest (and Streamlit's legacy pages/ discovery) run that file alone, without this entry script.
URL_PATHS = {"home": "welcome", "architecture": "shapes", "receptive_field": "receptive-field", "conv_arithmetic": "conv-arithmetic",
             "feature_maps": "feature-maps", "gradcam": "grad-cam", "filters": "filters-lab",
             "augmentation": "augment", "training": "train", "compare": "compare-models",
             "papers": "paper-tables", "build": "build-your-own"}

navigation = {}
for section, stems in SECTIONS:
    pages = [st.Page(f"pages/{stem}.py", title=t(f"nav.{stem}"), url_path=URL_PATHS.get(stem), default=(stem == "home"))
             for stem in stems if (HERE / "pages" / f"{stem}.py").is_file()]
    if pages:
        navigation[t(section)] = pages

page = st.navigation(navigation)
render_sidebar()
page.run()
