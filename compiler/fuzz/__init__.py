"""The differential fuzzer: random models, plans and inputs, checked across every level.

A *case* (`case.py`) is plain JSON: a small model as a list of layers with explicit float
weights, a bit plan (with per-element arrays inline) and input vectors.  `generate.py` makes
random cases from a seed; `onnx_model.py` writes a case's model as ONNX (onnx.helper, or a
torch export for a fraction of cases); `reference.py` computes the outputs with Python
`fractions` from the documented semantics, independently of `compiler.fixed`,
`compiler.mantissa` and `compiler.emulate`; `check.py` runs one case through compile, the
emulator, the reference, g++ csim and Verilator sim and names the first check that failed;
`csim_batch.py` and `sim_batch.py` run the csim and sim levels of many cases in one g++
build and one Verilator build (`sim_testbench.py` is that build's cocotb testbench);
`quant.py` turns a case into a quantized model (QONNX or QDQ quantizers in the graph, no
plan) and `quant_exact.py` gives those quantizers' exact values and checks such a case
within report.json's ``quantization`` promise; `shrink.py` makes a failing case small;
`__main__.py` is the time-boxed command line (``python -m compiler.fuzz``).
"""
