// tb_stream: the stream library (rtl/fg_stream_*.sv) in one design (one Verilator build).
//
// Units: every module in several parameterisations side by side, instance i of a kind on bit
// i (or field i) of that kind's buses; and four chains of engines (tb_stream_engine: [pad ->]
// window or collect, an fg_pipe core, a FIFO) as the stream builder wires them.  The cocotb
// tests (tests/test_rtl_stream_library.py) read every parameter from the *_config outputs
// (8-bit fields), build compiler.backends.rtl.stream_model of the same, and compare every
// output every cycle.  Pixels are PW bits everywhere.

/* verilator lint_off DECLFILENAME */
package tb_stream_configs;
    localparam int PW = 8;
    // fg_stream_pad: H, WD, PT, PB, PL, PR, VALUE
    localparam int NP = 5;
    localparam bit [NP-1:0][6:0][7:0] PAD_ = '{
        '{3, 4, 0, 0, 0, 0, 0},  // no padding: a pass-through
        '{3, 4, 1, 1, 1, 1, 0},
        '{2, 5, 2, 0, 0, 3, 0},
        '{1, 6, 0, 1, 2, 0, 0},  // a 1-D frame
        '{3, 3, 1, 1, 1, 1, 128} // a max pool's padding: the least 8-bit signed value
    };
    // fg_stream_window: H, WD, KH, KW, SH, SW, DH, DW, II
    localparam int NW = 7;
    localparam bit [NW-1:0][8:0][7:0] WIN_ = '{
        '{3, 4, 1, 1, 1, 1, 1, 1, 1},   // 1x1
        '{5, 6, 3, 3, 1, 1, 1, 1, 1},   // 3x3 stride 1
        '{6, 5, 2, 2, 2, 2, 1, 1, 3},   // 2x2 stride 2 (the last column is in no window), II 3
        '{10, 11, 5, 5, 1, 1, 2, 2, 1}, // 5x5 dilation 2
        '{1, 9, 1, 3, 1, 2, 1, 1, 1},   // 1-D: H = 1, stride 2
        '{4, 3, 2, 3, 1, 1, 1, 1, 3},   // a kernel as wide as the frame, II 3
        '{7, 7, 3, 3, 2, 2, 1, 1, 2}    // 3x3 stride 2, II 2
    };
    localparam int MAX_TAPS = 25;
    // fg_stream_fifo: DEPTH, and the latency from issue to in_valid of the bench's core
    localparam int NF = 3;
    localparam bit [NF-1:0][1:0][7:0] FIFO_ = '{'{1, 0}, '{2, 1}, '{5, 3}};
    // fg_stream_collect: N, II
    localparam int NC = 4;
    localparam bit [NC-1:0][1:0][7:0] COLLECT_ = '{'{1, 1}, '{7, 1}, '{3, 3}, '{1, 4}};
    localparam int MAX_BEATS = 7;
    // fg_stream_reduce (lanes of PW bits): LANES, H, WD, OP, SIGNED, ACC_W, II
    localparam int NR = 4;
    localparam bit [NR-1:0][6:0][7:0] REDUCE_ = '{
        '{2, 3, 4, 0, 1, 12, 1},  // signed sums
        '{2, 1, 5, 1, 1, 8, 3},   // signed maxima of a 1-D frame, II 3
        '{1, 2, 2, 1, 0, 8, 1},   // unsigned maxima
        '{3, 2, 3, 0, 0, 11, 2}   // unsigned sums, II 2
    };
    localparam int MAX_LANES = 3, MAX_ACC_W = 12;

    // field j of unit i, in the order written above ('{...} lists the highest index first)
    function automatic int pad(int i, int j);
        return int'(PAD_[NP-1-i][6-j]);
    endfunction
    function automatic int win(int i, int j);
        return int'(WIN_[NW-1-i][8-j]);
    endfunction
    function automatic int fifo(int i, int j);
        return int'(FIFO_[NF-1-i][1-j]);
    endfunction
    function automatic int collect(int i, int j);
        return int'(COLLECT_[NC-1-i][1-j]);
    endfunction
    function automatic int reduce(int i, int j);
        return int'(REDUCE_[NR-1-i][6-j]);
    endfunction
