// Simulation model of the UltraScale CARRY8 primitive in its SINGLE_CY8 mode (the only one
// fg_add3 uses), for simulators only: synthesis uses the vendor's (or yosys's) own cell.
// Bit i: CO[i] = S[i] ? carry into i : DI[i]; O[i] = S[i] ^ carry into i; the carry into bit 0
// is CI.
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNUSEDSIGNAL */
module CARRY8 #(
    parameter CARRY_TYPE = "SINGLE_CY8"
) (
    output [7:0] CO,
    output [7:0] O,
    input        CI,
    input        CI_TOP,
    input  [7:0] DI,
    input  [7:0] S
);
    reg [7:0] co_r, o_r;
    reg carry;
    integer i;
    always @* begin
        carry = CI;
        for (i = 0; i < 8; i = i + 1) begin
            o_r[i] = S[i] ^ carry;
            carry = S[i] ? carry : DI[i];
            co_r[i] = carry;
        end
    end
    assign O  = o_r;
    assign CO = co_r;
endmodule
