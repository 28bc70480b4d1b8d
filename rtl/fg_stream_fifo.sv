// fg_stream_fifo: the output FIFO of a stream engine, with credits for a core that never stalls.
//
// The engine's window (or collector) reserves a slot with `issue` when it starts the core on
// a token, and may do so only while `credit` is high; the core writes the token's result with
// in_valid some fixed number of cycles later (no ready: it always has a slot).  The slot is
// freed when the result leaves on the output stream.
//     used   = slots reserved and not yet freed: +1 on issue, -1 on an output transfer
//     credit = used < DEPTH
// Storage is written on in_valid and read on an output transfer (out_valid && out_ready);
// out_valid = (stored entries > 0); data written at cycle t is visible at t + 1.
//
// Parameters
//   W      token width
//   DEPTH  slots (>= 1).  A token holds its slot from the issue to its output transfer, so
//          with out_ready high one token per cycle needs DEPTH = (cycles from issue to the
//          core's out_valid) + 2; any depth is lossless.
//
// Latency: 1 cycle from in_valid to out_valid.
// Reset: synchronous, active-high rst empties the FIFO and frees every slot (storage itself
// is not reset).
module fg_stream_fifo #(
    parameter int W     = 8,
    parameter int DEPTH = 2
) (
    input  logic         clk,
    input  logic         rst,
    input  logic         issue,
    output logic         credit,
    input  logic         in_valid,
    input  logic [W-1:0] in_data,
    output logic         out_valid,
    input  logic         out_ready,
    output logic [W-1:0] out_data
);
    localparam int PTR_W = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam int CNT_W = $clog2(DEPTH + 1);
    localparam logic [CNT_W-1:0] DEPTH_C = CNT_W'(DEPTH);
    localparam logic [PTR_W-1:0] LAST_PTR = PTR_W'(DEPTH - 1);

    if (DEPTH < 1) begin : g_bad_depth
        $error("fg_stream_fifo: DEPTH must be >= 1");
    end

    wire out_fire = out_valid && out_ready;

    logic [CNT_W-1:0] used, stored;
    assign credit = used < DEPTH_C;
    assign out_valid = stored != '0;

    logic [W-1:0] mem[DEPTH];
    logic [PTR_W-1:0] wr_ptr, rd_ptr;
    always_ff @(posedge clk) begin
        if (in_valid) mem[wr_ptr] <= in_data;
    end
    assign out_data = mem[rd_ptr];

    always_ff @(posedge clk) begin
        if (rst) begin
            used <= '0;
            stored <= '0;
            wr_ptr <= '0;
            rd_ptr <= '0;
        end else begin
            if (issue && !out_fire) used <= used + 1'b1;
            else if (!issue && out_fire) used <= used - 1'b1;
            if (in_valid && !out_fire) stored <= stored + 1'b1;
            else if (!in_valid && out_fire) stored <= stored - 1'b1;
            if (in_valid) wr_ptr <= (wr_ptr == LAST_PTR) ? '0 : wr_ptr + 1'b1;
            if (out_fire) rd_ptr <= (rd_ptr == LAST_PTR) ? '0 : rd_ptr + 1'b1;
        end
    end
endmodule
