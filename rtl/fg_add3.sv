// fg_add3: a ternary adder, y = a + (b' << LO) + (c' << LO) mod 2**W, with b' = -b when NEG_B
// (and c' = -c when NEG_C), at one LUT per bit on Xilinx 6-input-LUT fabric.
//
// The adder graphs (compiler/adder_graph.py, ternary()) fold a two-operand sum that feeds only
// one other adder into that adder, which then adds three terms: on 7-series and UltraScale(+)
// a three-input sum costs the same LUT per bit as a two-input one.  Each bit j >= LO is one
// LUT6_2 in dual-output mode with inputs a, b, c and m[j-1]: O5 = m[j] = majority(a, b', c')
// (the carry-save carry), O6 = a ^ b' ^ c' ^ m[j-1] (the propagate of s + (m << 1)); the carry
// chain adds the two with DI = m[j-1].  Negation is inversion (folded into the LUT's INIT)
// plus one: the first negated operand's one enters as the chain's carry-in, the second as
// m[-1].  The low LO bits are a's own bits (b and c have none there): wiring.
//
// Parameters
//   W       result width; a is W bits, b and c are W - LO bits (extended by the caller)
//   LO      low bits copied from a (0 <= LO < W)
//   NEG_B   1: subtract b;  NEG_C  1: subtract c
//   CHAIN   8: LUT6_2 + CARRY8 (UltraScale, UltraScale+); 4: LUT6_2 + CARRY4 (7-series)
//
// Simulators need models of LUT6_2, CARRY8 and CARRY4: rtl/xilinx/ (synthesis uses its own).
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
    localparam int N = W - LO;  // bits on the carry chain
    localparam int BLOCKS = (N + CHAIN - 1) / CHAIN;  // carry primitives
    // O6 (upper half, I5 = 1) = I0 ^ I1' ^ I2' ^ I3; O5 (lower half) = majority(I0, I1', I2')
    localparam logic [63:0] INIT = (NEG_B == 0 && NEG_C == 0) ? 64'h69966996_E8E8E8E8 :
                                   (NEG_B == 0)                ? 64'h96699669_8E8E8E8E :
                                   (NEG_C == 0)                ? 64'h96699669_B2B2B2B2 :
                                                                 64'h69966996_2B2B2B2B;
    localparam logic CIN = (NEG_B + NEG_C) >= 1;  // the first negation's +1
    localparam logic M0  = (NEG_B + NEG_C) == 2;  // the second's

    if (LO < 0 || LO >= W) begin : g_bad_lo
        $error("fg_add3: LO must be in [0, W)");
    end
    if (CHAIN != 4 && CHAIN != 8) begin : g_bad_chain
        $error("fg_add3: CHAIN must be 4 or 8");
    end

    if (LO > 0) begin : g_low
        assign y[LO-1:0] = a[LO-1:0];
    end

    /* verilator lint_off UNUSEDSIGNAL */  // the last carries and carry-save bit fall off
    logic [BLOCKS*CHAIN-1:0] s, m, di, o;
    logic [BLOCKS:0] carry;  // into each carry primitive, and out of the last
    /* verilator lint_on UNUSEDSIGNAL */
    for (genvar j = 0; j < BLOCKS * CHAIN; j++) begin : g_bit
        if (j < N) begin : g_lut6
            logic m_in;
            if (j == 0) begin : g_first
                assign m_in = M0;
            end else begin : g_next
                assign m_in = m[j-1];
            end
            LUT6_2 #(.INIT(INIT)) u_lut (
                .I0(a[LO+j]), .I1(b[j]), .I2(c[j]), .I3(m_in), .I4(1'b0), .I5(1'b1),
                .O6(s[j]), .O5(m[j])
            );
            assign di[j] = m_in;
        end else begin : g_pad
            assign s[j]  = 1'b0;
            assign m[j]  = 1'b0;
            assign di[j] = 1'b0;
        end
    end
    assign carry[0] = CIN;
    for (genvar k = 0; k < BLOCKS; k++) begin : g_chain
        logic [CHAIN-1:0] block_o;
        /* verilator lint_off UNUSEDSIGNAL */
        logic [CHAIN-1:0] block_co;  // only its last bit carries on
        /* verilator lint_on UNUSEDSIGNAL */
        if (CHAIN == 8) begin : g_carry8
            CARRY8 u_carry (
                .CI(carry[k]), .CI_TOP(1'b0), .DI(di[8*k +: 8]), .S(s[8*k +: 8]), .O(block_o), .CO(block_co)
            );
        end else if (k == 0) begin : g_carry4_first  // a carry from the fabric enters at CYINIT
            CARRY4 u_carry (
                .CI(1'b0), .CYINIT(carry[0]), .DI(di[3:0]), .S(s[3:0]), .O(block_o), .CO(block_co)
            );
        end else begin : g_carry4
            CARRY4 u_carry (
                .CI(carry[k]), .CYINIT(1'b0), .DI(di[4*k +: 4]), .S(s[4*k +: 4]), .O(block_o), .CO(block_co)
            );
        end
        assign o[CHAIN*k +: CHAIN] = block_o;
        assign carry[k+1] = block_co[CHAIN-1];
    end
    assign y[W-1:LO] = o[N-1:0];
endmodule
