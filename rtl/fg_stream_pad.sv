// fg_stream_pad: zero padding around a raster stream of frames (one pixel per beat).
//
// It walks the padded frame of (H + PT + PB) rows by (WD + PL + PR) columns with counters
// (r, c) that advance on each output transfer and wrap at the end of the frame.  At a pad
// position it sends a zero beat of its own (out_valid = 1, in_ready = 0); at a real position
// it is a combinational pass-through (out_valid = in_valid, out_data = in_data, in_ready =
// out_ready).  The incoming stream is the H x WD frame in raster order, frame after frame.
//
// Parameters
//   W               beat width (all lanes of one pixel)
//   H, WD           the incoming frame's rows and columns
//   PT, PB, PL, PR  zero rows above / below, zero columns left / right (>= 0)
//   VALUE           the beat a pad position sends (default all zeros; a max pool pads with
//                   each lane's least value, which never wins)
//
// Timing: no register on the data path (latency 0); the only state is (r, c).
// Reset: synchronous, active-high rst sets (r, c) to the frame's first position.
module fg_stream_pad #(
    parameter int W  = 8,
    parameter int H  = 4,
    parameter int WD = 4,
    parameter int PT = 1,
    parameter int PB = 1,
    parameter int PL = 1,
    parameter int PR = 1,
    parameter logic [W-1:0] VALUE = '0
) (
    input  logic         clk,
    input  logic         rst,
    input  logic         in_valid,
    input  logic [W-1:0] in_data,
    output logic         in_ready,
    output logic         out_valid,
    output logic [W-1:0] out_data,
    input  logic         out_ready
);
    localparam int FH = H + PT + PB;  // the padded frame
    localparam int FW = WD + PL + PR;
    localparam int RW = FH > 1 ? $clog2(FH) : 1;
    localparam int CW = FW > 1 ? $clog2(FW) : 1;
    localparam logic [RW-1:0] LAST_R = RW'(FH - 1);
    localparam logic [CW-1:0] LAST_C = CW'(FW - 1);

    if (H < 1 || WD < 1) begin : g_bad_frame
        $error("fg_stream_pad: H and WD must be >= 1");
    end
    if (PT < 0 || PB < 0 || PL < 0 || PR < 0) begin : g_bad_pads
        $error("fg_stream_pad: PT, PB, PL and PR must be >= 0");
    end

    // which rows and columns of the padded frame are padding (constants: LUTs on r and c)
    function automatic logic [FH-1:0] pad_rows();
        for (int i = 0; i < FH; i++) pad_rows[i] = i < PT || i >= PT + H;
    endfunction
    function automatic logic [FW-1:0] pad_columns();
        for (int i = 0; i < FW; i++) pad_columns[i] = i < PL || i >= PL + WD;
    endfunction
    localparam logic [FH-1:0] PAD_ROW = pad_rows();
    localparam logic [FW-1:0] PAD_COLUMN = pad_columns();

    logic [RW-1:0] r;
    logic [CW-1:0] c;
    wire at_pad = PAD_ROW[r] || PAD_COLUMN[c];

    assign out_valid = at_pad || in_valid;
    assign out_data = at_pad ? VALUE : in_data;
    assign in_ready = !at_pad && out_ready;

    always_ff @(posedge clk) begin
        if (rst) begin
            r <= '0;
            c <= '0;
        end else if (out_valid && out_ready) begin
            if (c == LAST_C) begin
                c <= '0;
                r <= (r == LAST_R) ? '0 : r + 1'b1;
            end else begin
                c <= c + 1'b1;
            end
        end
    end
endmodule
