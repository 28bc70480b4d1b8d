// finegrain/conv.h: the CONV op (ONNX Conv, 1-D and 2-D) into an exact accumulator.
//
//   conv2d<CFG, x_t, w_t, b_t, acc_t>(x, acc, w, b)      conv2d_nobias<CFG, x_t, w_t, acc_t>(x, acc, w)
//   conv1d<CFG, x_t, w_t, b_t, acc_t>(x, acc, w, b)      conv1d_nobias<CFG, x_t, w_t, acc_t>(x, acc, w)
//
// ONNX semantics: NCHW without the batch axis, zero padding, weights [M][C/groups][KH][KW],
// output channel m reads input channels of group g = m / (M/groups).  All arrays are flat,
// row-major: x [C][H][W], acc [M][OH][OW], w [M][C/groups][KH][KW], b [M].
//
// CFG (2-D) holds static const int fields:
//   in_channels, in_height, in_width, out_channels, out_height, out_width,
//   kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right,
//   dilation_h, dilation_w, groups, reuse
// CFG (1-D; x [C][L], acc [M][OL], w [M][C/groups][K]) holds:
//   in_channels, in_length, out_channels, out_length, kernel, stride, pad_left, pad_right,
//   dilation, groups, reuse
// (pad_bottom / pad_right only document the output size, which the compiler computed.)
//
// Exactness is as in dense.h: acc_t is AP_TRN/AP_WRAP and holds every final value, partial
// sums wrap, products are full precision.
//
// Schedule: one output pixel per loop iteration, all out_channels * C/groups * KH * KW
// products of that pixel unrolled.  reuse == 1: II=1, one multiplier per product.
// reuse = R > 1: II=R and at most ceil(products / R) multipliers (ALLOCATION), each used R
// times per pixel.  Values never depend on the schedule.
#ifndef FINEGRAIN_CONV_H_
#define FINEGRAIN_CONV_H_

#include "common.h"

namespace finegrain {
namespace detail {

// Array sizes of a 2-D configuration (HLS needs them to partition the arrays).
template <class CFG>
struct conv_sizes {
    static const int x = CFG::in_channels * CFG::in_height * CFG::in_width;
    static const int y = CFG::out_channels * CFG::out_height * CFG::out_width;
    static const int w = CFG::out_channels * (CFG::in_channels / CFG::groups) * CFG::kernel_h * CFG::kernel_w;
};

template <class CFG, class x_t, class w_t, class bias_ref, class acc_t>
void conv2d_any(const x_t x[conv_sizes<CFG>::x], acc_t acc[conv_sizes<CFG>::y], const w_t w[conv_sizes<CFG>::w],
                const bias_ref& b) {
#pragma HLS INLINE
    const int C = CFG::in_channels, H = CFG::in_height, W = CFG::in_width;
    const int M = CFG::out_channels, OH = CFG::out_height, OW = CFG::out_width;
    const int KH = CFG::kernel_h, KW = CFG::kernel_w;
    static_assert(C % CFG::groups == 0 && M % CFG::groups == 0,
                  "conv: channels must be divisible by groups");
    static_assert(CFG::reuse >= 1, "conv: reuse must be at least 1");
    const int C_G = C / CFG::groups;  // input channels per group
    const int M_G = M / CFG::groups;  // output channels per group
    const int PRODUCTS = M * C_G * KH * KW;  // per output pixel
    const int MULTIPLIERS = (PRODUCTS + CFG::reuse - 1) / CFG::reuse;
    (void)MULTIPLIERS;  // read by the ALLOCATION pragma only
    // the window of a pixel is read in one cycle, the weights are wires
#pragma HLS ARRAY_PARTITION variable=x complete
#pragma HLS ARRAY_PARTITION variable=w complete
PIXEL_ROWS:
    for (int oh = 0; oh < OH; oh++) {
    PIXEL_COLUMNS:
        for (int ow = 0; ow < OW; ow++) {
#pragma HLS PIPELINE II=CFG::reuse
#pragma HLS ALLOCATION operation instances=mul limit=MULTIPLIERS
        OUT_CHANNELS:
            for (int m = 0; m < M; m++) {
#pragma HLS UNROLL
                const int g = m / M_G;  // a constant once unrolled
                acc_t sum = b[m];
            IN_CHANNELS:
                for (int c = 0; c < C_G; c++) {
#pragma HLS UNROLL
                KERNEL_ROWS:
                    for (int kh = 0; kh < KH; kh++) {
#pragma HLS UNROLL
                    KERNEL_COLUMNS:
                        for (int kw = 0; kw < KW; kw++) {
#pragma HLS UNROLL
                            const int ih = oh * CFG::stride_h - CFG::pad_top + kh * CFG::dilation_h;
                            const int iw = ow * CFG::stride_w - CFG::pad_left + kw * CFG::dilation_w;
                            // zero padding: a padded position adds nothing
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W) {
                                const x_t xv = x[((g * C_G + c) * H + ih) * W + iw];
                                const w_t wv = w[((m * C_G + c) * KH + kh) * KW + kw];
                                sum += acc_t(multiply(wv, xv));  // wraps; exact at the end
                            }
                        }
                    }
                }
                acc[(m * OH + oh) * OW + ow] = sum;
            }
        }
    }
}

// A 1-D configuration seen as 2-D with height 1.
template <class CFG>
struct conv1d_as_2d {
    static const int in_channels = CFG::in_channels;
    static const int in_height = 1;
    static const int in_width = CFG::in_length;
    static const int out_channels = CFG::out_channels;
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
    static const int groups = CFG::groups;
    static const int reuse = CFG::reuse;
};

}  // namespace detail

template <class CFG, class x_t, class w_t, class b_t, class acc_t>
void conv2d(const x_t x[detail::conv_sizes<CFG>::x], acc_t acc[detail::conv_sizes<CFG>::y],
            const w_t w[detail::conv_sizes<CFG>::w], const b_t b[CFG::out_channels]) {
#pragma HLS INLINE
    detail::conv2d_any<CFG, x_t, w_t, const b_t*, acc_t>(x, acc, w, b);
}

template <class CFG, class x_t, class w_t, class acc_t>
void conv2d_nobias(const x_t x[detail::conv_sizes<CFG>::x], acc_t acc[detail::conv_sizes<CFG>::y],
                   const w_t w[detail::conv_sizes<CFG>::w]) {
#pragma HLS INLINE
    detail::conv2d_any<CFG, x_t, w_t, zero_bias, acc_t>(x, acc, w, zero_bias());
}

template <class CFG, class x_t, class w_t, class b_t, class acc_t>
void conv1d(const x_t x[CFG::in_channels * CFG::in_length], acc_t acc[CFG::out_channels * CFG::out_length],
            const w_t w[CFG::out_channels * (CFG::in_channels / CFG::groups) * CFG::kernel],
            const b_t b[CFG::out_channels]) {
#pragma HLS INLINE
    detail::conv2d_any<detail::conv1d_as_2d<CFG>, x_t, w_t, const b_t*, acc_t>(x, acc, w, b);
}

template <class CFG, class x_t, class w_t, class acc_t>
void conv1d_nobias(const x_t x[CFG::in_channels * CFG::in_length], acc_t acc[CFG::out_channels * CFG::out_length],
                   const w_t w[CFG::out_channels * (CFG::in_channels / CFG::groups) * CFG::kernel]) {
#pragma HLS INLINE
    detail::conv2d_any<detail::conv1d_as_2d<CFG>, x_t, w_t, zero_bias, acc_t>(x, acc, w, zero_bias());
}

}  // namespace finegrain

#endif  // FINEGRAIN_CONV_H_
