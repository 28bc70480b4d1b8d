// finegrain/dense.h: the DENSE op (fully connected layer) into an exact accumulator.
//
//   dense<x_t, w_t, b_t, acc_t, N_IN, N_OUT, REUSE>(x, acc, w, b)
//       acc[j] = b[j] + sum_k w[j * N_IN + k] * x[k]        (w row-major [N_OUT][N_IN])
//   dense_nobias<x_t, w_t, acc_t, N_IN, N_OUT, REUSE>(x, acc, w)
//       acc[j] = sum_k w[j * N_IN + k] * x[k]
//   dense_codebook<x_t, c_t, b_t, acc_t, N_IN, N_OUT, N_C>(x, acc, centres, index, b)
//   dense_codebook_nobias<x_t, c_t, acc_t, N_IN, N_OUT, N_C>(x, acc, centres, index)
//       the same with w[p] = centres[index[p]] (index -1: zero), see "Codebook weights"
//
// Exactness.  Every product w*x is full precision (finegrain::multiply).  acc_t is the accumulator
// container: its modes must be AP_TRN/AP_WRAP, and it must hold every final acc[j] exactly
// (the compiler's sizing guarantees it).  Partial sums may overflow acc_t: they wrap, i.e.
// the sum is computed modulo 2^width(acc_t), and since the final value fits, it is exact
// whatever the order of the additions.  acc_t may have fewer fractional bits than the
// product of the containers when the dropped bits are always zero (weights with trailing
// zeros); truncating an exact multiple of the LSB loses nothing.
//
// Codebook weights (dense_codebook, dense_codebook_nobias): every weight is one of N_C
// centres or zero, given as its index (-1: zero),
//       acc[j] = b[j] + sum_k centres[index[j * N_IN + k]] * x[k].
// Each product centres[c] * x[k] is made once, N_IN * N_C products in all, and every row
// whose weight in column k is centre c takes it by wiring (the indices are constants of a
// fully unrolled layer): the multiplier sharing of a codebook, written out rather than left
// to the tool's common-subexpression pass.  Fully parallel only (no REUSE parameter).
//
// Reuse.  REUSE == 1: every product has its own multiplier; all loops are unrolled (one
// result per call, latency a few cycles).  REUSE > 1: ceil(N_IN*N_OUT / REUSE) multipliers
// (ALLOCATION), each used REUSE times: a loop of REUSE pipelined iterations (II=1), each
// doing one product per multiplier.  Both give identical values.  The memory layout is
// cleanest when REUSE divides N_IN * N_OUT (each multiplier then reads its own block of w).
#ifndef FINEGRAIN_DENSE_H_
#define FINEGRAIN_DENSE_H_

#include "common.h"

namespace finegrain {
namespace detail {

// bias_ref: a pointer to the biases or finegrain::zero_bias.
template <class x_t, class w_t, class bias_ref, class acc_t, int N_IN, int N_OUT>
void dense_unrolled(const x_t x[N_IN], acc_t acc[N_OUT], const w_t w[N_OUT * N_IN], const bias_ref& b) {
#pragma HLS INLINE
    // one register / wire per element: all products are made in the same cycle
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=w complete
#pragma HLS ARRAY_PARTITION variable=acc complete
ROWS:
    for (int j = 0; j < N_OUT; j++) {
#pragma HLS UNROLL
        acc_t sum = b[j];
    COLUMNS:
        for (int k = 0; k < N_IN; k++) {
#pragma HLS UNROLL
            // full-precision product; into acc_t it wraps (AP_WRAP), which is exact at the end
            sum += acc_t(multiply(w[j * N_IN + k], x[k]));
        }
        acc[j] = sum;
    }
}

template <class x_t, class w_t, class bias_ref, class acc_t, int N_IN, int N_OUT, int REUSE>
void dense_reused(const x_t x[N_IN], acc_t acc[N_OUT], const w_t w[N_OUT * N_IN], const bias_ref& b) {
#pragma HLS INLINE
    const int N_PRODUCTS = N_IN * N_OUT;
    const int LANES = (N_PRODUCTS + REUSE - 1) / REUSE;  // multipliers
    // When the caller pipelines the whole network (the generated top function does, with
    // II = the largest reuse factor), REUSE_STEPS is unrolled into that pipeline and this
    // limit is what makes the LANES multipliers serve all products.
#pragma HLS ALLOCATION operation instances=mul limit=LANES
    // lane l makes products p = l*REUSE + r, r = 0..REUSE-1: a contiguous block of w
#pragma HLS ARRAY_RESHAPE variable=w block factor=LANES
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=acc complete
    acc_t sum[N_OUT];
#pragma HLS ARRAY_PARTITION variable=sum complete
    // each lane tracks the (row, column) of its product like an odometer, so no divider
    // or modulo is built; the starting points are constants once the loops are unrolled
    int row[LANES];
    int col[LANES];
#pragma HLS ARRAY_PARTITION variable=row complete
#pragma HLS ARRAY_PARTITION variable=col complete
INIT_SUMS:
    for (int j = 0; j < N_OUT; j++) {
#pragma HLS UNROLL
        sum[j] = b[j];
    }
INIT_LANES:
    for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
        row[l] = (l * REUSE) / N_IN;
        col[l] = (l * REUSE) % N_IN;
    }
REUSE_STEPS:
    for (int r = 0; r < REUSE; r++) {
#pragma HLS PIPELINE II=1
    LANES_LOOP:
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            const int p = l * REUSE + r;
            if (p < N_PRODUCTS) {
                sum[row[l]] += acc_t(multiply(w[p], x[col[l]]));  // wraps; exact at the end
            }
            if (++col[l] == N_IN) {
                col[l] = 0;
                row[l]++;
            }
        }
    }
OUTPUTS:
    for (int j = 0; j < N_OUT; j++) {
#pragma HLS UNROLL
        acc[j] = sum[j];
    }
}