endpackage

// One engine of a chain: [fg_stream_pad ->] fg_stream_window -> core -> fg_stream_fifo
// (COLLECT = 0), or fg_stream_collect -> core -> fg_stream_fifo (COLLECT = N).  The core is
// fg_pipe (LATENCY) over the window (or vector), or with SUM over the sum of its PW-bit
// fields modulo 2**PW.
module tb_stream_engine #(
    parameter int W = 8,
    parameter int PAD = 0,
    parameter int H = 4, WD = 4, PT = 0, PB = 0, PL = 0, PR = 0,
    parameter int KH = 1, KW = 1, SH = 1, SW = 1, DH = 1, DW = 1, II = 1,
    parameter int COLLECT = 0,
    parameter int LATENCY = 1,
    parameter int DEPTH = LATENCY + 3,
    parameter int SUM = 0,
    parameter int CORE_W = (COLLECT > 0 ? COLLECT : KH * KW) * W,
    parameter int OUT_W = SUM != 0 ? W : CORE_W
) (
    input  logic             clk,
    input  logic             rst,
    input  logic             in_valid,
    input  logic [W-1:0]     in_data,
    output logic             in_ready,
    output logic             out_valid,
    output logic [OUT_W-1:0] out_data,
    input  logic             out_ready
);
    logic credit, issue, core_valid, core_start;
    logic [CORE_W-1:0] core_data;
    if (COLLECT > 0) begin : g_collect
        fg_stream_collect #(.W(W), .N(COLLECT)) u_collect (.clk, .rst, .in_valid, .in_data, .in_ready,
            .out_valid(core_valid), .out_data(core_data), .out_ready(credit));
        assign issue = core_valid && credit;
        assign core_start = issue;
    end else begin : g_window
        localparam int FH = H + (PAD != 0 ? PT + PB : 0);
        localparam int FW = WD + (PAD != 0 ? PL + PR : 0);
        logic window_valid, window_ready;
        logic [W-1:0] window_data;
        if (PAD != 0) begin : g_pad
            fg_stream_pad #(.W(W), .H(H), .WD(WD), .PT(PT), .PB(PB), .PL(PL), .PR(PR)) u_pad (.clk, .rst,
                .in_valid, .in_data, .in_ready, .out_valid(window_valid), .out_data(window_data),
                .out_ready(window_ready));
        end else begin : g_direct
            assign window_valid = in_valid;
            assign window_data = in_data;
            assign in_ready = window_ready;
        end
        fg_stream_window #(.W(W), .H(FH), .WD(FW), .KH(KH), .KW(KW), .SH(SH), .SW(SW), .DH(DH), .DW(DW),
                           .II(II)) u_window (
            .clk, .rst, .in_valid(window_valid), .in_data(window_data), .in_ready(window_ready), .credit,
            .issue, .out_valid(core_valid), .out_data(core_data));
        assign core_start = core_valid;
    end

    logic [OUT_W-1:0] core_in;
    if (SUM != 0) begin : g_sum
        always_comb begin
            core_in = '0;
            for (int i = 0; i < CORE_W / W; i++) core_in = core_in + core_data[i*W +: W];
        end
    end else begin : g_identity
        assign core_in = core_data;
    end
    logic result_valid;
    logic [OUT_W-1:0] result;
    fg_pipe #(.W(OUT_W), .DEPTH(LATENCY)) u_core (.clk, .rst, .in_valid(core_start),
        .in_data(core_in), .out_valid(result_valid), .out_data(result));
    fg_stream_fifo #(.W(OUT_W), .DEPTH(DEPTH)) u_fifo (.clk, .rst, .issue, .credit, .in_valid(result_valid),
        .in_data(result), .out_valid, .out_ready, .out_data);
