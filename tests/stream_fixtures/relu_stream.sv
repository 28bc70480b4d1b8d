// relu_stream: a hand-written stream top (design13.md, "RTL stream top") for
// tests/test_stream_sim.py, standing in for what compiler/backends/rtl/stream.py generates.
// Model: y = Relu(x), x [3, 4, 5] fixed<8,3>, y [3, 4, 5] ufixed<7,2> (the same fraction: y is
// x's low 7 bits, or 0 when x is negative).  Beat p = h*5 + w carries pixel (h, w), lane c
// at [c*W +: W] holds channel c.
//
// One engine: a core that takes a pixel every II cycles (II = 1; the tests fold it by editing
// the line) through a LATENCY = 3 stage pipeline into a credit FIFO of DEPTH = LATENCY + 2
// slots; a pixel is accepted only when a slot is free (its credit), so the core never stalls,
// and a y_ready held low fills the FIFO and stops x.  A beat accepted in cycle t leaves at
// t + LATENCY + 1 when y_ready is high: latency_cycles = 19 * II + 4 (20 beats), ii_cycles =
// 20 * II; 23 and 20 at II = 1.
//
// The FLIP_BEAT, DUPLICATE_BEAT, DROP_BEAT and UNSTABLE lines are the faults the tests switch
// on by editing them (a beat index counted from reset over every image; -1 is off).
module relu_stream (
    input  logic clk,
    input  logic rst,
    input  logic x_valid,
    output logic x_ready,
    input  logic [23:0] x,
    output logic y_valid,
    input  logic y_ready,
    output logic [20:0] y
);
    localparam int LANES = 3;
    localparam int IN_W = 8;
    localparam int OUT_W = 7;
    localparam int II = 1;
    localparam int LATENCY = 3;
    localparam int DEPTH = LATENCY + 2;
    localparam int FLIP_BEAT = -1;  // lane 0 bit 0 of this beat inverted
    localparam int DUPLICATE_BEAT = -1;  // this beat sent twice
    localparam int DROP_BEAT = -1;  // this beat never sent
    localparam bit UNSTABLE = 1'b0;  // 1: a beat shown while y_ready is low has bit 0 inverted

    // --- the core: a pixel every II cycles, LATENCY stages ---------------------------------
    int cooldown;  // cycles until the core takes the next pixel (always 0 at II = 1)
    int used;  // FIFO slots reserved: +1 on an accept, -1 when a beat leaves
    logic accept;
    assign x_ready = used < DEPTH && cooldown == 0;
    assign accept = x_valid && x_ready;

    logic [LANES*OUT_W-1:0] relu;
    always_comb begin
        for (int c = 0; c < LANES; c++)
            relu[c*OUT_W +: OUT_W] = x[c*IN_W + IN_W - 1] ? '0 : x[c*IN_W +: OUT_W];
    end

    logic stage_valid [LATENCY];
    logic [LANES*OUT_W-1:0] stage_data [LATENCY];
    always_ff @(posedge clk) begin
        stage_valid[0] <= !rst && accept;
        stage_data[0] <= relu;
        for (int s = 1; s < LATENCY; s++) begin
            stage_valid[s] <= !rst && stage_valid[s-1];
            stage_data[s] <= stage_data[s-1];
        end
        if (rst) cooldown <= 0;
        else if (accept) cooldown <= II - 1;
        else if (cooldown > 0) cooldown <= cooldown - 1;
    end

    // --- the FIFO: written by the core, read by y ------------------------------------------
    logic [LANES*OUT_W-1:0] memory [DEPTH];
    int write_at, read_at, stored, head;  // head: index of the beat at the FIFO's head
    logic duplicated;  // DUPLICATE_BEAT was sent once already
    logic pop, write;
    assign write = stage_valid[LATENCY-1];
    assign y_valid = stored > 0 && head != DROP_BEAT;
    assign y = memory[read_at] ^ {{(LANES*OUT_W-1){1'b0}}, head == FLIP_BEAT || (UNSTABLE && !y_ready)};
    assign pop = stored > 0 && (head == DROP_BEAT || (y_ready && (head != DUPLICATE_BEAT || duplicated)));

    always_ff @(posedge clk) begin
        if (write) memory[write_at] <= stage_data[LATENCY-1];
        if (rst) begin
            write_at <= 0;
            read_at <= 0;
            stored <= 0;
            used <= 0;
            head <= 0;
            duplicated <= 1'b0;
        end else begin
            if (write) write_at <= write_at == DEPTH - 1 ? 0 : write_at + 1;
            if (pop) begin
                read_at <= read_at == DEPTH - 1 ? 0 : read_at + 1;
                head <= head + 1;
            end
            if (y_valid && y_ready && head == DUPLICATE_BEAT) duplicated <= 1'b1;
            stored <= stored + (write ? 1 : 0) - (pop ? 1 : 0);
            used <= used + (accept ? 1 : 0) - (pop ? 1 : 0);
        end
    end
endmodule
