"""Checks on a CUDA machine: every view's computation runs on the GPU and agrees with the CPU.

Run: ``python scripts/gpu_check.py`` (prints one line per check; exits non-zero on a failure).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.analysis import capture  # noqa: E402
from explorer.analysis import grad_cam  # noqa: E402
from explorer.core import describe_device, pick_device  # noqa: E402
from explorer.imaging import sample_image  # noqa: E402
from explorer.analysis import default_cam_layer
from explorer.models import load_model  # noqa: E402
from explorer.receptive import effective_receptive_field, receptive_field_table  # noqa: E402
from explorer.analysis import layer_table  # noqa: E402

MODELS = ["mnist_cnn", "lenet5", "tiny_vgg", "alexnet", "vgg16", "googlenet", "googlenet_paper", "resnet50",
          "densenet121", "inception_v3", "efficientnet_b0", "convnext_tiny", "plain18"]


def main() -> int:
    device = pick_device("auto")
    print("device:", describe_device(device), "| torch", torch.__version__)
    if device.type != "cuda":
        print("no CUDA here: nothing to check")
        return 0
    failures = 0
    image = sample_image("grace_hopper")
    for name in MODELS:
        try:
            t0 = time.perf_counter()
            gpu = load_model(name, weights=None, device=device)
            cpu = load_model(name, weights=None, device="cpu")
            x = gpu.preprocess(image)
            layer = default_cam_layer(gpu.model, gpu.input_shape)
            cam_gpu = grad_cam(gpu.model, x.to(device), layer)
            cam_cpu = grad_cam(cpu.model, x, layer)
            acts_gpu = capture(gpu.model, x.to(device), [layer])[layer]
            acts_cpu = capture(cpu.model, x, [layer])[layer]
            shapes_gpu = layer_table(gpu.model, gpu.input_shape)
            rf = receptive_field_table(gpu.model, gpu.input_shape)
            # The field table names leaf calls and merges, not containers: take the block's last row.
            rf_layer = [r for r in rf["layer"] if r == layer or r.startswith(layer + ".")][-1]
            erf = effective_receptive_field(gpu.model, x.to(device), rf_layer, (0, 0))
            act_err = float((acts_gpu - acts_cpu).abs().max() / (acts_cpu.abs().max() + 1e-12))
            cam_corr = float(np.corrcoef(cam_gpu.ravel(), cam_cpu.ravel())[0, 1]) if cam_cpu.std() > 0 else 1.0
            ok = act_err < 1e-2 and (cam_corr > 0.99 or cam_cpu.max() == 0) and len(shapes_gpu) and len(rf) and erf.min() >= 0
            assert not gpu.model.training and next(gpu.model.parameters()).is_cuda
            print(f"{'ok  ' if ok else 'FAIL'} {name:16s} layer={layer:28s} act rel err {act_err:.1e} "
                  f"cam corr {cam_corr:.4f} ({time.perf_counter() - t0:.1f} s)")
            failures += not ok
        except Exception as exc:  # report and go on to the next model
            failures += 1
            print(f"FAIL {name}: {type(exc).__name__}: {exc}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
