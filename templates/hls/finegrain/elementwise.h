// finegrain/elementwise.h: exact elementwise arithmetic (ADD, MUL) and the layout ops
// (RESHAPE, TRANSPOSE, CONCAT) on flat row-major arrays.
//
//   add<a_t, b_t, y_t, N>(a, b, y)              y[i] = a[i] + b[i]
//   mul<a_t, b_t, y_t, N>(a, b, y)              y[i] = a[i] * b[i]    (two activations)
//   add_indexed, mul_indexed<a_t, b_t, y_t, N>(a, b, a_index, b_index, y)
//                                               y[i] = a[a_index[i]] + / * b[b_index[i]]
//                                               (broadcast operands, e.g. [C, 1, 1] on [C, H, W])
//   add_const<x_t, c_t, y_t, N>(x, c, y)        y[i] = x[i] + c[i]   (c: N entries; the
//   mul_const<x_t, c_t, y_t, N>(x, c, y)        y[i] = x[i] * c[i]    generator materialises
//                                                                      any broadcast)
//   copy<x_t, y_t, N>(x, y)                     y[i] = x[i]               (reshape)
//   permute<x_t, y_t, N>(x, y, src_index)       y[i] = x[src_index[i]]    (transpose)
//   copy_into<x_t, y_t, N, OFFSET>(x, y)        y[OFFSET + i] = x[i]      (concat, outer axis)
//   scatter<x_t, y_t, N>(x, y, dst_index)       y[dst_index[i]] = x[i]    (concat, any axis)
//
// Sums and products are full precision and y_t holds every result exactly: nothing rounds.
// Index maps are compile-time constants in generated code; with the loops unrolled each
// index folds to a constant, so the layout ops are wiring only.
#ifndef FINEGRAIN_ELEMENTWISE_H_
#define FINEGRAIN_ELEMENTWISE_H_

#include "common.h"

namespace finegrain {

template <class a_t, class b_t, class y_t, int N>
void add(const a_t a[N], const b_t b[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = y_t(a[i] + b[i]);
    }
}

template <class a_t, class b_t, class y_t, int N>
void mul(const a_t a[N], const b_t b[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = y_t(multiply(a[i], b[i]));
    }
}

template <class a_t, class b_t, class y_t, int N>
void add_indexed(const a_t a[], const b_t b[], const int a_index[N], const int b_index[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = y_t(a[a_index[i]] + b[b_index[i]]);
    }
}

template <class a_t, class b_t, class y_t, int N>
void mul_indexed(const a_t a[], const b_t b[], const int a_index[N], const int b_index[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = y_t(multiply(a[a_index[i]], b[b_index[i]]));
    }
}

template <class x_t, class c_t, class y_t, int N>
void add_const(const x_t x[N], const c_t c[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = y_t(x[i] + c[i]);
    }
}

template <class x_t, class c_t, class y_t, int N>
void mul_const(const x_t x[N], const c_t c[N], y_t y[N]) {
#pragma HLS INLINE
    mul<x_t, c_t, y_t, N>(x, c, y);
}

template <class x_t, class y_t, int N>
void copy(const x_t x[N], y_t y[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = y_t(x[i]);
    }
}

template <class x_t, class y_t, int N>
void permute(const x_t x[N], y_t y[N], const int src_index[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[i] = y_t(x[src_index[i]]);
    }
}

template <class x_t, class y_t, int N, int OFFSET>
void copy_into(const x_t x[N], y_t y[]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[OFFSET + i] = y_t(x[i]);
    }
}

template <class x_t, class y_t, int N>
void scatter(const x_t x[N], y_t y[], const int dst_index[N]) {
#pragma HLS INLINE
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        y[dst_index[i]] = y_t(x[i]);
    }
}

}  // namespace finegrain

#endif  // FINEGRAIN_ELEMENTWISE_H_
