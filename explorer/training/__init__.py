"""The training lab: one loop written as a generator (events per step and epoch), shared by the page, the CLI
and the tests; its configuration, the run's network, evaluation, transfer learning, a worker thread and charts."""
from explorer.training.build import QUICK_SIZES, build_seeded, check_forward, model_options, natural_shape, suggested_image_size
from explorer.training.config import (AUX_LOSS_WEIGHT, DEMO_EPOCHS, DEMO_LR, DEMO_SCHEDULE, DEMO_SHAPES_SAMPLES,
                                      OPTIMIZERS, SCHEDULES, TrainConfig)
from explorer.training.evaluation import MAX_MISCLASSIFIED_SAVED, Evaluation, evaluate, read_evaluation, save_results
from explorer.training.degradation import (PAPER_TABLE2_TOP1, degradation_curves, degradation_result,
                                           degradation_verdict, paper_table2)
from explorer.training.events import Epoch, Finished, Started, Step
from explorer.training.gradients import (GRADIENT_COLUMNS, GRADIENT_NETWORKS, gradient_experiment,
                                         layer_gradient_norms, random_batch, weight_layers, without_batchnorm)
from explorer.training.figures import compare_runs_figure, confusion_figure, curves_figure, steps_figure
from explorer.training.loop import (DEGRADATION_DEPTHS, SMALL_NETWORK_PARAMS, PreparedRun, cpu_threads_for,
                                    degradation_configs, input_shape_for, load_data, prepare, run_training, train)
from explorer.training.parts import autocast_for, lr_factor
from explorer.training.transfer import (DEFAULT_BACKBONE_LR_FACTOR, MODES, TrainableCounts, apply_mode, count_trainable,
                                        check_trains_something, fixed_parameter_ids, parameter_groups, set_train_mode,
                                        split_parameters, trainable_counts)
from explorer.training.worker import (MAX_ACTIVE_WORKERS, Progress, RunInProgressError, RunProgress, TrainingBusyError,
                                      TrainingWorker, get_worker, start_training, stop_training)

__all__ = [
    "GRADIENT_COLUMNS", "GRADIENT_NETWORKS", "PAPER_TABLE2_TOP1", "degradation_curves", "degradation_result",
    "degradation_verdict",
    "gradient_experiment", "layer_gradient_norms", "paper_table2", "random_batch", "weight_layers", "without_batchnorm",
    "AUX_LOSS_WEIGHT", "DEMO_EPOCHS", "DEMO_LR", "DEMO_SCHEDULE", "DEMO_SHAPES_SAMPLES", "DEFAULT_BACKBONE_LR_FACTOR", "DEGRADATION_DEPTHS", "Epoch", "Evaluation", "Finished",
    "MAX_ACTIVE_WORKERS", "MAX_MISCLASSIFIED_SAVED", "MODES", "OPTIMIZERS", "PreparedRun", "Progress", "QUICK_SIZES",
    "RunInProgressError", "RunProgress", "SCHEDULES", "SMALL_NETWORK_PARAMS", "Started", "Step", "TrainConfig",
    "TrainableCounts", "TrainingBusyError", "TrainingWorker", "apply_mode", "autocast_for", "build_seeded",
    "check_forward", "compare_runs_figure", "confusion_figure", "count_trainable", "cpu_threads_for", "curves_figure",
    "degradation_configs", "evaluate", "get_worker", "input_shape_for", "load_data", "lr_factor", "model_options",
    "natural_shape", "parameter_groups", "prepare", "read_evaluation", "run_training", "save_results",
    "set_train_mode", "split_parameters", "start_training", "steps_figure", "stop_training", "suggested_image_size",
    "train", "trainable_counts", "check_trains_something", "fixed_parameter_ids",
]
