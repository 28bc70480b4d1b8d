"""Model readers: each turns a model file into an IR :class:`~compiler.ir.Graph`."""

from .onnx import SUPPORTED_OPS, load_onnx

__all__ = ["SUPPORTED_OPS", "load_onnx"]
