"""The plan's quantizers as torch functions: a forward that is exactly the emulator's
conversion (`compiler/mantissa.py`) and a straight-through gradient.

A quantizer is what one plan entry says about one tensor:

* `Fixed`: one fixed-point format for the whole tensor (``fixed<W,I,ROUNDING,OVERFLOW>``,
  every rounding and overflow mode, signed or unsigned);
* `PerAxis`: one format per index along an axis (a per-channel entry); on weights and biases
  an entry may also be ``pow2<EMIN,EMAX>``, so a list mixes schemes row by row;
* `PerElement`: width, integer bits and signedness per element (the plan's ``.npz`` form;
  width 0 prunes the element), one rounding and one overflow mode;
* `Pow2`: ``pow2<EMIN,EMAX>`` for a weight or bias;
* `Codebook`: the nearest of a list of centres (one codebook, or one per index along an axis).

**Exactness.** Values are computed in float64.  A fixed-point conversion scales by a power
of two (exact; a scaled value beyond float64's range is replaced by one that rounds and
overflows alike), rounds by comparing the exact remainder with one half, and applies the
overflow on the integer mantissa, so it equals `mantissa.quantize_float` for every finite
float64 ``x`` and every format up to 52 bits wide with at most 1000 fractional bits (or
integer bits beyond the width) in magnitude.  `pow2` is exact everywhere; codebooks use
`weight_formats.nearest_centre` itself (on the CPU).  How the layers keep products and
sums exact is in `compiler/train/modules.py`.

**Gradient.** Straight through: the incoming gradient passes unchanged (also where a value
saturated, wrapped, or was pruned), as the surrogate of a step function usually is.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import UserError
from ..fixed import FixedType, FormatError, Overflow, Rounding
from ..weight_formats import Pow2Type, nearest_centre, parse_weight_format


class QuantError(UserError):
    """A quantizer or quantized module is specified wrongly; the message says which and why."""


def _parse(text, weight: bool) -> FixedType | Pow2Type:
    if isinstance(text, (FixedType, Pow2Type)):
        parsed = text
    else:
        try:
            parsed = parse_weight_format(text) if weight else FixedType.parse(text)
        except FormatError as err:
            raise QuantError(str(err)) from None
    if isinstance(parsed, FixedType):
        _check_exact(parsed.width, parsed.frac_bits, str(parsed))
    return parsed


# float64 holds the mantissas, and torch.ldexp scales by 2.0**frac, which must be a finite
# normal float64: fractional bits beyond +-MAX_FRAC_BITS would turn it into inf or 0.
MAX_WIDTH_BITS = 52
MAX_FRAC_BITS = 1000


def _check_exact(width, frac, what: str) -> None:
    if np.max(width) > MAX_WIDTH_BITS:
        raise QuantError(f"{what} is {np.max(width)} bits wide; the torch quantizers are exact up to "
                         f"{MAX_WIDTH_BITS} bits (float64), use at most {MAX_WIDTH_BITS}")
    if np.max(np.abs(frac)) > MAX_FRAC_BITS:
        raise QuantError(f"{what} has {np.max(np.abs(frac))} fractional bits (width minus integer bits, in "
                         f"magnitude); the torch quantizers are exact within {MAX_FRAC_BITS}")


def _as_mode(enum, value):
    if isinstance(value, str):
        try:
            return enum[value.upper().removeprefix("AP_")]
        except KeyError:
            raise QuantError(f"unknown {enum.__name__.lower()} mode {value!r}; choose one of "
                             f"{', '.join(m.name for m in enum)}") from None
    return enum(value)


# --- the exact forward ----------------------------------------------------------------------

def _increment(scaled: torch.Tensor, floor: torch.Tensor, rounding: torch.Tensor) -> torch.Tensor:
    """0/1 added to the floor for each rounding mode: `mantissa._round_increment` on float64."""
    rem = scaled - floor  # exact: 0 <= rem < 1 and both are float64 multiples of the same ulp or finer
    gt, eq, nonzero, neg = rem > 0.5, rem == 0.5, rem != 0, scaled < 0
    odd = torch.remainder(floor, 2) != 0
    rules = {
        Rounding.TRN: lambda: torch.zeros_like(gt),
        Rounding.TRN_ZERO: lambda: neg & nonzero,
        Rounding.RND: lambda: gt | eq,
        Rounding.RND_ZERO: lambda: gt | (eq & neg),
        Rounding.RND_MIN_INF: lambda: gt,
        Rounding.RND_INF: lambda: gt | (eq & ~neg),
        Rounding.RND_CONV: lambda: gt | (eq & odd),
        Rounding.CEIL: lambda: nonzero,
    }
    inc = torch.zeros_like(scaled)
    for mode in torch.unique(rounding).tolist():
        inc = torch.where(rounding == mode, rules[Rounding(mode)]().to(scaled.dtype), inc)
    return inc


def fixed_mantissas(x: torch.Tensor, width, int_bits, signed, rounding, overflow) -> torch.Tensor:
    """Mantissas (float64 integers) of ``x`` converted into ``fixed<width, int_bits>``, each
    field a tensor broadcastable against ``x``: rounding, then overflow (`mantissa.quantize_float`)."""
    f64 = dict(dtype=torch.float64, device=x.device)
    width, int_bits = torch.as_tensor(width, **f64), torch.as_tensor(int_bits, **f64)
    signed = torch.as_tensor(signed, device=x.device).bool()
    rounding = torch.as_tensor(rounding, dtype=torch.int64, device=x.device)
    overflow = torch.as_tensor(overflow, dtype=torch.int64, device=x.device)
    x = x.to(torch.float64)
    scaled = torch.ldexp(x, width - int_bits)
    # Beyond float64's range a stand-in rounds and overflows as the exact value does: below
    # 2**-100 only the sign matters (less than half an LSB, not zero), and at 2**1024 or more
    # the value is a multiple of 2**972, an integer whose low 52 bits are 0, as is 2**60.
    tiny = (x != 0) & (scaled.abs() < 2.0 ** -100)
    scaled = torch.where(tiny, torch.copysign(torch.full_like(x, 2.0 ** -100), x), scaled)
    scaled = torch.where(torch.isinf(scaled), torch.copysign(torch.full_like(x, 2.0 ** 60), x), scaled)
    floor = torch.floor(scaled)
    m = floor + _increment(scaled, floor, rounding)
    # the mantissa range: [-2**(W-1), 2**(W-1) - 1] signed, [0, 2**W - 1] unsigned
    span = torch.exp2(width)
    lo = torch.where(signed, -span / 2, torch.zeros_like(span))
    hi = torch.where(signed, span / 2 - 1, span - 1)
    outside = (m < lo) | (m > hi)
    # WRAP: the low W bits; remainder first, so a huge mantissa's difference with lo stays exact
    wrapped = torch.remainder(torch.remainder(m, span) - lo, span) + lo
    result = torch.where(overflow == Overflow.WRAP, wrapped, m)
    result = torch.where((overflow == Overflow.SAT) & outside, torch.clamp(m, lo, hi), result)
    result = torch.where((overflow == Overflow.SAT_ZERO) & outside, torch.zeros_like(m), result)
    # SAT_SYM: a signed format (wider than 1 bit) never takes its most negative code
    sym_lo = torch.where(signed & (width > 1), -hi, lo)
    result = torch.where(overflow == Overflow.SAT_SYM, torch.clamp(m, sym_lo, hi), result)
    return torch.where(width == 0, torch.zeros_like(result), result)


def fixed_values(x: torch.Tensor, width, int_bits, signed, rounding, overflow) -> torch.Tensor:
    """``x`` converted into the formats, as float64 values (exact: mantissa times 2**-frac)."""
    m = fixed_mantissas(x, width, int_bits, signed, rounding, overflow)
    frac = torch.as_tensor(width, dtype=torch.float64, device=x.device) - torch.as_tensor(
        int_bits, dtype=torch.float64, device=x.device)
    return torch.ldexp(m, -frac)


def pow2_values(x: torch.Tensor, emin, emax) -> torch.Tensor:
    """`weight_formats.round_pow2` on float64: the nearest of 0 and +-2**e (emin <= e <= emax),
    a tie to the larger magnitude; ``emin``/``emax`` broadcast against ``x``."""
    x = x.to(torch.float64)
    emin = torch.as_tensor(emin, dtype=torch.float64, device=x.device)
    emax = torch.as_tensor(emax, dtype=torch.float64, device=x.device)
    a = x.abs()
    f, k = torch.frexp(a)
    k = k.to(torch.float64)
    e = torch.minimum(torch.where(f >= 0.75, k, k - 1), emax)
    small = e < emin
    e = torch.where(small, emin, e)
    zero = (small & (a < torch.exp2(emin - 1))) | (a == 0)
    one = torch.ones_like(x)
    return torch.where(zero, torch.zeros_like(x), torch.copysign(torch.ldexp(one, e), x))


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, quantizer):
        return quantizer.forward_exact(x)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


# --- the quantizers -------------------------------------------------------------------------

class Quantizer:
    """One plan entry.  ``q(x)`` quantizes (float64 out) with a straight-through gradient.

    ``weight_only``: a scheme only constants may take (pow2, codebooks), refused on inputs and
    activations by the modules, as the plan refuses it.
    """

    weight_only = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(x.to(torch.float64), self)

    def forward_exact(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def check(self, shape: tuple[int, ...], what: str) -> None:
        """Refuse a quantizer that does not fit a tensor of ``shape`` (``what`` names it)."""

    def plan_entry(self, layout: tuple[int, ...], key: str, arrays: dict, values: torch.Tensor | None) -> object:
        """The plan's JSON entry for the tensor as ONNX stores it: ``layout[j]`` is the axis of
        the torch tensor that is ONNX axis j (activations: with the batch axis); ``.npz`` arrays
        go into ``arrays`` under ``key``; ``values``: a constant's float values (torch layout)."""
        raise NotImplementedError


