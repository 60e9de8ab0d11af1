"""The papers' own tables, regenerated from models built in code.

* :func:`vgg_config_table` / :func:`vgg_summary_table`: VGG's Table 1 (configurations A–E) and Table 2
  (parameters), read off the ``vgg_*`` models of :mod:`explorer.models.paper`.
* :func:`googlenet_table`: GoogLeNet's Table 1, from ``googlenet_paper`` by inspection of its modules and
  one shape-only forward pass (hooks on PyTorch's ``meta`` device: no memory, no arithmetic), with the
  same numbers for torchvision's ``googlenet`` and what differs.
* :func:`resnet_table` / :func:`resnet_flops_table`: ResNet's Table 1 for 18/34/50/101/152 from
  torchvision's models.

Every number in the "computed" columns comes from a model. The only typed-in numbers are the values the
papers *print*, kept in clearly labelled "printed" columns as citations, so the two can be compared.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from explorer.core import hooked

from explorer.history.compare import mult_adds_by_module, weight_layer_depth
from explorer.models import build_model, get_entry
from explorer.models import VGG_MODEL_NAMES, VGG_TORCHVISION_TWIN

# --- citations: what the papers print (never used to compute anything) ---------------------------

# Simonyan & Zisserman (2015), Table 2: "Number of parameters (in millions)".
VGG_PRINTED_PARAMS_M: dict[str, int] = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}
# Szegedy et al. (2015), Table 1: params and ops columns, keyed by the first module of each row.
GOOGLENET_PRINTED: dict[str, tuple[str, str]] = {
    "conv1": ("2.7K", "34M"), "conv2": ("112K", "360M"),
    "inception3a": ("159K", "128M"), "inception3b": ("380K", "304M"),
    "inception4a": ("364K", "73M"), "inception4b": ("437K", "88M"), "inception4c": ("463K", "100M"),
    "inception4d": ("580K", "119M"), "inception4e": ("840K", "170M"),
    "inception5a": ("1072K", "54M"), "inception5b": ("1388K", "71M"),
    "fc": ("1000K", "1M"),
}
# He et al. (2016), Table 1, last row: FLOPs (multiply-adds) ×10⁹.
RESNET_PRINTED_GFLOPS: dict[int, float] = {18: 1.8, 34: 3.6, 50: 3.8, 101: 7.6, 152: 11.3}
RESNET_DEPTHS = (18, 34, 50, 101, 152)

# What torchvision's googlenet changes, per row (codes; the app translates them).
GOOGLENET_DIFF_TEXT: dict[str, str] = {
    "batchnorm": "BatchNorm after every convolution (so the convolutions have no bias)",
    "conv3_for_conv5": "a 3×3 convolution where the paper has 5×5 (same number of filters)",
    "no_lrn": "no local response normalisation (the paper has LRN here)",
    "dropout_p": "a different dropout probability",
    "pool_2x2": "a 2×2/2 max pool where the paper has 3×3/2 (the same output size with ceil mode, but a smaller "
                "receptive field)",
}
# Why computed and printed numbers differ (the app translates these codes too).
NOTES_TEXT: dict[str, str] = {
    "vgg_params": "VGG: the printed counts are the computed ones rounded to millions; LRN has no parameters, "
                  "so A and A-LRN are equal. Almost all parameters are in the first FC layer (512·7·7·4096).",
    "googlenet_stem": "GoogLeNet's first row: a 7×7 convolution of an RGB image has 7·7·3·64 = 9,408 weights (9.2K in "
                      "the table's K = 1,024) and needs 118M mult-adds at 112×112; the printed 2.7K / 34M do not fit "
                      "a 3-channel input.",
    "googlenet_params": "GoogLeNet: the paper's params column counts weights only, in K = 1,024 (its FC layer's "
                        "1024·1000 weights are printed 1000K). Counted that way, conv2, 3a, 3b, 4b and the FC layer "
                        "agree to within 1K and 4a, 4d, 4e, 5b to within 2 %; besides conv1, only 4c (497.5K vs 463K) and "
                        "5a (1,018K vs 1,072K) differ. 5a's printed params and ops agree with each other (1,072K·7·7 ≈ 54M) but "
                        "not with its widths (51M); elsewhere the ops agree.",
    "googlenet_aux": "The auxiliary classifiers (after 4a and 4d) only run in training and are not in Table 1; "
                     "torchvision's pretrained googlenet drops them. Each is a 5×5/3 average pool (a window, not "
                     "global average pooling), a 1×1 convolution (128), FC-1024, 70 % dropout and a classifier; "
                     "their losses count with weight 0.3 in training.",
    "resnet_v15": "ResNet: torchvision implements 'v1.5', which puts the stride-2 of a bottleneck's first block "
                  "on its 3×3 convolution instead of the first 1×1 (the paper's v1): more mult-adds for "
                  "ResNet-50/101/152. Moving the stride back gives the v1 column, close to the printed values.",
}


# --- helpers ---------------------------------------------------------------------------------------

def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return build_model(name)


def _params(modules: list[nn.Module]) -> int:
    return sum(p.numel() for p in {id(p): p for m in modules for p in m.parameters()}.values())


def _weights_k1024(modules: list[nn.Module]) -> float:
    """Convolution and FC weights of ``modules`` (no biases, no normalisation) in units of 1,024: the unit of
    GoogLeNet's Table 1 "params" column (its FC layer's 1024·1000 weights are printed "1000K")."""
    weights = {id(m.weight): m.weight for root in modules for m in root.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))}
    return round(sum(w.numel() for w in weights.values()) / 1024, 1)


def _executed_outputs(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, tuple[tuple, tuple]]:
    """Top-level children in execution order → (input shape, output shape), from one meta-device pass."""
    names = {m: n for n, m in model.named_children()}
    seen: dict[str, tuple[tuple, tuple]] = {}

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and names[module] not in seen:
            seen[names[module]] = (tuple(inputs[0].shape), tuple(output.shape))

    with hooked(model) as add:
        for module in names:
            add(module.register_forward_hook(hook))
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device="meta"))
    return seen


def _hwc(shape: tuple) -> str:
    """(1, C, H, W) → "H×W×C" as the papers write it; (1, F) → "1×1×F"."""
    if len(shape) == 4:
        return f"{shape[2]}×{shape[3]}×{shape[1]}"
    return f"1×1×{shape[-1]}"


def _pair(value: Any) -> int:
    return value[0] if isinstance(value, tuple) else int(value)


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# --- VGG -------------------------------------------------------------------------------------------

def _vgg_columns(model: nn.Module) -> tuple[list[list[str]], list[str]]:
    """(stages of tokens, classifier tokens) read from a built VGG's modules."""
    stages: list[list[str]] = [[]]
    for module in model.features:
        if isinstance(module, nn.Conv2d):
            stages[-1].append(f"conv{_pair(module.kernel_size)}-{module.out_channels}")
        elif isinstance(module, nn.LocalResponseNorm):
            stages[-1].append("LRN")
        elif isinstance(module, nn.MaxPool2d):
            stages.append([])
    classifier = [f"FC-{m.out_features}" for m in model.classifier if isinstance(m, nn.Linear)]
    return [s for s in stages if s], classifier


