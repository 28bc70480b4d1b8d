"""finegrain: compile finely quantized neural networks into FPGA hardware, bit-exactly.

Public API::

    import compiler
    project = compiler.compile_model("model.onnx", "plan.json", output_dir="out/")
    y = project.emulate(x)          # the bit-exact emulator: the specification
"""

__version__ = "0.1.0"

from .errors import FrontendError, PlanError, UserError  # noqa: E402
from .fixed import FixedType, Formats, Overflow, Rounding  # noqa: E402
from .plan import Plan, load_plan  # noqa: E402
from .project import BuildConfig, Project, compile_model, load_project  # noqa: E402

__all__ = [
    "BuildConfig", "FixedType", "Formats", "FrontendError", "Overflow", "Plan", "PlanError", "Project",
    "Rounding", "UserError", "compile_model", "load_plan", "load_project", "__version__",
]
