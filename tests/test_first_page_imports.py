"""The first page (a teaching network) does not pay for torchvision: the registry fills in two steps, and what it
answers before the second step is what the full registry answers (issue 19: the first page's start)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(code: str) -> dict:
    """``code`` in a fresh interpreter (nothing imported yet); it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "EXPLORER_MODELS": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_teaching_network_loads_without_torchvision_and_the_rest_still_resolves():
    out = _run("""
import json, sys
from explorer.models import get_entry, list_models, load_model
from explorer.models.names import quick_model_names
entry = get_entry("tiny_vgg")
loaded = load_model("tiny_vgg")
names_light = list_models()
before = "torchvision" in sys.modules
resnet = get_entry("resnet18")        # a torchvision name: the second step
vgg_a = get_entry("vgg_a")           # a paper network (torchvision's weight enum)
names_full = list_models()
print(json.dumps({"before": before, "after": "torchvision" in sys.modules, "indexed": quick_model_names() is not None,
                  "light": names_light, "full": names_full, "resnet_source": resnet.source,
                  "vgg_a_weights": vgg_a.weights_enum is not None, "shape": list(entry.input_shape),
                  "pretrained": loaded.pretrained}))
""")
    if out["indexed"]:  # (with timm, entry points or another torchvision the full registry answers at once)
        assert out["before"] is False  # the teaching network, its weights and the model list: no torchvision
    assert out["after"] is True
    assert out["light"] == out["full"]  # the index is exactly the full registry's list, in its order
    assert "resnet18" in out["full"] and "tiny_vgg" in out["full"]
    assert out["resnet_source"] == "torchvision" and out["vgg_a_weights"] is True
    assert out["shape"] == [3, 64, 64] and out["pretrained"] is True


def test_a_network_registered_in_the_process_is_listed_before_the_second_step():
    out = _run("""
import json
import torch.nn as nn
from explorer.models import get_entry, list_models, register_model
register_model("my_net", input_shape=(1, 8, 8), family="Mine")(lambda num_classes=None: nn.Conv2d(1, 2, 3))
names = list_models()
print(json.dumps({"listed": "my_net" in names, "also": "resnet18" in names, "family": get_entry("my_net").family}))
""")
    assert out == {"listed": True, "also": True, "family": "Mine"}


def test_unknown_names_still_raise_the_registry_error():
    out = _run("""
import json
from explorer.models import get_entry
try:
    get_entry("no_such_net")
    message = ""
except KeyError as exc:
    message = str(exc)
print(json.dumps({"message": message}))
""")
    assert "unknown model 'no_such_net'" in out["message"]


def test_the_home_page_renders_without_torchvision_or_captum():
    out = _run("""
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=300).run()
print(json.dumps({"exception": [e.value for e in at.exception], "title": [t.value for t in at.title],
                  "modules": sorted(m for m in ("torchvision", "captum") if m in sys.modules),
                  "model": at.session_state["sel_model"]}))
""")
    assert out["exception"] == []
    assert out["model"] == "tiny_vgg" and out["title"]
    if out["modules"]:
        pytest.fail(f"the first page imported {out['modules']}: ~1 s more before anything is drawn")