def vgg_config_table() -> pd.DataFrame:
    """The paper's Table 1 (columns A, A-LRN, B, C, D, E), every cell read from the built model.

    Rows: weight layers, input, the five convolution stages each followed by "maxpool", the FC layers,
    soft-max, and the parameter count (computed, millions) beside the printed one.
    """
    columns: dict[str, list[str]] = {}
    labels: list[str] = []
    for config, name in VGG_MODEL_NAMES.items():
        model = _meta_model(name)
        stages, classifier = _vgg_columns(model)
        weight_layers = weight_layer_depth(model)
        _c, h, w = get_entry(name).input_shape
        cells = [f"{weight_layers} weight layers", f"input ({h}×{w} RGB image)"]
        rows = ["weight layers", "input"]
        for i, stage in enumerate(stages, start=1):
            cells += [" ".join(stage), "maxpool"]
            rows += [f"conv stage {i}", f"maxpool {i}"]
        for i, token in enumerate(classifier, start=1):
            cells.append(token)
            rows.append(f"FC {i}")
        cells += ["soft-max", f"{_params([model]) / 1e6:.1f}", str(VGG_PRINTED_PARAMS_M[config])]
        rows += ["soft-max", "parameters (M, computed)", "parameters (M, paper printed)"]
        columns[config] = cells
        labels = rows
    return pd.DataFrame({"row": labels, **columns})


