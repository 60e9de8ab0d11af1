"""Arguments shared by the CLI sub-commands."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pandas as pd


def parse_input_shape(text: str) -> tuple[int | None, int, int]:
    """``"3x224x224"`` → ``(3, 224, 224)``; ``"224x224"`` or ``"224"`` → ``(None, 224, 224)``: a size only, the
    channels stay the model's (as the app's sidebar reads it). Bad text is an ``argparse.ArgumentTypeError``, so
    argparse prints this reason rather than its own "invalid value"."""
    parts = text.lower().replace("×", "x").replace(",", "x").split("x")
    try:
        dims = [int(p) for p in parts if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not CxHxW or HxW (e.g. 3x224x224 or 224x224)") from None
    if len(dims) == 1:
        dims = [dims[0], dims[0]]
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not CxHxW or HxW with positive sizes (e.g. 3x224x224)")
    if dims[-2] * dims[-1] > 4096 * 4096:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most 4096x4096 pixels)")
    return (None, *dims) if len(dims) == 2 else tuple(dims)  # type: ignore[return-value]


def unit_interval(text: str) -> float:
    """An argparse ``type``: a number in [0, 1] (NaN, infinities and values outside are refused, not clipped)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also False for NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1")
    return value


def save_npy(path: "Path", array: "np.ndarray") -> None:
    """``array`` as .npy at exactly ``path`` (``np.save`` given a name adds ".npy" to one without it)."""
    import numpy as np

    with open(path, "wb") as fh:
        np.save(fh, array)


def add_model_args(parser: argparse.ArgumentParser, *, weights: bool = True, input_shape: bool = True,
                   model_positional: bool = True) -> None:
    # One of MODEL and --arch, checked by argparse itself: a missing model is said before torch is imported.
    which = parser.add_mutually_exclusive_group(required=model_positional)
    if model_positional:
        which.add_argument("model", nargs="?", help="model name (see `models`), or a run folder")
    which.add_argument("--arch", help='a build-your-own network instead of MODEL, e.g. "conv3-64 M conv3-128 M FC-10"')
    if weights:
        parser.add_argument("--weights", default="none",
                            help="pretrained | none | PATH to a state_dict (default: none)")
    if input_shape:
        parser.add_argument("--input", type=parse_input_shape, default=None,
                            help="input shape CxHxW, or HxW (the model's own channels)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | mps (default: cpu)")


def model_name_from_args(args: argparse.Namespace) -> str:
    if getattr(args, "arch", None):
        from explorer.models.ref import ModelRef

        return ModelRef.arch(args.arch).key
    if not getattr(args, "model", None):
        raise ValueError("name a MODEL or give --arch")
    return args.model


def check_model_name(args: argparse.Namespace) -> None:
    """An unknown registry name is said before torch loads (the names come from the light index when it is
    the registry's; otherwise the registry itself answers later). Run folders and ``--arch`` pass through."""
    name = getattr(args, "model", None)
    if not name or getattr(args, "arch", None):
        return
    from explorer.models.names import quick_model_names, unknown_model
    from explorer.models.ref import ModelRef

    if ModelRef.parse(name).kind != "registry":
        return
    from pathlib import Path

    if Path(name).is_dir():  # a folder meant as a run: say what it lacks, not "unknown model"
        raise ValueError(f"{name} is a folder but not a training run (it has no config.json)")
    names = quick_model_names()
    if names is not None and name not in names:
        raise unknown_model(name)


def load_from_args(args: argparse.Namespace):
    from explorer.core import pick_device
    from explorer.models import load_model

    weights = getattr(args, "weights", "none")
    weights = None if weights in (None, "none", "random") else weights
    name = model_name_from_args(args)
    shape = getattr(args, "input", None)
    if shape is not None and shape[0] is None:  # HxW: the model's own channels
        from explorer.models import natural_input_shape

        shape = (natural_input_shape(name)[0], shape[1], shape[2])
    loaded = load_model(name, weights=weights, device=pick_device(args.device), input_shape=shape)
    if weights == "pretrained" and not loaded.pretrained:
        print(f"note: {loaded.weights_status}", file=sys.stderr)
    return loaded


def print_table(frame: "pd.DataFrame", csv: bool) -> None:
    import pandas as pd  # here, not at the top: `--help` and argument errors need no pandas

    if csv:
        frame.to_csv(sys.stdout, index=False)
    else:
        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 200):
            print(frame.to_string(index=False))
