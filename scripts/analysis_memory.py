"""What a kept analysis of a new image holds, per model: the bytes of its recorded tensors (``HostActivations``'s
``device_bytes``) and what the analysis cache's byte budget counts for it (``explorer.core.nbytes_of``, which counts
a BatchNorm layer kept as its call as the array it becomes when read).

    python scripts/analysis_memory.py [resnet18 googlenet vgg16 ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer.analysis import page_analysis  # noqa: E402
from explorer.core import nbytes_of  # noqa: E402
from explorer.imaging import sample_image  # noqa: E402
from explorer.models import load_model  # noqa: E402


def main(names: list[str]) -> None:
    image = sample_image("grace_hopper")
    for name in names:
        loaded = load_model(name, weights=None)
        page_analysis(loaded, image)  # the first pass of a kind learns which outputs are rewritten in place
        acts = page_analysis(loaded, image)["activations"]
        kept = sum(acts.is_recomputed(n) for n in acts)
        print(f"{name} at {'x'.join(map(str, loaded.input_shape[1:]))}: holds {acts.device_bytes / 2**20:.1f} MiB, "
              f"counted by the byte budget {nbytes_of(acts) / 2**20:.1f} MiB; "
              f"{kept} of {len(acts)} recorded names kept as a BatchNorm call")


if __name__ == "__main__":
    main(sys.argv[1:] or ["resnet18", "googlenet", "vgg16"])
