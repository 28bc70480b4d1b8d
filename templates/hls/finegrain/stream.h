// finegrain/stream.h: the pieces of an io_stream project (HLSOptions.io == "stream").
//
// A stream tensor of shape [C, H, W] (or [C, L], H = 1) travels as H*W pixels in raster
// order, pixel p = h*W + w carrying the C channel values of one position (its "lanes"); a
// vector ([N], after a flatten or dense) is one pixel of N lanes.  Every lane is in the
// tensor's container type, so moving a value through a stream never changes it.
//
//   pixel<T, N>                          the N lanes of one position, in T
//   lowest<T>()                          T's most negative value (max pooling's padding)
//   line_buffer<CFG, x_t>::step(in, r, c, pad, rows, columns, window)
//                                        the padded frame of a convolution or pooling layer,
//                                        read pixel by pixel; true when (r, c) completes a window
//   read_tensor<x_t, LANES, BEATS>(in, x)    every pixel of a stream into a flat array
//   write_tensor<y_t, LANES, BEATS>(y, out)  a flat array out as pixels
//
// Flat arrays are row-major over the tensor's shape: lane l of pixel p is element l*BEATS + p.
//
// Values.  The window a line buffer gives is the input window of one output pixel with the
// padding written in: zero for a convolution (a zero product adds nothing, so the sum is the
// one the parallel kernel makes by skipping padded positions) and for average pooling (its
// reciprocal is per output, counting what the compiler decided), lowest<x_t>() for max
// pooling (never larger than a real value, and every window holds one).  The layer then
// runs the parallel kernel on that window, so each output pixel is computed exactly as in
// io_parallel.
#ifndef FINEGRAIN_STREAM_H_
#define FINEGRAIN_STREAM_H_

#include "hls_stream.h"

#include "common.h"

namespace finegrain {

template <class T, int N>
struct pixel {
    T data[N];
    T& operator[](int i) {
#pragma HLS INLINE
        return data[i];
    }
    const T& operator[](int i) const {
#pragma HLS INLINE
        return data[i];
    }
};

// The smallest value of T: the sign bit alone (signed), or zero (unsigned).
template <class T>
T lowest() {
#pragma HLS INLINE
    const int W = fixed_traits<T>::width;
    ap_uint<W> bits = 0;
    if (fixed_traits<T>::is_signed) bits[W - 1] = 1;
    T v;
    v.range() = bits.range();
    return v;
}

// CFG holds static const int fields:
//   channels, in_height, in_width (the tensor, unpadded), pad_top, pad_left, pad_bottom,
//   pad_right, kernel_h, kernel_w, stride_h, stride_w, dilation_h, dilation_w,
//   out_height, out_width
// The layer walks the padded frame (frame_height = in_height + pad_top + pad_bottom rows of
// frame_width = in_width + pad_left + pad_right positions) in raster order: start_row(r)
// before each row, then step() at every position c of it.  A real position reads one pixel
// from the stream, a padded one takes `pad`.  Frame position (r, c) completes the window
// whose bottom-right tap it is, if that window is an output pixel's (stride and output size
// permitting); step() then writes the window as [channels][kernel_h][kernel_w] (the layout
// of the parallel kernels' input), returns true, and out_row() / out_column() say which
// output pixel it is.
//
// Storage, as hls4ml's line buffers, declared by the caller (so that its partitioning pragmas
// sit where the arrays are defined): `rows`, the ROWS frame rows above the current one, one
// memory per row (partition dims 1 and 3), each read and written once per pixel at column c
// (the column moves up a row), and `columns`, a shift register of the window's COLUMNS latest
// columns (partitioned completely).  Which rows and columns complete a window is counted
// here, not divided out.
template <class CFG, class x_t>
class line_buffer {
   public:
    static const int C = CFG::channels;
    static const int KH = CFG::kernel_h, KW = CFG::kernel_w;
    static const int frame_height = CFG::in_height + CFG::pad_top + CFG::pad_bottom;
    static const int frame_width = CFG::in_width + CFG::pad_left + CFG::pad_right;
    static const int LAST_ROW = (KH - 1) * CFG::dilation_h;  // the window's bottom tap, from its top
    static const int LAST_COLUMN = (KW - 1) * CFG::dilation_w;
    static const int LINES = LAST_ROW + 1;  // frame rows a window spans
    static const int ROWS = LINES > 1 ? LINES - 1 : 1;  // rows kept (one unused when LINES == 1)
    static const int COLUMNS = LAST_COLUMN + 1;          // columns kept
    static_assert(CFG::out_height == (frame_height - LAST_ROW - 1) / CFG::stride_h + 1 &&
                      CFG::out_width == (frame_width - LAST_COLUMN - 1) / CFG::stride_w + 1,
                  "line_buffer: the output size is not what the padded frame gives");