class Fixed(Quantizer):
    """One format for the whole tensor: ``Fixed("fixed<8,3,RND_CONV,SAT>")``."""

    def __init__(self, fmt):
        self.format = _parse(fmt, weight=False)

    def __repr__(self):
        return f"Fixed({str(self.format)!r})"

    def forward_exact(self, x):
        t = self.format
        return fixed_values(x, t.width, t.int_bits, t.signed, int(t.rounding), int(t.overflow))

    def plan_entry(self, layout, key, arrays, values=None):
        return str(self.format)


class Pow2(Quantizer):
    """``pow2<EMIN,EMAX>`` for a whole weight or bias: ``Pow2("pow2<-6,0>")`` or ``Pow2(-6, 0)``."""

    weight_only = True

    def __init__(self, emin, emax=None):
        fmt = Pow2Type(emin, emax) if emax is not None else _parse(emin, weight=True)
        if not isinstance(fmt, Pow2Type):
            raise QuantError(f"Pow2 takes 'pow2<EMIN,EMAX>', got {emin!r}")
        self.format = fmt

    def __repr__(self):
        return f"Pow2({str(self.format)!r})"

    def forward_exact(self, x):
        return pow2_values(x, self.format.emin, self.format.emax)

    def plan_entry(self, layout, key, arrays, values=None):
        return str(self.format)


