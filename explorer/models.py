"""Model registry front door: list, build and load every model the app knows.

Names are registry names (``resnet18``), ``arch:<spec>`` (a network typed by the user), or the path of
a training run folder (``runs/NAME``).
"""
from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import tempfile
import urllib.request
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torchvision
from PIL import Image

from explorer.checkpoints import CheckpointError, apply_state_dict, read_state_dict
from explorer.device import pick_device
from explorer.images import basic_transform
from explorer.locks import model_lock
from explorer.registry import ModelEntry, register_model, registered

# Transformers need different views (attention, tokens): out of scope for a CNN explorer.
_EXCLUDED_PREFIXES = ("vit_", "swin_", "maxvit_")
_PROJECT_MODEL_MODULES = ("explorer.teaching", "explorer.paper_models")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DOWNLOAD_TIMEOUT_S = 5.0
ARCH_PREFIX = "arch:"
INIT_SEED = 0


def _family(name: str) -> str:
    for prefix, fam in (("resnext", "ResNeXt"), ("wide_resnet", "Wide ResNet"), ("resnet", "ResNet"),
                        ("vgg", "VGG"), ("densenet", "DenseNet"), ("efficientnet", "EfficientNet"),
                        ("mobilenet", "MobileNet"), ("mnasnet", "MNASNet"), ("shufflenet", "ShuffleNet"),
                        ("squeezenet", "SqueezeNet"), ("regnet", "RegNet"), ("convnext", "ConvNeXt"),
                        ("alexnet", "AlexNet"), ("googlenet", "GoogLeNet"), ("inception", "Inception")):
        if name.startswith(prefix):
            return fam
    return "Other"


def _register_torchvision() -> None:
    for name in torchvision.models.list_models(module=torchvision.models):
        if name.startswith(_EXCLUDED_PREFIXES) or name in registered():
            continue
        weights_enum = torchvision.models.get_model_weights(name)
        default = weights_enum.DEFAULT
        crop = default.transforms().crop_size[0]
        builder = _torchvision_builder(name)
        register_model(name, input_shape=(3, crop, crop), family=_family(name), weights_enum=weights_enum,
                       num_classes=len(default.meta["categories"]), categories=tuple(default.meta["categories"]),
                       description=f"torchvision {name} ({default.meta.get('num_params', 0) / 1e6:.1f} M parameters)",
                       source="torchvision")(builder)


def _torchvision_builder(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int | None = None, weights: Any = None) -> nn.Module:
        kwargs: dict[str, Any] = {}
        if num_classes is not None and weights is None:
            kwargs["num_classes"] = num_classes
        if weights is None and name in ("googlenet", "inception_v3"):
            # torchvision's pretrained GoogLeNet/Inception drop their auxiliary heads; do the same at random
            # init so a checkpoint of either kind fits and the graph is the one that runs in eval mode.
            kwargs["aux_logits"] = False
            kwargs["init_weights"] = True
        return torchvision.models.get_model(name, weights=weights, **kwargs)

    build.__name__ = name
    return build


_loaded_registry = False


def _ensure_registry() -> None:
    global _loaded_registry
    if _loaded_registry:
        return
    for module in _PROJECT_MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:  # an optional module not written yet
            if exc.name != module:
                raise
    _register_torchvision()
    _loaded_registry = True


def list_models() -> list[str]:
    """Every registered model name, project models first, then torchvision's, each group sorted."""
    _ensure_registry()
    entries = registered().values()
    return sorted(e.name for e in entries if e.source != "torchvision") + sorted(
        e.name for e in entries if e.source == "torchvision")


