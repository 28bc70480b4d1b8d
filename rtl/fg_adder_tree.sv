// fg_adder_tree: the exact sum of N fixed-point mantissas (all of one format), as a balanced
// binary tree of adders, each as wide as its operands + 1, with optional pipelining.
//
// Parameters
//   N                 number of inputs (>= 1); element i is in_data[i*W +: W]
//   W                 input width
//   SIGNED            1: two's complement, 0: unsigned (inputs and output)
//   OUT_W             output width; default W + clog2(N) holds every sum.  A narrower OUT_W
//                     keeps the low OUT_W bits (exact when the sum is known to fit), a
//                     wider one sign/zero-extends.
//   LEVELS_PER_STAGE  0: combinational; k > 0: a register after every k adder levels and at
//                     the output.  Only out_valid's register chain is reset.
//
// Latency: LEVELS_PER_STAGE == 0 ? 0 : ceil(clog2(N) / LEVELS_PER_STAGE) cycles
// (N == 1 has no adder level: latency 0).
module fg_adder_tree #(
    parameter int N                = 4,
    parameter int W                = 8,
    parameter int SIGNED           = 1,
    parameter int OUT_W            = W + $clog2(N),
    parameter int LEVELS_PER_STAGE = 1
) (
    input  logic             clk,
    input  logic             rst,
    input  logic             in_valid,
    input  logic [N*W-1:0]   in_data,
    output logic             out_valid,
    output logic [OUT_W-1:0] out_data
);
    fg_reduce_tree #(
        .N(N), .W(W), .SIGNED(SIGNED), .OP(0), .OUT_W(OUT_W), .LEVELS_PER_STAGE(LEVELS_PER_STAGE)
    ) u_tree (
        .clk, .rst, .in_valid, .in_data, .out_valid, .out_data
    );
endmodule
