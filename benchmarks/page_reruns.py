"""The real pages' reruns after one widget change, timed with Streamlit's AppTest (not a test: prints one JSON
object). Run by ``python -m explorer bench`` (``explorer.devtools.bench_pages``) in a child process, so that the
library itself never imports Streamlit; its argument is a JSON object with ``models``, ``repeats`` and ``threads``.

    python benchmarks/page_reruns.py '{"models": ["resnet18"], "repeats": 5, "threads": null}'
"""
import json
import math
import statistics
import sys
import time
from pathlib import Path

import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the app's own packages (ui, explorer), as `streamlit run app.py` finds them
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"] or torch.get_num_threads())
out = {}
# AppTest's own cost of a rerun: a script with one slider and nothing else.
at = AppTest.from_string("import streamlit as st\nst.slider('x', 0.0, 1.0, 0.5, key='x')", default_timeout=60)
at.run()
cpu, wall = [], []
for i in range(args["repeats"] + 1):
    c, w = time.process_time(), time.perf_counter()
    at.slider(key="x").set_value(0.3 + 0.05 * i).run()
    if i:
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
out["(AppTest floor)/one-slider script/x"] = {"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall), "n": len(cpu)}
for model in args["models"]:
    for page, widget, kind in (("feature_maps", "maps_alpha", "slider"), ("feature_maps", "maps_layer", "selectbox"),
                               ("feature_maps", "maps_layer", "largest_layers"), ("feature_maps", "maps_cmap", "largest"),
                               ("feature_maps", "maps_channel", "number"),
                               ("gradcam", "cam_alpha", "slider"), ("gradcam", "cam_layer", "selectbox")):
        name = f"{model}/{page}/{widget}" + ("(largest)" if kind == "largest_layers" else "")
        st.cache_data.clear(); st.cache_resource.clear()  # "not drawn before" must hold for each measurement
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.session_state["sel_model"] = model
        at.session_state["sel_weights"] = "none"
        at.run()
        at.switch_page(f"pages/{page}.py").run()
        if at.exception:
            out[name] = {"error": str(at.exception[0].value)[:200]}
            continue
        if kind == "slider":
            values = [0.3 + 0.05 * i for i in range(args["repeats"] + 1)]
        elif kind == "number":  # another channel of the current layer
            values = list(range(1, args["repeats"] + 2))
        elif kind in ("largest", "largest_layers"):
            sizes = {label.split(" · ")[0]: math.prod(int(v) for v in label.split(" · ")[-1].split("×"))
                     for label in at.selectbox(key="maps_layer").options}
            biggest = sorted(sizes, key=sizes.get, reverse=True)
            if kind == "largest":  # every colormap re-colours the largest layer (tiled once)
                at.selectbox(key="maps_layer").set_value(biggest[0]).run()
                cmaps = [c for c in at.selectbox(key=widget).options if c != at.selectbox(key=widget).value]
                values = cmaps[: args["repeats"] + 1]  # each new: a colormap not drawn before for this layer
            else:  # the worst layers, each drawn for the first time
                current = at.selectbox(key="maps_layer").value
                values = [n for n in biggest if n != current][: args["repeats"] + 1]
        else:  # layers spread over the list; both pages label an option "name · ..."
            names = [label.split(" · ")[0] for label in at.selectbox(key=widget).options]
            current = at.selectbox(key=widget).value
            step = max(1, len(names) // (args["repeats"] + 2))
            values = [n for n in names[::step] if n != current][: args["repeats"] + 1]
        cpu, wall = [], []
        try:
            for i, value in enumerate(values):
                c, w = time.process_time(), time.perf_counter()
                if kind == "slider":
                    at.slider(key=widget).set_value(value).run()
                elif kind == "number":
                    at.number_input(key=widget).set_value(value).run()
                else:
                    at.selectbox(key=widget).set_value(value).run()
                if i:  # the first change warms Streamlit's own caches
                    cpu.append((time.process_time() - c) * 1000)
                    wall.append((time.perf_counter() - w) * 1000)
        except Exception as exc:  # an AppTest limitation must not hide the other figures
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            continue
        out[name] = {"cpu_ms": statistics.median(cpu), "wall_ms": statistics.median(wall), "n": len(cpu),
                     "error": str(at.exception[0].value)[:200] if at.exception else ""}
print(json.dumps(out))
