// finegrain/common.h: what every kernel of the finegrain HLS library shares.
//
// The library computes on "containers": one ap_fixed / ap_ufixed type per tensor that holds
// every element of that tensor exactly.  Arithmetic on containers is exact (ap_fixed
// products and sums are full precision); values change only where the compiler's emulator
// (compiler/emulate.py, the specification) says so, by ap_fixed assignment to a type whose
// rounding/overflow modes are the target format's.
//
// This header gives:
//   fixed_traits<T>        width, integer bits and signedness of an ap_(u)fixed type
//   mantissa(v)            the integer m with v == m * 2^-(W-I), as ap_int<W> / ap_uint<W>
//   table_index(code)      m - min_mantissa(T), the row a code reads in a look-up table
//   convert<y_t>(x)        y_t(x), the one rounding/overflow conversion (see below)
//   ceil_fixed<W, I, O>    ap_fixed<W, I, AP_TRN, O> that rounds toward plus infinity (CEIL)
//   ceil_ufixed<W, I, O>   the same for ap_ufixed
//   common_fixed<A, B>     the signed type that holds every value of A and of B exactly
//   compare(a, b)          -1, 0 or 1 as a < b, a == b, a > b, for any two fixed types
//   sign(x)                -1, 0 or 1 as x < 0, x == 0, x > 0
//   multiply(a, b)         a * b, exact (product_type<A, B>); every kernel's products
//   zero_bias              an "array" of zeros, for the kernels' no-bias variants
//
// Every tensor is a flat C array in row-major order of its IR shape (no batch axis).
#ifndef FINEGRAIN_COMMON_H_
#define FINEGRAIN_COMMON_H_

#include "ap_fixed.h"
#include "ap_int.h"

