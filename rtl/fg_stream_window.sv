// fg_stream_window: the sliding window of a convolution or pooling layer over a raster stream.
//
// It keeps the last N = (KH-1)*DH*WD + (KW-1)*DW + 1 accepted pixels in a shift register (a
// line buffer: KH-1 dilated rows plus one kernel row) and counts the position (r, c) of the
// next pixel to accept, in raster order over the H x WD frame, wrapping frame after frame.
// The pixel at (r, c) completes a window iff it is the bottom-right tap of an output pixel:
//     r >= (KH-1)*DH,  (r - (KH-1)*DH) % SH == 0,  (r - (KH-1)*DH) / SH < OH,
// and the same for c with KW, DW, SW and OW, where OH = (H - (KH-1)*DH - 1) / SH + 1.
//
// Flow control: a pixel is accepted only while `credit` is high (the engine's output FIFO has
// a free slot: the core behind the window never stalls), and a window-completing pixel only
// once the core can take a new input (`cooldown` == 0: at most one window every II cycles).
//     in_ready = credit && (!completes || cooldown == 0),   accept = in_valid && in_ready
//     issue    = accept && completes     (combinational: the FIFO reserves its slot now)
// out_valid is high for one cycle, the cycle after an issuing accept; out_data is then the
// window, tap (kh, kw) (row-major over the kernel) at bits [(kh*KW + kw)*W +: W] = the pixel
// at (r0 + kh*DH, c0 + kw*DW) of the window whose bottom-right pixel was just accepted.
// out_data is read straight from the shift register: it holds only while out_valid is high.
//
// Parameters
//   W           pixel width (all lanes of one pixel)
//   H, WD       the frame's rows and columns (after any padding)
//   KH, KW      kernel rows and columns
//   SH, SW      strides;  DH, DW  dilations
//   II          cycles between windows (the core's initiation interval, the reuse factor)
//
// Latency: 1 cycle from the accept of a window's last pixel to out_valid.
// Reset: synchronous, active-high rst clears (r, c), cooldown and out_valid; the shift
// register holds data only and is not reset.
module fg_stream_window #(
    parameter int W  = 8,
    parameter int H  = 4,
    parameter int WD = 4,
    parameter int KH = 3,
    parameter int KW = 3,
    parameter int SH = 1,
    parameter int SW = 1,
    parameter int DH = 1,
    parameter int DW = 1,
    parameter int II = 1
) (
    input  logic              clk,
    input  logic              rst,
    input  logic              in_valid,
    input  logic [W-1:0]      in_data,
    output logic              in_ready,
    input  logic              credit,
    output logic              issue,
    output logic              out_valid,
    output logic [KH*KW*W-1:0] out_data
);
    localparam int SPAN_H = (KH - 1) * DH;  // rows from a window's top tap to its bottom tap
    localparam int SPAN_W = (KW - 1) * DW;
    localparam int OH = (H - SPAN_H - 1) / SH + 1;
    localparam int OW = (WD - SPAN_W - 1) / SW + 1;
    localparam int N = SPAN_H * WD + SPAN_W + 1;  // pixels kept
    localparam int RW = H > 1 ? $clog2(H) : 1;
    localparam int CW = WD > 1 ? $clog2(WD) : 1;
    localparam logic [RW-1:0] LAST_R = RW'(H - 1);
    localparam logic [CW-1:0] LAST_C = CW'(WD - 1);

    if (KH < 1 || KW < 1 || SH < 1 || SW < 1 || DH < 1 || DW < 1 || II < 1) begin : g_bad_parameters
        $error("fg_stream_window: KH, KW, SH, SW, DH, DW and II must be >= 1");
    end
    if (H < SPAN_H + 1 || WD < SPAN_W + 1) begin : g_bad_frame
        $error("fg_stream_window: the (dilated) kernel is larger than the H x WD frame");
    end

    // the rows (columns) whose pixels are the bottom (right) taps of a window: constants
    function automatic logic [H-1:0] last_rows();
        for (int i = 0; i < H; i++)
            last_rows[i] = i >= SPAN_H && (i - SPAN_H) % SH == 0 && (i - SPAN_H) / SH < OH;
    endfunction
    function automatic logic [WD-1:0] last_columns();
        for (int i = 0; i < WD; i++)
            last_columns[i] = i >= SPAN_W && (i - SPAN_W) % SW == 0 && (i - SPAN_W) / SW < OW;
    endfunction
    localparam logic [H-1:0] LAST_ROW = last_rows();
    localparam logic [WD-1:0] LAST_COLUMN = last_columns();

    logic [RW-1:0] r;
    logic [CW-1:0] c;
    logic core_free;  // cooldown == 0
    wire completes = LAST_ROW[r] && LAST_COLUMN[c];
    assign in_ready = credit && (!completes || core_free);
    wire accept = in_valid && in_ready;
    assign issue = accept && completes;

    always_ff @(posedge clk) begin
        if (rst) begin
            r <= '0;
            c <= '0;
            out_valid <= 1'b0;
        end else begin
            out_valid <= issue;
            if (accept) begin
                if (c == LAST_C) begin
                    c <= '0;
                    r <= (r == LAST_R) ? '0 : r + 1'b1;
                end else begin
                    c <= c + 1'b1;
                end
            end
        end
    end

    if (II > 1) begin : g_cooldown
        localparam int CD_W = $clog2(II);
        logic [CD_W-1:0] cooldown;
        always_ff @(posedge clk) begin
            if (rst) cooldown <= '0;
            else if (issue) cooldown <= CD_W'(II - 1);
            else if (cooldown != '0) cooldown <= cooldown - 1'b1;
        end
        assign core_free = cooldown == '0;
    end else begin : g_every_cycle
        assign core_free = 1'b1;
    end

    // the line buffer: pixel k accepts ago at [k*W +: W] (k = 0: the newest)
    logic [N*W-1:0] pixels;
    if (N > 1) begin : g_shift
        always_ff @(posedge clk) if (accept) pixels <= {pixels[(N-1)*W-1:0], in_data};
    end else begin : g_one
        always_ff @(posedge clk) if (accept) pixels <= in_data;
    end
    for (genvar kh = 0; kh < KH; kh++) begin : g_tap_row
        for (genvar kw = 0; kw < KW; kw++) begin : g_tap
            localparam int AGE = (KH - 1 - kh) * DH * WD + (KW - 1 - kw) * DW;
            assign out_data[(kh*KW + kw)*W +: W] = pixels[AGE*W +: W];
        end
    end
endmodule
