"""An architecture's identity, independent of its weights and device: what tables of static properties
(receptive fields, layer shapes) are cached under, so everyone asking about the same network at the same input
size shares one computation."""
from __future__ import annotations

import hashlib
import weakref

import torch.nn as nn

_known: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()


def architecture_fingerprint(model: nn.Module) -> str:
    """SHA-1 of the module tree's text (types, kernel sizes, strides, channels, class counts) and its class.

    Two models with the same layers get the same fingerprint whatever their weights, device or name; a changed
    head (10 classes instead of 1000) or another kernel gives another. Remembered per model object (the text of
    a big network takes a few milliseconds).
    """
    known = _known.get(model)
    if known is None:
        text = f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}"
        known = _known[model] = hashlib.sha1(text.encode()).hexdigest()
    return known