template <class x_t, class w_t, class bias_ref, class acc_t, int N_IN, int N_OUT, int REUSE>
void dense_any(const x_t x[N_IN], acc_t acc[N_OUT], const w_t w[N_OUT * N_IN], const bias_ref& b) {
#pragma HLS INLINE
    static_assert(REUSE >= 1, "dense: REUSE must be at least 1");
    // REUSE is a constant: synthesis keeps one branch only
    if (REUSE == 1) {
        dense_unrolled<x_t, w_t, bias_ref, acc_t, N_IN, N_OUT>(x, acc, w, b);
    } else {
        dense_reused<x_t, w_t, bias_ref, acc_t, N_IN, N_OUT, REUSE>(x, acc, w, b);
    }
}

// bias_ref as in dense_unrolled; index: -1 for a zero weight, else its centre.
template <class x_t, class c_t, class bias_ref, class acc_t, int N_IN, int N_OUT, int N_C>
void dense_codebook_any(const x_t x[N_IN], acc_t acc[N_OUT], const c_t centres[N_C],
                        const int index[N_OUT * N_IN], const bias_ref& b) {
#pragma HLS INLINE
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=centres complete
#pragma HLS ARRAY_PARTITION variable=acc complete
    typedef typename product_type<c_t, x_t>::type product_t;  // full precision: every product is exact
    product_t product[N_IN][N_C];
#pragma HLS ARRAY_PARTITION variable=product complete dim=0
PRODUCTS:
    for (int k = 0; k < N_IN; k++) {
#pragma HLS UNROLL
    CENTRES:
        for (int c = 0; c < N_C; c++) {
#pragma HLS UNROLL
            product[k][c] = multiply(centres[c], x[k]);
        }
    }
ROWS:
    for (int j = 0; j < N_OUT; j++) {
#pragma HLS UNROLL
        acc_t sum = b[j];
    COLUMNS:
        for (int k = 0; k < N_IN; k++) {
#pragma HLS UNROLL
            const int c = index[j * N_IN + k];
            if (c >= 0) {
                sum += acc_t(product[k][c]);  // wraps; exact at the end (as in dense_unrolled)
            }
        }
        acc[j] = sum;
    }
}

}  // namespace detail

template <class x_t, class w_t, class b_t, class acc_t, int N_IN, int N_OUT, int REUSE>
void dense(const x_t x[N_IN], acc_t acc[N_OUT], const w_t w[N_OUT * N_IN], const b_t b[N_OUT]) {
#pragma HLS INLINE
    detail::dense_any<x_t, w_t, const b_t*, acc_t, N_IN, N_OUT, REUSE>(x, acc, w, b);
}

template <class x_t, class w_t, class acc_t, int N_IN, int N_OUT, int REUSE>
void dense_nobias(const x_t x[N_IN], acc_t acc[N_OUT], const w_t w[N_OUT * N_IN]) {
#pragma HLS INLINE
    detail::dense_any<x_t, w_t, zero_bias, acc_t, N_IN, N_OUT, REUSE>(x, acc, w, zero_bias());
}

template <class x_t, class c_t, class b_t, class acc_t, int N_IN, int N_OUT, int N_C>
void dense_codebook(const x_t x[N_IN], acc_t acc[N_OUT], const c_t centres[N_C], const int index[N_OUT * N_IN],
                    const b_t b[N_OUT]) {
#pragma HLS INLINE
    detail::dense_codebook_any<x_t, c_t, const b_t*, acc_t, N_IN, N_OUT, N_C>(x, acc, centres, index, b);
}

template <class x_t, class c_t, class acc_t, int N_IN, int N_OUT, int N_C>
void dense_codebook_nobias(const x_t x[N_IN], acc_t acc[N_OUT], const c_t centres[N_C],
                           const int index[N_OUT * N_IN]) {
#pragma HLS INLINE
    detail::dense_codebook_any<x_t, c_t, zero_bias, acc_t, N_IN, N_OUT, N_C>(x, acc, centres, index, zero_bias());
}

}  // namespace finegrain

#endif  // FINEGRAIN_DENSE_H_
