// fg_avgpool: average pooling of one window as the exact product of the window sum and a
// constant reciprocal mantissa: out = (sum of N inputs) * RECIP.  No rounding happens here:
// the caller requantizes the product (fg_requantize) into the output format.  Its fraction
// is the input's fraction + RECIP's fraction.
//
// Parameters
//   N                 window size (>= 1); element i is in_data[i*W +: W]
//   W, SIGNED         input width and signedness
//   RECIP_W           width of the reciprocal mantissa
//   RECIP_SIGNED      1: RECIP is two's complement, 0: unsigned
//   RECIP             the reciprocal's mantissa (e.g. 1/9 at 12 fractional bits: 455)
//   OUT_W             product width; the default W + clog2(N) + RECIP_W holds every
//                     product (signed when SIGNED or RECIP_SIGNED).  Narrower keeps low bits.
//   LEVELS_PER_STAGE  pipelining of the sum, as in fg_adder_tree
//   PRODUCT_REG       1: register the product, 0: combinational multiply
//
// Latency: (LEVELS_PER_STAGE == 0 ? 0 : ceil(clog2(N) / LEVELS_PER_STAGE)) + PRODUCT_REG.
module fg_avgpool #(
    parameter int                 N                = 4,
    parameter int                 W                = 8,
    parameter int                 SIGNED           = 1,
    parameter int                 RECIP_W          = 8,
    parameter int                 RECIP_SIGNED     = 0,
    parameter logic [RECIP_W-1:0] RECIP            = RECIP_W'(64),
    parameter int                 OUT_W            = W + $clog2(N) + RECIP_W,
    parameter int                 LEVELS_PER_STAGE = 1,
    parameter int                 PRODUCT_REG      = 1
) (
    input  logic             clk,
    input  logic             rst,
    input  logic             in_valid,
    input  logic [N*W-1:0]   in_data,
    output logic             out_valid,
    output logic [OUT_W-1:0] out_data
);
    localparam int SUM_W = W + $clog2(N);
    localparam int PW = SUM_W + RECIP_W + 2;  // signed product of the extended operands

    logic [SUM_W-1:0] sum;
    logic sum_valid;
    fg_adder_tree #(
        .N(N), .W(W), .SIGNED(SIGNED), .OUT_W(SUM_W), .LEVELS_PER_STAGE(LEVELS_PER_STAGE)
    ) u_sum (
        .clk, .rst, .in_valid, .in_data, .out_valid(sum_valid), .out_data(sum)
    );

    // both operands as signed values one bit wider, so mixed signedness multiplies exactly
    logic signed [PW-1:0] a, b;
    if (SIGNED != 0) begin : g_sum_s
        assign a = PW'($signed(sum));
    end else begin : g_sum_u
        assign a = PW'($signed({1'b0, sum}));
    end
    if (RECIP_SIGNED != 0) begin : g_recip_s
        assign b = PW'($signed(RECIP));
    end else begin : g_recip_u
        assign b = PW'($signed({1'b0, RECIP}));
    end
    /* verilator lint_off UNUSEDSIGNAL */  // the top bits are sign copies
    logic signed [PW-1:0] product;
    /* verilator lint_on UNUSEDSIGNAL */
    assign product = a * b;
    wire [OUT_W-1:0] product_out = OUT_W'(product);

    fg_pipe #(.W(OUT_W), .DEPTH(PRODUCT_REG)) u_product_reg (
        .clk, .rst, .in_valid(sum_valid), .in_data(product_out), .out_valid, .out_data
    );
endmodule
