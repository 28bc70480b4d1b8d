"""finegrain: compile finely quantized neural networks into FPGA hardware, bit-exactly.

Public API::

    import finegrain
    project = finegrain.compile_model("model.onnx", "plan.json", output_dir="out/")
    y = project.emulate(x)          # the bit-exact emulator: the specification
    trace = project.trace(x)        # every layer's output, as values and as mantissas
    result = project.csim(vectors=1000)   # g++ build of out/hls, every bit against the emulator

``import compiler`` (the source folder's name) gives the same modules (`compiler._alias`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# First, before anything else of the package is imported: the other name becomes an alias of this one.
from ._alias import alias_package as _alias_package

_alias_package(__name__)

__version__ = "0.1.0"

# The public names, each from the module that defines it.  They are imported on first use
# (PEP 562), not here: `finegrain emulate` then loads neither the frontend (onnx) nor the
# backends (jinja2), and `finegrain --help` not even numpy.  `python -X importtime -m
# finegrain.cli CMD` shows what each command loads; tests/test_startup.py keeps it so.
_LAZY = {
    "FrontendError": "errors", "PlanError": "errors", "UserError": "errors",
    "FixedType": "fixed", "Formats": "fixed", "Overflow": "fixed", "Rounding": "fixed",
    "Plan": "plan", "load_plan": "plan",
    "BuildConfig": "build_config", "Project": "project", "compile_model": "project", "load_project": "project",
    "CsimResult": "project_verify", "Estimate": "project_verify", "LayerEstimate": "project_verify",
    "Report": "project_verify", "SimResult": "project_verify", "SynthResult": "project_verify",
    "Trace": "trace", "TracedTensor": "trace",
}

__all__ = [
    "BuildConfig", "CsimResult", "Estimate", "FixedType", "Formats", "FrontendError", "LayerEstimate", "Overflow",
    "Plan", "PlanError", "Project", "Report", "Rounding", "SimResult", "SynthResult", "Trace", "TracedTensor",
    "UserError", "compile_model", "load_plan", "load_project", "__version__",
]

if TYPE_CHECKING:  # what type checkers and IDEs see: the same names, imported eagerly
    from .build_config import BuildConfig
    from .errors import FrontendError, PlanError, UserError
    from .fixed import FixedType, Formats, Overflow, Rounding
    from .plan import Plan, load_plan
    from .project import Project, compile_model, load_project
    from .project_verify import CsimResult, Estimate, LayerEstimate, Report, SimResult, SynthResult
    from .trace import Trace, TracedTensor


def __getattr__(name: str):
    """Import a public name's module on first use and keep the name here (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
