"""What the quantized-import tests (test_quant_import, test_quant_import_graphs) compare with
qonnx and onnxruntime: `ours`, a model file's outputs as finegrain reads it (the IR's float
meaning, ``evaluate_float``), and `quant_nodes`, the ``Op.QUANT`` nodes its quantizers became.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler.float_eval import evaluate_float
from compiler.frontend.onnx import load_onnx
from compiler.ir import Op
from tests import quant_models as qm


def ours(model: qm.QuantModel | Path, inputs=None) -> np.ndarray:
    path = model.path if isinstance(model, qm.QuantModel) else Path(model)
    inputs = model.inputs if inputs is None else inputs
    graph = load_onnx(path)
    return evaluate_float(graph, {graph.inputs[0]: inputs})[graph.outputs[0]]


def quant_nodes(graph) -> list:
    return [n for n in graph.nodes if n.op == Op.QUANT]
