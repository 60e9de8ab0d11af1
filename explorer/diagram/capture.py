"""Recording the graph a model really executes, in one forward pass.

A ``TorchFunctionMode`` sees every torch function and tensor method (``torch.cat``, ``out += identity``,
``F.relu``, ``x.view``...), and forward pre/post hooks on every module say which module each call belongs
to. Every tensor computed from the input remembers the node that last wrote it (by object identity, with a
weak reference so a recycled ``id()`` is never mistaken for it): an op's inputs are looked up *before* it
runs and its outputs re-labelled after, so in-place ops (``ReLU(inplace=True)``, ``x += y``) keep the edges
right. Ops inside a leaf module belong to that module's box; ops in a container's ``forward`` become boxes of
their own. Known limit: writing in place into a *view* of a tensor does not re-label the tensor it views.

A call that hands back one of its inputs untouched (``nn.Identity``, ``nn.Dropout`` or ``F.dropout`` in eval mode,
a stride-1 option-A shortcut) must not re-label that tensor: its other users read the real producer's value, not
the identity box's. Such a call is told from an in-place one (``ReLU(inplace=True)`` also returns its input) by
the tensor's version counter, which every in-place write bumps. Its result is handed on as a fresh alias
(``view_as``: same storage, same version counter, same values) so later users of the result and of the input can
be told apart as the model's code tells them apart; an in-place write into either re-labels both, since in the
model they are one object.
"""
from __future__ import annotations

import threading
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from explorer.diagram.graph import Edge, Graph, Node
from explorer.diagram.ops import (CONSTANT_LIKE, TRANSPARENT, function_geometry, function_kind, module_geometry,
                                  module_kind, op_name)
from explorer.diagram.shortcuts import mark_shortcuts
from explorer.core import hooked, model_device_dtype, traced_modules
from explorer.core import TensorTags, flat_tensors

INPUT_SEED = 0


class DiagramError(RuntimeError):
    """The forward pass failed; ``layer`` is the module that was running (None if unknown)."""

    def __init__(self, message: str, layer: str | None = None) -> None:
        super().__init__(message)
        self.layer = layer


@dataclass
class _Frame:
    name: str
    module: nn.Module
    leaf: bool
    inside_leaf: bool
    call_id: str
    sources: list[str]
    versions: dict[int, tuple[torch.Tensor, int | None]]  # the inputs by id, with their version before the call


def _version(tensor: torch.Tensor) -> int | None:
    try:
        return tensor._version
    except RuntimeError:  # an inference-mode tensor has no version counter: nothing to compare
        return None


def _versions(tensors: list[torch.Tensor]) -> dict[int, tuple[torch.Tensor, int | None]]:
    return {id(t): (t, _version(t)) for t in tensors}


def _passed_through(tensor: torch.Tensor, before: dict[int, tuple[torch.Tensor, int | None]]) -> bool:
    """True when ``tensor`` is one of a call's inputs and the call did not write into it."""
    entry = before.get(id(tensor))
    if entry is None or entry[0] is not tensor or entry[1] is None:
        return False
    return _version(tensor) == entry[1]


