// fg_relu: max(x, 0) on a fixed-point mantissa; the fraction is unchanged.
//
// The result is never negative, so it is an unsigned mantissa: OUT_W = W - 1 bits hold every
// result of a signed W-bit input (W bits for an unsigned one, where relu is the identity).
// A wider OUT_W zero-extends (e.g. OUT_W = W to read the result as a signed W-bit value).
//
// Parameters
//   W       input width
//   SIGNED  1: two's complement input, 0: unsigned
//   OUT_W   output width (unsigned); at least the default
//
// Latency: 0 cycles (combinational).
module fg_relu #(
    parameter int W      = 8,
    parameter int SIGNED = 1,
    parameter int OUT_W  = (SIGNED != 0 && W > 1) ? W - 1 : W
) (
    input  logic [W-1:0]     in_data,
    output logic [OUT_W-1:0] out_data
);
    localparam int KEEP = (SIGNED != 0) ? W - 1 : W;  // magnitude bits of a non-negative input

    if (OUT_W < KEEP || OUT_W < 1) begin : g_bad_width
        $error("fg_relu: OUT_W is narrower than the non-negative range of the input");
    end

    if (SIGNED == 0) begin : g_identity
        assign out_data = OUT_W'(in_data);
    end else if (W == 1) begin : g_one_bit
        assign out_data = '0;  // a signed 1-bit value is -1 or 0
        wire unused = ^in_data;
    end else begin : g_clamp
        assign out_data = in_data[W-1] ? '0 : OUT_W'(in_data[W-2:0]);
    end
endmodule
