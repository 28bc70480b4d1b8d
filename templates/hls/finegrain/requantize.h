// finegrain/requantize.h: the REQUANTIZE op, the only place where an activation's values
// change (besides the table look-ups in lookup.h).
//
//   requantize<x_t, y_t, N>(x, y)
//       y[i] = y_t(x[i]): one format for the whole tensor; y_t carries its rounding and
//       overflow modes, and ap_fixed assignment applies them (through finegrain::convert,
//       which only keeps ap_fixed's C simulation from aborting on a long right shift).
//   requantize_elements<x_t, elem_t, y_t, N_ALL, N_IDX>(x, y, index)
//       per-element formats: for each listed element i, y[i] = y_t(elem_t(x[i])).  The value
//       is converted into the element's own format elem_t (with its modes), then stored
//       exactly in the tensor's container y_t.  The generator calls it once per distinct
//       element format, with the indices of the elements of that format.
//   zero_elements<y_t, N_ALL, N_IDX>(y, index)
//       pruned elements (width 0): y[i] = 0.
//
// Index lists are compile-time constants in generated code; with the loops unrolled every
// index folds to a constant, so each element gets its own converter and no multiplexer.
#ifndef FINEGRAIN_REQUANTIZE_H_
#define FINEGRAIN_REQUANTIZE_H_

#include "common.h"

namespace finegrain {

template <class x_t, class y_t, int N>
void requantize(const x_t x[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = convert<y_t>(x[i]);
    }
}

template <class x_t, class elem_t, class y_t, int N_ALL, int N_IDX>
void requantize_elements(const x_t x[N_ALL], y_t y[N_ALL], const int index[N_IDX]) {
#pragma HLS INLINE
ELEMENTS:
    for (int j = 0; j < N_IDX; j++) {
#pragma HLS UNROLL
        const int i = index[j];
        // the rounding/overflow decision is elem_t's; the container only widens (exact)
        y[i] = y_t(convert<elem_t>(x[i]));
    }
}

template <class y_t, int N_ALL, int N_IDX>
void zero_elements(y_t y[N_ALL], const int index[N_IDX]) {
#pragma HLS INLINE
ELEMENTS:
    for (int j = 0; j < N_IDX; j++) {
#pragma HLS UNROLL
        y[index[j]] = y_t(0);
    }
}

}  // namespace finegrain

#endif  // FINEGRAIN_REQUANTIZE_H_
