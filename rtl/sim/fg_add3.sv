// Simulation model of fg_add3 (rtl/fg_add3.sv): the same module, parameters and ports, its sum
// written as one expression, y = a + (b' << LO) + (c' << LO) mod 2**W (b' = -b when NEG_B, c'
// = -c when NEG_C).  Simulators read this file instead of rtl/fg_add3.sv (rtl_sources with
// simulation=True; `finegrain sim --primitives` simulates the LUT6_2/CARRY implementation
// instead): a design of thousands of three-term adders verilates as fast as two-term sums.
// tests/test_ternary_adders.py proves the two files equal with yosys (SAT, every sign and both
// carry chains) and checks both against integers in Verilator.
//
// Latency: 0 cycles (combinational).
module fg_add3 #(
    parameter int W      = 8,
    parameter int LO     = 0,
    parameter int NEG_B  = 0,
    parameter int NEG_C  = 0,
    parameter int CHAIN  = 8
) (
    input  logic [W-1:0]    a,
    input  logic [W-LO-1:0] b,
    input  logic [W-LO-1:0] c,
    output logic [W-1:0]    y
);
    if (LO < 0 || LO >= W) begin : g_bad_lo
        $error("fg_add3: LO must be in [0, W)");
    end
    if (CHAIN != 4 && CHAIN != 8) begin : g_bad_chain
        $error("fg_add3: CHAIN must be 4 or 8");
    end

    logic [W-1:0] b_placed, c_placed;
    assign b_placed = {b, {LO{1'b0}}};
    assign c_placed = {c, {LO{1'b0}}};
    assign y = a + ((NEG_B != 0) ? -b_placed : b_placed) + ((NEG_C != 0) ? -c_placed : c_placed);
endmodule