    line_buffer() : next_row_(LAST_ROW), row_(-1), row_completes_(false), next_column_(0), out_column_(-1) {}

    // Row r of the frame begins (r = 0, 1, ... in turn).  The rows LAST_ROW,
    // LAST_ROW + stride_h, ... complete windows: out_height of them fit in the frame (the
    // static_assert above; the same for columns).
    void start_row(int r) {
#pragma HLS INLINE
        row_completes_ = r == next_row_;
        if (row_completes_) {
            row_++;
            next_row_ += CFG::stride_h;
        }
        next_column_ = LAST_COLUMN;
        out_column_ = -1;
    }

    int out_row() const { return row_; }
    int out_column() const { return out_column_; }

    template <class pixel_t>
    bool step(hls::stream<pixel_t>& in, int r, int c, const x_t& pad, x_t rows[ROWS][frame_width][C],
              x_t columns[KH][COLUMNS][C], x_t window[C * KH * KW]) {
#pragma HLS INLINE
        const bool real = r >= CFG::pad_top && r < CFG::pad_top + CFG::in_height && c >= CFG::pad_left &&
                          c < CFG::pad_left + CFG::in_width;
        pixel_t px;
        if (real) px = in.read();
        x_t column[LINES][C];  // column c of frame rows r - LAST_ROW .. r
#pragma HLS ARRAY_PARTITION variable=column complete dim=0
    CHANNELS:
        for (int ch = 0; ch < C; ch++) {
#pragma HLS UNROLL
            column[LINES - 1][ch] = real ? x_t(px[ch]) : pad;
        LINES_LOOP:
            for (int k = 0; k < LINES - 1; k++) {
#pragma HLS UNROLL
                column[k][ch] = rows[k][c][ch];
                rows[k][c][ch] = k + 1 < LINES - 1 ? rows[k + 1][c][ch] : column[LINES - 1][ch];
            }
        }
    SHIFT_KERNEL_ROWS:
        for (int kh = 0; kh < KH; kh++) {
#pragma HLS UNROLL
        SHIFT_COLUMNS:
            for (int j = 0; j < COLUMNS; j++) {
#pragma HLS UNROLL
            SHIFT_CHANNELS:
                for (int ch = 0; ch < C; ch++) {
#pragma HLS UNROLL
                    columns[kh][j][ch] = j < LAST_COLUMN ? columns[kh][j + 1][ch] : column[kh * CFG::dilation_h][ch];
                }
            }
        }
        if (!row_completes_ || c != next_column_) return false;
        out_column_++;
        next_column_ += CFG::stride_w;
    KERNEL_ROWS:
        for (int kh = 0; kh < KH; kh++) {
#pragma HLS UNROLL
        KERNEL_COLUMNS:
            for (int kw = 0; kw < KW; kw++) {
#pragma HLS UNROLL
            WINDOW_CHANNELS:
                for (int ch = 0; ch < C; ch++) {
#pragma HLS UNROLL
                    window[(ch * KH + kh) * KW + kw] = columns[kh][kw * CFG::dilation_w][ch];
                }
            }
        }
        return true;
    }

   private:
    int next_row_;        // the next frame row that completes windows
    int row_;             // the output row of the last such row
    bool row_completes_;  // whether the current row is one
    int next_column_;  // the next column of the current row that completes a window
    int out_column_;   // the output column last completed in it
};

template <class x_t, int LANES, int BEATS, class pixel_t>
void read_tensor(hls::stream<pixel_t>& in, x_t x[LANES * BEATS]) {
#pragma HLS INLINE
PIXELS:
    for (int p = 0; p < BEATS; p++) {
#pragma HLS PIPELINE II=1
        const pixel_t px = in.read();
    LANES_LOOP:
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            x[l * BEATS + p] = px[l];
        }
    }
}

template <class y_t, int LANES, int BEATS, class pixel_t>
void write_tensor(const y_t y[LANES * BEATS], hls::stream<pixel_t>& out) {
#pragma HLS INLINE
PIXELS:
    for (int p = 0; p < BEATS; p++) {
#pragma HLS PIPELINE II=1
        pixel_t px;
    LANES_LOOP:
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            px[l] = y[l * BEATS + p];
        }
        out.write(px);
    }
}

}  // namespace finegrain

#endif  // FINEGRAIN_STREAM_H_
