"""This browser session's identity and its private places (uploads, runs): Streamlit glue only.

Every session gets a random id on its first run (kept in ``st.session_state["trn_session"]``, the key the
Training lab's worker registry always used). Runs trained in the app and extracted uploads live under it,
so one student never lists another's photos or runs (``explorer.models.session_runs``).
"""
from __future__ import annotations

import uuid
from pathlib import Path

import streamlit as st


def session_id() -> str:
    if "trn_session" not in st.session_state:  # a new session: delete old extracted uploads of every session
        from explorer.data import clean_extractions

        clean_extractions(session_uploads_root())
    return st.session_state.setdefault("trn_session", uuid.uuid4().hex)


def session_uploads_root() -> Path:
    from explorer.data import data_root

    return data_root() / "uploads"


def session_runs_dir() -> Path:
    from explorer.models import session_runs_dir as runs_dir_of

    return runs_dir_of(session_id())


def session_uploads_dir() -> Path:
    from explorer.data import data_root

    return data_root() / "uploads" / session_id()
