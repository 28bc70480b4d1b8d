// fg_stream_reduce: a pooling layer with one window per frame, its top-left pixel the frame's
// (a global pool, or a KH x KW kernel whose stride leaves no second window): per lane the sum
// (OP = 0) or the maximum (OP = 1) of the window's pixels, accumulated as they arrive, instead
// of a line buffer of KH rows.  Pixels outside the window (rows >= KH or columns >= KW) are
// accepted and ignored.
//
// Handshake and timing are fg_stream_window's for that one window: a pixel is accepted while
// `credit` is high (the window's bottom-right pixel also only once the core can take a new
// input, at most one window every II cycles); the accept of the window's bottom-right pixel
// (KH-1, KW-1) is an `issue` (combinational), and out_valid is high for one cycle the cycle
// after it, with out_data the window's result per lane (lane l at [l*ACC_W +: ACC_W]),
// registered: it holds until the next frame's result.
//
// Parameters
//   W         lane width;  LANES  lanes per pixel (the channels)
//   H, WD     the frame's rows and columns
//   KH, KW    the window's rows and columns (at most H, WD; default the whole frame)
//   OP        0: sum (two's complement if SIGNED, lanes sign- or zero-extended to ACC_W, which
//             must hold the sum of H*WD values: the result is exact); 1: maximum (ACC_W = W)
//   SIGNED    lanes are two's complement
//   ACC_W     result width per lane
//   II        cycles between frames' results (the core's initiation interval)
//
// Latency: 1 cycle from the accept of a frame's last pixel to out_valid.
// Reset: synchronous, active-high rst clears the position, cooldown and out_valid.
module fg_stream_reduce #(
    parameter int W      = 8,
    parameter int LANES  = 1,
    parameter int H      = 4,
    parameter int WD     = 4,
    parameter int KH     = H,
    parameter int KW     = WD,
    parameter int OP     = 0,
    parameter int SIGNED = 1,
    parameter int ACC_W  = 12,
    parameter int II     = 1
) (
    input  logic                   clk,
    input  logic                   rst,
    input  logic                   in_valid,
    input  logic [LANES*W-1:0]     in_data,
    output logic                   in_ready,
    input  logic                   credit,
    output logic                   issue,
    output logic                   out_valid,
    output logic [LANES*ACC_W-1:0] out_data
);
    localparam int RW = H > 1 ? $clog2(H) : 1;
    localparam int CW = WD > 1 ? $clog2(WD) : 1;
    localparam logic [RW-1:0] LAST_R = RW'(H - 1);
    localparam logic [CW-1:0] LAST_C = CW'(WD - 1);

    if (OP == 1 && ACC_W != W) begin : g_bad_width
        $error("fg_stream_reduce: a maximum is as wide as its lanes (ACC_W == W)");
    end
    if (OP == 0 && ACC_W < W) begin : g_bad_sum
        $error("fg_stream_reduce: a sum needs ACC_W >= W");
    end
    if (KH < 1 || KW < 1 || KH > H || KW > WD) begin : g_bad_window
        $error("fg_stream_reduce: the window must fit the frame");
    end

    logic [RW-1:0] r;
    logic [CW-1:0] c;
    logic core_free;
    localparam logic [RW-1:0] LAST_KR = RW'(KH - 1);
    localparam logic [CW-1:0] LAST_KC = CW'(KW - 1);
    wire first = r == '0 && c == '0;
    logic row_in, column_in;  // the pixel is inside the window
    if (KH < H) begin : g_rows
        assign row_in = r <= LAST_KR;
    end else begin : g_every_row
        assign row_in = 1'b1;
    end
    if (KW < WD) begin : g_columns
        assign column_in = c <= LAST_KC;
    end else begin : g_every_column
        assign column_in = 1'b1;
    end
    wire in_window = row_in && column_in;
    wire completes = r == LAST_KR && c == LAST_KC;
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

    for (genvar l = 0; l < LANES; l++) begin : g_lane
        wire [W-1:0] x = in_data[l*W +: W];
        logic [ACC_W-1:0] acc;  // the frame so far (not counting this cycle's pixel)
        logic [ACC_W-1:0] next;  // with this cycle's pixel
        if (OP == 0) begin : g_sum
            wire [ACC_W-1:0] wide = SIGNED != 0 ? ACC_W'($signed(x)) : ACC_W'(x);
            assign next = first ? wide : acc + wide;
        end else begin : g_max
            wire larger = SIGNED != 0 ? $signed(x) > $signed(acc) : x > acc;
            assign next = (first || larger) ? x : acc;
        end
        always_ff @(posedge clk) begin
            if (accept && in_window) acc <= next;
            if (issue) out_data[l*ACC_W +: ACC_W] <= next;
        end
    end
endmodule
