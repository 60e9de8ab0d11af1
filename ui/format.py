"""Tables for people: headers from the locale files, key columns first, counts as 11.7 M, an em dash for
nothing (the formatting itself is explorer.core's, so the CLI and tests share it)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import pandas as pd
import streamlit as st

from explorer.core import cell_text, human_number, key_columns_first
from ui.common import t


def inline_code(text: str) -> str:
    """``text`` (from a URL, anything a visitor wrote) as a Markdown code span, shown as itself: no link, image,
    emphasis, Streamlit ":red[...]" colour or "$" formula can start inside one. Backticks (which would close it)
    become apostrophes and line breaks spaces."""
    return "`" + " ".join(str(text).replace("`", "'").splitlines()) + "`"


def people_table(frame: pd.DataFrame, header_prefix: str, first: Sequence[str] = (),
                 counts: Iterable[str] = (), formats: dict[str, Callable[[object], str]] | None = None,
                 wide: Iterable[str] = ()) -> tuple[pd.DataFrame, dict[str, object]]:
    """``frame`` as shown on screen: the columns in ``first`` in front, every cell text (the ``counts``
    columns as human numbers, ``formats`` by column, missing values an em dash), each header translated
    from ``<header_prefix><column>``. Returns the frame and an ``st.dataframe`` column_config (``wide``
    columns get the large width, so a formula is read, not cut). Keep the raw frame for CSV downloads."""
    formats = dict(formats or {})
    for column in counts:
        formats.setdefault(column, human_number)
    order = key_columns_first(frame.columns, first)
    shown = pd.DataFrame({column: [formats.get(column, cell_text)(v) for v in frame[column]] for column in order},
                         index=frame.index)
    headers = {column: t(f"{header_prefix}{column}") for column in order}
    shown = shown.rename(columns=headers)
    wide = set(wide)
    config = {headers[c]: st.column_config.TextColumn(headers[c], width="large" if c in wide else None)
              for c in order}
    return shown, config


def metric_count(column, label: str, value: int, help_text: str | None = None) -> None:
    """A count in an ``st.metric`` that fits its column ("11.7 M"), the exact number in the help."""
    exact = t("table.exact_help", value=f"{int(value):,}")
    column.metric(label, human_number(value), help=(f"{help_text}\n\n" if help_text else "") + exact)
