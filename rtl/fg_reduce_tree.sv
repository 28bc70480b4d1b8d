// fg_reduce_tree: a balanced binary tree reducing N values by + (exact sum) or max, with
// optional pipeline registers.  The common body of fg_adder_tree and fg_maxpool.
//
// Level l (1..LEVELS, LEVELS = clog2(N)) combines pairs of level l-1; an odd element is
// passed up unchanged.  Sums grow one bit per level (W + l bits at level l, capped at OUT_W
// since only the low OUT_W bits of the result are kept), so every adder is exactly as wide
// as the values it adds.  A register stage follows level l when LEVELS_PER_STAGE > 0 and l
// is a multiple of LEVELS_PER_STAGE or the last level.  Only valid flags are reset.
//
// Parameters
//   N                 number of inputs (>= 1)
//   W                 input width; element i is in_data[i*W +: W]
//   SIGNED            1: two's complement inputs (and output), 0: unsigned
//   OP                0: sum, 1: max
//   OUT_W             output width; sum: W + clog2(N) holds every sum (a narrower OUT_W keeps
//                     the low bits, exact when the caller knows the sum fits); max: must be W
//   LEVELS_PER_STAGE  0: combinational; k > 0: a register every k levels and at the output
//
// Latency: LEVELS_PER_STAGE == 0 ? 0 : ceil(clog2(N) / LEVELS_PER_STAGE) cycles.
module fg_reduce_tree #(
    parameter int N                = 4,
    parameter int W                = 8,
    parameter int SIGNED           = 1,
    parameter int OP               = 0,
    parameter int OUT_W            = (OP == 0) ? W + $clog2(N) : W,
    parameter int LEVELS_PER_STAGE = 0
) (
    input  logic             clk,
    input  logic             rst,
    input  logic             in_valid,
    input  logic [N*W-1:0]   in_data,
    output logic             out_valid,
    output logic [OUT_W-1:0] out_data
);
    localparam int LEVELS = $clog2(N);
    localparam int LATENCY = (LEVELS_PER_STAGE == 0) ? 0
                           : (LEVELS + LEVELS_PER_STAGE - 1) / LEVELS_PER_STAGE;

    if (N < 1) begin : g_bad_n
        $error("fg_reduce_tree: N must be >= 1");
    end
    if (OP != 0 && OP != 1) begin : g_bad_op
        $error("fg_reduce_tree: OP must be 0 (sum) or 1 (max)");
    end
    if (OP == 1 && OUT_W != W) begin : g_bad_max_width
        $error("fg_reduce_tree: a max tree has OUT_W == W");
    end
    if (LEVELS_PER_STAGE < 0) begin : g_bad_lps
        $error("fg_reduce_tree: LEVELS_PER_STAGE must be >= 0");
    end

    function automatic int level_width(input int l);
        level_width = (OP != 0) ? W : (W + l > OUT_W) ? OUT_W : W + l;
    endfunction

    for (genvar l = 0; l <= LEVELS; l++) begin : g_level
        localparam int LW = level_width(l);
        localparam int CNT = (N + (1 << l) - 1) >> l;
        localparam bit REG = LEVELS_PER_STAGE > 0 && l > 0
                          && (l % (LEVELS_PER_STAGE > 0 ? LEVELS_PER_STAGE : 1) == 0 || l == LEVELS);
        logic [CNT*LW-1:0] node_d;  // this level's results, node i at [i*LW +: LW]
        logic [CNT*LW-1:0] node_q;  // what the next level reads (after the register)
        logic valid_d, valid_q;

        if (l == 0) begin : g_inputs
            for (genvar i = 0; i < N; i++) begin : g_node
                assign node_d[i*LW +: LW] = in_data[i*W +: LW];  // LW < W only for a narrow sum
            end
            assign valid_d = in_valid;
            if (LW < W) begin : g_narrow
                wire unused_high_bits = ^in_data;  // a narrow sum needs only the low bits
            end
        end else begin : g_combine
            localparam int PW = level_width(l - 1);
            localparam int PCNT = (N + (1 << (l - 1)) - 1) >> (l - 1);
            for (genvar i = 0; i < CNT; i++) begin : g_node
                wire [PW-1:0] a = g_level[l-1].node_q[2*i*PW +: PW];
                if (2 * i + 1 < PCNT) begin : g_pair
                    wire [PW-1:0] b = g_level[l-1].node_q[(2*i+1)*PW +: PW];
                    if (OP == 0 && SIGNED != 0) begin : g_add_s
                        assign node_d[i*LW +: LW] = LW'($signed(a)) + LW'($signed(b));
                    end else if (OP == 0) begin : g_add_u
                        assign node_d[i*LW +: LW] = LW'(a) + LW'(b);
                    end else if (SIGNED != 0) begin : g_max_s
                        assign node_d[i*LW +: LW] = ($signed(a) > $signed(b)) ? a : b;
                    end else begin : g_max_u
                        assign node_d[i*LW +: LW] = (a > b) ? a : b;
                    end
                end else if (SIGNED != 0) begin : g_odd_s
                    assign node_d[i*LW +: LW] = LW'($signed(a));
                end else begin : g_odd_u
                    assign node_d[i*LW +: LW] = LW'(a);
                end
            end
            assign valid_d = g_level[l-1].valid_q;
        end

        if (REG) begin : g_reg
            always_ff @(posedge clk) begin
                if (rst) valid_q <= 1'b0;
                else valid_q <= valid_d;
            end
            always_ff @(posedge clk) node_q <= node_d;
        end else begin : g_wire
            assign valid_q = valid_d;
            assign node_q = node_d;
        end
    end

    if (SIGNED != 0) begin : g_out_s
        assign out_data = OUT_W'($signed(g_level[LEVELS].node_q));
    end else begin : g_out_u
        assign out_data = OUT_W'(g_level[LEVELS].node_q);
    end
    assign out_valid = g_level[LEVELS].valid_q;

    if (LATENCY == 0) begin : g_comb
        wire unused = &{1'b0, clk, rst};  // a combinational tree needs no clock
    end
endmodule
