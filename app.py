"""Streamlit entry: navigation between the pages and the sidebar they all share."""
from pathlib import Path

import streamlit as st

if __name__ != "__main__":
    # `streamlit run app.py` reads this file, finds `app` (Streamlit's discovery of st.App) and imports it once, in
    # the server, before any visitor: its lifespan warms torch, the default model, its image and its memory cap in
    # the background (ui.warmup). Each visitor's run executes this file as "__main__": the branch below.
    from ui.entry import leave_legacy_pages_mode
    from ui.warmup import warm_start

    leave_legacy_pages_mode()  # before any visitor: every run starts here, deep links included (ui.entry)
    app = st.App(__file__, lifespan=warm_start)
else:
    st.set_page_config(page_title="CNN Architecture Explorer", layout="wide")

    from ui.common import PageHalt, inside_app, render_sidebar, t  # after set_page_config
    from ui import links
    from ui.present import fit_metrics

    # (section key, [(page file stem, title key)]); a page appears once its file exists.
    SECTIONS = [
        ("nav.section.architecture", ["home", "architecture", "receptive_field", "conv_arithmetic"]),
        ("nav.section.inside", ["feature_maps", "gradcam", "course_concepts"]),
        ("nav.section.images", ["filters", "augmentation"]),
        ("nav.section.training", ["training"]),
        ("nav.section.history", ["compare", "papers", "build"]),
    ]
    HERE = Path(__file__).parent
    # URL paths are the file names (/gradcam, /feature_maps): a page's id is derived from its URL path, so a deep
    # link that Streamlit first resolves against pages/ (before any st.navigation call; see
    # ui.common.run_through_app) names the same page that st.navigation does.
    navigation = {}
    for section, stems in SECTIONS:
        pages = [st.Page(f"pages/{stem}.py", title=t(f"nav.{stem}"), default=(stem == "home"))
                 for stem in stems if (HERE / "pages" / f"{stem}.py").is_file()]
        if pages:
            navigation[t(section)] = pages

    # Every page listed: no English "View 3 more" (Streamlit's own text).
    page = st.navigation(navigation, expanded=True)
    view = links.begin(page)  # a shared link's or the lecturer's view, into session state before any widget
    render_sidebar()
    fit_metrics()  # before presentation mode's CSS, whose bigger metrics then win
    links.sidebar_tools(view)  # presentation mode, share link + QR code, class session
    try:
        with inside_app():  # the page's run_through_app: already inside the app
            page.run()
    except PageHalt:  # the page ended early (ui.common.halt): an error shown, nothing more to draw
        pass
    finally:  # the URL (and a lecturer's class) then shows the view on screen
        links.finish(view)
