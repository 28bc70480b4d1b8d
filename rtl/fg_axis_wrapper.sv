// fg_axis_wrapper: AXI4-Stream around a fixed-latency core that never stalls.
//
//   s_axis (tdata, tvalid, tready, tlast) -> core_in_* ... core_out_* -> FIFO -> m_axis
//
// The core (any module with ports clk, rst, in_valid, in_data[IN_W], out_valid,
// out_data[OUT_W] and a fixed LATENCY) is instantiated next to this wrapper and wired to its
// core_* ports.  A beat accepted on s_axis enters the core at once; LATENCY cycles later its
// result is written into an output FIFO together with the beat's tlast (which the wrapper
// delays alongside the core).  The core cannot be stopped, so s_axis_tready is a credit
// check: it is high only while (beats in the core) + (beats in the FIFO) < FIFO_DEPTH, which
// makes overflow impossible however m_axis_tready behaves.  Nothing is lost, duplicated or
// reordered.  Both tready and m_axis_tvalid come straight from registers (no combinational
// path from m_axis_tready to s_axis_tready).
//
// Parameters
//   IN_W, OUT_W  core input/output data widths (= s_axis_tdata / m_axis_tdata widths)
//   LATENCY      the core's latency in cycles (>= 0)
//   FIFO_DEPTH   output FIFO entries (>= 1).  A beat holds its credit for LATENCY + 1 cycles
//                and the registered tready sees a freed credit one cycle later, so the
//                throughput with m_axis_tready high is min(1, FIFO_DEPTH / (LATENCY + 2))
//                beats per cycle: the default LATENCY + 2 sustains one beat per cycle.
//                Any depth is lossless.
//
// core_latency_error is a sticky flag (cleared by rst) raised when the core's out_valid
// differs from the wrapper's own delayed valid: the core's LATENCY is not what was declared.
//
// Latency: LATENCY + 1 cycles: a beat taken on s_axis at clock edge t can leave on m_axis at
// edge t + LATENCY + 1 at the earliest (the FIFO adds one register).
// Reset: synchronous, active-high rst; tready is low during and for the cycle after reset.
module fg_axis_wrapper #(
    parameter int IN_W       = 8,
    parameter int OUT_W      = 8,
    parameter int LATENCY    = 1,
    parameter int FIFO_DEPTH = LATENCY + 2
) (
    input  logic             clk,
    input  logic             rst,
    // AXI4-Stream input
    input  logic [IN_W-1:0]  s_axis_tdata,
    input  logic             s_axis_tvalid,
    output logic             s_axis_tready,
    input  logic             s_axis_tlast,
    // AXI4-Stream output
    output logic [OUT_W-1:0] m_axis_tdata,
    output logic             m_axis_tvalid,
    input  logic             m_axis_tready,
    output logic             m_axis_tlast,
    // the core
    output logic             core_in_valid,
    output logic [IN_W-1:0]  core_in_data,
    input  logic             core_out_valid,
    input  logic [OUT_W-1:0] core_out_data,
    output logic             core_latency_error
);
    localparam int PTR_W = (FIFO_DEPTH > 1) ? $clog2(FIFO_DEPTH) : 1;
    localparam int CNT_W = $clog2(FIFO_DEPTH + 1);
    localparam logic [CNT_W-1:0] DEPTH_C = CNT_W'(FIFO_DEPTH);
    localparam logic [PTR_W-1:0] LAST_PTR = PTR_W'(FIFO_DEPTH - 1);

    if (LATENCY < 0) begin : g_bad_latency
        $error("fg_axis_wrapper: LATENCY must be >= 0");
    end
    if (FIFO_DEPTH < 1) begin : g_bad_depth
        $error("fg_axis_wrapper: FIFO_DEPTH must be >= 1");
    end

    wire s_fire = s_axis_tvalid && s_axis_tready;
    wire m_fire = m_axis_tvalid && m_axis_tready;

    assign core_in_valid = s_fire;
    assign core_in_data = s_axis_tdata;

    // tlast and valid travel beside the core
    logic push, push_last;
    fg_pipe #(.W(1), .DEPTH(LATENCY)) u_last (
        .clk, .rst, .in_valid(s_fire), .in_data(s_axis_tlast), .out_valid(push), .out_data(push_last)
    );

    always_ff @(posedge clk) begin
        if (rst) core_latency_error <= 1'b0;
        else if (push != core_out_valid) core_latency_error <= 1'b1;
    end

    // credits: beats accepted and not yet delivered (in the core or in the FIFO)
    logic [CNT_W-1:0] in_flight, in_flight_next;
    always_comb begin
        in_flight_next = in_flight;
        if (s_fire && !m_fire) in_flight_next = in_flight + 1'b1;
        else if (!s_fire && m_fire) in_flight_next = in_flight - 1'b1;
    end
    always_ff @(posedge clk) begin
        if (rst) begin
            in_flight <= '0;
            s_axis_tready <= 1'b0;
        end else begin
            in_flight <= in_flight_next;
            s_axis_tready <= in_flight_next < DEPTH_C;
        end
    end

    // the output FIFO (never written when full: the credits above forbid it)
    logic [OUT_W:0] fifo_mem[FIFO_DEPTH];
    logic [PTR_W-1:0] wr_ptr, rd_ptr;
    logic [CNT_W-1:0] fifo_count;
    always_ff @(posedge clk) begin
        if (push) fifo_mem[wr_ptr] <= {push_last, core_out_data};
    end
    always_ff @(posedge clk) begin
        if (rst) begin
            wr_ptr <= '0;
            rd_ptr <= '0;
            fifo_count <= '0;
        end else begin
            if (push) wr_ptr <= (wr_ptr == LAST_PTR) ? '0 : wr_ptr + 1'b1;
            if (m_fire) rd_ptr <= (rd_ptr == LAST_PTR) ? '0 : rd_ptr + 1'b1;
            if (push && !m_fire) fifo_count <= fifo_count + 1'b1;
            else if (!push && m_fire) fifo_count <= fifo_count - 1'b1;
        end
    end
    assign m_axis_tvalid = fifo_count != '0;
    assign {m_axis_tlast, m_axis_tdata} = fifo_mem[rd_ptr];
endmodule
