"""Numbers and table cells as people read them on a projector: 11.7 M, 3.66 G, an em dash for nothing; and whether
a value is a count (a side, a channel number) at all."""
from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence

EMPTY_CELL = "\u2014"  # em dash: a cell with no value, never "None" or "nan"
# Below this, counts are exact with thousands separators: 1,792 = 1,728 + 64 is what a student checks.
EXACT_BELOW = 100_000
_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
_FIXED = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def is_missing(value: object) -> bool:
    """True for None, NaN and pandas' NA/NaT (anything a table would show as "None" or "nan")."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT and pd.NA are the values not equal to themselves
    except (TypeError, ValueError):  # pd.NA's comparison raises in a boolean context
        return True


def _significant(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, without trailing zeros (11.7, 138, 0.00276)."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def human_number(value: object, unit: str | None = None, digits: int = 3) -> str:
    """A count for people: exact below 100,000 ("2,762"), else 3 significant digits and a prefix
    ("11.7 M", "3.66 G"); ``unit`` fixes the prefix ("0.00276 M" for a column of millions).
    Missing values are an em dash."""
    if is_missing(value):
        return EMPTY_CELL
    number = float(value)  # type: ignore[arg-type]
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if unit is not None:
        return f"{_significant(number / _FIXED[unit], digits)} {unit}"
    if abs(number) < EXACT_BELOW:
        return f"{int(number):,}" if number == int(number) else _significant(number, digits)
    index = next(i for i, (scale, _) in enumerate(_PREFIXES) if abs(number) >= scale)  # EXACT_BELOW > 1e3
    scaled = _significant(number / _PREFIXES[index][0], digits)
    if abs(float(scaled)) >= 1000 and index > 0:  # 999,950,000 rounds to "1000 M": say "1 G"
        index -= 1
        scaled = _significant(number / _PREFIXES[index][0], digits)
    return f"{scaled} {_PREFIXES[index][1]}"


def human_bytes(value: object) -> str:
    """A size in bytes for people, with binary units: "44.6 MB", "512 B"."""
    if is_missing(value):
        return EMPTY_CELL
    number = float(value)  # type: ignore[arg-type]
    for scale, unit in ((2**40, "TB"), (2**30, "GB"), (2**20, "MB"), (2**10, "kB")):
        if abs(number) >= scale:
            return f"{number / scale:.1f} {unit}"
    return f"{int(number)} B"


def cell_text(value: object) -> str:
    """A table cell as text: missing values an em dash, whole floats without ".0", the rest as is."""
    if is_missing(value):
        return EMPTY_CELL
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    text = str(value)
    return text if text.strip() else EMPTY_CELL


def key_columns_first(columns: Iterable[str], first: Sequence[str]) -> list[str]:
    """``columns`` reordered with those named in ``first`` in front, in that order; the rest keep theirs."""
    columns = list(columns)
    front = [c for c in first if c in columns]
    return front + [c for c in columns if c not in front]


def is_count(value: object) -> bool:
    """A positive whole number (an int, a numpy integer), not a bool: a side or a channel count."""
    try:
        return not isinstance(value, bool) and operator.index(value) > 0
    except TypeError:
        return False