def _along(values, axis: int, ndim: int) -> torch.Tensor:
    """A per-index list shaped to broadcast along ``axis`` of an ``ndim``-dimensional tensor."""
    shape = [1] * ndim
    shape[axis] = len(values)
    return torch.tensor(values, dtype=torch.float64).reshape(shape)


class PerAxis(Quantizer):
    """One format per index along ``axis`` (torch's axis: 0 is a Linear or Conv weight's
    output channel, 1 an activation's channel): ``PerAxis(0, ["fixed<4,1>", "pow2<-4,0>", ...])``.
    Entries may be ``pow2<...>`` on weights and biases."""

    def __init__(self, axis: int, formats):
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise QuantError(f"PerAxis: axis must be an integer, got {axis!r}")
        if not formats:
            raise QuantError("PerAxis needs a non-empty list of formats")
        self.axis = axis
        self.formats = tuple(_parse(f, weight=True) for f in formats)
        self.weight_only = any(isinstance(f, Pow2Type) for f in self.formats)

    def __repr__(self):
        return f"PerAxis({self.axis}, {[str(f) for f in self.formats]})"

    def check(self, shape, what):
        if not -len(shape) <= self.axis < len(shape) or shape[self.axis] != len(self.formats):
            raise QuantError(f"{what}: PerAxis has {len(self.formats)} formats along axis {self.axis}, but the "
                             f"tensor has shape {list(shape)}; give one format per index along the axis")

    def forward_exact(self, x):
        self.check(tuple(x.shape), "a tensor")
        axis, n = self.axis % x.ndim, x.ndim
        fixed = [f if isinstance(f, FixedType) else FixedType(1, 0) for f in self.formats]
        out = fixed_values(x, *(_along(v, axis, n).to(x.device) for v in (
            [f.width for f in fixed], [f.int_bits for f in fixed], [f.signed for f in fixed],
            [int(f.rounding) for f in fixed], [int(f.overflow) for f in fixed])))
        if self.weight_only:
            pow2 = [(f.emin, f.emax) if isinstance(f, Pow2Type) else (0, 0) for f in self.formats]
            is_pow2 = _along([isinstance(f, Pow2Type) for f in self.formats], axis, n).bool().to(x.device)
            p = pow2_values(x, _along([e[0] for e in pow2], axis, n).to(x.device),
                            _along([e[1] for e in pow2], axis, n).to(x.device))
            out = torch.where(is_pow2, p, out)
        return out

    def plan_entry(self, layout, key, arrays, values=None):
        return {"axis": layout.index(self.axis % len(layout)), "formats": [str(f) for f in self.formats]}


