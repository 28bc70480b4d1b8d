// tb_stream_reduce: fg_stream_reduce (rtl/fg_stream_reduce.sv) in several parameterisations
// side by side (one Verilator build): sums and maxima, signed and unsigned lanes, II 1 to 3,
// frames of one row, of one column and of one pixel, windows smaller than the frame.  Unit i has its in_data on bits
// [i*MAX_IN +: LANES*W], its out_data on [i*MAX_OUT +: LANES*ACC_W] (unused bits zero) and its
// handshake on bit i; reduce_config gives its parameters (8-bit fields, in the order of
// REDUCE_ below) to the cocotb test (tests/test_rtl_stream.py), which models the timing with
// stream_library.Window for the one window (strides as large as the frame) and the results with
// numpy.

/* verilator lint_off DECLFILENAME */
package tb_stream_reduce_configs;
    // W, LANES, H, WD, KH, KW, OP (0 sum, 1 max), SIGNED, ACC_W, II
    localparam int NR = 9;
    localparam int FIELDS = 10;
    localparam bit [NR-1:0][FIELDS-1:0][7:0] REDUCE_ = '{
        '{6, 3, 3, 4, 3, 4, 0, 1, 10, 1},  // sum, signed lanes: 12 x -32..31 fits 10 bits
        '{5, 2, 2, 3, 2, 3, 0, 0, 8, 3},   // sum, unsigned, II 3
        '{4, 2, 1, 5, 1, 5, 0, 1, 7, 3},   // sum, signed, a frame of one row, II 3
        '{3, 4, 5, 1, 5, 1, 0, 0, 6, 1},   // sum, unsigned, a frame of one column
        '{6, 3, 3, 2, 3, 2, 1, 1, 6, 1},   // max, signed
        '{5, 2, 4, 1, 4, 1, 1, 0, 5, 3},   // max, unsigned, a frame of one column, II 3
        '{4, 1, 1, 1, 1, 1, 1, 1, 4, 2},   // max, signed, a frame of one pixel, II 2
        '{5, 2, 4, 3, 3, 3, 0, 1, 9, 1},   // sum, signed, a 3x3 window: the last row ignored (KWS)
        '{4, 3, 3, 5, 2, 4, 1, 0, 4, 3}    // max, unsigned, a 2x4 window: a row and a column ignored
    };
    localparam int MAX_IN = 32;
    localparam int MAX_OUT = 32;

    // field j of unit i, in the order written above ('{...} lists the highest index first)
    function automatic int reduce(int i, int j);
        return int'(REDUCE_[NR-1-i][FIELDS-1-j]);
    endfunction
endpackage

module tb_stream_reduce
    import tb_stream_reduce_configs::*;
(
    input  logic                     clk,
    input  logic                     rst,
    input  logic [NR-1:0]            in_valid,
    input  logic [NR*MAX_IN-1:0]     in_data,
    output logic [NR-1:0]            in_ready,
    input  logic [NR-1:0]            credit,
    output logic [NR-1:0]            issue,
    output logic [NR-1:0]            out_valid,
    output logic [NR*MAX_OUT-1:0]    out_data,
    output logic [NR*FIELDS*8-1:0]   reduce_config
);
    for (genvar i = 0; i < NR; i++) begin : g_reduce
        localparam int W = reduce(i, 0);
        localparam int LANES = reduce(i, 1);
        localparam int ACC_W = reduce(i, 8);
        for (genvar j = 0; j < FIELDS; j++) begin : g_config
            assign reduce_config[(i*FIELDS + j)*8 +: 8] = 8'(reduce(i, j));
        end
        fg_stream_reduce #(.W(W), .LANES(LANES), .H(reduce(i, 2)), .WD(reduce(i, 3)), .KH(reduce(i, 4)),
                           .KW(reduce(i, 5)), .OP(reduce(i, 6)), .SIGNED(reduce(i, 7)), .ACC_W(ACC_W),
                           .II(reduce(i, 9))) u_reduce (
            .clk, .rst, .in_valid(in_valid[i]), .in_data(in_data[i*MAX_IN +: LANES*W]), .in_ready(in_ready[i]),
            .credit(credit[i]), .issue(issue[i]), .out_valid(out_valid[i]),
            .out_data(out_data[i*MAX_OUT +: LANES*ACC_W]));
        if (LANES * W < MAX_IN) begin : g_unused_in
            // verilator lint_off UNUSEDSIGNAL
            wire unused = ^in_data[i*MAX_IN + LANES*W +: MAX_IN - LANES*W];
            // verilator lint_on UNUSEDSIGNAL
        end
        if (LANES * ACC_W < MAX_OUT) begin : g_unused_out
            assign out_data[i*MAX_OUT + LANES*ACC_W +: MAX_OUT - LANES*ACC_W] = '0;
        end
    end
endmodule
/* verilator lint_on DECLFILENAME */
