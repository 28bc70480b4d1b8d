// finegrain/lookup.h: the TABLE ops (sigmoid, tanh, ...: compiler/table_functions.py) and SOFTMAX,
// as table look-ups (ROMs).
//
// The definition (compiler/emulate.py, `_lookup`): a value is converted into the table's
// input format code_t -- whose rounding/overflow modes apply -- and the code reads entry
// mantissa(code) - min_mantissa(code_t) (finegrain::table_index).  A table holds one entry
// per input code: TABLE_SIZE == 2^width(code_t).
//
//   lookup<x_t, code_t, y_t, N, TABLE_SIZE>(x, y, table)
//       y[i] = table[index(code_t(x[i]))]
//   softmax<x_t, d_t, code_t, e_t, sum_t, icode_t, r_t, y_t, N, EXP_SIZE, INV_SIZE>(
//           x, y, exp_table, inv_table)                       over a vector of N
//       m = max(x);  d[i] = x[i] - m          (d_t: exact, <= 0)
//       e[i] = exp_table[index(code_t(d[i]))] (e_t: the exp table's output type)
//       s = sum(e)                            (sum_t: exact; AP_TRN/AP_WRAP)
//       r = inv_table[index(icode_t(s))]      (icode_t: unsigned table input; r_t its output)
//       y[i] = y_t(e[i] * r)                  (y_t: the output format, its modes apply)
//   softmax_axis<..., OUTER, N, INNER, EXP_SIZE, INV_SIZE>(...)
//       the same along the middle axis of a row-major [OUTER][N][INNER] tensor; softmax is
//       softmax_axis with OUTER = INNER = 1.
//
// Schedule: everything unrolled; each look-up is its own ROM read (the tables are const
// arrays in generated code).  Values never depend on the schedule.
#ifndef FINEGRAIN_LOOKUP_H_
#define FINEGRAIN_LOOKUP_H_

#include "common.h"

namespace finegrain {

template <class x_t, class code_t, class y_t, int N, int TABLE_SIZE>
void lookup(const x_t x[N], y_t y[N], const y_t table[TABLE_SIZE]) {
#pragma HLS INLINE
    static_assert(TABLE_SIZE == (1 << fixed_traits<code_t>::width),
                  "lookup: the table needs one entry per input code (2^width(code_t))");
ELEMENTS:
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        const code_t code = convert<code_t>(x[i]);
        y[i] = table[table_index(code)];
    }
}

template <class x_t, class d_t, class code_t, class e_t, class sum_t, class icode_t, class r_t,
          class y_t, int OUTER, int N, int INNER, int EXP_SIZE, int INV_SIZE>
void softmax_axis(const x_t x[OUTER * N * INNER], y_t y[OUTER * N * INNER],
                  const e_t exp_table[EXP_SIZE], const r_t inv_table[INV_SIZE]) {
#pragma HLS INLINE
    static_assert(EXP_SIZE == (1 << fixed_traits<code_t>::width),
                  "softmax: the exp table needs one entry per input code (2^width(code_t))");
    static_assert(INV_SIZE == (1 << fixed_traits<icode_t>::width),
                  "softmax: the 1/sum table needs one entry per input code (2^width(icode_t))");
    static_assert(!fixed_traits<icode_t>::is_signed, "softmax: the 1/sum table input is unsigned");
VECTORS_OUTER:
    for (int o = 0; o < OUTER; o++) {
#pragma HLS UNROLL
    VECTORS_INNER:
        for (int n = 0; n < INNER; n++) {
#pragma HLS UNROLL
            const int base = o * N * INNER + n;  // element i of this vector: base + i * INNER
            x_t m = x[base];
        MAXIMUM:
            for (int i = 1; i < N; i++) {
#pragma HLS UNROLL
                if (compare(x[base + i * INNER], m) > 0) m = x[base + i * INNER];
            }
            e_t e[N];
#pragma HLS ARRAY_PARTITION variable=e complete
            sum_t s = 0;
        EXPONENTIALS:
            for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
                const d_t d = x[base + i * INNER] - m;  // exact
                const code_t code = convert<code_t>(d);
                e[i] = exp_table[table_index(code)];
                s += e[i];  // exact at the end (wraps in between)
            }
            const icode_t icode = convert<icode_t>(s);
            const r_t r = inv_table[table_index(icode)];
        OUTPUTS:
            for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
                y[base + i * INNER] = convert<y_t>(multiply(e[i], r));
            }
        }
    }
}

template <class x_t, class d_t, class code_t, class e_t, class sum_t, class icode_t, class r_t,
          class y_t, int N, int EXP_SIZE, int INV_SIZE>
void softmax(const x_t x[N], y_t y[N], const e_t exp_table[EXP_SIZE], const r_t inv_table[INV_SIZE]) {
#pragma HLS INLINE
    softmax_axis<x_t, d_t, code_t, e_t, sum_t, icode_t, r_t, y_t, 1, N, 1, EXP_SIZE, INV_SIZE>(
        x, y, exp_table, inv_table);
}

}  // namespace finegrain

#endif  // FINEGRAIN_LOOKUP_H_