def _integers(values, name: str, shape: tuple | None = None) -> np.ndarray:
    """PerElement's array ``name`` as int64 (broadcast to ``shape``), or a clear error: not
    integers (3.7 bits would be truncated), or a shape that does not broadcast."""
    a = np.asarray(values)
    if a.dtype.kind not in "biu" and not (a.dtype.kind == "f" and np.all(a == np.round(a))):
        raise QuantError(f"PerElement: {name} must hold integers, got {a.dtype} values"
                         + (f" such as {a.flat[0]!r}" if a.size else ""))
    a = a.astype(np.int64)
    if shape is None:
        return a
    try:
        return np.broadcast_to(a, shape).copy()
    except ValueError:
        raise QuantError(f"PerElement: {name} has shape {list(a.shape)}, which does not broadcast to bits' "
                         f"{list(shape)}") from None


class PerElement(Quantizer):
    """A format per element: integer arrays ``bits`` (0 prunes the element), ``int_bits`` and
    ``signed`` shaped like the tensor (an activation's without its batch axis), one rounding
    and one overflow mode, as the plan's ``{"elements": "arrays.npz:KEY"}`` entry."""

    def __init__(self, bits, int_bits, signed=1, rounding="TRN", overflow="WRAP"):
        self.bits = _integers(bits, "bits")
        self.int_bits, self.signed = (_integers(a, name, self.bits.shape) for a, name in
                                      ((int_bits, "int_bits"), (signed, "signed")))
        self.rounding, self.overflow = _as_mode(Rounding, rounding), _as_mode(Overflow, overflow)
        if (self.bits < 0).any():
            raise QuantError(f"PerElement: bits must not be negative (0 prunes), got {self.bits.min()}")
        if self.bits.size:
            _check_exact(self.bits, self.bits - self.int_bits, "PerElement")
        if ((self.signed != 0) & (self.signed != 1)).any():
            raise QuantError("PerElement: signed must hold 0 or 1")

    def __repr__(self):
        return f"PerElement(shape {list(self.bits.shape)}, {self.rounding.name}, {self.overflow.name})"

    def check(self, shape, what):
        if tuple(shape[-self.bits.ndim:] if self.bits.ndim else ()) != self.bits.shape or len(shape) < self.bits.ndim:
            raise QuantError(f"{what}: PerElement arrays have shape {list(self.bits.shape)}, the tensor "
                             f"{list(shape)}; shape them like the tensor (an activation's without the batch axis)")

    def forward_exact(self, x):
        self.check(tuple(x.shape), "a tensor")
        fields = [torch.as_tensor(a, device=x.device) for a in (self.bits, self.int_bits, self.signed)]
        return fixed_values(x, *fields, int(self.rounding), int(self.overflow))

    def plan_entry(self, layout, key, arrays, values=None):
        # activations' arrays carry no batch axis: drop it from the layout
        lead = len(layout) - self.bits.ndim
        perm = [a - lead for a in layout[lead:]]
        for field, a in (("bits", self.bits), ("int_bits", self.int_bits), ("signed", self.signed)):
            arrays[f"{key}.{field}"] = np.ascontiguousarray(np.transpose(a, perm))
        return {"elements": f"arrays.npz:{key}", "rounding": self.rounding.name, "overflow": self.overflow.name}


