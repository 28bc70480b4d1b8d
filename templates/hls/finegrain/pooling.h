// finegrain/pooling.h: the MAXPOOL and AVGPOOL ops (ONNX MaxPool / AveragePool), 1-D and 2-D.
//
//   maxpool2d<CFG, x_t, y_t>(x, y)                      maxpool1d<CFG, x_t, y_t>(x, y)
//       y = the largest element of the window.  Padded positions never win: the first
//       valid element is the initial maximum (every window holds at least one).
//   avgpool2d<CFG, x_t, r_t, sum_t, y_t>(x, y, reciprocal)
//   avgpool1d<CFG, x_t, r_t, sum_t, y_t>(x, y, reciprocal)
//       y[o] = (window sum, padded positions adding zero) * reciprocal[o].  reciprocal has
//       one entry per output element ([C][OH][OW]), so count_include_pad and border windows
//       are decided by the compiler, not here.
//
// Arrays are flat, row-major: x [C][H][W], y [C][OH][OW] (1-D: [C][L], [C][OL]).
// CFG (2-D) holds static const int fields:
//   channels, in_height, in_width, out_height, out_width, kernel_h, kernel_w,
//   stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right,
//   dilation_h, dilation_w (read by max pooling only)
// CFG (1-D) holds: channels, in_length, out_length, kernel, stride, pad_left, pad_right,
//   dilation (max pooling only)
//
// Exactness: max pooling moves values (y_t holds x's values); sum_t is AP_TRN/AP_WRAP and
// holds every window sum, and y_t holds sum * reciprocal exactly (no rounding here).
// Schedule: one output pixel per cycle (II=1), all channels and window positions unrolled.
#ifndef FINEGRAIN_POOLING_H_
#define FINEGRAIN_POOLING_H_

#include "common.h"

namespace finegrain {
namespace detail {

template <class CFG>
struct pool1d_as_2d {
    static const int channels = CFG::channels;
    static const int in_height = 1;
    static const int in_width = CFG::in_length;
    static const int out_height = 1;
    static const int out_width = CFG::out_length;
    static const int kernel_h = 1;
    static const int kernel_w = CFG::kernel;
    static const int stride_h = 1;
    static const int stride_w = CFG::stride;
    static const int pad_top = 0;
    static const int pad_left = CFG::pad_left;
    static const int pad_bottom = 0;
    static const int pad_right = CFG::pad_right;
    static const int dilation_h = 1;
    static const int dilation_w = CFG::dilation;
};

// Average pooling has no dilation: a 1-D configuration without the field.
template <class CFG>
struct avgpool1d_as_2d {
    static const int channels = CFG::channels;
    static const int in_height = 1;
    static const int in_width = CFG::in_length;
    static const int out_height = 1;
    static const int out_width = CFG::out_length;
    static const int kernel_h = 1;
    static const int kernel_w = CFG::kernel;
    static const int stride_h = 1;
    static const int stride_w = CFG::stride;
    static const int pad_top = 0;
    static const int pad_left = CFG::pad_left;
    static const int pad_bottom = 0;
    static const int pad_right = CFG::pad_right;
};

}  // namespace detail

template <class CFG, class x_t, class y_t>
void maxpool2d(const x_t x[CFG::channels * CFG::in_height * CFG::in_width],
               y_t y[CFG::channels * CFG::out_height * CFG::out_width]) {
#pragma HLS INLINE
    const int C = CFG::channels, H = CFG::in_height, W = CFG::in_width;
    const int OH = CFG::out_height, OW = CFG::out_width;
#pragma HLS ARRAY_PARTITION variable=x complete
PIXEL_ROWS:
    for (int oh = 0; oh < OH; oh++) {
    PIXEL_COLUMNS:
        for (int ow = 0; ow < OW; ow++) {
#pragma HLS PIPELINE II=1
        CHANNELS:
            for (int c = 0; c < C; c++) {
#pragma HLS UNROLL
                x_t best = 0;
                bool seen = false;  // constant per position once unrolled: no logic
            KERNEL_ROWS:
                for (int kh = 0; kh < CFG::kernel_h; kh++) {
#pragma HLS UNROLL
                KERNEL_COLUMNS:
                    for (int kw = 0; kw < CFG::kernel_w; kw++) {
#pragma HLS UNROLL
                        const int ih = oh * CFG::stride_h - CFG::pad_top + kh * CFG::dilation_h;
                        const int iw = ow * CFG::stride_w - CFG::pad_left + kw * CFG::dilation_w;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                            const x_t v = x[(c * H + ih) * W + iw];
                            if (!seen || compare(v, best) > 0) best = v;
                            seen = true;
                        }
                    }
                }
                y[(c * OH + oh) * OW + ow] = best;
            }
        }
    }
}

template <class CFG, class x_t, class r_t, class sum_t, class y_t>
void avgpool2d(const x_t x[CFG::channels * CFG::in_height * CFG::in_width],
               y_t y[CFG::channels * CFG::out_height * CFG::out_width],
               const r_t reciprocal[CFG::channels * CFG::out_height * CFG::out_width]) {
#pragma HLS INLINE
    const int C = CFG::channels, H = CFG::in_height, W = CFG::in_width;
    const int OH = CFG::out_height, OW = CFG::out_width;
#pragma HLS ARRAY_PARTITION variable=x complete
PIXEL_ROWS:
    for (int oh = 0; oh < OH; oh++) {
    PIXEL_COLUMNS:
        for (int ow = 0; ow < OW; ow++) {
#pragma HLS PIPELINE II=1
        CHANNELS:
            for (int c = 0; c < C; c++) {
#pragma HLS UNROLL
                sum_t sum = 0;
            KERNEL_ROWS:
                for (int kh = 0; kh < CFG::kernel_h; kh++) {
#pragma HLS UNROLL
                KERNEL_COLUMNS:
                    for (int kw = 0; kw < CFG::kernel_w; kw++) {
#pragma HLS UNROLL
                        const int ih = oh * CFG::stride_h - CFG::pad_top + kh;
                        const int iw = ow * CFG::stride_w - CFG::pad_left + kw;
                        if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                            sum += sum_t(x[(c * H + ih) * W + iw]);  // wraps; exact at the end
                        }
                    }
                }
                const int o = (c * OH + oh) * OW + ow;
                y[o] = y_t(multiply(sum, reciprocal[o]));  // full-precision product, held exactly by y_t
            }
        }
    }
}

template <class CFG, class x_t, class y_t>
void maxpool1d(const x_t x[CFG::channels * CFG::in_length], y_t y[CFG::channels * CFG::out_length]) {
#pragma HLS INLINE
    maxpool2d<detail::pool1d_as_2d<CFG>, x_t, y_t>(x, y);
}

template <class CFG, class x_t, class r_t, class sum_t, class y_t>
void avgpool1d(const x_t x[CFG::channels * CFG::in_length], y_t y[CFG::channels * CFG::out_length],
               const r_t reciprocal[CFG::channels * CFG::out_length]) {
#pragma HLS INLINE
    avgpool2d<detail::avgpool1d_as_2d<CFG>, x_t, r_t, sum_t, y_t>(x, y, reciprocal);
}

}  // namespace finegrain

#endif  // FINEGRAIN_POOLING_H_
