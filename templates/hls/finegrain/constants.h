// finegrain/constants.h: how generated code holds its constants.
//
// Weights, biases and tables are written as integer mantissas (plain C integers, which
// compile instantly even for large layers, and are exact by construction) and reinterpreted
// bit for bit as their ap_fixed container type.  In hardware the reinterpretation is wiring:
// the loaded array is a constant.
#ifndef FINEGRAIN_CONSTANTS_H_
#define FINEGRAIN_CONSTANTS_H_

#include "common.h"

namespace finegrain {

// v[i] = mantissa[i] * 2^-frac_bits(T), exactly (T's width is at most 63 bits).
template <class T, int N>
void load_mantissas(const long long mantissa[N], T v[N]) {
#pragma HLS INLINE
LOAD:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        ap_int<fixed_traits<T>::width> raw = mantissa[i];
        v[i].range() = raw.range();
    }
}

}  // namespace finegrain

#endif
