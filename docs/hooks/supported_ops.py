"""MkDocs hook: the supported-op tables of docs/supported-ops.md, rendered from the frontend itself.

The page holds two markers, ``<!-- supported-ops -->`` and ``<!-- qonnx-ops -->``; at build time
each is replaced by a table built from ``compiler.frontend``'s own lists (``SUPPORTED_OPS`` and
the QONNX translators), the opsets the reader accepts (``compiler.frontend.common.OPSETS``), the
versions ONNX defines in that range (``onnx.defs``) and each translator's docstring, which states
the attributes it reads and its limits.  A hand-written copy would drift from the code; this
cannot.  ``tests/test_docs.py`` checks the built page lists exactly the frontend's ops.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]

PAGE = "supported-ops.md"
MARKERS = ("<!-- supported-ops -->", "<!-- qonnx-ops -->")

# What each translator module reads, in the words of the table's "kind" column.
_KINDS = {
    "ops_arithmetic": "arithmetic",
    "ops_activation": "activation",
    "ops_pool": "pooling",
    "ops_shape": "shape",
    "ops_qdq": "quantizer (QDQ)",
    "ops_quant": "quantizer (QONNX)",
}

# Ops accepted without a translator of their own (compiler/frontend/translators.py): folded as constants.
_FOLDED = {
    "Constant": "A constant: folded into the nodes that read it (as is any node whose inputs are all constant).",
    "Shape": "Read as a constant (finegrain's shapes are static) and folded.",
}


def _frontend():
    """This checkout's ``compiler.frontend.translators`` (not another installed copy's).

    The repository root goes first on ``sys.path`` only now: MkDocs restores ``sys.path`` after
    loading a hook module, and a copy imported from elsewhere is refused rather than documented.
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module("compiler.frontend.translators")
    if Path(module.__file__).resolve().parents[2] != ROOT:
        raise PluginError(f"{PAGE}: compiler was imported from {module.__file__}, not from {ROOT}; "
                          f"build the site with PYTHONPATH={ROOT}")
    return module


def _one_line(text: str) -> str:
    """A docstring as one table cell: paragraphs joined, pipes escaped."""
    return " ".join(inspect.cleandoc(text).split()).replace("|", "\\|")


def _onnx_versions(op: str, first: int, last: int) -> list[int]:
    """The versions of default-domain ``op`` in force somewhere in opsets ``first..last``."""
    import onnx.defs

    since = sorted({s.since_version for s in onnx.defs.get_all_schemas_with_history()
                    if s.name == op and s.domain == ""})
    if not since:
        raise PluginError(f"{PAGE}: onnx defines no default-domain op {op!r}")
    in_force = [v for v in since if v <= first][-1:] if since[0] <= first else []
    return in_force + [v for v in since if first < v <= last]


def op_rows() -> list[tuple[str, str, str, str, str]]:
    """(op, opsets read, the ONNX op versions in them, kind, notes) for every op in the frontend's
    ``SUPPORTED_OPS``, in its order."""
    frontend = _frontend()
    from compiler.frontend.common import OPSETS

    translators = {**frontend._TRANSLATORS, **frontend._QDQ_TRANSLATORS}
    first, last = OPSETS[0], OPSETS[-1]
    rows = []
    for op in frontend.SUPPORTED_OPS:
        versions = _onnx_versions(op, first, last)
        opsets = f"{max(first, versions[0])}–{last}"
        if op in translators:
            fn = translators[op]
            kind = _KINDS.get(fn.__module__.rsplit(".", 1)[-1], "other")
            notes = _one_line(fn.__doc__ or "")
        elif op in _FOLDED:
            kind, notes = "constant", _FOLDED[op]
        else:
            raise PluginError(f"{PAGE}: {op!r} is in SUPPORTED_OPS with no translator and no note in {__file__}")
        rows.append((op, opsets, ", ".join(map(str, versions)), kind, notes))
    return rows


def qonnx_rows() -> list[tuple[str, str, str]]:
    """(op, domains, notes) for every QONNX quantizer the frontend translates."""
    frontend = _frontend()
    from compiler.frontend.ops_quant import QONNX_DOMAINS

    domains = ", ".join(f"`{d}`" for d in QONNX_DOMAINS)
    return [(op, domains, _one_line(fn.__doc__ or "")) for op, fn in sorted(frontend._QONNX_TRANSLATORS.items())]


def supported_ops_table() -> str:
    """The Markdown table of the default-domain ONNX ops finegrain reads."""
    lines = ["| op | opsets | op versions | kind | attributes and limits |", "|---|---|---|---|---|"]
    lines += [f"| `{op}` | {opsets} | {versions} | {kind} | {notes} |"
              for op, opsets, versions, kind, notes in op_rows()]
    return "\n".join(lines)


def qonnx_ops_table() -> str:
    """The Markdown table of the QONNX quantizer ops finegrain reads."""
    lines = ["| op | domains | attributes and limits |", "|---|---|---|"]
    lines += [f"| `{op}` | {domains} | {notes} |" for op, domains, notes in qonnx_rows()]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Fill docs/supported-ops.md's markers; a missing marker fails the build."""
    if page.file.src_uri != PAGE:
        return markdown
    for marker, render in zip(MARKERS, (supported_ops_table, qonnx_ops_table)):
        if marker not in markdown:
            raise PluginError(f"{PAGE} lacks the marker {marker} that {__file__} fills")
        markdown = markdown.replace(marker, render())
    return markdown
