"""The HLS backends' C++ types: how a tensor's element formats become one ap_fixed container,
how constants are written exactly at any width, and ap_int's width limits.

Shared by the io_parallel and io_stream projects (hls.py, hls_stream.py), the RTL builders
(which size their ports with the same containers) and the verification (csim's vectors).

Limits.  Any format the plan accepts (up to 1024 bits) is written exactly, constants too
(``constant_entry``: 64-bit words past 63 bits).  A container (one type for all of a
tensor's element formats) and any value a kernel builds (products, aligned sums and
comparisons, conversions) may be up to ap_int's limit of 32768 bits: past 1024 the project
defines AP_INT_MAX_W in defines.h.  Beyond 32768 the backend stops with an error naming the
ONNX tensor or node (``container``, ``kernel_bits``).
"""

from __future__ import annotations

from dataclasses import dataclass


from ..argnames import option
from ..errors import UserError
from ..fixed import FixedType, Formats, Overflow, Rounding, bits_for_range, mantissa_range
from ..mantissa import distinct
from ..type_names import readable_type

# ap_int's limits (ap_common.h of the shipped ap_types, as of Vitis HLS): any type wider
# than AP_INT_MAX_W (1024 unless defined before the first ap_int.h include) stops C
# simulation; AP_INT_MAX_W itself may be at most 32768.
AP_INT_DEFAULT_MAX_W = 1024
AP_INT_LIMIT_W = 32768


class HLSBackendError(UserError):
    """The model uses something the HLS backend cannot express (the message says what)."""

    def __init__(self, message: str):
        super().__init__(f"{message}. (The IR and the emulator do not need the HLS project: leave 'hls' "
                         f"out of {option('backends')} to compile without it.)")


def ctype(t: FixedType, modes: bool = True) -> str:
    """``ap_fixed<W,I,AP_RND_CONV,AP_SAT>`` for a FixedType (modes only when not the default).
    ap_fixed has no CEIL: such a type is finegrain's ``finegrain::ceil_fixed<W,I,AP_SAT>``
    (finegrain/common.h), an ap_fixed with AP_TRN whose conversion rounds up."""
    if modes and t.rounding == Rounding.CEIL:
        return f"finegrain::ceil_{'' if t.signed else 'u'}fixed<{t.width},{t.int_bits},AP_{t.overflow.name}>"
    base = "ap_fixed" if t.signed else "ap_ufixed"
    args = [str(t.width), str(t.int_bits)]
    if modes and (t.rounding != Rounding.TRN or t.overflow != Overflow.WRAP):
        args += [f"AP_{t.rounding.name}", f"AP_{t.overflow.name}"]
    return f"{base}<{','.join(args)}>"


@dataclass(frozen=True)
class CType(FixedType):
    """A container type: a FixedType that may be wider than a plan format (1024 bits), up to
    ap_int's limit, since one type must hold every element of a tensor whose elements' formats
    differ (e.g. one element with many integer bits, another with many fraction bits)."""

    def __post_init__(self):
        if self.width > AP_INT_LIMIT_W:
            raise HLSBackendError(f"a C++ type of {self.width} bits is wider than ap_int's {AP_INT_LIMIT_W}")
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))


