import os
import sys
from pathlib import Path

import torch  # noqa: F401  imported once here so AppTest page runs do not pay for it inside their timeout

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")

import pytest  # noqa: E402


def open_app(page: str | None = None, **state):
    """An AppTest of the real entry script, run once (optionally with session state set), then switched
    to ``pages/<page>.py`` and run. Use the absolute path: relative ones resolve against the caller."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    return at


@pytest.fixture
def app_factory():
    return open_app


def run_with_model(at, name: str, max_side: int = 160):
    """Run ``at`` again with the sidebar on model ``name`` (random weights) at its natural input size, capped
    at ``max_side`` (the sweeps over every registered model)."""
    from explorer.models import get_entry

    _, h, w = get_entry(name).input_shape
    at.session_state["sel_model"] = name
    at.session_state["sel_weights"] = "none"
    at.session_state["sel_input"] = f"{min(h, max_side)}x{min(w, max_side)}"
    return at.run()


@pytest.fixture
def with_model():
    return run_with_model


def patch_analyze(monkeypatch, replacement) -> None:
    """Replace the shared analysis pass wherever the pages reach it (the page pass and the package's name)."""
    import explorer.analysis
    import explorer.analysis.page_pass

    for module in (explorer.analysis, explorer.analysis.page_pass):
        monkeypatch.setattr(module, "analyze", replacement)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No internet (every URL fails as an unknown host does) and an empty torch cache in ``tmp_path/torch``;
    returns the cache's checkpoints folder."""
    import socket
    import urllib.error
    import urllib.request

    def no_dns(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", no_dns)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def plotly_array(value):
    """An array of a figure's JSON as numpy: a list, or plotly's base64 typed array (``bdata``, ``dtype``, ``shape``)."""
    import base64

    import numpy as np

    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return flat.reshape(tuple(int(v) for v in str(shape).split(","))) if shape else flat
    return np.asarray(value, dtype=np.float64)


def z_of(trace: dict):
    """A heatmap's z from the figure JSON."""
    return plotly_array(trace["z"])

