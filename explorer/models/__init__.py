"""Every network the app knows, one reference type for naming one, and loading it with its weights.

- :class:`ModelRef` — a registry name, an ``arch:`` spec or a run folder, parsed once where a name enters;
- the registry (:func:`register_model`, :func:`list_models`, :func:`get_entry`): torchvision's CNNs, the teaching
  networks and the papers' networks;
- :func:`build_model` (random, seeded weights) and :func:`load_model` (a :class:`LoadedModel` with its weights:
  pretrained, a checkpoint, or a training run's);
- checkpoints, classifier heads, and training run folders as a source of models.
"""
from explorer.models.checkpoints import CheckpointError, LoadReport, apply_state_dict, read_state_dict, save_atomic
from explorer.models.catalog import get_entry, list_models
from explorer.models.heads import find_aux_heads, find_head, head_names, head_out_features, replace_head
from explorer.models.loaded import LoadedModel
from explorer.models.loading import (DOWNLOAD_TIMEOUT_S, IMAGENET_MEAN, IMAGENET_STD, build_model, fetch_pretrained,
                                     load_model, natural_input_shape, with_input_shape)
from explorer.models.paper import VGG_MODEL_NAMES, VGG_TORCHVISION_TWIN
from explorer.models.ref import ARCH_PREFIX, ModelRef, is_run_folder
from explorer.models.registry import ModelEntry, register_model
from explorer.models.run_build import BATCH_NORMS, build_run_model, construct_network, seeded
from explorer.models.runfolder import (CHECKPOINT_FILE, CONFIG_FILE, RUNS_ENV, RunInfo, check_run_name, list_runs, load_run,
                                       read_config, read_metrics, read_misclassified, run_info, runs_root,
                                       save_checkpoint, suggest_run_name, write_json_atomic, write_npz_atomic)
from explorer.models.teaching import PartialConv2d

__all__ = [
    "ARCH_PREFIX", "BATCH_NORMS", "CHECKPOINT_FILE", "CONFIG_FILE", "RUNS_ENV", "CheckpointError", "DOWNLOAD_TIMEOUT_S",
    "IMAGENET_MEAN", "IMAGENET_STD", "LoadReport", "LoadedModel", "ModelEntry", "ModelRef", "PartialConv2d",
    "RunInfo", "VGG_MODEL_NAMES", "VGG_TORCHVISION_TWIN", "apply_state_dict", "build_model", "build_run_model",
    "check_run_name", "construct_network", "fetch_pretrained", "find_aux_heads", "find_head", "get_entry",
    "head_names", "head_out_features", "is_run_folder", "list_models", "list_runs", "load_model", "load_run",
    "natural_input_shape", "read_config", "read_metrics", "read_misclassified", "read_state_dict", "register_model",
    "replace_head", "run_info", "runs_root", "save_atomic", "save_checkpoint", "seeded", "suggest_run_name",
    "with_input_shape", "write_json_atomic", "write_npz_atomic",
]
