// tb_axis_wrapper: NI fg_axis_wrapper instances side by side in one design, each around a
// toy core of its LATENCY (out = {in, in[0]} ^ 9'h0a5 through fg_pipe of depth LATENCY).
// Port bit i (or field i) of every bus belongs to instance i.  `config_bus` exposes each
// instance's (LATENCY, FIFO_DEPTH) as two 8-bit fields at [(2*i + j)*8 +: 8].

/* verilator lint_off DECLFILENAME */
package tb_axis_configs;
    localparam int NI = 7;
    // LATENCY, FIFO_DEPTH (0: the default, LATENCY + 2)
    localparam bit [NI-1:0][1:0][7:0] CFG = '{
        '{0, 0},   // combinational core
        '{1, 0},
        '{4, 0},
        '{6, 2},   // FIFO shallower than the latency: slower, never loses data
        '{3, 9},   // deeper than needed
        '{2, 1},   // one entry
        '{5, 6}    // LATENCY + 1: lossless at 6/7 of the full rate
    };

    function automatic int latency(int i);
        return int'(CFG[NI-1-i][1]);
    endfunction

    function automatic int fifo_depth(int i);
        return CFG[NI-1-i][0] == 0 ? latency(i) + 2 : int'(CFG[NI-1-i][0]);
    endfunction
endpackage
/* verilator lint_on DECLFILENAME */

module tb_axis_wrapper
    import tb_axis_configs::*;
(
    input  logic            clk,
    input  logic            rst,
    input  logic [NI*8-1:0] s_tdata,
    input  logic [NI-1:0]   s_tvalid,
    output logic [NI-1:0]   s_tready,
    input  logic [NI-1:0]   s_tlast,
    output logic [NI*9-1:0] m_tdata,
    output logic [NI-1:0]   m_tvalid,
    input  logic [NI-1:0]   m_tready,
    output logic [NI-1:0]   m_tlast,
    output logic [NI-1:0]   latency_error,
    output logic [NI*16-1:0] config_bus
);
    for (genvar i = 0; i < NI; i++) begin : g_inst
        localparam int L = latency(i);
        logic core_in_valid, core_out_valid;
        logic [7:0] core_in_data;
        logic [8:0] core_out_data;

        assign config_bus[i*16 +: 16] = {8'(fifo_depth(i)), 8'(L)};

        fg_axis_wrapper #(.IN_W(8), .OUT_W(9), .LATENCY(L), .FIFO_DEPTH(fifo_depth(i))) u_wrapper (
            .clk, .rst,
            .s_axis_tdata(s_tdata[i*8 +: 8]), .s_axis_tvalid(s_tvalid[i]), .s_axis_tready(s_tready[i]),
            .s_axis_tlast(s_tlast[i]),
            .m_axis_tdata(m_tdata[i*9 +: 9]), .m_axis_tvalid(m_tvalid[i]), .m_axis_tready(m_tready[i]),
            .m_axis_tlast(m_tlast[i]),
            .core_in_valid, .core_in_data, .core_out_valid, .core_out_data,
            .core_latency_error(latency_error[i])
        );

        fg_pipe #(.W(9), .DEPTH(L)) u_core (
            .clk, .rst, .in_valid(core_in_valid), .in_data({core_in_data, core_in_data[0]} ^ 9'h0a5),
            .out_valid(core_out_valid), .out_data(core_out_data)
        );
    end
endmodule
