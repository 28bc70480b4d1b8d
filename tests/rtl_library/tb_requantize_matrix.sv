// tb_requantize_matrix: fg_requantize in every ROUNDING x OVERFLOW pair (8 x 4 = 32) for
// each of NF format pairs, side by side in one design (one Verilator build).
//
// in_bus holds one input code per format (format k at in_offset(k), IN_W bits); out_bus holds
// the 32 results of each format (format k, mode m = rounding * 4 + overflow, at
// out_offset(k) + m * OUT_W).  `formats` exposes the table (format k, field j as an 8-bit
// two's complement number at bits [(k*6 + j)*8 +: 8]) so the cocotb test derives its
// references from the very parameters the hardware was built with.

/* verilator lint_off DECLFILENAME */
package tb_requantize_formats;
    localparam int NF = 24;
    localparam int MODES = 32;
    // IN_W, IN_F, IN_SIGNED, OUT_W, OUT_F, OUT_SIGNED
    // (an assignment pattern fills a descending packed range from its left end)
    localparam bit [NF-1:0][5:0][7:0] FMT = '{
        '{8, 4, 1, 5, 2, 1},      // narrowing, signed: rounding and overflow
        '{8, 5, 0, 4, 2, 0},      // narrowing, unsigned
        '{8, 3, 1, 6, 2, 0},      // signed -> unsigned
        '{7, 2, 0, 5, 1, 1},      // unsigned -> signed
        '{6, 2, 1, 10, 5, 1},     // widening, left shift, never overflows
        '{6, 2, 1, 6, 4, 1},      // left shift that overflows
        '{6, 8, 1, 4, 0, 1},      // right shift (8) beyond the input width (6)
        '{6, 6, 1, 4, 0, 1},      // right shift == input width: -0.5 is a tie
        '{12, 9, 0, 3, -4, 0},    // unsigned, shift 13 > 12, negative output fraction
        '{8, 10, 1, 4, 7, 1},     // negative integer bits on both sides
        '{8, 2, 1, 4, -2, 1},     // output integer bits (6) above its width (4)
        '{5, 3, 1, 1, 0, 1},      // 1-bit signed output (SAT_SYM keeps -1)
        '{5, 3, 1, 1, 1, 0},      // 1-bit unsigned output
        '{6, 0, 0, 6, 0, 1},      // same fraction, unsigned -> signed: overflow only
        '{1, 0, 1, 3, 1, 1},      // 1-bit signed input
        '{10, 6, 1, 7, 3, 1},     // 10 bits, exhaustive
        '{9, 1, 0, 9, 0, 1},      // shift by 1 (no bits below the half bit)
        '{40, 20, 1, 18, 9, 1},   // wide (> 32 bits)
        '{11, 3, 1, 4, 0, 1},     // 11 bits, exhaustive: 5 bits above a signed output
        '{12, 8, 1, 5, 2, 0},     // signed -> unsigned, exhaustive: 6 dropped, 2 above
        '{20, 10, 1, 8, 4, 0},    // a wide sum into a ReLU's unsigned format (bounds probed)
        '{72, 40, 1, 20, 6, 1},   // wider than 64 bits in
        '{70, 10, 0, 66, 12, 0},  // wider than 64 bits out, left shift
        '{5, 8, 1, 63, 60, 1}     // a 52-bit left shift into 63 bits: a 65-bit pattern (fuzz seed 10701)
    };

    // field j of format k as a signed number
    function automatic int fmt(int k, int j);
        return int'($signed(FMT[NF-1-k][5-j]));
    endfunction

    function automatic int in_offset(int k);
        int sum = 0;
        for (int i = 0; i < k; i++) sum += fmt(i, 0);
        return sum;
    endfunction

    function automatic int out_offset(int k);
        int sum = 0;
        for (int i = 0; i < k; i++) sum += MODES * fmt(i, 3);
        return sum;
    endfunction
endpackage
/* verilator lint_on DECLFILENAME */

module tb_requantize_matrix
    import tb_requantize_formats::*;
(
    input  logic [in_offset(NF)-1:0]  in_bus,
    output logic [out_offset(NF)-1:0] out_bus,
    output logic [NF*6*8-1:0]         formats
);
    for (genvar k = 0; k < NF; k++) begin : g_format
        for (genvar j = 0; j < 6; j++) begin : g_field
            assign formats[(k*6 + j)*8 +: 8] = FMT[NF-1-k][5-j];
        end
        for (genvar r = 0; r < 8; r++) begin : g_rounding
            for (genvar o = 0; o < 4; o++) begin : g_overflow
                fg_requantize #(
                    .IN_W(fmt(k, 0)), .IN_F(fmt(k, 1)), .IN_SIGNED(fmt(k, 2)),
                    .OUT_W(fmt(k, 3)), .OUT_F(fmt(k, 4)), .OUT_SIGNED(fmt(k, 5)),
                    .ROUNDING(r), .OVERFLOW(o)
                ) u_requantize (
                    .in_data(in_bus[in_offset(k) +: fmt(k, 0)]),
                    .out_data(out_bus[out_offset(k) + (r*4 + o)*fmt(k, 3) +: fmt(k, 3)])
                );
            end
        end
    end
endmodule