class _Recorder(TorchFunctionMode):
    """Builds nodes and edges while the model runs; see the module docstring."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.thread = threading.get_ident()
        self.module_paths = {name for name, _ in model.named_modules()}
        self.input_id = "<input>" if "input" in self.module_paths else "input"
        self.output_id = "<output>" if "output" in self.module_paths else "output"
        self.producers: TensorTags[str] = TensorTags()
        # tensors that are one object in the model (an input and the alias made for its pass-through result)
        self.twins: TensorTags[list[weakref.ref]] = TensorTags()
        self.frames: list[_Frame] = []
        self.nodes: list[Node] = []
        self.edges: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self.node_calls: Counter[str] = Counter()
        self.container_calls: Counter[str] = Counter()
        self.module_types: dict[str, str] = {}

    # --- provenance: tensor -> id of the node that last wrote it ---------------------------------------
    def producer(self, tensor: torch.Tensor) -> str | None:
        return self.producers.get(tensor)

    def set_producer(self, tensor: torch.Tensor, node_id: str) -> None:
        self.producers.set(tensor, node_id)

    def sources(self, value: Any) -> list[str]:
        return self.sources_of(flat_tensors(value))

    def sources_of(self, tensors: list[torch.Tensor]) -> list[str]:
        found = (self.producer(t) for t in tensors)
        return list(dict.fromkeys(s for s in found if s is not None))

    def relabel(self, tensor: torch.Tensor, node_id: str) -> None:
        """``tensor`` was written by ``node_id``; so were its twins (the model sees them as one object)."""
        group = self.twins.get(tensor)
        if group is None:
            self.set_producer(tensor, node_id)
            return
        for ref in group:
            twin = ref()
            if twin is not None:
                self.set_producer(twin, node_id)

    def alias(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """A new tensor object sharing ``tensor``'s storage and version counter, or None if it has none."""
        try:
            return tensor.view_as(tensor)
        except (RuntimeError, TypeError, NotImplementedError):  # a layout or subclass without views
            return None

    def link(self, tensor: torch.Tensor, alias: torch.Tensor) -> None:
        group = self.twins.get(tensor)
        if group is None:
            group = [weakref.ref(tensor)]
            self.twins.set(tensor, group)
        group.append(weakref.ref(alias))
        self.twins.set(alias, group)

    def emit(self, base: str, sources: list[str], outputs: list[torch.Tensor], geometry: dict[str, Any],
             keep: frozenset[int] = frozenset(), **fields: Any) -> str:
        """Add a node and its edges; every output except those whose id is in ``keep`` (inputs handed back
        untouched) now comes from it."""
        self.node_calls[base] += 1
        count = self.node_calls[base]
        node_id = base if count == 1 else f"{base}#{count}"
        scope = tuple(f.call_id for f in self.frames if not f.leaf and f.name)
        shape = tuple(int(d) for d in outputs[0].shape) if outputs else ()
        fields.update(_geometry_fields(geometry, spatial_dims=max(len(shape) - 2, 0)))
        self.nodes.append(Node(id=node_id, output_shape=shape, scope=scope, **fields))
        for src in sources:
            self.edges[(src, node_id)] = None
        for tensor in outputs:
            if id(tensor) not in keep:
                self.relabel(tensor, node_id)
        return node_id

    def pass_through(self, output: Any, outputs: list[torch.Tensor],
                     before: dict[int, tuple[torch.Tensor, int | None]]
                     ) -> tuple[Any, list[torch.Tensor], frozenset[int], torch.Tensor | None]:
        """Handle a call that returned an input untouched: ``(output, outputs, keep, base)``.

        A single returned tensor is swapped for an alias (``base`` is the input it stands for, to be linked after
        the node is emitted); an input inside a returned tuple is kept with its old producer (``keep``)."""
        passed = frozenset(id(t) for t in outputs if _passed_through(t, before))
        if not passed:
            return output, outputs, passed, None
        if isinstance(output, torch.Tensor):
            alias = self.alias(output)
            if alias is not None:
                return alias, [alias], frozenset(), output
        return output, outputs, passed, None

    # --- module hooks -------------------------------------------------------------------------------------
    def attach(self, add: Any) -> None:
        """Register the module hooks through ``add`` (:func:`explorer.core.hooked` removes them)."""
        for name, module, leaf in traced_modules(self.model):  # a TorchScript part: ValueError
            add(module.register_forward_pre_hook(self._pre_hook(name, leaf), with_kwargs=True))
            add(module.register_forward_hook(self._post_hook))

    def _pre_hook(self, name: str, leaf: bool):
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            if threading.get_ident() != self.thread:
                return  # another thread's pass on a shared model (it should hold the lock; be safe anyway)
            parent = self.frames[-1] if self.frames else None
            inside = bool(parent and (parent.leaf or parent.inside_leaf))
            call_id = name
            if not inside:
                self.module_types.setdefault(name, type(module).__name__)
                if not leaf:
                    self.container_calls[name] += 1
                    count = self.container_calls[name]
                    call_id = name if count == 1 else f"{name}#{count}"
            # Read the inputs' producers now: an in-place module overwrites its input before the post hook.
            tensors = flat_tensors((args, kwargs)) if leaf and not inside else []
            sources = self.sources_of(tensors)
            # ... and their versions: an input handed back with the same version was passed through, not written
            versions = _versions(tensors) if sources else {}
            self.frames.append(_Frame(name, module, leaf, inside, call_id, sources, versions))
        return hook

    def _post_hook(self, module: nn.Module, _args: Any, output: Any) -> Any:
        """Emit the leaf's box; returns the alias that replaces an input handed back untouched, else None."""
        if threading.get_ident() != self.thread or not self.frames:
            return None
        frame = self.frames[-1]
        if frame.inside_leaf or not frame.leaf:
            self.frames.pop()
            return None
        outputs = flat_tensors(output)
        if not outputs or not frame.sources:
            self.frames.pop()
            return None  # nothing came out, or it was computed from constants only
        # with the leaf's frame still on the stack, the alias's view_as counts as the leaf's own op (no box)
        replaced, outputs, keep, base = self.pass_through(output, outputs, frame.versions)
        self.frames.pop()
        path = frame.name or type(module).__name__.lower()
        self.emit(path, frame.sources, outputs, module_geometry(module), keep, kind=module_kind(module),
                  label=path, op=type(module).__name__, source="module", module=frame.name,
                  block=frame.name.rpartition(".")[0])
        if base is None:
            return None
        self.link(base, replaced)
        return replaced

    # --- every torch function and tensor method lands here -------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if threading.get_ident() != self.thread:
            return func(*args, **kwargs)
        frame = self.frames[-1] if self.frames else None
        if frame is not None and (frame.leaf or frame.inside_leaf):
            return func(*args, **kwargs)  # part of the leaf module's own box
        tensors = flat_tensors((args, kwargs))
        sources = self.sources_of(tensors)  # before the call: an in-place op re-labels its input after
        if not sources:
            return func(*args, **kwargs)
        before = _versions(tensors)  # to tell an input passed through (F.dropout in eval) from one written
        out = func(*args, **kwargs)
        name = op_name(func)
        if name == "setitem":  # x[...] = y writes into x and returns None
            outputs = flat_tensors(args[:1])
        else:
            outputs = flat_tensors(out)
        if not outputs or name in CONSTANT_LIKE:
            return out
        if name in TRANSPARENT:
            for tensor in outputs:
                self.set_producer(tensor, sources[0])
            return out
        caller = frame.name if frame is not None else ""
        base = f"{caller}.{name}" if caller else name
        if base in self.module_paths:  # a functional op named like a submodule (F.relu beside self.relu)
            base += "()"
        # inside this handler the mode is off, so the alias's view_as makes no box
        out, outputs, keep, passed_input = self.pass_through(out, outputs, before)
        self.emit(base, sources, outputs, function_geometry(name, args, kwargs), keep, kind=function_kind(name),
                  label=name, op=name, source="function", module=caller, block=caller)
        if passed_input is not None:
            self.link(passed_input, out)
        return out


