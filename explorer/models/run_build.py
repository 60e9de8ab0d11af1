"""The network a training run describes: built from its ``config.json`` under the run's seed.

A run records its model (a :class:`~explorer.models.ref.ModelRef` text), its head size and the teaching
toggles applied after building (BatchNorm off, dropout before the head). Training builds the network this
way and :func:`~explorer.models.runfolder.load_run` rebuilds it for its checkpoint, so both live here.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn

from explorer.core import seeded_global
from explorer.models.arch.build import build_arch
from explorer.models.catalog import get_entry
from explorer.models.heads import find_head, replace_head
from explorer.models.ref import ModelRef

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global CPU generator seeded to ``seed``, then restore it.

    Held under the process-wide generator lock (``explorer.core.seeded_global``): the global generator is
    one per process, and anything else seeding or drawing from it at once would interleave the draws.
    """
    with seeded_global(seed):
        yield


# Set on the Sequential(Dropout, head) that the dropout toggle makes: the training lab keeps that dropout in
# training mode with the head when the backbone is frozen (explorer.training.transfer.set_train_mode).
TRAINS_WITH_HEAD = "trains_with_head"


def apply_surgery(model: nn.Module, surgery: dict) -> None:
    """BatchNorm off: every BatchNorm layer becomes an identity. Dropout p: a dropout layer is put in
    front of the classifier head (``fc`` becomes ``Sequential(Dropout(p), fc)``, marked ``trains_with_head``)."""
    if surgery.get("batch_norm") is False:
        for parent in model.modules():
            for child_name, child in parent.named_children():
                if isinstance(child, BATCH_NORMS):
                    setattr(parent, child_name, nn.Identity())
    if surgery.get("dropout"):
        head = find_head(model)
        parent_name, _, child = head.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        wrapped = nn.Sequential(nn.Dropout(surgery["dropout"]), getattr(parent, child))
        setattr(wrapped, TRAINS_WITH_HEAD, True)
        setattr(parent, child, wrapped)


def construct_network(name: str, num_classes: int, build: dict, base: nn.Module | None = None) -> nn.Module:
    """Build the run's network (random init unless ``base`` is given). Call under :func:`seeded`."""
    kwargs = dict(build.get("kwargs", {}))
    ref = ModelRef.parse(name)
    if build["head"] == "builder":
        model = get_entry(ref.value).builder(num_classes=num_classes, **kwargs)
    else:
        if base is None:
            base = build_arch(ref.value)[0] if ref.kind == "arch" else get_entry(ref.value).builder(**kwargs)
        model = base
        replace_head(model, num_classes)
    apply_surgery(model, build.get("surgery", {}))
    for attr, value in build.get("attrs", {}).items():
        setattr(model, attr, value)
    return model


def build_run_model(config: dict) -> nn.Module:
    """The network described by a run's ``config.json`` (random weights: the checkpoint supplies them)."""
    with seeded(int(config.get("seed", 0))):
        return construct_network(config["model"], len(config["categories"]), config["build"]).eval()


