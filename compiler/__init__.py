"""finegrain: compile finely quantized neural networks into FPGA hardware, bit-exactly.

Public API::

    import finegrain
    project = finegrain.compile_model("model.onnx", "plan.json", output_dir="out/")
    y = project.emulate(x)          # the bit-exact emulator: the specification
    trace = project.trace(x)        # every layer's output, as values and as mantissas
    result = project.csim(vectors=1000)   # g++ build of out/hls, every bit against the emulator

``import compiler`` (the source folder's name) gives the same modules (`compiler._alias`).
"""

# First, before anything else is imported: the other name becomes an alias of this one.
from ._alias import alias_package as _alias_package

_alias_package(__name__)

__version__ = "0.1.0"

from .errors import FrontendError, PlanError, UserError  # noqa: E402
from .fixed import FixedType, Formats, Overflow, Rounding  # noqa: E402
from .plan import Plan, load_plan  # noqa: E402
from .project import BuildConfig, Project, compile_model, load_project  # noqa: E402
from .project_verify import CsimResult, Estimate, LayerEstimate, Report, SimResult, SynthResult  # noqa: E402
from .trace import Trace, TracedTensor  # noqa: E402

__all__ = [
    "BuildConfig", "CsimResult", "Estimate", "FixedType", "Formats", "FrontendError", "LayerEstimate", "Overflow",
    "Plan", "PlanError", "Project", "Report", "Rounding", "SimResult", "SynthResult", "Trace", "TracedTensor",
    "UserError", "compile_model", "load_plan", "load_project", "__version__",
]