def get_entry(name: str) -> ModelEntry:
    _ensure_registry()
    try:
        return registered()[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; `python -m explorer models` lists them") from None


def build_model(name: str, num_classes: int | None = None, **kwargs: Any) -> nn.Module:
    """Build a randomly initialised model in eval mode. Initialisation is seeded, so every process and
    session gets the same "random" weights (results are reproducible and comparable)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        if name.startswith(ARCH_PREFIX):
            from explorer.archparse import build_arch

            model, _ = build_arch(name[len(ARCH_PREFIX):])
        else:
            model = get_entry(name).builder(num_classes=num_classes, **kwargs)
    return model.eval()


@dataclass
class LoadedModel:
    model: nn.Module
    name: str
    input_shape: tuple[int, int, int]
    categories: list[str] | None  # only when the weights make the classes meaningful
    weights_status: str
    weights_key: str
    pretrained: bool
    device: torch.device
    transform: Callable[[Image.Image], torch.Tensor]
    class_names: list[str] = field(default_factory=list)  # names for pickers, meaningful or not
    # For translated banners: "pretrained", "random", "no_pretrained", "fallback", "checkpoint", "run" ("" = unknown).
    weights_kind: str = ""
    weights_detail: str = ""

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """The image as the model sees it: a ``[1, C, H, W]`` CPU tensor."""
        return self.transform(image).unsqueeze(0)

    @property
    def is_random(self) -> bool:
        return self.categories is None


def _hub_checkpoint_path(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def fetch_pretrained(weights: Any, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Make sure the weights file is in torch's hub cache, downloading with a short timeout."""
    path = _hub_checkpoint_path(weights.url)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with urllib.request.urlopen(weights.url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(response, out)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_model(name: str, weights: str | Path | bytes | None = "pretrained", device: torch.device | str | None = None,
               input_shape: tuple[int, int, int] | None = None) -> LoadedModel:
    """Build ``name`` with the requested weights, in eval mode, on ``device`` (default: best available).

    ``weights``: "pretrained" (torchvision's weights API; falls back to random init with a clear status),
    None/"none" (random init), a path to a ``state_dict`` file, or its bytes.
    """
    device = pick_device() if device is None else torch.device(device)
    if not name.startswith(ARCH_PREFIX) and (Path(name) / "config.json").is_file():
        from explorer.runs import load_run

        return load_run(name, device=device)
    if name.startswith(ARCH_PREFIX):
        from explorer.archparse import build_arch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            model, natural = build_arch(name[len(ARCH_PREFIX):])
        entry = None
        entry_categories: tuple[str, ...] | None = None
        weights_enum = None
    else:
        entry = get_entry(name)
        natural, entry_categories, weights_enum = entry.input_shape, entry.categories, entry.weights_enum
        model = None
    known_classes = entry.num_classes if entry is not None else None
    pretrained = False
    categories: list[str] | None = None
    if weights in (None, "none", "random"):
        status, key, kind, detail = "random initialisation (no trained weights)", "none", "random", ""
    elif weights == "pretrained":
        if weights_enum is None:
            status, key, kind, detail = "random initialisation: this model has no pretrained weights", "none", "no_pretrained", ""
        else:
            member = weights_enum.DEFAULT
            try:
                fetch_pretrained(member)
                with torch.random.fork_rng(devices=[]):
                    model = entry.builder(weights=member)
                pretrained, key = True, f"pretrained:{member}"
                top1 = member.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1", "?")
                kind, detail = "pretrained", f"{member}, {top1} % top-1"
                status = f"pretrained ({detail})"
                categories = list(member.meta["categories"])
            except Exception as exc:  # offline, timeout, corrupt cache...
                kind, detail = "fallback", f"{type(exc).__name__}: {str(exc)[:120]}"
                status = ("random initialisation: pretrained weights could not be loaded "
                          f"({detail}); results below are from an untrained network")
                key = "none"
                model = None
    else:
        if isinstance(weights, (bytes, bytearray)):
            data = bytes(weights)
        elif Path(weights).is_file():
            data = Path(weights).read_bytes()  # read once: parsed below and hashed for the cache key
        else:
            raise CheckpointError(f"checkpoint not found: {weights}")
        state = read_state_dict(data)
        head = _num_classes_in(state, entry)
        model = model if model is not None else build_model(name, num_classes=head)
        if head is not None:
            entry_categories, known_classes = None, head  # re-headed: ImageNet names no longer apply
        apply_state_dict(model, state)
        key = f"upload:{hashlib.sha256(data).hexdigest()[:16]}"
        status = "your checkpoint (loaded: every key and shape matched)"
        kind, detail = "checkpoint", ""
        categories = list(entry_categories) if entry_categories else None
        pretrained = True
    if model is None:
        model = build_model(name)
    model = model.eval().to(device)
    shape = tuple(input_shape) if input_shape else tuple(natural)
    transform = _transform_for(shape, natural, weights_enum)
    n_out = _num_outputs(model, natural, known_classes)
    class_names = list(entry_categories) if entry_categories and len(entry_categories) == n_out else [
        f"class {i}" for i in range(n_out or 0)]
    if categories is not None and len(categories) != n_out:
        categories = None
    return LoadedModel(model=model, name=name, input_shape=shape, categories=categories, weights_status=status,
                       weights_kind=kind, weights_detail=detail,
                       weights_key=key, pretrained=pretrained, device=device, transform=transform,
                       class_names=class_names)


def _num_classes_in(state: dict[str, torch.Tensor], entry: ModelEntry | None) -> int | None:
    """A checkpoint's head size, so a fine-tuned 3-class ResNet loads into a 3-class model."""
    if entry is None:
        return None
    model = build_model(entry.name)
    own = model.state_dict()
    for key in reversed(list(own)):
        if key.endswith(".weight") and key in state and own[key].ndim >= 2:
            if state[key].shape[1:] == own[key].shape[1:] and state[key].shape[0] != own[key].shape[0]:
                return int(state[key].shape[0])
            return None
    return None


def _transform_for(shape: tuple[int, int, int], natural: tuple[int, int, int], weights_enum: Any):
    if weights_enum is None:
        return basic_transform(shape)
    preset = weights_enum.DEFAULT.transforms()
    if tuple(shape) == tuple(natural):
        def transform(img: Image.Image) -> torch.Tensor:
            return preset(img.convert("RGB"))

        return transform
    return basic_transform(shape, tuple(preset.mean), tuple(preset.std))


def _num_outputs(model: nn.Module, natural: tuple[int, int, int], known: int | None) -> int:
    """How many classes the model outputs: registry metadata when it applies, else one cheap pass."""
    if known:
        return known
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with model_lock(model), torch.no_grad():
        out = model(torch.zeros(1, *natural, device=device))
    return int(out.shape[-1])


# --- layer helpers shared by the pages ---------------------------------------------------------

def is_conv(module: nn.Module) -> bool:
    from explorer.teaching import PartialConv2d

    return isinstance(module, (nn.Conv2d, PartialConv2d))


def conv_layer_names(model: nn.Module) -> list[str]:
    """Names of every 2-D convolution in registration order."""
    return [name for name, module in model.named_modules() if name and is_conv(module)]


_executed_cache: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def executed_output_shapes(model: nn.Module, input_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """Each module's (first-call) output shape in execution order, from one no-grad pass on zeros."""
    per_model = _executed_cache.setdefault(model, {})
    key = tuple(input_shape)
    if key in per_model:
        return per_model[key]
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def hook(name: str):
        def fn(_m, _i, out):
            if name not in shapes and isinstance(out, torch.Tensor):
                shapes[name] = tuple(out.shape)
        return fn

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with model_lock(model):
        try:
            for name, module in model.named_modules():
                if name:
                    handles.append(module.register_forward_hook(hook(name)))
            with torch.no_grad():
                model(torch.zeros(1, *input_shape, device=device))
        finally:
            for h in handles:
                h.remove()
    per_model[key] = shapes
    return shapes


def default_cam_layer(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> str:
    """The last convolution block that still has a spatial map: the usual Grad-CAM choice.

    Takes the last *executed* conv with an output larger than 1×1, then climbs to the largest enclosing
    block whose output keeps that spatial size (ResNet → ``layer4``, GoogLeNet → ``inception5b``).
    """
    convs = conv_layer_names(model)
    if not convs:
        raise ValueError("this model has no convolution layer")
    if input_shape is None:
        return convs[-1]
    shapes = executed_output_shapes(model, input_shape)
    executed = [n for n in shapes if n in set(convs) and len(shapes[n]) == 4]
    spatial = [n for n in executed if shapes[n][2] * shapes[n][3] > 1] or executed or convs
    best = spatial[-1]
    size = shapes.get(best, (0, 0, 0, 0))[2:]
    parts = best.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:cut])
        out = shapes.get(parent)
        if out is None or len(out) != 4 or out[2:] != size:
            break
        best = parent
    return best


def with_input_shape(loaded: LoadedModel, input_shape: tuple[int, int, int] | None) -> LoadedModel:
    """The same loaded model viewed at another input size (cheap: only the transform changes)."""
    import dataclasses

    if input_shape is None or tuple(input_shape) == tuple(loaded.input_shape):
        return loaded
    natural = loaded.input_shape
    entry = registered().get(loaded.name)
    weights_enum = entry.weights_enum if entry else None
    return dataclasses.replace(loaded, input_shape=tuple(input_shape),
                               transform=_transform_for(tuple(input_shape), natural, weights_enum))


def natural_input_shape(name: str) -> tuple[int, int, int]:
    """A model's natural input shape without building it where possible."""
    if name.startswith(ARCH_PREFIX):
        from explorer.archparse import build_arch

        return tuple(build_arch(name[len(ARCH_PREFIX):])[1])  # type: ignore[return-value]
    if (Path(name) / "config.json").is_file():
        import json

        config = json.loads((Path(name) / "config.json").read_text())
        shape = config.get("input_shape")
        if shape:
            return tuple(shape)  # type: ignore[return-value]
        return load_model(name, device="cpu").input_shape
    return get_entry(name).input_shape
