// fg_stream_collect: gathers N beats of a stream into one vector (the tail of a model after
// its last spatial layer: Flatten, then Dense on the whole image).
//
// Beat i of each group of N lands at bits [i*W +: W] of out_data.  out_valid = full, where
// full becomes 1 the cycle after the N-th beat is accepted and an output transfer clears it,
// unless that same cycle's accept completes a new vector (N = 1 at full rate).
//     in_ready = !full || out_ready      (a new vector may start while the old one leaves)
// In an engine, out_ready is the engine FIFO's credit and the core's in_valid is the output
// transfer (out_valid && out_ready), which is also the FIFO's issue.
//
// With II > 1 a vector leaves at most every II cycles (a folded core behind it takes one input
// every II cycles): out_valid = full && cooldown == 0, in_ready = !full || (out_ready &&
// cooldown == 0), and each output transfer starts a cooldown of II - 1 cycles.
//
// Parameters
//   W   beat width
//   N   beats per vector (>= 1)
//   II  cycles between output transfers (>= 1)
//
// Latency: 1 cycle from the accept of a vector's last beat to out_valid.
// Reset: synchronous, active-high rst clears full and the beat count (data is not reset).
module fg_stream_collect #(
    parameter int W = 8,
    parameter int N = 4,
    parameter int II = 1
) (
    input  logic           clk,
    input  logic           rst,
    input  logic           in_valid,
    input  logic [W-1:0]   in_data,
    output logic           in_ready,
    output logic           out_valid,
    output logic [N*W-1:0] out_data,
    input  logic           out_ready
);
    if (N < 1) begin : g_bad_n
        $error("fg_stream_collect: N must be >= 1");
    end

    logic full;
    logic free;  // cooldown == 0
    assign out_valid = full && free;
    assign in_ready = !full || (out_ready && free);
    wire accept = in_valid && in_ready;
    logic last_beat;  // the beat on in_data is its vector's N-th

    always_ff @(posedge clk) begin
        if (rst) full <= 1'b0;
        else if (accept && last_beat) full <= 1'b1;
        else if (out_valid && out_ready) full <= 1'b0;
    end

    if (II > 1) begin : g_cooldown
        localparam int CD_W = $clog2(II);
        logic [CD_W-1:0] cooldown;
        always_ff @(posedge clk) begin
            if (rst) cooldown <= '0;
            else if (out_valid && out_ready) cooldown <= CD_W'(II - 1);
            else if (cooldown != '0) cooldown <= cooldown - 1'b1;
        end
        assign free = cooldown == '0;
    end else begin : g_every_cycle
        assign free = 1'b1;
    end

    if (N > 1) begin : g_count
        localparam int BEAT_W = $clog2(N);
        localparam logic [BEAT_W-1:0] LAST = BEAT_W'(N - 1);
        logic [BEAT_W-1:0] beat;
        assign last_beat = beat == LAST;
        always_ff @(posedge clk) begin
            if (rst) beat <= '0;
            else if (accept) beat <= last_beat ? '0 : beat + 1'b1;
        end
        // each beat enters at the top and moves down: after N beats, beat i is at i (no decoder)
        always_ff @(posedge clk) begin
            if (accept) out_data <= {in_data, out_data[N*W-1:W]};
        end
    end else begin : g_single
        assign last_beat = 1'b1;
        always_ff @(posedge clk) begin
            if (accept) out_data <= in_data;
        end
    end
endmodule