namespace finegrain {

// Compile-time facts about a fixed-point container type.  Specialised for ap_fixed,
// ap_ufixed and ap_fixed_base (the type of an ap_fixed expression such as a * b).
template <class T>
struct fixed_traits;

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
struct fixed_traits<ap_fixed<W, I, Q, O, N> > {
    static const int width = W;
    static const int int_bits = I;
    static const bool is_signed = true;
    typedef ap_int<W> mantissa_t;
};

template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
struct fixed_traits<ap_ufixed<W, I, Q, O, N> > {
    static const int width = W;
    static const int int_bits = I;
    static const bool is_signed = false;
    typedef ap_uint<W> mantissa_t;
};

template <int W, int I, bool S, ap_q_mode Q, ap_o_mode O, int N>
struct fixed_traits<ap_fixed_base<W, I, S, Q, O, N> > {
    static const int width = W;
    static const int int_bits = I;
    static const bool is_signed = S;
    typedef ap_int_base<W, S> mantissa_t;
};

// The raw W bits of a fixed-point value, as an unsigned integer.  A bit-select: no logic.
template <class T>
ap_uint<fixed_traits<T>::width> raw_bits(const T& v) {
#pragma HLS INLINE
    const int W = fixed_traits<T>::width;
    ap_uint<W> bits = v.range(W - 1, 0);
    return bits;
}

// The mantissa m of v (v == m * 2^-frac_bits), sign-correct: ap_int<W> for signed types,
// ap_uint<W> for unsigned ones.  Reinterprets the bits; no logic.  Use .to_int() /
// .to_int64() on the result when W is small enough for a C integer.
template <class T>
typename fixed_traits<T>::mantissa_t mantissa(const T& v) {
#pragma HLS INLINE
    typename fixed_traits<T>::mantissa_t m = raw_bits(v);
    return m;
}

// The row a look-up-table input code reads: mantissa(code) - min_mantissa(T), which is the
// raw bits for an unsigned code and the raw bits with the sign bit inverted for a signed
// one (m + 2^(W-1)).  Tables hold one entry per code, so TABLE_SIZE == 2^W.
template <class T>
unsigned table_index(const T& code) {
#pragma HLS INLINE
    const int W = fixed_traits<T>::width;
    static_assert(W <= 30, "table_index: a look-up table input wider than 30 bits");
    ap_uint<W> bits = raw_bits(code);
    if (fixed_traits<T>::is_signed) bits[W - 1] = !bits[W - 1];
    return bits.to_uint();
}

// An ap_fixed (signed) or ap_ufixed (unsigned) type with W bits, I of them integer bits.
template <int W, int I, bool S>
struct fixed_type {
    typedef ap_fixed<W, I> type;
};
template <int W, int I>
struct fixed_type<W, I, false> {
    typedef ap_ufixed<W, I> type;
};

// y_t(x): convert x into y_t with y_t's rounding and overflow modes -- exactly ap_fixed
// assignment, which compiler/mantissa.py reproduces.
//
// Why not plain assignment: when rounding drops more fractional bits than x has bits
// (frac(x) - frac(y) > width(x)) and y_t rounds (any mode but TRN, or TRN_ZERO from a
// signed x), ap_fixed's assignment reads the source bit just below the new LSB even though
// it lies above the source's MSB.  Its value is not used then, but the read trips an
// assert in ap_private ("Attempting to read bit beyond MSB") and C simulation aborts (for
// sources over 64 bits it reads past the array).  So x is first sign-extended, exactly,
// to enough integer bits that the read stays inside it.  The result is the same value
// ap_fixed defines; in hardware the extension is wiring that synthesis trims.
namespace detail {
template <class y_t, class x_t, bool LONG_SHIFT>
struct converter {
    static y_t run(const x_t& x) {
#pragma HLS INLINE
        return y_t(x);
    }
};
template <class y_t, class x_t>
struct converter<y_t, x_t, true> {
    static y_t run(const x_t& x) {
#pragma HLS INLINE
        typedef fixed_traits<x_t> src;
        const int dropped = (src::width - src::int_bits) -
                            (fixed_traits<y_t>::width - fixed_traits<y_t>::int_bits);
        const int wide = dropped + 1;
        typedef typename fixed_type<wide, src::int_bits + (wide - src::width), src::is_signed>::type
            wide_t;
        const wide_t extended = x;  // more integer bits, same fraction: exact
        return y_t(extended);
    }
};
}  // namespace detail

template <class y_t, class x_t>
y_t convert(const x_t& x) {
#pragma HLS INLINE
    typedef fixed_traits<x_t> src;
    const int dropped = (src::width - src::int_bits) -
                        (fixed_traits<y_t>::width - fixed_traits<y_t>::int_bits);
    return detail::converter<y_t, x_t, (dropped >= src::width)>::run(x);
}

// ceil_fixed<W, I, O> / ceil_ufixed<W, I, O>: the format fixed<W, I, CEIL, O> of a plan
// (compiler.fixed.Rounding.CEIL: toward plus infinity, QONNX's rounding_mode "CEIL").
// ap_fixed has no such mode, so this is ap_fixed<W, I, AP_TRN, O> (ap_ufixed) with its own
// conversion: a value x with more fractional bits than F = W - I first gets every bit it
// would drop set, x + (2^-F - 2^-frac(x)), exactly; truncating that (AP_TRN) is x rounded
// up, and then O applies as for any mode.  Storage, arithmetic, comparisons and copies are
// ap_fixed's own; only converting into the type rounds up.  In hardware: one adder of the
// dropped bits' carry, as the other rounding modes have.
namespace detail {
template <int F, class X, bool DROPS>
struct bits_below_set {  // x has at most F fractional bits: nothing is dropped
    typedef X type;
    static const X& run(const X& x) {
#pragma HLS INLINE
        return x;
    }
};
template <int F, class X>
struct bits_below_set<F, X, true> {
    static const int XF = fixed_traits<X>::width - fixed_traits<X>::int_bits;
    static const int D = XF - F;  // the dropped bits
    // signed, x's fraction, room for x and for x + 2^-F
    static const int I = AP_MAX(fixed_traits<X>::int_bits + (fixed_traits<X>::is_signed ? 0 : 1), 1 - F) + 1;
    typedef ap_fixed<I + XF, I> type;
    static type run(const X& x) {
#pragma HLS INLINE
        ap_uint<D> ones = 0;
        ones = ~ones;
        ap_ufixed<D, D - XF> below;  // 2^-F - 2^-XF: D one bits ending at x's LSB
        below.range() = ones.range();
        const type up = x + below;  // exact
        return up;
    }
};

template <int F, class X>
typename bits_below_set<F, X, (fixed_traits<X>::width - fixed_traits<X>::int_bits > F)>::type
set_bits_below(const X& x) {
#pragma HLS INLINE
    return bits_below_set<F, X, (fixed_traits<X>::width - fixed_traits<X>::int_bits > F)>::run(x);
}
}  // namespace detail

// B rounding up: B is ap_fixed<W, I, AP_TRN, O> or ap_ufixed<W, I, AP_TRN, O>.
template <class B>
struct ceiling : B {
    static const int F = fixed_traits<B>::width - fixed_traits<B>::int_bits;
    ceiling() : B() {}
    template <int W2, int I2, bool S2, ap_q_mode Q2, ap_o_mode O2, int N2>
    ceiling(const ap_fixed_base<W2, I2, S2, Q2, O2, N2>& x) : B(detail::set_bits_below<F>(x)) {}
    template <int W2, bool S2>
    ceiling(const ap_int_base<W2, S2>& x)
        : B(detail::set_bits_below<F>(ap_fixed_base<W2, W2, S2, AP_TRN, AP_WRAP, 0>(x))) {}
    ceiling(int x) : B(detail::set_bits_below<F>(ap_fixed<32, 32>(x))) {}
};
template <class B>
struct fixed_traits<ceiling<B> > : fixed_traits<B> {};

template <int W, int I, ap_o_mode O = AP_WRAP>
using ceil_fixed = ceiling<ap_fixed<W, I, AP_TRN, O> >;
template <int W, int I, ap_o_mode O = AP_WRAP>
using ceil_ufixed = ceiling<ap_ufixed<W, I, AP_TRN, O> >;

// compare(a, b): the sign of a - b, exact for any two fixed-point types.
//
// Why not ap_fixed's own < and >: with one operand signed and the other unsigned it aligns
// the fractions and then compares the two mantissas as C integers of their own signedness,
// so once the aligned unsigned operand passes 32 bits a negative value compares as a huge
// unsigned one (ap_fixed<34,-1>(-0.25) > ap_ufixed<2,2>(1) is true).  Here both values are
// first converted, exactly, into common_fixed<A, B> -- signed, with the larger fraction and
// enough integer bits for both (an unsigned type needs one more to gain a sign bit) -- and
// their mantissas, now two integers of one signed type, are compared.  Every kernel that
// compares values uses this; in hardware it is one comparator of the common width (the
// alignment is wiring).  ap_fixed's + - * need no such help: their result types already
// hold both operands (tests/test_hls_library.py checks them on the same type pairs).
template <class A, class B>
struct common_fixed {
    static const int frac_bits =
        AP_MAX(fixed_traits<A>::width - fixed_traits<A>::int_bits, fixed_traits<B>::width - fixed_traits<B>::int_bits);
    static const int int_bits = AP_MAX(fixed_traits<A>::int_bits + (fixed_traits<A>::is_signed ? 0 : 1),
                                       fixed_traits<B>::int_bits + (fixed_traits<B>::is_signed ? 0 : 1));
    static const int width = int_bits + frac_bits;  // >= the width of A, and of B
    typedef ap_fixed<width, int_bits> type;
};

template <class A, class B>
int compare(const A& a, const B& b) {
#pragma HLS INLINE
    typedef typename common_fixed<A, B>::type c_t;
    const c_t ca = a, cb = b;  // more integer and/or fraction bits: exact
    const ap_int<common_fixed<A, B>::width> ma = mantissa(ca), mb = mantissa(cb);
    return ma < mb ? -1 : (mb < ma ? 1 : 0);
}

// sign(x): -1, 0 or 1 as x < 0, x == 0, x > 0 -- the comparison with zero, read from the
// bits (the sign bit, then any bit set), so no alignment and no wide intermediate whatever
// x's integer bits.
template <class T>
int sign(const T& x) {
#pragma HLS INLINE
    const int W = fixed_traits<T>::width;
    const ap_uint<W> bits = raw_bits(x);
    if (fixed_traits<T>::is_signed && bits[W - 1]) return -1;
    return bits.or_reduce() ? 1 : 0;
}

// product_type<A, B>: the exact type of a * b, as ap_fixed's own product: W_A + W_B bits,
// I_A + I_B integer bits, signed when either factor is.
template <class A, class B>
struct product_type {
    static const int width = fixed_traits<A>::width + fixed_traits<B>::width;
    static const int int_bits = fixed_traits<A>::int_bits + fixed_traits<B>::int_bits;
    static const bool is_signed = fixed_traits<A>::is_signed || fixed_traits<B>::is_signed;
    typedef typename fixed_type<width, int_bits, is_signed>::type type;
};

// multiply(a, b): a * b, exact, as product_type<A, B>.
//
// Why not a * b in C simulation: past 64 bits ap_int multiplies through ap_private, whose
// multi-word long multiplication loses a carry when a 64-bit partial sum wraps to anything
// but exactly 0 -- which needs long runs of one bits in both factors, e.g. a negative
// ap_fixed<70,2> times an ap_ufixed<338,7> that ends in ...fffd9add040 (found by a jet
// tagger with wide formats; csim was off in the last ~60 bits).  Multiplying by a single
// 32-bit word takes a path without that carry, so C simulation multiplies a by b's 32-bit
// pieces and adds the shifted partial products (ap_int's additions are exact).  Synthesis
// gets the plain product: a hardware multiplier has no such bug.
namespace detail {
template <class A, class B, bool NATIVE>
struct multiplier {
    static typename product_type<A, B>::type run(const A& a, const B& b) {
#pragma HLS INLINE
        return a * b;  // at most 64 bits in all: C integers, exact
    }
};
template <class A, class B>
struct multiplier<A, B, false> {
    static typename product_type<A, B>::type run(const A& a, const B& b) {
        const int WA = fixed_traits<A>::width, WB = fixed_traits<B>::width, W = WA + WB;
        const ap_int<WA + 1> ma = mantissa(a);  // one bit more: signed for either signedness
        const ap_uint<WB> rb = raw_bits(b);     // b's two's complement bits, as unsigned
        const int PIECE = WB < 32 ? WB : 32;    // so ma * piece is never wider than W + 1 bits
        ap_int<W + 2> sum = 0;                  // ma * rb and ma * 2^WB both fit
        for (int lo = 0; lo < WB; lo += PIECE) {
            const int hi = lo + PIECE - 1 < WB - 1 ? lo + PIECE - 1 : WB - 1;
            const ap_uint<PIECE> piece = rb.range(hi, lo);
            const ap_int<W + 2> part = ma * piece;  // a single-word multiplier: exact
            sum += part << lo;
        }
        if (fixed_traits<B>::is_signed && rb[WB - 1]) sum -= ap_int<W + 2>(ma) << WB;  // the sign bit's weight
        typename product_type<A, B>::type p;
        p.range() = sum.range(W - 1, 0);
        return p;
    }
};
}  // namespace detail

template <class A, class B>
typename product_type<A, B>::type multiply(const A& a, const B& b) {
#pragma HLS INLINE
#ifdef __SYNTHESIS__
    return a * b;
#else
    return detail::multiplier<A, B, (product_type<A, B>::width <= 64)>::run(a, b);
#endif
}

// Stands in for a bias array in the kernels' no-bias variants: every entry is an exact 0,
// so the accumulator starts at zero and no bias memory or adder is built.
struct zero_bias {
    ap_uint<1> operator[](int) const {
#pragma HLS INLINE
        return 0;
    }
};

}  // namespace finegrain

#endif  // FINEGRAIN_COMMON_H_
