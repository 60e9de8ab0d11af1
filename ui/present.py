"""Presentation mode: bigger text and figures for a projector, and no controls a class does not need.

Everything is CSS for this browser tab only (``st.html`` puts a ``<style>`` element into this session's
page): figures are shared by every session (cached), so nothing here may change a figure object or a
process-wide plotly template.
"""
from __future__ import annotations

import streamlit as st

BASE_FONT_PX = 20  # Streamlit's rem-based text is 16 px by default: 1.25×
PLOT_ZOOM = 1.15  # plotly text scales with the chart: zooming the chart keeps its layout (no overlaps)

CSS = f"""
<style>
html {{ font-size: {BASE_FONT_PX}px; }}
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label,
[data-testid="stMarkdownContainer"] {{ font-size: 1.05rem; }}
[data-testid="stCaptionContainer"] {{ font-size: 0.95rem; }}
[data-testid="stMain"] h1 {{ font-size: 2.4rem; }}
[data-testid="stMain"] h2, [data-testid="stMain"] h3 {{ font-size: 1.7rem; }}
[data-testid="stMetricValue"] {{ font-size: min(2.6rem, 20cqi); }}
[data-testid="stMainBlockContainer"] {{ padding-top: 2.5rem; max-width: 100%; }}
[data-testid="stPlotlyChart"] {{ zoom: {PLOT_ZOOM}; }}
/* what a class does not need on the projector: downloads, uploads, the toolbar, help icons */
[data-testid="stDownloadButton"], [data-testid="stMain"] [data-testid="stFileUploader"],
[data-testid="stToolbar"], [data-testid="stElementToolbar"], [data-testid="stTooltipIcon"],
[data-testid="stDecoration"], [data-testid="stStatusWidget"] {{ display: none !important; }}
</style>
"""


# Page links in the main area wrap instead of ending in "…": at 150 % zoom (or in Korean) a concept's one-line
# description is longer than the column. The sidebar's navigation keeps Streamlit's own single lines.
WRAPPING_LINKS_CSS = """
<style>
[data-testid="stMain"] [data-testid="stPageLink-NavLink"] span,
[data-testid="stMain"] [data-testid="stPageLink-NavLink"] p { white-space: normal; overflow: visible; }
</style>
"""


# A metric's value is one line that Streamlit cuts with "…" when its column is narrower: five counts in a row at
# 150 % zoom showed "6.6…". Each column with a metric becomes a size container, and the value's font follows the
# column's width (at most Streamlit's own 2.25rem): a number of up to ~10 characters fits whatever the zoom. Labels
# wrap onto a second line instead of "파라미…".
FITTING_METRICS_CSS = """
<style>
[data-testid="stColumn"]:has([data-testid="stMetric"]) { container-type: inline-size; }
[data-testid="stMetricValue"] { font-size: min(2.25rem, 20cqi); }
[data-testid="stMetricLabel"] p, [data-testid="stMetricLabel"] div { white-space: normal; overflow: visible;
    text-overflow: clip; word-break: keep-all; overflow-wrap: anywhere; }
</style>
"""


def fit_metrics() -> None:
    """Metric values shrink to their column instead of ending in "…" (CSS for this run; app.py, every page)."""
    st.html(FITTING_METRICS_CSS)


def wrap_page_links() -> None:
    """Let this page's links in the main area wrap onto more lines (CSS for this run only)."""
    st.html(WRAPPING_LINKS_CSS)


def inject_presentation_css() -> None:
    """Turn presentation mode on for this run (call it once per run while the toggle is on)."""
    st.html(CSS)