def _geometry_fields(geometry: dict[str, Any], spatial_dims: int) -> dict[str, Any]:
    """Node fields from a geometry dict: ``3`` given for a 2-d pool becomes ``(3, 3)``; dilation 1 is dropped."""
    def widen(value: Any) -> Any:
        if isinstance(value, tuple) and len(value) == 1 and spatial_dims > 1:
            return value * spatial_dims
        return value

    geometry = {key: widen(value) for key, value in geometry.items()}
    if geometry.get("dilation") and set(geometry["dilation"]) == {1}:
        del geometry["dilation"]
    fields = {key: geometry.pop(key, None) for key in ("kernel", "stride", "padding")}
    fields["details"] = tuple(sorted((k, v) for k, v in geometry.items() if v is not None))
    return fields


def _random_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"input_shape must be positive sizes such as (C, H, W), got {tuple(input_shape)}")
    device, dtype = model_device_dtype(model)
    # A private generator: drawing from the global one would change other threads' random streams.
    generator = torch.Generator().manual_seed(INPUT_SEED)
    return torch.randn((1, *shape), generator=generator).to(device=device, dtype=dtype)


def capture_graph(model: nn.Module, input_shape: Sequence[int]) -> Graph:
    """Run ``model`` once on a random input of ``input_shape`` (C, H, W; batch 1 is added) and return the
    graph it executed.

    The pass runs under ``torch.no_grad`` in eval mode while holding the model's lock; hooks are removed and
    every module's train/eval flag restored even when the forward pass fails, which raises ``DiagramError``.
    """
    # hooked: the model's lock, hooks removed and every train/eval flag put back in finally
    # eval: the inference graph (no auxiliary heads, BatchNorm with running statistics)
    with hooked(model, evaluate=True) as add:
        x = _random_input(model, input_shape)
        recorder = _Recorder(model)
        with torch.no_grad():
            recorder.set_producer(x, recorder.input_id)
            try:
                recorder.attach(add)
                with recorder:
                    result = model(x)
            except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as exc:
                # what torch and model code raise for an input they cannot take; say where it happened
                running = next((f.name for f in reversed(recorder.frames) if f.name), None)
                where = f"layer {running}" if running else "the model"
                first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
                shape = "×".join(str(d) for d in input_shape)
                raise DiagramError(f"the forward pass on a {shape} input failed in {where}: {first_line}",
                                   running) from exc
    input_node = Node(id=recorder.input_id, kind="input", label="input", op="input", source="input", module="",
                      block="", output_shape=tuple(x.shape))
    nodes = [input_node, *recorder.nodes]
    outputs = flat_tensors(result)
    output_sources = recorder.sources(outputs)
    edges = [Edge(src, dst) for src, dst in recorder.edges]
    if output_sources:
        # the shapes of the returned tensors the model computed (not a constant it also returns), each once
        produced = list({id(t): t for t in outputs if recorder.producer(t) is not None}.values())
        shapes = tuple(tuple(int(d) for d in t.shape) for t in produced)
        nodes.append(Node(id=recorder.output_id, kind="output", label="output", op="output", source="output",
                          module="", block="", output_shape=shapes[0],
                          details=(("shapes", shapes),) if len(shapes) > 1 else ()))
        edges += [Edge(src, recorder.output_id) for src in output_sources]
    return Graph(nodes=tuple(nodes), edges=tuple(mark_shortcuts(nodes, edges)),
                 input_shape=tuple(int(s) for s in input_shape),
                 module_types=tuple(sorted(recorder.module_types.items())))
