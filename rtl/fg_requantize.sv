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
// Saturation does not compare the rounded value with the bounds: they are powers of two
// (minus one), so whether the floored value lies beyond a bound is a pattern of its bits
// above the output (an OR or AND tree), and the rounding increment can move it across a
// bound only from the bound itself (or from just below the lower one). The patterns are
// decided in parallel with the increment's carry chain, which only needs the output's bits;
// the select takes both.
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
    // Pattern width: the floored value sign-extended so that it has bits above both bounds.
    localparam int CW = (XW > OUT_W + 2) ? XW : OUT_W + 2;
    // The output's magnitude bits: HI = 2**P - 1, and for a signed output LO = -2**P.
    localparam int P = (OUT_SIGNED != 0) ? OUT_W - 1 : OUT_W;

    localparam logic signed [CW-1:0] ONE = CW'(1);
    localparam logic signed [CW-1:0] HI = (ONE <<< P) - ONE;
    localparam logic signed [CW-1:0] LO = (OUT_SIGNED != 0) ? -(ONE <<< P) : '0;
    // SAT_SYM: the lower bound is -max (LO + 1) for signed types wider than one bit.
    localparam bit SYM = OUT_SIGNED != 0 && OUT_W > 1;
    localparam logic signed [CW-1:0] SYM_LO = SYM ? -HI : LO;

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

    // --- rounding: floor(x / 2**RSH), and the increment the mode adds to it -------------
    logic signed [XW-1:0] floor_q;
    logic inc;
    if (RSH == 0) begin : g_exact
        assign floor_q = x;
        assign inc = 1'b0;
    end else begin : g_round
        logic half, below;  // dropped bits: top one, any of the rest
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
    end
    // The output's bits of the rounded value: an increment as wide as the output (the bits
    // above it only matter to saturation, decided below from the floor's patterns).
    logic signed [CW-1:0] fq;
    logic [OUT_W-1:0] rounded;
    assign fq = CW'(floor_q);
    assign rounded = fq[OUT_W-1:0] + OUT_W'(inc);

    // --- overflow: bit patterns of the floor ---------------------------------------------
    wire sign = fq[CW-1];
    wire any_above = |fq[CW-2:P];  // some bit above the output's magnitude set
    wire all_above = &fq[CW-2:P];  // every one set (with the sign: >= LO for a signed output)
    logic low_ones;                // the magnitude bits all set (none: P = 0)
    if (P > 0) begin : g_low
        assign low_ones = &fq[P-1:0];
    end else begin : g_no_low
        assign low_ones = 1'b1;
    end
    // over: floor > HI (not negative, a bit above HI's set), or floor == HI and inc
    wire over = ~sign & (any_above | (low_ones & inc));
    // under: floor < LO, unless floor == LO - 1 and inc (inc only raises the value);
    // under_sym: rounded <= LO (SAT_SYM's bound LO + 1): floor < LO, or floor == LO and no inc
    logic under, under_sym;
    if (OUT_SIGNED != 0) begin : g_signed_lo
        wire below_lo = sign & ~all_above;  // the bits above P not all copies of the sign
        // floor == LO - 1: 1..1 0 1..1 (CW >= OUT_W + 2 leaves a bit above P + 1)
        wire at_lo_less_1 = sign & (&fq[CW-2:P+1]) & ~fq[P] & low_ones;
        assign under = below_lo & ~(at_lo_less_1 & inc);
        if (SYM) begin : g_sym
            wire at_lo = sign & all_above & ~|fq[P-1:0];  // floor == LO: 1..1 0..0
            assign under_sym = below_lo | (at_lo & ~inc);
        end else begin : g_no_sym  // a 1-bit signed output keeps -1
            assign under_sym = under;
        end
    end else begin : g_unsigned_lo
        // LO = 0: a negative floor, unless it is -1 and inc
        assign under = sign & ~(all_above & low_ones & inc);
        assign under_sym = under;
    end

    // --- the select -----------------------------------------------------------------------
    always_comb begin
        case (OVERFLOW)
            1:       out_data = over ? HI[OUT_W-1:0] : under ? LO[OUT_W-1:0] : rounded;
            2:       out_data = (over || under) ? '0 : rounded;
            3:       out_data = over ? HI[OUT_W-1:0] : under_sym ? SYM_LO[OUT_W-1:0] : rounded;
            default: out_data = rounded;
        endcase
    end
endmodule
