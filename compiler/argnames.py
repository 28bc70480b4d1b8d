"""How an error message names an option: as the caller spelt it.

One message serves both callers: from Python it names the argument (``force=True``,
``clock_ns``, ``output_dir``), from the command line the flag (``--force``, ``--clock-ns``,
``-o``).  `compiler.cli` runs each command inside `command_line()`; everything else gets the
Python spelling.  Messages write ``option("clock_ns")`` or ``option("force", True)``, never a
flag by hand.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar

# Python argument (a `compile_model` keyword or BuildConfig field) -> its flag, where the flag is not
# "--" + the name with dashes.
_FLAGS = {
    "output_dir": "-o", "backends": "--backend", "architecture": "--arch", "layers": "--layer-config",
    "rtl_adder_slack": "--adder-slack", "rtl_adder_graph": "--no-adder-graph",
    "rtl_ternary_adders": "--no-ternary-adders", "board": "--board", "part": "--part",
    "lambdas": "--lambda", "max_luts": "--max-lut",  # `finegrain plan sweep` / `run_sweep`
}
# Flags that take no value: "--force", not "--force True".
_SWITCHES = {"force", "rtl_adder_graph", "rtl_ternary_adders"}

_command_line: ContextVar[bool] = ContextVar("finegrain_command_line", default=False)


@contextlib.contextmanager
def command_line():
    """Within this block messages name command-line flags (the `finegrain` command)."""
    token = _command_line.set(True)
    try:
        yield
    finally:
        _command_line.reset(token)


def command_line_active() -> bool:
    """Whether the caller is the `finegrain` command (messages may suggest a command line)."""
    return _command_line.get()


def option(name: str, value=None) -> str:
    """The option ``name`` (a Python argument name) as the caller writes it, with ``value`` if
    given: ``option("target_ii", 50)`` is ``--target-ii 50`` on the command line and
    ``target_ii=50`` from Python."""
    if not _command_line.get():
        return name if value is None else f"{name}={value!r}"
    flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
    if isinstance(value, (tuple, list)):  # backends=("hls", "rtl") is --backend hls,rtl
        value = ",".join(map(str, value))
    return flag if value is None or name in _SWITCHES else f"{flag} {value}"
