"""Every network the app knows, one reference type for naming one, and loading it with its weights.

- :class:`ModelRef` — a registry name, an ``arch:`` spec or a run folder, parsed once where a name enters;
- the registry (:func:`register_model`, :func:`list_models`, :func:`get_entry`): torchvision's CNNs, the teaching
  networks and the papers' networks;
- :func:`build_model` (random, seeded weights) and :func:`load_model` (a :class:`LoadedModel` with its weights:
  pretrained, a checkpoint, or a training run's);
- checkpoints, classifier heads, and training run folders as a source of models.

Names load on first use (PEP 562), so ``from explorer.models.ref import ModelRef`` and the CLI's quick answers
(``python -m explorer models``, an unknown name) do not import torch or torchvision.
"""
from __future__ import annotations

import importlib
from typing import Any

# submodule -> the public names it defines
_MODULES: dict[str, tuple[str, ...]] = {
    "builtin": ("WEIGHTS_DIR", "BuiltinWeights", "builtin_weight_names", "builtin_weights", "trained_dataset", "weights_choices", "write_builtin_weights",),
    "hub": ("HubWeights", "check_file_hash", "download_failure", "fetch_model_weights", "hub_checkpoints_dir", "hub_weights", "hub_weights_table", "plain_reason",),
    "checkpoints": ("CheckpointError", "LoadReport", "apply_state_dict", "read_state_dict", "save_atomic",),
    "catalog": ("get_entry", "list_models",),
    "heads": ("find_aux_heads", "find_head", "head_names", "head_out_features", "replace_head",),
    "loaded": ("LoadedModel",),
    "loading": ("DOWNLOAD_TIMEOUT_S", "IMAGENET_MEAN", "IMAGENET_STD", "build_model", "fetch_pretrained", "get_model", "load_model", "natural_input_shape", "with_input_shape",),
    "paper": ("GOOGLENET_INCEPTION", "VGG_MODEL_NAMES", "VGG_TORCHVISION_TWIN", "PaperInception",),
    "ref": ("ARCH_PREFIX", "ModelRef", "is_run_folder",),
    "registry": ("ModelEntry", "register_model",),
    "run_build": ("BATCH_NORMS", "TRAINS_WITH_HEAD", "build_run_model", "construct_network", "seeded",),
    "runfolder": ("CHECKPOINT_FILE", "CONFIG_FILE", "RUNS_ENV", "RunInfo", "check_run_name", "confine_run_dir", "list_runs", "load_run", "read_config", "read_metrics", "read_misclassified", "run_info", "runs_root", "save_checkpoint", "suggest_run_name", "write_json_atomic", "write_npz_atomic",),
    "session_runs": ("SESSIONS_DIR", "is_session_run", "session_runs_dir", "share_run", "visible_runs",),
    "teaching": ("PartialConv2d",),
    "timm_models": ("TIMM_MODELS_ENV", "TIMM_PREFIX", "timm_available",),
    "user_models": ("ENTRY_POINT_GROUP", "USER_MODELS_ENV", "UserModelProblem", "add_model_paths", "load_model_file", "load_user_models", "models_from_argv", "user_model_names", "user_model_problems",),
}
_OWNER = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_OWNER)


def __getattr__(name: str) -> Any:
    module = _OWNER.get(name)
    if module is None:
        raise AttributeError(f"module 'explorer.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"explorer.models.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
