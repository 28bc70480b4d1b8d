"""Readable names for a tensor's per-element formats in reports (`finegrain report`,
report.html): the type itself when uniform, else the ranges its elements span, e.g.
``mixed fixed<6,0..2,RND_CONV,SAT> (3 types)``, and the types with their element counts for a
legend.  (`Formats.summary`, with its digest, stays the text of IR dumps and generated
comments, where a changed digest shows a changed format in a diff.)"""

from __future__ import annotations

import re

import numpy as np

from .fixed import Formats, FixedType, Overflow, Rounding

_MODES = re.compile(r"^u?fixed<-?\d+,-?\d+(.*)>$")


def _span(values: np.ndarray) -> str:
    lo, hi = int(values.min()), int(values.max())
    return str(lo) if lo == hi else f"{lo}..{hi}"


def _modes(rounding: int, overflow: int) -> str:
    """The rounding and overflow part of a type's text (``,RND_CONV,SAT``; empty for TRN, WRAP)."""
    text = str(FixedType(8, 0, True, Rounding(rounding), Overflow(overflow)))
    return _MODES.fullmatch(text).group(1)


def readable_type(formats: Formats) -> str:
    """``fixed<6,2>``; ``mixed fixed<4..8,1..3,RND_CONV,SAT> (12 types, 5 pruned)``; ``pruned``.
    Signedness that differs reads ``fixed|ufixed``, modes that differ ``N modes``."""
    kept = ~formats.pruned
    if not kept.any():
        return "pruned"
    uniform = formats.uniform_type()
    if uniform is not None:
        return str(uniform)
    signed = set(formats.signed[kept].tolist())
    base = "fixed|ufixed" if len(signed) == 2 else "fixed" if signed == {True} else "ufixed"
    modes = sorted(set(zip(formats.rounding[kept].tolist(), formats.overflow[kept].tolist())))
    mode_text = _modes(*modes[0]) if len(modes) == 1 else f", {len(modes)} modes"
    types = len([t for t in formats.distinct() if t is not None])
    pruned = int(formats.pruned.sum())
    return (f"mixed {base}<{_span(formats.width[kept])},{_span(formats.int_bits[kept])}{mode_text}> "
            f"({types} types{f', {pruned} pruned' if pruned else ''})")


def type_counts(formats: Formats, limit: int = 12) -> dict[str, int]:
    """The element types of a mixed tensor and how many elements have each, most common first
    (ties by name); beyond ``limit`` types the rest are summed as ``N other types``."""
    # Formats.type_counts sorts the fields in numpy (np.unique over columns took 20 times as long)
    named = [("pruned" if t is None else str(t), n) for t, n in formats.type_counts().items()]
    named.sort(key=lambda nc: (-nc[1], nc[0]))
    out = dict(named[:limit])
    if len(named) > limit:
        out[f"{len(named) - limit} other types"] = sum(c for _, c in named[limit:])
    return out
