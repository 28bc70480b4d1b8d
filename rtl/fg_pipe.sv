// fg_pipe: a delay line of DEPTH register stages for a W-bit datum and its valid flag.
//
// Only the valid flags are reset (synchronous, active-high rst); data registers load every
// cycle, so they cost no reset routing and map to SRL shift registers where possible.
//
// Parameters
//   W      data width (bits)
//   DEPTH  number of register stages; 0 = wires
//
// Latency: DEPTH cycles (in_data/in_valid sampled at edge t appear at out_* after edge
// t + DEPTH - 1, i.e. DEPTH rising edges after they were presented).
module fg_pipe #(
    parameter int W     = 8,
    parameter int DEPTH = 1
) (
    input  logic         clk,
    input  logic         rst,
    input  logic         in_valid,
    input  logic [W-1:0] in_data,
    output logic         out_valid,
    output logic [W-1:0] out_data
);
    if (DEPTH < 0) begin : g_bad_depth
        $error("fg_pipe: DEPTH must be >= 0");
    end

    if (DEPTH == 0) begin : g_wire
        assign out_valid = in_valid;
        assign out_data = in_data;
        // a wire needs no clock or reset
        wire unused = &{1'b0, clk, rst};
    end else begin : g_regs
        logic [DEPTH-1:0] valid_q;
        logic [DEPTH*W-1:0] data_q;  // stage i at [i*W +: W]
        always_ff @(posedge clk) begin
            if (rst) begin
                valid_q <= '0;
            end else begin
                valid_q[0] <= in_valid;
                for (int i = 1; i < DEPTH; i++) valid_q[i] <= valid_q[i-1];
            end
        end
        always_ff @(posedge clk) begin
            data_q[0 +: W] <= in_data;
            for (int i = 1; i < DEPTH; i++) data_q[i*W +: W] <= data_q[(i-1)*W +: W];
        end
        assign out_valid = valid_q[DEPTH-1];
        assign out_data = data_q[(DEPTH-1)*W +: W];
    end
endmodule
