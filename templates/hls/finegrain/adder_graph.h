// finegrain/adder_graph.h: one element of a tensor as an integer and back, for the adder
// graphs of `--strategy adder-graph` (written out per layer in the generated <model>_graphs.h).
//
//   element<F>(x)          the mantissa m of x at F fraction bits (x == m * 2^-F), F at most
//                          x_t's: the container's mantissa shifted down, exact when x is a value
//                          of its element's format (the bits below 2^-F are zero)
//   set_element<F>(y, m)   y = m * 2^-F, exact when y_t holds that value: m sign-extended
//                          (ap_int) or zero-extended (ap_uint) to the container and shifted up
//                          into place; no rounding or overflow mode of y_t applies
//
// Both are wiring in hardware.  The adders between them are the generated statements, each
// into an ap_int / ap_uint of the node's width: assignment to a narrower ap_int wraps, which
// is the adder graph's modulo arithmetic (compiler/adder_graph.py, AdderGraph.evaluate).
#ifndef FINEGRAIN_ADDER_GRAPH_H_
#define FINEGRAIN_ADDER_GRAPH_H_

#include "common.h"

namespace finegrain {

template <int F, class x_t>
typename fixed_traits<x_t>::mantissa_t element(const x_t& x) {
#pragma HLS INLINE
    const int FRAC = fixed_traits<x_t>::width - fixed_traits<x_t>::int_bits;
    static_assert(F <= FRAC, "element: more fraction bits than the container has");
    typename fixed_traits<x_t>::mantissa_t m = mantissa(x);
    return m >> (FRAC - F);
}

template <int F, class y_t, int W, bool S>
void set_element(y_t& y, const ap_int_base<W, S>& m) {
#pragma HLS INLINE
    const int FRAC = fixed_traits<y_t>::width - fixed_traits<y_t>::int_bits;
    static_assert(F <= FRAC, "set_element: more fraction bits than the container has");
    typename fixed_traits<y_t>::mantissa_t raw = m;
    raw <<= FRAC - F;
    y.range() = raw.range();
}

}  // namespace finegrain

#endif
