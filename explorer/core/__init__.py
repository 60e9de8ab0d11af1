"""What every other package stands on: the device, a lock per model, translations, a byte-budget cache."""
from explorer.core.tensors import TensorTags, flat_tensors
from explorer.core.budget_cache import BUDGET_ENV, BudgetCache, arrays_in, default_budget_bytes, nbytes_of
from explorer.core.device import describe_device, device_of, is_out_of_memory, model_device_dtype, pick_device
from explorer.core.hooks import (PASS_PATCH_MARK, hook_count, hooked, named_module_tree, on_this_thread, strip_pass_state,
                                 traced_modules, watchable_modules)
from explorer.core.fingerprint import architecture_fingerprint
from explorer.core.i18n import DEFAULT_LANGUAGE, LANGUAGES, LOCALES_DIR, catalogue, key_differences, translate
from explorer.core.locks import model_lock
from explorer.core.memory_gate import (DEFAULT_SERVER_MB, SERVER_BUDGET_ENV, MemoryGate, ServerMemoryError, env_positive_number,
                                       server_budget_bytes, server_gate)
from explorer.core.classroom import (LECTURER_GONE_SECONDS, LECTURER_HEARTBEAT_SECONDS, ClassroomError, ClassroomStore,
                                     ClassView, normalise_code, shared_dir_from_env)
from explorer.core.viewstate import (MAX_SPEC_VALUE_CHARS, MAX_TYPED_SIDE, Param, ParsedView, describe_problems, encode_query, encode_value,
                                     parse_query, parse_shape)
from explorer.core.rng import GLOBAL_RNG_LOCK, seeded_global
from explorer.core.numbers import EMPTY_CELL, cell_text, human_bytes, human_number, is_count, is_missing, key_columns_first

__all__ = [
    "BUDGET_ENV", "BudgetCache", "architecture_fingerprint", "GLOBAL_RNG_LOCK", "TensorTags", "flat_tensors", "DEFAULT_LANGUAGE", "LANGUAGES", "LOCALES_DIR", "arrays_in", "catalogue",
    "default_budget_bytes", "describe_device", "device_of", "hook_count", "hooked", "named_module_tree", "on_this_thread", "PASS_PATCH_MARK", "strip_pass_state", "traced_modules", "watchable_modules", "model_device_dtype", "is_out_of_memory", "key_differences", "model_lock", "nbytes_of",
    "pick_device", "seeded_global", "translate",
    "ClassroomError", "ClassroomStore", "ClassView", "normalise_code", "shared_dir_from_env",  # class sessions
    "LECTURER_GONE_SECONDS", "LECTURER_HEARTBEAT_SECONDS",
    "MAX_SPEC_VALUE_CHARS", "MAX_TYPED_SIDE", "Param", "ParsedView", "describe_problems", "encode_query", "encode_value", "parse_query", "parse_shape",  # shareable links
    "DEFAULT_SERVER_MB", "SERVER_BUDGET_ENV", "MemoryGate", "ServerMemoryError", "env_positive_number", "server_budget_bytes",
    "server_gate",  # the server-wide memory budget
    "EMPTY_CELL", "cell_text", "human_bytes", "human_number", "is_count", "is_missing", "key_columns_first",  # tables for people
]