def vgg_summary_table() -> pd.DataFrame:
    """One row per configuration: weight layers, exact parameters, printed millions, torchvision twin."""
    import torchvision

    rows = []
    for config, name in VGG_MODEL_NAMES.items():
        model = _meta_model(name)
        twin = VGG_TORCHVISION_TWIN.get(config)
        twin_params = (torchvision.models.get_model_weights(twin).DEFAULT.meta["num_params"] if twin else None)
        params = _params([model])
        rows.append({"config": config, "model": name, "weight_layers": weight_layer_depth(model),
                     "conv_layers": sum(isinstance(m, nn.Conv2d) for m in model.modules()),
                     "params": params, "params_m": round(params / 1e6, 2),
                     "paper_printed_m": VGG_PRINTED_PARAMS_M[config],
                     "torchvision_twin": twin or "", "torchvision_params": twin_params})
    table = pd.DataFrame(rows)
    table["torchvision_params"] = table["torchvision_params"].astype("Int64")
    return table


def fully_connected_share(name: str = "vgg_d", input_shape: tuple[int, int, int] = (3, 224, 224)) -> dict[str, float]:
    """How much of a network's parameters and of its mult-adds (convolution and FC multiply-accumulates, one image)
    its fully connected layers hold, in %: VGG-16's three FC layers hold ~89 % of its parameters but do ~0.8 % of
    its arithmetic (the course notes' "85 % of the computation" is the parameter share). Counted on the built
    network (meta device: shapes only)."""
    return dict(_fully_connected_share(name, tuple(input_shape)))  # a copy: the cached one is shared


@lru_cache(maxsize=8)
def _fully_connected_share(name: str, input_shape: tuple[int, int, int]) -> dict[str, float]:
    model = _meta_model(name)
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)]
    names = {id(m): n for n, m in model.named_modules()}
    ops = mult_adds_by_module(model, input_shape, device="meta")
    linear_names = {names[id(m)] for m in linear}
    total_ops = sum(ops.values())
    return {"params": 100.0 * _params(linear) / _params([model]),
            "mult_adds": 100.0 * sum(v for k, v in ops.items() if k in linear_names) / total_ops if total_ops else 0.0}


# --- GoogLeNet -------------------------------------------------------------------------------------

GOOGLENET_COLUMNS = ["key", "type", "patch size/stride", "output size", "depth", "#1×1", "#3×3 reduce", "#3×3",
                     "#5×5 reduce", "#5×5", "pool proj", "params", "ops", "weights (K = 1024)", "params (paper printed)",
                     "ops (paper printed)", "params (torchvision)", "ops (torchvision)", "torchvision differences"]
_WIDTH_COLUMNS = ["#1×1", "#3×3 reduce", "#3×3", "#5×5 reduce", "#5×5", "pool proj"]


def _inception_widths(block: nn.Module) -> dict[str, int]:
    """Branch widths read from the convolutions of an inception block (paper's or torchvision's)."""
    b1, b2, b3, b4 = (_convs(getattr(block, f"branch{i}")) for i in range(1, 5))
    return {"#1×1": b1[0].out_channels, "#3×3 reduce": b2[0].out_channels, "#3×3": b2[-1].out_channels,
            "#5×5 reduce": b3[0].out_channels, "#5×5": b3[-1].out_channels, "pool proj": b4[-1].out_channels}


def _inception_depth(block: nn.Module) -> int:
    return max(len(_convs(getattr(block, f"branch{i}"))) for i in range(1, 5))


