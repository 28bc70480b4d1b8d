// fg_requantize: convert a fixed-point mantissa into another format, bit-exactly as
// compiler.fixed.requantize (and ap_fixed) do: round first, then apply overflow.
//
// A value is a raw bit vector (two's complement when *_SIGNED, else unsigned) whose real
// value is mantissa * 2**-F; F (fractional bits, = width - integer bits) may be negative or
// larger than the width.
//
// Parameters
//   IN_W, IN_F, IN_SIGNED     input width, fractional bits, signedness (0/1)
//   OUT_W, OUT_F, OUT_SIGNED  output width, fractional bits, signedness (0/1)
//   ROUNDING  0 TRN, 1 TRN_ZERO, 2 RND, 3 RND_ZERO, 4 RND_MIN_INF, 5 RND_INF, 6 RND_CONV,
//             7 CEIL (toward plus infinity: finegrain's own mode, not ap_fixed's)
//   OVERFLOW  0 WRAP, 1 SAT, 2 SAT_ZERO, 3 SAT_SYM (a signed result wider than 1 bit never
//             takes its most negative code)
//   Any shift is allowed: OUT_F > IN_F appends zeros (exact), OUT_F < IN_F drops
//   IN_F - OUT_F bits with rounding, even more bits than the input has.
//
// Latency: 0 cycles (combinational).
module fg_requantize #(
    parameter int IN_W       = 8,
    parameter int IN_F       = 4,
    parameter int IN_SIGNED  = 1,
    parameter int OUT_W      = 8,
    parameter int OUT_F      = 4,
    parameter int OUT_SIGNED = 1,
    parameter int ROUNDING   = 0,
    parameter int OVERFLOW   = 0
) (
    input  logic [IN_W-1:0]  in_data,
    output logic [OUT_W-1:0] out_data
);
    localparam int SHIFT = IN_F - OUT_F;         // > 0: bits dropped, < 0: zeros appended
    localparam int RSH = SHIFT > 0 ? SHIFT : 0;  // right shift (rounded)
    localparam int LSH = SHIFT < 0 ? -SHIFT : 0; // left shift (exact)
    // Signed working width: the input sign- or zero-extended (so a shift beyond the input
    // width still sees the sign), shifted left, plus a bit for the rounding increment.
    localparam int XW = ((IN_W > RSH) ? IN_W : RSH) + LSH + 2;
    // Compare width: holds the rounded value and both output bounds.
    localparam int CW = (XW > OUT_W + 2) ? XW : OUT_W + 2;

    localparam logic signed [CW-1:0] ONE = CW'(1);
    localparam logic signed [CW-1:0] HI = (OUT_SIGNED != 0) ? (ONE <<< (OUT_W - 1)) - ONE
                                                            : (ONE <<< OUT_W) - ONE;
    localparam logic signed [CW-1:0] LO = (OUT_SIGNED != 0) ? -(ONE <<< (OUT_W - 1)) : '0;
    // SAT_SYM: the lower bound is -max for signed types wider than one bit.
    localparam logic signed [CW-1:0] SYM_LO = (OUT_SIGNED != 0 && OUT_W > 1) ? -HI : LO;

    if (ROUNDING < 0 || ROUNDING > 7) begin : g_bad_rounding
        $error("fg_requantize: ROUNDING must be 0..7");
    end
    if (OVERFLOW < 0 || OVERFLOW > 3) begin : g_bad_overflow
        $error("fg_requantize: OVERFLOW must be 0..3");
    end

    // --- the input, extended and shifted left ------------------------------------------
    logic signed [XW-1:0] x;
    if (IN_SIGNED != 0) begin : g_sext
        assign x = XW'($signed(in_data)) <<< LSH;
    end else begin : g_zext
        assign x = $signed(XW'(in_data)) <<< LSH;
    end

    // --- rounding: floor(x / 2**RSH) + increment ----------------------------------------
    logic signed [XW-1:0] rounded;
    if (RSH == 0) begin : g_exact
        assign rounded = x;
    end else begin : g_round
        logic signed [XW-1:0] floor_q;
        logic half, below, inc;  // dropped bits: top one, any of the rest
        // an unsigned input's x is never negative: a logical shift is its floor.  (Verilator 5.048,
        // optimizing, sign-extends `x >>> RSH` when the input is a mux computed in the same cycle,
        // fg_relu's output from a top port: a value with its top bit set came out negative.)
        if (IN_SIGNED != 0) begin : g_floor_signed
            assign floor_q = x >>> RSH;
        end else begin : g_floor_unsigned
            assign floor_q = x >> RSH;
        end
        assign half = x[RSH-1];
        if (RSH > 1) begin : g_below
            assign below = |x[RSH-2:0];
        end else begin : g_no_below
            assign below = 1'b0;
        end
        // the ap_fixed rules (and CEIL); neg is the sign of the value, odd the parity of the floor
        wire gt = half & below;
        wire eq = half & ~below;
        wire neg = x[XW-1];
        wire odd = floor_q[0];
        always_comb begin
            case (ROUNDING)
                1:       inc = neg & (half | below);  // TRN_ZERO
                2:       inc = half;                  // RND
                3:       inc = gt | (eq & neg);       // RND_ZERO
                4:       inc = gt;                    // RND_MIN_INF
                5:       inc = gt | (eq & ~neg);      // RND_INF
                6:       inc = gt | (eq & odd);       // RND_CONV
                7:       inc = half | below;          // CEIL
                default: inc = 1'b0;                  // TRN
            endcase
        end
        assign rounded = floor_q + $signed({{(XW - 1) {1'b0}}, inc});
    end

    // --- overflow ------------------------------------------------------------------------
    /* verilator lint_off UNUSEDSIGNAL */  // WRAP keeps only the low OUT_W bits
    logic signed [CW-1:0] r;
    /* verilator lint_on UNUSEDSIGNAL */
    assign r = CW'(rounded);
    wire over = r > HI;
    wire under = r < LO;
    always_comb begin
        case (OVERFLOW)
            1:       out_data = over ? HI[OUT_W-1:0] : under ? LO[OUT_W-1:0] : r[OUT_W-1:0];
            2:       out_data = (over || under) ? '0 : r[OUT_W-1:0];
            3:       out_data = over ? HI[OUT_W-1:0] : (r < SYM_LO) ? SYM_LO[OUT_W-1:0] : r[OUT_W-1:0];
            default: out_data = r[OUT_W-1:0];
        endcase
    end
endmodule
