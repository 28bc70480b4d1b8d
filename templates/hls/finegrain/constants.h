// finegrain/constants.h: how generated code holds its constants.
//
// Weights, biases and tables are written as integer mantissas (plain C integers, which
// compile instantly even for large layers, and are exact by construction) and reinterpreted
// bit for bit as their ap_fixed container type.  Up to 63 bits a mantissa is one long long;
// a wider one is the 64-bit words of its two's complement, least significant first (an
// array [N][WORDS]), put together here.  In hardware the reinterpretation is wiring: the
// loaded array is a constant.
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

// v[i] = the mantissa in words[i] * 2^-frac_bits(T), exactly (T wider than 63 bits).
template <class T, int N, int WORDS>
void load_mantissas(const unsigned long long words[N][WORDS], T v[N]) {
#pragma HLS INLINE
    const int W = fixed_traits<T>::width;
    static_assert(64 * (WORDS - 1) < W && W <= 64 * WORDS, "load_mantissas: WORDS 64-bit words per value");
LOAD:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        ap_uint<64 * WORDS> raw;
    WORDS_OF_VALUE:
        for (int k = 0; k < WORDS; k++) {
#pragma HLS UNROLL
            raw.range(64 * k + 63, 64 * k) = words[i][k];
        }
        ap_uint<W> bits = raw.range(W - 1, 0);
        v[i].range() = bits.range();
    }
}

// load_mantissas, returning true: lets a static array be filled once, in its initialiser.
template <class T, int N, class M>
bool load_once(const M& mantissas, T v[N]) {
    load_mantissas<T, N>(mantissas, v);
    return true;
}

}  // namespace finegrain

// FINEGRAIN_CONSTANT(T, NAME, N): the array NAME of N values of T, from NAME_mantissas.
// For synthesis it is a plain array (constant after loading: wiring only); in C simulation
// it is loaded once rather than on every call of the top function.
#ifdef __SYNTHESIS__
#define FINEGRAIN_CONSTANT(T, NAME, N) \
    T NAME[N];                          \
    finegrain::load_mantissas<T, N>(NAME##_mantissas, NAME)
#else
#define FINEGRAIN_CONSTANT(T, NAME, N) \
    static T NAME[N];                   \
    static const bool NAME##_loaded = finegrain::load_once<T, N>(NAME##_mantissas, NAME); \
    (void)NAME##_loaded
#endif

#endif
