"""A view as URL query parameters: parse them into validated values, and write values back.

A shareable link (``/gradcam?model=vgg16&layer=features.28&class=281&lang=ko``) names the page by its path
and everything else that defines the view as query parameters. Each parameter is described by a
:class:`Param` (its URL name, where the value goes, its type and its allowed values). Parsing never
raises: a value that is unknown, malformed or out of range is left out (the view keeps its default) and
reported in ``problems`` so the caller can show one message for the whole link.

No Streamlit here: ``ui/links.py`` holds the table of parameters per page and applies the values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

Kind = Literal["name", "int", "float", "bool", "choice", "list", "shape", "numbers"]

MAX_VALUE_CHARS = 200  # a layer name or a registry model name is far shorter; a longer value is not ours
# A typed network travels whole in a link (``model=arch:conv3-64 BN conv3-64 BN M ...``): a VGG-style spec with BN
# passes 200 characters. Bounded by what a class can publish (explorer.core.classroom.MAX_STATE_BYTES).
MAX_SPEC_VALUE_CHARS = 4000
MAX_SIDE = 1024  # the largest side of a shape parameter unless it names its own (``Param.high``)
# The largest input side the sidebar reads as a size at all: larger sides (up to this) are scaled down by the memory
# and size caps with a message; a link carries what a student typed, so it reads the same.
MAX_TYPED_SIDE = 100_000
# Layer, model and colormap names: letters, digits and a few separators (no quotes, no markup); "#" for a module's
# later calls (``layer1.0.relu#2``, explorer.analysis.layer_calls). One character class, one repetition: no
# catastrophic backtracking; the length is checked before (``Param.max_chars``).
NAME_RE = re.compile(r"[A-Za-z0-9_.:/#*\- ]+")  # "*": every block (Feature maps)
INT_RE = re.compile(r"-?[0-9]{1,9}")
FLOAT_RE = re.compile(r"-?[0-9]{1,6}(\.[0-9]{1,6})?")
NUMBERS_RE = re.compile(r"[0-9eE.,;/+\- ]+")  # numbers in rows: "1,0,-1;2,0,-2;1,0,-1" (the page parses the values)
TRUE, FALSE = frozenset({"1", "true", "on", "yes"}), frozenset({"0", "false", "off", "no"})


@dataclass(frozen=True)
class Param:
    """One query parameter: ``name`` in the URL, ``target`` where its value goes (a session-state key).

    ``kind``: ``name`` (a layer or model name), ``int`` / ``float`` (with ``low``/``high``), ``bool``
    (``1``/``0``), ``choice`` (one of ``choices``), ``list`` (comma-separated ``choices`` or names, at most
    ``max_items``), ``shape`` (``HxW``, each side 1..``high`` or ``MAX_SIDE``) or ``numbers`` (rows of numbers
    such as a kernel's, ``1,0,-1;2,0,-2``: only its characters are checked here, the page reads the values and
    falls back with a message when they do not fit). ``max_chars``: the longest
    value read at all (``MAX_SPEC_VALUE_CHARS`` where a typed network may travel).
    """

    name: str
    target: str
    kind: Kind = "name"
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    max_items: int = 8
    max_chars: int = MAX_VALUE_CHARS  # the longest value read at all (a list: the whole comma-separated text)


@dataclass
class ParsedView:
    """``values``: target → value for every parameter that parsed; ``problems``: (name, raw text) pairs."""

    values: dict[str, Any] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


def parse_shape(text: str, max_side: int = MAX_SIDE) -> tuple[int, int] | None:
    """``"224x224"``, ``"224"`` or ``"3x224x224"`` → (H, W); None when malformed or out of 1..max_side."""
    parts = str(text).lower().replace("×", "x").replace(" ", "").split("x")
    if not all(INT_RE.fullmatch(p) for p in parts):
        return None
    dims = [int(p) for p in parts]
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) == 3:
        dims = dims[1:]
    if len(dims) != 2 or min(dims) < 1 or max(dims) > max_side:
        return None
    return dims[0], dims[1]


def parse_value(param: Param, raw: str, choices: Sequence[Any] | None = None) -> tuple[bool, Any]:
    """(True, value) when ``raw`` is valid for ``param``, else (False, None). ``choices`` overrides the
    parameter's own (lists known only at run time: the models on this server, a model's layers)."""
    allowed = tuple(choices) if choices is not None else param.choices
    text = str(raw).strip()
    if not text or len(text) > param.max_chars:
        return False, None
    if param.kind == "int" or param.kind == "float":
        if not (INT_RE if param.kind == "int" else FLOAT_RE).fullmatch(text):
            return False, None
        number = int(text) if param.kind == "int" else float(text)
        if (param.low is not None and number < param.low) or (param.high is not None and number > param.high):
            return False, None
        if allowed and number not in allowed:
            return False, None
        return True, number
    if param.kind == "bool":
        low = text.lower()
        return (True, low in TRUE) if low in TRUE | FALSE else (False, None)
    if param.kind == "shape":
        hw = parse_shape(text, int(param.high or MAX_SIDE))
        return (True, f"{hw[0]}x{hw[1]}") if hw else (False, None)
    if param.kind == "list":
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items or len(items) > param.max_items:
            return False, None
        if allowed:
            ok = all(item in allowed for item in items)
        else:
            ok = all(NAME_RE.fullmatch(item) for item in items)
        return (True, list(dict.fromkeys(items))) if ok else (False, None)
    if param.kind == "numbers":
        return (True, text) if NUMBERS_RE.fullmatch(text) else (False, None)
    if param.kind == "choice":
        by_text = {str(c): c for c in allowed}
        return (True, by_text[text]) if text in by_text else (False, None)
    # "name": any plausible name, or one of the choices when they are known
    if allowed:
        return (True, text) if text in allowed else (False, None)
    return (True, text) if NAME_RE.fullmatch(text) else (False, None)


def parse_query(query: Mapping[str, Any], params: Iterable[Param], ignore: Iterable[str] = (),
                choices: Mapping[str, Sequence[Any]] | None = None) -> ParsedView:
    """Every parameter of ``query`` that ``params`` describes, validated.

    A query value may be a string or a list of strings (the last one counts, as in a browser's
    ``URLSearchParams.get``... Streamlit keeps the last too). Names in ``ignore`` are skipped silently;
    any other unknown name is a problem. ``choices``: URL name → allowed values known at run time.
    """
    by_name = {p.name: p for p in params}
    skip = set(ignore)
    parsed = ParsedView()
    for name, raw in query.items():
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else ""
        raw = str(raw)
        if name in skip:
            continue
        param = by_name.get(name)
        if param is None:
            parsed.problems.append((name[:40], raw[:60]))
            continue
        ok, value = parse_value(param, raw, (choices or {}).get(name))
        if ok:
            parsed.values[param.target] = value
        else:
            parsed.problems.append((name, raw[:60]))
    return parsed


def encode_value(param: Param, value: Any) -> str | None:
    """The URL text of ``value`` (None when it has no URL form: an empty list, None)."""
    if value is None:
        return None
    if param.kind == "bool":
        return "1" if value else "0"
    if param.kind == "list":
        items = [str(v) for v in value] if isinstance(value, (list, tuple)) else []
        return ",".join(items) if items else None
    if param.kind == "float":
        return f"{float(value):g}"
    if param.kind == "int":
        try:
            return str(int(value))
        except (TypeError, ValueError):
            return None
    text = str(value)
    return text if text else None


def encode_query(values: Mapping[str, Any], params: Iterable[Param]) -> dict[str, str]:
    """URL name → text for every parameter whose target is in ``values`` (in ``params`` order)."""
    out: dict[str, str] = {}
    for param in params:
        if param.target in values:
            text = encode_value(param, values[param.target])
            if text is not None:
                out[param.name] = text
    return out


def describe_problems(problems: Sequence[tuple[str, str]], limit: int = 4) -> str:
    """``layer=foo, input=abc`` (at most ``limit`` of them, then ``…``): the one line a message shows."""
    shown = [f"{name}={value}" if value else name for name, value in problems[:limit]]
    return ", ".join(shown) + (", …" if len(problems) > limit else "")