class Codebook(Quantizer):
    """The nearest centre (a tie to the lower index), each centre exact in ``format``:
    ``Codebook([0.5, -0.25, 0.0], "fixed<6,1>")``; one codebook per index along an axis:
    ``Codebook.per_axis(0, [([0.5, -0.5], "fixed<3,1>"), ...])``.  Weights and biases only."""

    weight_only = True

    def __init__(self, centres, fmt, axis: int | None = None, books=None):
        self.axis = axis
        raw = books if books is not None else [(centres, fmt)]
        self.books = []
        for centres, book_format in raw:
            t = _parse(book_format, weight=False)
            c = [float(v) for v in centres]
            if not c or len(set(c)) != len(c):
                raise QuantError(f"a codebook needs distinct centres, got {c}")
            m = fixed_values(torch.tensor(c, dtype=torch.float64), t.width, t.int_bits, t.signed, 0, 0)
            if not torch.equal(m, torch.tensor(c, dtype=torch.float64)):
                raise QuantError(f"codebook centres {c} are not all exact in {t}")
            self.books.append((tuple(c), t))

    @classmethod
    def per_axis(cls, axis: int, books):
        return cls(None, None, axis=axis, books=books)

    def __repr__(self):
        return f"Codebook({len(self.books)} codebook(s), axis {self.axis})"

    def check(self, shape, what):
        if self.axis is not None and (not -len(shape) <= self.axis < len(shape) or shape[self.axis] != len(self.books)):
            raise QuantError(f"{what}: {len(self.books)} codebooks along axis {self.axis}, but the tensor "
                             f"has shape {list(shape)}; give one codebook per index along the axis")

    def indices(self, x: torch.Tensor) -> np.ndarray:
        """Each element's centre index (`weight_formats.nearest_centre`), as numpy on the CPU."""
        v = x.detach().to("cpu", torch.float64).numpy()
        if self.axis is None:
            return nearest_centre(v, self.books[0][0])
        moved = np.moveaxis(v, self.axis, 0)
        return np.moveaxis(np.stack([nearest_centre(moved[i], c) for i, (c, _) in enumerate(self.books)]), 0, self.axis)

    def forward_exact(self, x):
        self.check(tuple(x.shape), "a tensor")
        idx = self.indices(x)
        if self.axis is None:
            values = np.asarray(self.books[0][0])[idx]
        else:
            moved = np.moveaxis(idx, self.axis, 0)
            values = np.moveaxis(np.stack([np.asarray(c)[moved[i]] for i, (c, _) in enumerate(self.books)]),
                                 0, self.axis)
        return torch.as_tensor(values, dtype=torch.float64, device=x.device)

    def plan_entry(self, layout, key, arrays, values=None):
        # the indices, not the nearest centre: the compiler needs no tie-break of its own
        arrays[f"{key}.index"] = np.ascontiguousarray(np.transpose(self.indices(values), layout))
        books = [{"centres": list(c), "format": str(t)} for c, t in self.books]
        entry = ({"codebook": books[0]} if self.axis is None else
                 {"axis": layout.index(self.axis % len(layout)), "codebooks": books})
        return {**entry, "indices": f"arrays.npz:{key}.index"}


def as_quantizer(spec, weight: bool, what: str) -> Quantizer | None:
    """A module's quantizer argument: a `Quantizer`, a format string (``fixed<...>``,
    ``ufixed<...>``, or on weights and biases ``pow2<...>``), or None."""
    if spec is None or isinstance(spec, Quantizer):
        quantizer = spec
    elif isinstance(spec, (str, FixedType, Pow2Type)):
        try:
            parsed = _parse(spec, weight=True)  # a pow2 on an activation is refused below, by name
        except QuantError as err:
            raise QuantError(f"{what}: {err}") from None
        quantizer = Pow2(parsed) if isinstance(parsed, Pow2Type) else Fixed(parsed)
    else:
        raise QuantError(f"{what}: expected a quantizer (Fixed, PerAxis, PerElement, Pow2, Codebook) or a "
                         f"format string, got {spec!r}")
    if quantizer is not None and quantizer.weight_only and not weight:
        raise QuantError(f"{what}: {quantizer!r} is a weight quantizer (pow2 or codebook); inputs and "
                         f"activations take fixed-point formats")
    return quantizer