endmodule

module tb_stream
    import tb_stream_configs::*;
(
    input  logic                    clk,
    input  logic                    rst,
    // fg_stream_pad units
    input  logic [NP-1:0]           pad_in_valid,
    input  logic [NP*PW-1:0]        pad_in_data,
    output logic [NP-1:0]           pad_in_ready,
    output logic [NP-1:0]           pad_out_valid,
    output logic [NP*PW-1:0]        pad_out_data,
    input  logic [NP-1:0]           pad_out_ready,
    output logic [NP*7*8-1:0]       pad_config,
    // fg_stream_window units (out_data: MAX_TAPS*PW bits each, the low KH*KW*PW used)
    input  logic [NW-1:0]           win_in_valid,
    input  logic [NW*PW-1:0]        win_in_data,
    output logic [NW-1:0]           win_in_ready,
    input  logic [NW-1:0]           win_credit,
    output logic [NW-1:0]           win_issue,
    output logic [NW-1:0]           win_out_valid,
    output logic [NW*MAX_TAPS*PW-1:0] win_out_data,
    output logic [NW*9*8-1:0]       win_config,
    // fg_stream_fifo units
    input  logic [NF-1:0]           fifo_issue,
    output logic [NF-1:0]           fifo_credit,
    input  logic [NF-1:0]           fifo_in_valid,
    input  logic [NF*PW-1:0]        fifo_in_data,
    output logic [NF-1:0]           fifo_out_valid,
    input  logic [NF-1:0]           fifo_out_ready,
    output logic [NF*PW-1:0]        fifo_out_data,
    output logic [NF*2*8-1:0]       fifo_config,
    // fg_stream_collect units (out_data: MAX_BEATS*PW bits each, the low N*PW used)
    input  logic [NC-1:0]           col_in_valid,
    input  logic [NC*PW-1:0]        col_in_data,
    output logic [NC-1:0]           col_in_ready,
    output logic [NC-1:0]           col_out_valid,
    output logic [NC*MAX_BEATS*PW-1:0] col_out_data,
    input  logic [NC-1:0]           col_out_ready,
    output logic [NC*2*8-1:0]       col_config,
    // fg_stream_reduce units (in_data: MAX_LANES*PW bits, out_data: MAX_LANES*MAX_ACC_W bits each)
    input  logic [NR-1:0]           red_in_valid,
    input  logic [NR*MAX_LANES*PW-1:0] red_in_data,
    output logic [NR-1:0]           red_in_ready,
    input  logic [NR-1:0]           red_credit,
    output logic [NR-1:0]           red_issue,
    output logic [NR-1:0]           red_out_valid,
    output logic [NR*MAX_LANES*MAX_ACC_W-1:0] red_out_data,
    output logic [NR*7*8-1:0]       red_config,
    // chains (tests/test_rtl_stream_library.py, CHAINS, holds their engines)
    input  logic [3:0]              chain_in_valid,
    input  logic [4*PW-1:0]         chain_in_data,
    output logic [3:0]              chain_in_ready,
    output logic [3:0]              chain_out_valid,
    input  logic [3:0]              chain_out_ready,
    output logic [9*PW-1:0]         chain_a_out_data,
    output logic [PW-1:0]           chain_b_out_data,
    output logic [PW-1:0]           chain_c_out_data,
    output logic [2*PW-1:0]         chain_d_out_data
);
    for (genvar i = 0; i < NP; i++) begin : g_pad
        for (genvar j = 0; j < 7; j++) begin : g_config
            assign pad_config[(i*7 + j)*8 +: 8] = 8'(pad(i, j));
        end
        fg_stream_pad #(.W(PW), .H(pad(i, 0)), .WD(pad(i, 1)), .PT(pad(i, 2)), .PB(pad(i, 3)), .PL(pad(i, 4)),
                        .PR(pad(i, 5)), .VALUE(PW'(pad(i, 6)))) u_pad (
            .clk, .rst, .in_valid(pad_in_valid[i]), .in_data(pad_in_data[i*PW +: PW]), .in_ready(pad_in_ready[i]),
            .out_valid(pad_out_valid[i]), .out_data(pad_out_data[i*PW +: PW]), .out_ready(pad_out_ready[i]));
    end

    for (genvar i = 0; i < NW; i++) begin : g_window
        localparam int TAPS = win(i, 2) * win(i, 3);
        for (genvar j = 0; j < 9; j++) begin : g_config
            assign win_config[(i*9 + j)*8 +: 8] = 8'(win(i, j));
        end
        fg_stream_window #(.W(PW), .H(win(i, 0)), .WD(win(i, 1)), .KH(win(i, 2)), .KW(win(i, 3)), .SH(win(i, 4)),
                           .SW(win(i, 5)), .DH(win(i, 6)), .DW(win(i, 7)), .II(win(i, 8))) u_window (
            .clk, .rst, .in_valid(win_in_valid[i]), .in_data(win_in_data[i*PW +: PW]), .in_ready(win_in_ready[i]),
            .credit(win_credit[i]), .issue(win_issue[i]), .out_valid(win_out_valid[i]),
            .out_data(win_out_data[i*MAX_TAPS*PW +: TAPS*PW]));
        if (TAPS < MAX_TAPS) begin : g_unused_taps
            assign win_out_data[i*MAX_TAPS*PW + TAPS*PW +: (MAX_TAPS - TAPS)*PW] = '0;
        end
    end

    for (genvar i = 0; i < NF; i++) begin : g_fifo
        assign fifo_config[i*16 +: 16] = {8'(fifo(i, 1)), 8'(fifo(i, 0))};
        fg_stream_fifo #(.W(PW), .DEPTH(fifo(i, 0))) u_fifo (
            .clk, .rst, .issue(fifo_issue[i]), .credit(fifo_credit[i]), .in_valid(fifo_in_valid[i]),
            .in_data(fifo_in_data[i*PW +: PW]), .out_valid(fifo_out_valid[i]), .out_ready(fifo_out_ready[i]),
            .out_data(fifo_out_data[i*PW +: PW]));
    end

    for (genvar i = 0; i < NC; i++) begin : g_collect
        localparam int N = collect(i, 0);
        assign col_config[i*16 +: 16] = {8'(collect(i, 1)), 8'(N)};
        fg_stream_collect #(.W(PW), .N(N), .II(collect(i, 1))) u_collect (
            .clk, .rst, .in_valid(col_in_valid[i]), .in_data(col_in_data[i*PW +: PW]), .in_ready(col_in_ready[i]),
            .out_valid(col_out_valid[i]), .out_data(col_out_data[i*MAX_BEATS*PW +: N*PW]),
            .out_ready(col_out_ready[i]));
        if (N < MAX_BEATS) begin : g_unused_beats
            assign col_out_data[i*MAX_BEATS*PW + N*PW +: (MAX_BEATS - N)*PW] = '0;
        end
    end

    for (genvar i = 0; i < NR; i++) begin : g_reduce
        localparam int LANES = reduce(i, 0), ACC_W = reduce(i, 5);
        for (genvar j = 0; j < 7; j++) begin : g_config
            assign red_config[(i*7 + j)*8 +: 8] = 8'(reduce(i, j));
        end
        fg_stream_reduce #(.W(PW), .LANES(LANES), .H(reduce(i, 1)), .WD(reduce(i, 2)), .OP(reduce(i, 3)),
                           .SIGNED(reduce(i, 4)), .ACC_W(ACC_W), .II(reduce(i, 6))) u_reduce (
            .clk, .rst, .in_valid(red_in_valid[i]), .in_data(red_in_data[i*MAX_LANES*PW +: LANES*PW]),
            .in_ready(red_in_ready[i]), .credit(red_credit[i]), .issue(red_issue[i]), .out_valid(red_out_valid[i]),
            .out_data(red_out_data[i*MAX_LANES*MAX_ACC_W +: LANES*ACC_W]));
        if (LANES*ACC_W < MAX_LANES*MAX_ACC_W) begin : g_unused_lanes
            assign red_out_data[i*MAX_LANES*MAX_ACC_W + LANES*ACC_W +: MAX_LANES*MAX_ACC_W - LANES*ACC_W] = '0;
        end
        if (LANES < MAX_LANES) begin : g_unused_inputs
            wire unused = ^red_in_data[i*MAX_LANES*PW + LANES*PW +: (MAX_LANES - LANES)*PW];
        end
    end

    // chain a: a padded 3x3 convolution's window at full rate, its taps out unchanged
    tb_stream_engine #(.PAD(1), .H(4), .WD(5), .PT(1), .PB(1), .PL(1), .PR(1), .KH(3), .KW(3), .LATENCY(2)) u_chain_a (
        .clk, .rst, .in_valid(chain_in_valid[0]), .in_data(chain_in_data[0 +: PW]), .in_ready(chain_in_ready[0]),
        .out_valid(chain_out_valid[0]), .out_data(chain_a_out_data), .out_ready(chain_out_ready[0]));
    // chains b and c: one token per pixel; DEPTH = latency + 2 sustains it (b), one less does not (c)
    tb_stream_engine #(.H(3), .WD(8), .LATENCY(3), .DEPTH(6)) u_chain_b (
        .clk, .rst, .in_valid(chain_in_valid[1]), .in_data(chain_in_data[PW +: PW]), .in_ready(chain_in_ready[1]),
        .out_valid(chain_out_valid[1]), .out_data(chain_b_out_data), .out_ready(chain_out_ready[1]));
    tb_stream_engine #(.H(3), .WD(8), .LATENCY(3), .DEPTH(5)) u_chain_c (
        .clk, .rst, .in_valid(chain_in_valid[2]), .in_data(chain_in_data[2*PW +: PW]), .in_ready(chain_in_ready[2]),
        .out_valid(chain_out_valid[2]), .out_data(chain_c_out_data), .out_ready(chain_out_ready[2]));
    // chain d: conv 3x3 pad 1 -> pool 2x2 stride 2 folded (II 3) -> collect 2 beats
    logic d0_valid, d0_ready, d1_valid, d1_ready;
    logic [PW-1:0] d0_data, d1_data;
    tb_stream_engine #(.PAD(1), .H(4), .WD(5), .PT(1), .PB(1), .PL(1), .PR(1), .KH(3), .KW(3), .LATENCY(1),
                       .DEPTH(4), .SUM(1)) u_chain_d0 (
        .clk, .rst, .in_valid(chain_in_valid[3]), .in_data(chain_in_data[3*PW +: PW]), .in_ready(chain_in_ready[3]),
        .out_valid(d0_valid), .out_data(d0_data), .out_ready(d0_ready));
    tb_stream_engine #(.H(4), .WD(5), .KH(2), .KW(2), .SH(2), .SW(2), .II(3), .LATENCY(2), .DEPTH(5), .SUM(1))
        u_chain_d1 (.clk, .rst, .in_valid(d0_valid), .in_data(d0_data), .in_ready(d0_ready),
                    .out_valid(d1_valid), .out_data(d1_data), .out_ready(d1_ready));
    tb_stream_engine #(.COLLECT(2), .LATENCY(0), .DEPTH(2)) u_chain_d2 (
        .clk, .rst, .in_valid(d1_valid), .in_data(d1_data), .in_ready(d1_ready),
        .out_valid(chain_out_valid[3]), .out_data(chain_d_out_data), .out_ready(chain_out_ready[3]));
endmodule
/* verilator lint_on DECLFILENAME */
