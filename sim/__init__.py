"""RTL simulation: cocotb testbenches built and run on Verilator (see `sim.runner`)."""
