// tb_datapath: every datapath module of rtl/ in several parameterisations, side by side in
// one design (one Verilator build).  Unit <u> has input <u>_in and output <u>_out; a clocked
// unit also has <u>_valid (its out_valid; all share in_valid, clk and rst).  The cocotb test
// (tests/rtl_library_cocotb.py, DATAPATH_UNITS) holds the same parameters, the latencies the
// module headers document, and numpy references.

module tb_datapath (
    input  logic        clk,
    input  logic        rst,
    input  logic        in_valid,
    // --- combinational -----------------------------------------------------------------
    input  logic [7:0]  relu_a_in,
    output logic [6:0]  relu_a_out,
    input  logic [5:0]  relu_b_in,
    output logic [5:0]  relu_b_out,
    input  logic [7:0]  relu_c_in,
    output logic [9:0]  relu_c_out,
    input  logic [0:0]  relu_d_in,
    output logic [0:0]  relu_d_out,
    input  logic [7:0]  clip_a_in,
    output logic [7:0]  clip_a_out,
    input  logic [7:0]  clip_b_in,
    output logic [6:0]  clip_b_out,
    input  logic [5:0]  clip_c_in,
    output logic [5:0]  clip_c_out,
    input  logic [7:0]  clip_d_in,
    output logic [7:0]  clip_d_out,
    // --- clocked, with valid -------------------------------------------------------------
    input  logic [7:0]  pipe_0_in,
    output logic [7:0]  pipe_0_out,
    output logic        pipe_0_valid,
    input  logic [7:0]  pipe_1_in,
    output logic [7:0]  pipe_1_out,
    output logic        pipe_1_valid,
    input  logic [7:0]  pipe_3_in,
    output logic [7:0]  pipe_3_out,
    output logic        pipe_3_valid,
    input  logic [47:0] add_a_in,
    output logic [8:0]  add_a_out,
    output logic        add_a_valid,
    input  logic [34:0] add_b_in,
    output logic [9:0]  add_b_out,
    output logic        add_b_valid,
    input  logic [34:0] add_c_in,
    output logic [7:0]  add_c_out,
    output logic        add_c_valid,
    input  logic [7:0]  add_d_in,
    output logic [7:0]  add_d_out,
    output logic        add_d_valid,
    input  logic [71:0] add_e_in,
    output logic [15:0] add_e_out,
    output logic        add_e_valid,
    input  logic [47:0] add_f_in,
    output logic [8:0]  add_f_out,
    output logic        add_f_valid,
    input  logic [11:0] add_g_in,
    output logic [2:0]  add_g_out,
    output logic        add_g_valid,
    input  logic [71:0] max_a_in,
    output logic [7:0]  max_a_out,
    output logic        max_a_valid,
    input  logic [19:0] max_b_in,
    output logic [4:0]  max_b_out,
    output logic        max_b_valid,
    input  logic [17:0] max_c_in,
    output logic [5:0]  max_c_out,
    output logic        max_c_valid,
    input  logic [71:0] avg_a_in,
    output logic [23:0] avg_a_out,
    output logic        avg_a_valid,
    input  logic [23:0] avg_b_in,
    output logic [13:0] avg_b_out,
    output logic        avg_b_valid,
    input  logic [23:0] avg_c_in,
    output logic [12:0] avg_c_out,
    output logic        avg_c_valid,
    input  logic [5:0]  rom_a_in,
    output logic [9:0]  rom_a_out,
    output logic        rom_a_valid,
    input  logic [4:0]  rom_b_in,
    output logic [6:0]  rom_b_out,
    output logic        rom_b_valid
);
    // --- relu ----------------------------------------------------------------------------
    fg_relu #(.W(8), .SIGNED(1)) u_relu_a (.in_data(relu_a_in), .out_data(relu_a_out));
    fg_relu #(.W(6), .SIGNED(0)) u_relu_b (.in_data(relu_b_in), .out_data(relu_b_out));
    fg_relu #(.W(8), .SIGNED(1), .OUT_W(10)) u_relu_c (.in_data(relu_c_in), .out_data(relu_c_out));
    fg_relu #(.W(1), .SIGNED(1)) u_relu_d (.in_data(relu_d_in), .out_data(relu_d_out));

    // --- clip ----------------------------------------------------------------------------
    fg_clip #(.W(8), .SIGNED(1), .LO(-9'sd20), .HI(9'sd37)) u_clip_a (.in_data(clip_a_in), .out_data(clip_a_out));
    // ReLU6 at 4 fractional bits: the result fits an unsigned 7-bit value
    fg_clip #(.W(8), .SIGNED(1), .LO(9'sd0), .HI(9'sd96), .OUT_W(7), .OUT_SIGNED(0)) u_clip_b (
        .in_data(clip_b_in), .out_data(clip_b_out));
    fg_clip #(.W(6), .SIGNED(0), .LO(7'sd5), .HI(7'sd63)) u_clip_c (.in_data(clip_c_in), .out_data(clip_c_out));
    // LO > HI: always HI (max first, then min, as numpy.minimum(numpy.maximum(x, lo), hi))
    fg_clip #(.W(8), .SIGNED(1), .LO(9'sd10), .HI(-9'sd3)) u_clip_d (.in_data(clip_d_in), .out_data(clip_d_out));

    // --- pipe ----------------------------------------------------------------------------
    fg_pipe #(.W(8), .DEPTH(0)) u_pipe_0 (.clk, .rst, .in_valid, .in_data(pipe_0_in),
        .out_valid(pipe_0_valid), .out_data(pipe_0_out));
    fg_pipe #(.W(8), .DEPTH(1)) u_pipe_1 (.clk, .rst, .in_valid, .in_data(pipe_1_in),
        .out_valid(pipe_1_valid), .out_data(pipe_1_out));
    fg_pipe #(.W(8), .DEPTH(3)) u_pipe_3 (.clk, .rst, .in_valid, .in_data(pipe_3_in),
        .out_valid(pipe_3_valid), .out_data(pipe_3_out));

    // --- adder trees ---------------------------------------------------------------------
    fg_adder_tree #(.N(8), .W(6), .SIGNED(1), .LEVELS_PER_STAGE(1)) u_add_a (.clk, .rst, .in_valid,
        .in_data(add_a_in), .out_valid(add_a_valid), .out_data(add_a_out));
    fg_adder_tree #(.N(5), .W(7), .SIGNED(0), .LEVELS_PER_STAGE(2)) u_add_b (.clk, .rst, .in_valid,
        .in_data(add_b_in), .out_valid(add_b_valid), .out_data(add_b_out));
    fg_adder_tree #(.N(7), .W(5), .SIGNED(1), .LEVELS_PER_STAGE(0)) u_add_c (.clk, .rst, .in_valid,
        .in_data(add_c_in), .out_valid(add_c_valid), .out_data(add_c_out));
    fg_adder_tree #(.N(1), .W(8), .SIGNED(1), .LEVELS_PER_STAGE(1)) u_add_d (.clk, .rst, .in_valid,
        .in_data(add_d_in), .out_valid(add_d_valid), .out_data(add_d_out));
    fg_adder_tree #(.N(9), .W(8), .SIGNED(1), .OUT_W(16), .LEVELS_PER_STAGE(3)) u_add_e (.clk, .rst,
        .in_valid, .in_data(add_e_in), .out_valid(add_e_valid), .out_data(add_e_out));
    // narrower than the exact sum: the low 9 bits
    fg_adder_tree #(.N(6), .W(8), .SIGNED(1), .OUT_W(9), .LEVELS_PER_STAGE(1)) u_add_f (.clk, .rst,
        .in_valid, .in_data(add_f_in), .out_valid(add_f_valid), .out_data(add_f_out));
    // narrower than the inputs: the low 3 bits
    fg_adder_tree #(.N(3), .W(4), .SIGNED(0), .OUT_W(3), .LEVELS_PER_STAGE(1)) u_add_g (.clk, .rst,
        .in_valid, .in_data(add_g_in), .out_valid(add_g_valid), .out_data(add_g_out));

    // --- maxpool -------------------------------------------------------------------------
    fg_maxpool #(.N(9), .W(8), .SIGNED(1), .LEVELS_PER_STAGE(1)) u_max_a (.clk, .rst, .in_valid,
        .in_data(max_a_in), .out_valid(max_a_valid), .out_data(max_a_out));
    fg_maxpool #(.N(4), .W(5), .SIGNED(0), .LEVELS_PER_STAGE(0)) u_max_b (.clk, .rst, .in_valid,
        .in_data(max_b_in), .out_valid(max_b_valid), .out_data(max_b_out));
    fg_maxpool #(.N(3), .W(6), .SIGNED(1), .LEVELS_PER_STAGE(2)) u_max_c (.clk, .rst, .in_valid,
        .in_data(max_c_in), .out_valid(max_c_valid), .out_data(max_c_out));

    // --- avgpool -------------------------------------------------------------------------
    // 3x3 window, 1/9 ~ 455 * 2**-12
    fg_avgpool #(.N(9), .W(8), .SIGNED(1), .RECIP_W(12), .RECIP_SIGNED(0), .RECIP(12'd455),
        .LEVELS_PER_STAGE(2), .PRODUCT_REG(1)) u_avg_a (.clk, .rst, .in_valid, .in_data(avg_a_in),
        .out_valid(avg_a_valid), .out_data(avg_a_out));
    // unsigned inputs times a negative reciprocal, all combinational
    fg_avgpool #(.N(4), .W(6), .SIGNED(0), .RECIP_W(6), .RECIP_SIGNED(1), .RECIP(-6'sd21),
        .LEVELS_PER_STAGE(0), .PRODUCT_REG(0)) u_avg_b (.clk, .rst, .in_valid, .in_data(avg_b_in),
        .out_valid(avg_b_valid), .out_data(avg_b_out));
    // signed inputs times the most negative reciprocal: the largest product magnitude
    fg_avgpool #(.N(4), .W(6), .SIGNED(1), .RECIP_W(5), .RECIP_SIGNED(1), .RECIP(-5'sd16),
        .LEVELS_PER_STAGE(1), .PRODUCT_REG(1)) u_avg_c (.clk, .rst, .in_valid, .in_data(avg_c_in),
        .out_valid(avg_c_valid), .out_data(avg_c_out));

    // --- rom -----------------------------------------------------------------------------
    // round(1023 * sigmoid(code / 8)) for the signed codes -32..31, in code order
    fg_rom #(.ADDR_W(6), .DATA_W(10), .ADDR_SIGNED(1), .REGISTERED(0), .CONTENTS(640'hfabe7f93e1f77d9f53cef23c2eebb1ea39de4b85ddf68d5f44cc71bc12ecb4ab7a6a7d97a3f87e00781c068582595484b5133ece4338bb2a0972207a1b46215c4e1143d0dc310ac260881e06c1805412))
        u_rom_a (.clk, .rst, .in_valid, .in_data(rom_a_in), .out_valid(rom_a_valid), .out_data(rom_a_out));
    // (37 * k + 11) mod 128 for the unsigned codes 0..31, registered read
    fg_rom #(.ADDR_W(5), .DATA_W(7), .ADDR_SIGNED(0), .REGISTERED(1), .CONTENTS(224'h0d85e17e535403bce4a6f949405b6c4764745f6c331da621ff55580b))
        u_rom_b (.clk, .rst, .in_valid, .in_data(rom_b_in), .out_valid(rom_b_valid), .out_data(rom_b_out));
endmodule
