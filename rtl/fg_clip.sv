// fg_clip: min(max(x, LO), HI) on a fixed-point mantissa (ONNX Clip with constant bounds);
// the fraction is unchanged.
//
// Parameters
//   W, SIGNED           input width and signedness (1: two's complement, 0: unsigned)
//   LO, HI              bounds as mantissas at the input's fraction, W+1-bit signed
//                       (a bound beyond the input's range may be given clamped to it)
//   OUT_W, OUT_SIGNED   output format (same fraction); default the input's.  It must hold
//                       every result: [max(LO, min_in), min(HI, max_in)] (checked when
//                       elaborated), so a clip may narrow the value (e.g. ReLU6 -> unsigned).
//
// Latency: 0 cycles (combinational).
module fg_clip #(
    parameter int                 W          = 8,
    parameter int                 SIGNED     = 1,
    parameter logic signed [W:0]  LO         = '0,
    parameter logic signed [W:0]  HI         = (W + 1)'(96),
    parameter int                 OUT_W      = W,
    parameter int                 OUT_SIGNED = SIGNED
) (
    input  logic [W-1:0]     in_data,
    output logic [OUT_W-1:0] out_data
);
    localparam int CW = ((W > OUT_W) ? W : OUT_W) + 2;  // compare width: input, bounds, output range
    localparam logic signed [CW-1:0] ONE = CW'(1);
    localparam logic signed [CW-1:0] IN_MIN = (SIGNED != 0) ? -(ONE <<< (W - 1)) : '0;
    localparam logic signed [CW-1:0] IN_MAX = (SIGNED != 0) ? (ONE <<< (W - 1)) - ONE : (ONE <<< W) - ONE;
    localparam logic signed [CW-1:0] OUT_MIN = (OUT_SIGNED != 0) ? -(ONE <<< (OUT_W - 1)) : '0;
    localparam logic signed [CW-1:0] OUT_MAX = (OUT_SIGNED != 0) ? (ONE <<< (OUT_W - 1)) - ONE
                                                                 : (ONE <<< OUT_W) - ONE;
    localparam logic signed [CW-1:0] LO_X = CW'(LO);
    localparam logic signed [CW-1:0] HI_X = CW'(HI);
    // the range of results: max first, then min (a bound pair with LO > HI yields HI)
    localparam logic signed [CW-1:0] RES_LO = (LO_X > IN_MIN) ? LO_X : IN_MIN;
    localparam logic signed [CW-1:0] RES_LO2 = (RES_LO < HI_X) ? RES_LO : HI_X;
    localparam logic signed [CW-1:0] RES_HI0 = (IN_MAX > LO_X) ? IN_MAX : LO_X;
    localparam logic signed [CW-1:0] RES_HI = (RES_HI0 < HI_X) ? RES_HI0 : HI_X;

    if (RES_LO2 < OUT_MIN || RES_HI > OUT_MAX) begin : g_bad_format
        $error("fg_clip: the output format cannot hold every clipped value");
    end

    logic signed [CW-1:0] x, lifted, clipped;
    if (SIGNED != 0) begin : g_sext
        assign x = CW'($signed(in_data));
    end else begin : g_zext
        assign x = $signed(CW'(in_data));
    end
    assign lifted = (x < LO_X) ? LO_X : x;
    assign clipped = (lifted > HI_X) ? HI_X : lifted;
    /* verilator lint_off UNUSEDSIGNAL */  // the top bits are known to be sign copies
    wire [CW-1:0] clipped_bits = clipped;
    /* verilator lint_on UNUSEDSIGNAL */
    assign out_data = clipped_bits[OUT_W-1:0];
endmodule