def _googlenet_rows(model: nn.Module, input_shape: tuple[int, int, int]) -> list[dict[str, Any]]:
    """Group the executed top-level modules into the paper's rows (LRN is folded into the row before)."""
    executed = _executed_outputs(model, input_shape)
    children = dict(model.named_children())
    rows: list[dict[str, Any]] = []
    order = list(executed)
    i = 0
    while i < len(order):
        name = order[i]
        module = children[name]
        in_shape, out_shape = executed[name]
        row: dict[str, Any] = {"modules": [name], "output": out_shape, "after": []}
        convs = [] if hasattr(module, "branch1") else _convs(module)  # an inception block is its own row
        if isinstance(module, nn.LocalResponseNorm):
            if rows:
                rows[-1]["after"].append(name)
            i += 1
            continue
        if convs and len(convs) == 1:
            conv = convs[0]
            nxt = order[i + 1] if i + 1 < len(order) else None
            nxt_convs = _convs(children[nxt]) if nxt else []
            if _pair(conv.kernel_size) == 1 and len(nxt_convs) == 1 and not hasattr(children[nxt], "branch1"):
                # A 1×1 reduction feeding a convolution: one row, as the paper writes it ("#3×3 reduce").
                big = nxt_convs[0]
                row.update(modules=[name, nxt], output=executed[nxt][1], type="convolution",
                           patch=f"{_pair(big.kernel_size)}×{_pair(big.kernel_size)}/{_pair(big.stride)}",
                           depth=2, widths={"#3×3 reduce": conv.out_channels, "#3×3": big.out_channels})
                i += 1
            else:
                row.update(type="convolution",
                           patch=f"{_pair(conv.kernel_size)}×{_pair(conv.kernel_size)}/{_pair(conv.stride)}",
                           depth=1, widths={})
        elif hasattr(module, "branch1"):
            row.update(type=f"inception ({name.removeprefix('inception')})", patch="",
                       depth=_inception_depth(module), widths=_inception_widths(module))
        elif isinstance(module, nn.MaxPool2d):
            k, s = _pair(module.kernel_size), _pair(module.stride)
            row.update(type="max pool", patch=f"{k}×{k}/{s}", depth=0, widths={})
        elif isinstance(module, (nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            # An adaptive pool to 1×1 is the paper's "7×7/1" pool over the whole map.
            k = in_shape[2] if isinstance(module, nn.AdaptiveAvgPool2d) else _pair(module.kernel_size)
            s = 1 if isinstance(module, nn.AdaptiveAvgPool2d) else _pair(module.stride)
            row.update(type="avg pool", patch=f"{k}×{k}/{s}", depth=0, widths={})
        elif isinstance(module, nn.Dropout):
            row.update(type=f"dropout ({module.p * 100:.0f}%)", patch="", depth=0, widths={})
        elif isinstance(module, nn.Linear):
            row.update(type="linear", patch="", depth=1, widths={})
        else:
            row.update(type=type(module).__name__, patch="", depth=0, widths={})
        rows.append(row)
        i += 1
    return rows


def _row_ops(names: list[str], ops: dict[str, int]) -> int:
    return sum(v for k, v in ops.items() if any(k == n or k.startswith(n + ".") for n in names))


def _tv_differences(paper: nn.Module, tv: nn.Module, row: dict[str, Any]) -> list[str]:
    codes: list[str] = []
    tv_children = dict(tv.named_children())
    p_children = dict(paper.named_children())
    tv_modules = [tv_children[n] for n in row["modules"] if n in tv_children]
    if any(isinstance(m, nn.BatchNorm2d) for tm in tv_modules for m in tm.modules()):
        codes.append("batchnorm")
    for name in row["modules"]:
        if name not in tv_children:
            continue
        p_convs = dict((n, m) for n, m in p_children[name].named_modules() if isinstance(m, nn.Conv2d))
        t_convs = dict((n, m) for n, m in tv_children[name].named_modules() if isinstance(m, nn.Conv2d))
        if any(_pair(c.kernel_size) == 5 and n in t_convs and _pair(t_convs[n].kernel_size) == 3
               for n, c in p_convs.items()):
            codes.append("conv3_for_conv5")
        p_mod, t_mod = p_children[name], tv_children[name]
        if isinstance(p_mod, nn.Dropout) and isinstance(t_mod, nn.Dropout) and p_mod.p != t_mod.p:
            codes.append("dropout_p")
        if isinstance(p_mod, nn.MaxPool2d) and isinstance(t_mod, nn.MaxPool2d) and (
                _pair(p_mod.kernel_size), _pair(p_mod.stride)) != (_pair(t_mod.kernel_size), _pair(t_mod.stride)):
            codes.append("pool_2x2")  # torchvision's maxpool4
    has_tv_lrn = any(isinstance(m, nn.LocalResponseNorm) for m in tv.modules())
    if row["after"] and not has_tv_lrn:
        codes.append("no_lrn")
    return codes


def googlenet_table(input_shape: tuple[int, int, int] = (3, 224, 224)) -> pd.DataFrame:
    """The paper's Table 1 regenerated from ``googlenet_paper``, with torchvision's ``googlenet`` beside it.

    ``params`` counts weights and biases of the row's modules; ``ops`` counts multiply-adds of its
    convolutions / FC layer for one image, like the paper. A 1×1 reduction directly followed by a
    convolution is one row (the stem's "convolution 3×3/1" with "#3×3 reduce 64"), LRN layers are not
    rows (the paper omits them) and a final "total" row sums the columns.
    """
    paper = _meta_model("googlenet_paper")
    tv = _meta_model("googlenet")
    paper_ops = mult_adds_by_module(paper, input_shape, device="meta")
    tv_ops = mult_adds_by_module(tv, input_shape, device="meta")
    p_children, tv_children = dict(paper.named_children()), dict(tv.named_children())
    records = []
    for row in _googlenet_rows(paper, input_shape):
        names = row["modules"]
        printed = GOOGLENET_PRINTED.get(names[0], ("", ""))
        in_tv = [n for n in names if n in tv_children]
        record = {
            "key": "+".join(names), "type": row["type"], "patch size/stride": row["patch"],
            "output size": _hwc(row["output"]), "depth": row["depth"],
            **{c: row["widths"].get(c) for c in _WIDTH_COLUMNS},
            "params": _params([p_children[n] for n in names]), "ops": _row_ops(names, paper_ops),
            "weights (K = 1024)": _weights_k1024([p_children[n] for n in names]),
            "params (paper printed)": printed[0], "ops (paper printed)": printed[1],
            "params (torchvision)": _params([tv_children[n] for n in in_tv]) if in_tv else None,
            "ops (torchvision)": _row_ops(in_tv, tv_ops) if in_tv else None,
            "torchvision differences": "; ".join(_tv_differences(paper, tv, row)),
        }
        records.append(record)
    records.append({"key": "total", "type": "total", "patch size/stride": "", "output size": "",
                    "depth": weight_layer_depth(paper),
                    "params": sum(r["params"] for r in records), "ops": sum(r["ops"] for r in records),
                    "weights (K = 1024)": round(sum(r["weights (K = 1024)"] for r in records), 1),
                    "params (paper printed)": "", "ops (paper printed)": "",
                    "params (torchvision)": sum(r["params (torchvision)"] or 0 for r in records),
                    "ops (torchvision)": sum(r["ops (torchvision)"] or 0 for r in records),
                    "torchvision differences": ""})
    table = pd.DataFrame(records, columns=GOOGLENET_COLUMNS)
    for column in _WIDTH_COLUMNS + ["params (torchvision)", "ops (torchvision)"]:
        table[column] = table[column].astype("Int64")
    return table


@lru_cache(maxsize=2)
def googlenet_receptive_fields(input_shape: tuple[int, int, int] = (3, 224, 224)) -> dict[str, float | None]:
    """Receptive field (pixels) of the last inception block's output, for the paper's network, torchvision's,
    and torchvision's with one difference undone at a time: its 2×2/2 ``maxpool4`` made 3×3/2 as in the paper,
    and then its "5×5" branches' 3×3 convolutions made 5×5 as well. Shows which difference costs how much of
    the field (715 vs 379 at 224×224)."""
    from explorer.history.compare import final_receptive_field

    fields: dict[str, float | None] = {}
    paper, tv = _meta_model("googlenet_paper"), _meta_model("googlenet")
    fields["paper"] = final_receptive_field(paper, input_shape)
    fields["torchvision"] = final_receptive_field(tv, input_shape)
    tv.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    fields["torchvision_pool3"] = final_receptive_field(tv, input_shape)
    for module in tv.modules():  # kernel geometry is all the field depends on: widen the "5×5" branches' convs
        if hasattr(module, "branch3"):
            conv = _convs(module.branch3)[-1]
            conv.kernel_size, conv.padding = (5, 5), (2, 2)
            conv.weight = nn.Parameter(torch.empty(conv.out_channels, conv.in_channels, 5, 5, device="meta"))
    fields["torchvision_pool3_conv5"] = final_receptive_field(tv, input_shape)
    return fields


def explain_differences(codes: str, texts: dict[str, str] | None = None) -> str:
    """``"batchnorm; conv3_for_conv5"`` → readable text (English unless ``texts`` maps the codes)."""
    texts = texts or GOOGLENET_DIFF_TEXT
    return "; ".join(texts.get(code.strip(), code.strip()) for code in codes.split(";") if code.strip())


# --- ResNet ----------------------------------------------------------------------------------------

def _block_layout(layer: nn.Sequential) -> str:
    """``[3×3, 64 | 3×3, 64] ×2`` from a stage's first block."""
    block = layer[0]
    convs = [getattr(block, f"conv{i}") for i in (1, 2, 3) if hasattr(block, f"conv{i}")]
    inner = " | ".join(f"{_pair(c.kernel_size)}×{_pair(c.kernel_size)}, {c.out_channels}" for c in convs)
    return f"[{inner}] ×{len(layer)}"


def _v1_strides(model: nn.Module) -> nn.Module:
    """Move each bottleneck's stride 2 from its 3×3 convolution to its first 1×1 (ResNet v1 as published)."""
    for module in model.modules():
        if hasattr(module, "conv3") and _pair(module.conv2.stride) == 2:
            module.conv1.stride, module.conv2.stride = (2, 2), (1, 1)
    return model


@lru_cache(maxsize=8)  # meta-device models: no memory; resnet_table and resnet_flops_table share them
def _resnet_parts(depth: int, input_shape: tuple[int, int, int]) -> dict[str, Any]:
    model = _meta_model(f"resnet{depth}")
    shapes = _executed_outputs(model, input_shape)
    ops = sum(mult_adds_by_module(model, input_shape, device="meta").values())
    v1 = _v1_strides(_meta_model(f"resnet{depth}"))
    v1_ops = sum(mult_adds_by_module(v1, input_shape, device="meta").values())
    c1, pool = model.conv1, model.maxpool
    return {
        "model": model, "shapes": shapes, "ops": ops, "v1_ops": v1_ops,
        "conv1": f"{_pair(c1.kernel_size)}×{_pair(c1.kernel_size)}, {c1.out_channels}, stride {_pair(c1.stride)}",
        "pool": f"{_pair(pool.kernel_size)}×{_pair(pool.kernel_size)} max pool, stride {_pair(pool.stride)}",
        "layers": [_block_layout(getattr(model, f"layer{i}")) for i in range(1, 5)],
        "head": f"average pool, {model.fc.out_features}-d fc, softmax",
    }


def resnet_table(input_shape: tuple[int, int, int] = (3, 224, 224)) -> pd.DataFrame:
    """The paper's Table 1: layer name, output size, one column per depth, FLOPs rows (computed/printed)."""
    parts = {d: _resnet_parts(d, tuple(input_shape)) for d in RESNET_DEPTHS}
    first = parts[RESNET_DEPTHS[0]]["shapes"]

    def size(child: str) -> str:
        shape = first[child][1]
        return f"{shape[2]}×{shape[3]}" if len(shape) == 4 else "1×1"

    rows = [{"layer name": "conv1", "output size": size("conv1"), **{f"{d}-layer": parts[d]["conv1"] for d in parts}},
            {"layer name": "conv2_x", "output size": size("maxpool"), **{f"{d}-layer": parts[d]["pool"] for d in parts}}]
    for stage in range(4):
        rows.append({"layer name": f"conv{stage + 2}_x", "output size": size(f"layer{stage + 1}"),
                     **{f"{d}-layer": parts[d]["layers"][stage] for d in parts}})
    rows.append({"layer name": "", "output size": size("avgpool"), **{f"{d}-layer": parts[d]["head"] for d in parts}})
    rows.append({"layer name": "FLOPs (computed, torchvision v1.5)", "output size": "",
                 **{f"{d}-layer": f"{parts[d]['ops'] / 1e9:.2f}×10⁹" for d in parts}})
    rows.append({"layer name": "FLOPs (computed, v1 strides)", "output size": "",
                 **{f"{d}-layer": f"{parts[d]['v1_ops'] / 1e9:.2f}×10⁹" for d in parts}})
    rows.append({"layer name": "FLOPs (paper printed)", "output size": "",
                 **{f"{d}-layer": f"{RESNET_PRINTED_GFLOPS[d]}×10⁹" for d in parts}})
    return pd.DataFrame(rows)


def resnet_flops_table(input_shape: tuple[int, int, int] = (3, 224, 224)) -> pd.DataFrame:
    """Numbers behind the FLOPs rows, one row per depth (G = 10⁹ multiply-adds at 224×224)."""
    rows = []
    for depth in RESNET_DEPTHS:
        part = _resnet_parts(depth, tuple(input_shape))
        model = part["model"]
        rows.append({"model": f"resnet{depth}", "weight_layers": weight_layer_depth(model),
                     "blocks": "-".join(str(len(getattr(model, f"layer{i}"))) for i in range(1, 5)),
                     "params_m": round(_params([model]) / 1e6, 2),
                     "gflops_v15": round(part["ops"] / 1e9, 2), "gflops_v1": round(part["v1_ops"] / 1e9, 2),
                     "gflops_paper_printed": RESNET_PRINTED_GFLOPS[depth]})
    return pd.DataFrame(rows)


PAPERS = ("vgg", "googlenet", "resnet")
