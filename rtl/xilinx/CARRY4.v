// Simulation model of the 7-series CARRY4 primitive, for simulators only: synthesis uses the
// vendor's (or yosys's) own cell.  The carry into bit 0 is CI | CYINIT; bit i: CO[i] = S[i] ?
// carry into i : DI[i]; O[i] = S[i] ^ carry into i.
module CARRY4 (
    output [3:0] CO,
    output [3:0] O,
    input        CI,
    input        CYINIT,
    input  [3:0] DI,
    input  [3:0] S
);
    reg [3:0] co_r, o_r;
    reg carry;
    integer i;
    always @* begin
        carry = CI | CYINIT;
        for (i = 0; i < 4; i = i + 1) begin
            o_r[i] = S[i] ^ carry;
            carry = S[i] ? carry : DI[i];
            co_r[i] = carry;
        end
    end
    assign O  = o_r;
    assign CO = co_r;
endmodule
