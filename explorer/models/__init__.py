"""Every network the app knows, one reference type for naming one, and loading it with its weights.

- :class:`ModelRef` — a registry name, an ``arch:`` spec or a run folder, parsed once where a name enters;
- the registry (:func:`register_model`, :func:`list_models`, :func:`get_entry`): torchvision's CNNs, the teaching
  networks and the papers' networks;
- :func:`build_model` (random, seeded weights) and :func:`load_model` (a :class:`LoadedModel` with its weights:
  pretrained, a checkpoint, or a training run's);
- checkpoints, classifier heads, and training run folders as a source of models.
"""
from explorer.models.builtin_weights import (WEIGHTS_DIR, BuiltinWeights, builtin_weight_names, builtin_weights, trained_dataset,
                                             weights_choices,
                                             write_builtin_weights)
from explorer.models.hub_weights import (HubWeights, check_file_hash, download_failure, fetch_model_weights,
                                         hub_checkpoints_dir, hub_weights, hub_weights_table, plain_reason)
from explorer.models.checkpoints import CheckpointError, LoadReport, apply_state_dict, read_state_dict, save_atomic
from explorer.models.catalog import get_entry, list_models
from explorer.models.heads import find_aux_heads, find_head, head_names, head_out_features, replace_head
from explorer.models.loaded import LoadedModel
from explorer.models.loading import (DOWNLOAD_TIMEOUT_S, IMAGENET_MEAN, IMAGENET_STD, build_model, fetch_pretrained,
                                     load_model, natural_input_shape, with_input_shape)
from explorer.models.paper import GOOGLENET_INCEPTION, VGG_MODEL_NAMES, VGG_TORCHVISION_TWIN, PaperInception
from explorer.models.ref import ARCH_PREFIX, ModelRef, is_run_folder
from explorer.models.registry import ModelEntry, register_model
from explorer.models.run_build import BATCH_NORMS, build_run_model, construct_network, seeded
from explorer.models.runfolder import (CHECKPOINT_FILE, CONFIG_FILE, RUNS_ENV, RunInfo, check_run_name, confine_run_dir, list_runs, load_run,
                                       read_config, read_metrics, read_misclassified, run_info, runs_root,
                                       save_checkpoint, suggest_run_name, write_json_atomic, write_npz_atomic)
from explorer.models.session_runs import SESSIONS_DIR, is_session_run, session_runs_dir, share_run, visible_runs
from explorer.models.teaching import PartialConv2d
from explorer.models.timm_models import TIMM_MODELS_ENV, TIMM_PREFIX, timm_available
from explorer.models.user_models import (ENTRY_POINT_GROUP, USER_MODELS_ENV, UserModelProblem, add_model_paths,
                                         load_model_file, load_user_models, models_from_argv, user_model_names,
                                         user_model_problems)

__all__ = [
    "SESSIONS_DIR", "is_session_run", "session_runs_dir", "share_run", "visible_runs",
    "BuiltinWeights", "HubWeights", "WEIGHTS_DIR", "builtin_weight_names", "builtin_weights", "check_file_hash",
    "download_failure", "fetch_model_weights", "hub_checkpoints_dir", "hub_weights", "hub_weights_table",
    "plain_reason", "trained_dataset", "weights_choices", "write_builtin_weights",
    "ARCH_PREFIX", "BATCH_NORMS", "GOOGLENET_INCEPTION", "PaperInception", "CHECKPOINT_FILE", "CONFIG_FILE", "RUNS_ENV", "CheckpointError", "DOWNLOAD_TIMEOUT_S",
    "IMAGENET_MEAN", "IMAGENET_STD", "LoadReport", "LoadedModel", "ModelEntry", "ModelRef", "PartialConv2d",
    "RunInfo", "VGG_MODEL_NAMES", "VGG_TORCHVISION_TWIN", "apply_state_dict", "build_model", "build_run_model",
    "check_run_name", "confine_run_dir", "construct_network", "fetch_pretrained", "find_aux_heads", "find_head", "get_entry",
    "head_names", "head_out_features", "is_run_folder", "list_models", "list_runs", "load_model", "load_run",
    "natural_input_shape", "read_config", "read_metrics", "read_misclassified", "read_state_dict", "register_model",
    "replace_head", "run_info", "runs_root", "save_atomic", "save_checkpoint", "seeded", "suggest_run_name",
    "with_input_shape", "write_json_atomic", "write_npz_atomic",
    # your own networks (explorer.models.user_models, explorer.models.timm_models)
    "ENTRY_POINT_GROUP", "TIMM_MODELS_ENV", "TIMM_PREFIX", "USER_MODELS_ENV", "UserModelProblem", "add_model_paths",
    "load_model_file", "load_user_models", "models_from_argv", "timm_available", "user_model_names",
    "user_model_problems",
]
