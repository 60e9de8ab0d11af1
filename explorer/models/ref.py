"""One reference type for "which network": parsed once where a name enters (sidebar, CLI, run folder, spec).

Three kinds of model exist: a registry name (``resnet18``), a network typed in the VGG-style grammar
(``arch:conv3-64 M FC-10``) and a training run folder (``runs/NAME`` holding ``config.json``). Only
:meth:`ModelRef.parse` looks at the text to tell them apart; everything else asks ``ref.kind``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ARCH_PREFIX = "arch:"
RUN_CONFIG_FILE = "config.json"

Kind = Literal["registry", "arch", "run"]


@dataclass(frozen=True)
class ModelRef:
    """``kind`` and ``value``: the registry name, the architecture spec (without ``arch:``) or the run folder."""

    kind: Kind
    value: str

    @classmethod
    def parse(cls, text: "str | Path | ModelRef") -> "ModelRef":
        if isinstance(text, ModelRef):
            return text
        text = str(text)
        if not text:
            raise ValueError("no model named")
        if text.startswith(ARCH_PREFIX):
            return cls("arch", text[len(ARCH_PREFIX):])
        if is_run_folder(text):
            return cls("run", text)
        return cls("registry", text)

    @classmethod
    def arch(cls, spec: str) -> "ModelRef":
        return cls("arch", spec)

    @property
    def key(self) -> str:
        """The text form: what URLs, session state, run configs and caches keep."""
        return ARCH_PREFIX + self.value if self.kind == "arch" else self.value

    def __str__(self) -> str:
        return self.key

    def label(self, custom: str = "custom", width: int = 40) -> str:
        """A short display name: the registry name, the run folder's name, or "custom: conv3-…"."""
        if self.kind == "arch":
            return f"{custom}: {self.value[:width]}"
        if self.kind == "run":
            return Path(self.value).name
        return self.value


def is_run_folder(path: "str | Path") -> bool:
    """True when ``path`` is a training run folder (it holds ``config.json``)."""
    try:
        return (Path(path) / RUN_CONFIG_FILE).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte...
        return False