def container(formats: Formats, tensor: str = "") -> FixedType:
    """The narrowest type holding every value of every (unpruned) element's format."""
    kept = ~formats.pruned
    if not kept.any():
        return FixedType(1, 0, False)  # all elements are constant zero
    frac = int(formats.frac_bits[kept].max())
    # each distinct (width, signed, fraction bits) once, as one int64 key: a large tensor has few
    widths, fracs = formats.width[kept], formats.frac_bits[kept]
    base, span = int(fracs.min()), int(widths.max()) + 1
    los, his = [], []
    for key in distinct(((fracs - base) * 2 + formats.signed[kept]) * span + widths):
        w, rest = key % span, key // span
        lo, hi = mantissa_range(w, bool(rest % 2))
        shift = frac - (rest // 2 + base)
        los.append(lo << shift)
        his.append(hi << shift)
    width, _ = bits_for_range(min(los), max(his))
    if width > AP_INT_LIMIT_W:
        raise HLSBackendError(
            f"tensor {tensor!r}: one C++ type holding all its elements' formats ({readable_type(formats)}) needs "
            f"{width} bits, more than ap_int's {AP_INT_LIMIT_W}; give its elements integer and fraction bits "
            f"closer together in the plan")
    t = CType.for_range(min(los), max(his), frac)
    return t if t is not None else FixedType(1, 1 - frac, False)


def constant_entry(ident: str, type_name: str, t: FixedType, mantissas: list[int], comment: str) -> dict:
    """A constant written as integer mantissas of its container type ``t``, exactly at any
    width: as C ``long long`` values up to 63 bits (``words`` None), wider as the 64-bit
    words of each mantissa's two's complement, least significant first (``words`` per value),
    which finegrain::load_mantissas puts together.  Either way a plain C integer array: exact,
    and quick to compile."""
    entry = {"name": ident, "type": type_name, "size": len(mantissas), "mantissas": True,
             "comment": f"{comment}; value = mantissa * 2^-{t.frac_bits}"}
    if t.width <= 63:
        return {**entry, "words": None, "values": [str(m) for m in mantissas]}
    words = -(-t.width // 64)
    mask = (1 << 64) - 1
    return {**entry, "words": words,
            "values": ["{" + ", ".join(f"0x{(m >> (64 * k)) & mask:016x}ULL" for k in range(words)) + "}"
                       for m in mantissas]}


# The two factors of the product each kernel forms (a full-precision ap_fixed product), and
# the stage types used only as factors: a product does not align its factors, so their
# fraction bits do not widen anything.
_PRODUCTS = {"dense": ("x_t", "w_t"), "conv1d": ("x_t", "w_t"), "conv2d": ("x_t", "w_t"),
             "leaky_relu": ("x_t", "alpha_t"), "mul_const": ("x_t", "c_t"), "avgpool1d": ("sum_t", "r_t"),
             "avgpool2d": ("sum_t", "r_t"), "softmax": ("e_t", "r_t")}
_FACTORS_ONLY = {"dense": ("x_t", "w_t"), "conv1d": ("x_t", "w_t"), "conv2d": ("x_t", "w_t"),
                 "leaky_relu": ("alpha_t",), "mul_const": ("x_t", "c_t"), "avgpool1d": ("r_t",),
                 "avgpool2d": ("r_t",), "softmax": ("r_t",)}


def _type_names(entry, skip=()) -> list[str]:
    """Every C type a stage entry names (keys ending in ``_t``, nested lists included)."""
    if isinstance(entry, dict):
        return [v for k, v in entry.items() if k.endswith("_t") and isinstance(v, str) and k not in skip] + \
            [n for v in entry.values() if isinstance(v, (dict, list)) for n in _type_names(v)]
    if isinstance(entry, list):
        return [n for v in entry for n in _type_names(v)]
    return []


def intermediate_bits(aligned: list[FixedType], factors: tuple[FixedType, FixedType] | None) -> int:
    """An upper bound on the width of every ap type a kernel builds: a product is as wide as
    its ``factors`` together; aligning values (a comparison's common type, a sum, ap_fixed's
    shifts inside a conversion, finegrain::convert's widening) among the ``aligned`` types
    and the product adds at most the spread of their fraction bits and two bits to the widest."""
    shapes = [(t.width, t.frac_bits) for t in aligned]
    widest = max((w for w, _ in shapes), default=1)
    if factors is not None:
        a, b = factors
        shapes.append((a.width + b.width, a.frac_bits + b.frac_bits))
        widest = max(widest, a.width, b.width, a.width + b.width)
    fracs = [f for _, f in shapes]
    return max(widest, max(w for w, _ in shapes) + max(fracs) - min(fracs) + 2)


def kernel_bits(kind: str, entry: dict, types: dict[str, FixedType], where: str) -> int:
    """The widest ap type a kernel call ``entry`` of ``kind`` builds (a bound, from the types its
    ``*_t`` keys name in ``types``), refused beyond ap_int's limit; ``where`` names the node."""
    product = _PRODUCTS.get(kind)
    bits = intermediate_bits([types[n] for n in _type_names(entry, skip=_FACTORS_ONLY.get(kind, ()))],
                             (types[entry[product[0]]], types[entry[product[1]]]) if product else None)
    bits = max(bits, entry.get("bits", 0))  # an adder graph's statements
    if bits > AP_INT_LIMIT_W:
        raise HLSBackendError(
            f"{where} ({kind}) would need C++ fixed-point values of up to {bits} bits (the widths of its formats "
            f"and the spread of their fraction bits), and ap_int supports at most {AP_INT_LIMIT_W}; give its "
            f"tensors narrower formats or integer bits closer together in the plan")
    return bits
