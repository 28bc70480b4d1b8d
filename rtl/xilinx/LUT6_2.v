// Simulation model of the Xilinx LUT6_2 primitive (a 6-input look-up table with a second,
// 5-input output), for simulators only: synthesis uses the vendor's (or yosys's) own cell.
// O6 = INIT[{I5, I4, I3, I2, I1, I0}]; O5 = INIT[{1'b0, I4, I3, I2, I1, I0}].
module LUT6_2 #(
    parameter [63:0] INIT = 64'h0
) (
    output O6,
    output O5,
    input  I0, I1, I2, I3, I4, I5
);
    wire [5:0] index = {I5, I4, I3, I2, I1, I0};
    assign O6 = INIT[index];
    assign O5 = INIT[{1'b0, index[4:0]}];
endmodule
