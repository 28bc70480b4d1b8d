// finegrain/activation.h: the RELU, LEAKY_RELU and CLIP ops, elementwise and exact.
//
//   relu<x_t, y_t, N>(x, y)                       y = x > 0 ? x : 0
//   leaky_relu<x_t, a_t, y_t, N>(x, y, alpha)     y = x >= 0 ? x : alpha * x
//   clip<x_t, lo_t, hi_t, y_t, N>(x, y, lo, hi)   y = min(max(x, lo), hi)
//   clip_each<x_t, lo_t, hi_t, y_t, N>(x, y, lo, hi)
//                                                 y[i] = min(max(x[i], lo[i]), hi[i]): bounds per
//                                                 element (a quantizer's clamp per channel)
//
// Every comparison goes through finegrain::compare or finegrain::sign (common.h), exact
// across signedness and widths.  None of them rounds: y_t holds every result exactly (for
// leaky_relu that means frac(y_t) >= frac(x_t) + frac(a_t)); the compiler sizes it so.  Each
// is a comparator and a multiplexer (plus one multiplier for leaky_relu) per element, all
// unrolled.
#ifndef FINEGRAIN_ACTIVATION_H_
#define FINEGRAIN_ACTIVATION_H_

#include "common.h"

namespace finegrain {

template <class x_t, class y_t, int N>
void relu(const x_t x[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = sign(x[i]) > 0 ? y_t(x[i]) : y_t(0);
    }
}

template <class x_t, class a_t, class y_t, int N>
void leaky_relu(const x_t x[N], y_t y[N], a_t alpha) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = sign(x[i]) >= 0 ? y_t(x[i]) : y_t(multiply(alpha, x[i]));
    }
}

// min(max(x, lo), hi) compared on the original types (through finegrain::compare: x, lo and hi
// may differ in signedness), so no intermediate value has to fit y_t; lo > hi gives hi, as the
// emulator does
template <class x_t, class lo_t, class hi_t, class y_t>
y_t clip_one(x_t x, lo_t lo, hi_t hi) {
#pragma HLS INLINE
    const bool below = compare(x, lo) < 0;
    const bool above = below ? compare(lo, hi) > 0 : compare(x, hi) > 0;
    return above ? y_t(hi) : (below ? y_t(lo) : y_t(x));
}

template <class x_t, class lo_t, class hi_t, class y_t, int N>
void clip(const x_t x[N], y_t y[N], lo_t lo, hi_t hi) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = clip_one<x_t, lo_t, hi_t, y_t>(x[i], lo, hi);
    }
}

template <class x_t, class lo_t, class hi_t, class y_t, int N>
void clip_each(const x_t x[N], y_t y[N], const lo_t lo[N], const hi_t hi[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = clip_one<x_t, lo_t, hi_t, y_t>(x[i], lo[i], hi[i]);
    }
}

}  // namespace finegrain

#endif  // FINEGRAIN_ACTIVATION_H_
