"""The sidebar's largest input follows the model: the largest side at which its shared pass fits the memory
budget per request (``explorer.analysis.largest_input_side``), e.g. 1024 for mnist_cnn, ~300 for
efficientnet_b7 with the default 1024 MB. A larger typed input is scaled down to it, with a warning; a caption
says why whenever the model's limit is below the absolute one.
"""
from __future__ import annotations

from typing import Any

import streamlit as st
from streamlit.logger import get_logger
from streamlit.runtime.caching.cache_errors import CacheError
from streamlit.runtime.caching.storage.cache_storage_protocol import CacheStorageError

_log = get_logger("explorer.memory_budget")  # Streamlit's format, in the server's log


@st.cache_data(max_entries=128, show_spinner=False)
def largest_side(name: str, budget: int, max_bytes: int) -> int:
    """The model's largest input side for this budget (cached: measuring costs a few passes on the meta device, and
    the first of them in a process imports ``torch._dynamo``, ~1 s). A shipped network's side is also kept on disk,
    under the versions it depends on (``explorer.analysis.largest_side_key``), so a restarted server does not measure
    it again before its first page."""
    from explorer.analysis import largest_input_side, largest_side_key

    code_key = largest_side_key(name)
    if code_key is None:
        return largest_input_side(name, budget=budget, max_bytes=max_bytes)
    args = (name, budget, max_bytes, code_key)
    try:
        return _kept_largest_side(*args)
    except Exception as exc:
        measured = _measured.pop(args, None)
        if measured is None and not isinstance(exc, DISK_CACHE_ERRORS):
            raise  # the measurement itself failed: not a disk problem
        # ~/.streamlit not writable, a file another replica was writing: the value measured, or measured here
        _log.warning("largest input side of %s not kept on disk (%s: %s)", name, type(exc).__name__, exc)
        return measured if measured is not None else largest_input_side(name, budget=budget, max_bytes=max_bytes)
    finally:
        _measured.pop(args, None)


# Streamlit's errors for a disk cache it cannot read or write (its storage's, and what its data cache makes of them).
DISK_CACHE_ERRORS: tuple[type[BaseException], ...] = (OSError, CacheError, CacheStorageError)
# What _kept_largest_side measured, until its caller has it: a disk write that fails after the measurement raises,
# and the caller then needs the value without measuring again (~1 s cold).
_measured: dict[tuple, int] = {}


@st.cache_data(max_entries=512, show_spinner=False, persist="disk")
def _kept_largest_side(name: str, budget: int, max_bytes: int, code_key: str) -> int:
    """:func:`largest_side` in Streamlit's disk cache (``~/.streamlit/cache``): one small file per (model, budgets,
    versions), shared by the replicas of one machine and read again after a restart."""
    from explorer.analysis import largest_input_side

    side = largest_input_side(name, budget=budget, max_bytes=max_bytes)
    _measured[(name, budget, max_bytes, code_key)] = side
    return side


def model_largest_side(name: str) -> int:
    """:func:`largest_side` for this server's budget per request and what the pages' shared pass keeps."""
    from explorer.analysis import request_budget_bytes
    from ui import analysis_cache

    return largest_side(name, request_budget_bytes(), analysis_cache.ANALYSIS_BUDGET_BYTES)


def cap_input(sb: Any, name: str, hw: tuple[int, int], text: str) -> tuple[int, int]:
    """``hw`` scaled down (aspect kept) to the model's largest side, saying so in the sidebar ``sb``."""
    from explorer.analysis import MAX_INPUT_SIDE, request_budget_bytes, typed_side_limit
    from ui.common import t

    budget = request_budget_bytes()
    side = model_largest_side(name)
    megabytes = budget // 2**20
    typed = typed_side_limit(name)
    grammar = typed is not None and side >= typed  # the typed network's own limit, not memory
    if max(hw) > side:
        scale = side / max(hw)
        capped = (max(1, int(hw[0] * scale)), max(1, int(hw[1] * scale)))
        if side >= MAX_INPUT_SIDE:  # the app's own limit, not this model's memory
            sb.warning(t("security.input_over_max", text=text, side=side, h=capped[0], w=capped[1]))
        elif grammar:
            sb.warning(t("security.input_over_typed", text=text, side=side, h=capped[0], w=capped[1]))
        else:
            sb.warning(t("security.input_capped", text=text, h=capped[0], w=capped[1], budget=megabytes))
        hw = capped
    elif grammar:
        sb.caption(t("security.input_typed_cap", side=side))
    elif side < MAX_INPUT_SIDE:
        sb.caption(t("security.input_cap", side=side, budget=megabytes))
    return hw
