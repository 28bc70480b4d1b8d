// fg_rom: a look-up table (the table functions: sigmoid, tanh, ...; softmax exp/reciprocal tables): out = table[code].
//
// The contents are one packed parameter, entry k at CONTENTS[k*DATA_W +: DATA_W], so a
// generator writes a single hex literal; Verilator and yosys both take it, and yosys sees an
// initialised memory it can map to LUT ROM or (registered) block RAM.  With ADDR_SIGNED the
// input is a two's complement code and entry k holds code k + min_code, i.e. the table is in
// ascending code order as LookupTable.values (index = code - min_code) in compiler/emulate.py.
//
// Parameters
//   ADDR_W       input code width; the table has 2**ADDR_W entries
//   DATA_W       entry width
//   ADDR_SIGNED  1: the code is signed (index = code - min_code), 0: unsigned (index = code)
//   REGISTERED   0: combinational read (LUTs); 1: registered read (block RAM when large)
//   CONTENTS     the table, 2**ADDR_W * DATA_W bits
//
// Latency: REGISTERED cycles.  Only the valid flag is reset.
module fg_rom #(
    parameter int                            ADDR_W      = 4,
    parameter int                            DATA_W      = 8,
    parameter int                            ADDR_SIGNED = 1,
    parameter int                            REGISTERED  = 0,
    parameter logic [(2**ADDR_W)*DATA_W-1:0] CONTENTS    = '0
) (
    input  logic              clk,
    input  logic              rst,
    input  logic              in_valid,
    input  logic [ADDR_W-1:0] in_data,
    output logic              out_valid,
    output logic [DATA_W-1:0] out_data
);
    localparam int DEPTH = 2 ** ADDR_W;

    if (REGISTERED != 0 && REGISTERED != 1) begin : g_bad_registered
        $error("fg_rom: REGISTERED must be 0 or 1");
    end

    logic [DATA_W-1:0] table_mem[DEPTH];
    initial begin
        for (int k = 0; k < DEPTH; k++) table_mem[k] = CONTENTS[k*DATA_W +: DATA_W];
    end

    // a signed code's index is the code minus its minimum: flip the sign bit
    localparam logic [ADDR_W-1:0] FLIP = (ADDR_SIGNED != 0) ? ADDR_W'(1) << (ADDR_W - 1) : '0;
    wire [ADDR_W-1:0] index = in_data ^ FLIP;

    if (REGISTERED != 0) begin : g_registered
        always_ff @(posedge clk) out_data <= table_mem[index];
        always_ff @(posedge clk) begin
            if (rst) out_valid <= 1'b0;
            else out_valid <= in_valid;
        end
    end else begin : g_comb
        assign out_data = table_mem[index];
        assign out_valid = in_valid;
        wire unused = &{1'b0, clk, rst};  // a combinational read needs no clock
    end
endmodule
