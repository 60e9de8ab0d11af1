"""python scripts/bench_functional_calls.py -- cost of seeing functional calls: the recording pass with the TorchFunctionMode on vs a forward, median of 7."""
import sys, pathlib
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import statistics, time, torch
from explorer.models import build_model
from explorer.analysis import layer_table
from explorer.analysis.hooks import run_pass

def median(fn, n=7):
    fn(); ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

torch.set_num_threads(2)
for name in ("resnet18", "resnet50"):
    m = build_model(name); x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        fwd = median(lambda: m(x))
    lt_off = median(lambda: layer_table(m, (3, 224, 224), functional=False))
    lt_on = median(lambda: layer_table(m, (3, 224, 224)))
    calls = run_pass(m, x, record=[], list_calls=True).calls
    print(f"{name}: forward {fwd*1e3:.0f} ms | layer_table modules only {lt_off*1e3:.0f} ms, with functional calls {lt_on*1e3:.0f} ms "
          f"({lt_on/lt_off:.2f}x) | functional calls seen {sum(c.is_function for c in calls)} of {len(calls)}")
