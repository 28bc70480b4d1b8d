// fg_maxpool: the maximum of N fixed-point mantissas of one format (one pooling window), as
// a balanced binary tree of comparators with optional pipelining.
//
// Parameters
//   N                 number of inputs (>= 1); element i is in_data[i*W +: W]
//   W                 width of inputs and output (the format is unchanged)
//   SIGNED            1: two's complement, 0: unsigned
//   LEVELS_PER_STAGE  0: combinational; k > 0: a register after every k comparator levels
//                     and at the output.  Only out_valid's register chain is reset.
//
// Latency: LEVELS_PER_STAGE == 0 ? 0 : ceil(clog2(N) / LEVELS_PER_STAGE) cycles.
module fg_maxpool #(
    parameter int N                = 4,
    parameter int W                = 8,
    parameter int SIGNED           = 1,
    parameter int LEVELS_PER_STAGE = 1
) (
    input  logic           clk,
    input  logic           rst,
    input  logic           in_valid,
    input  logic [N*W-1:0] in_data,
    output logic           out_valid,
    output logic [W-1:0]   out_data
);
    fg_reduce_tree #(
        .N(N), .W(W), .SIGNED(SIGNED), .OP(1), .OUT_W(W), .LEVELS_PER_STAGE(LEVELS_PER_STAGE)
    ) u_tree (
        .clk, .rst, .in_valid, .in_data, .out_valid, .out_data
    );
endmodule
