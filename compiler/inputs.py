"""What a user gives finegrain, checked before anything runs: `compile_model`'s model and plan
arguments, and the inputs of a compiled model (emulate, trace, csim, sim), from the `finegrain`
command's files and the Python API's arrays alike."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .argnames import option
from .errors import UsageError, UserError

MAX_VECTOR_VALUES = 100_000_000  # input values of the random vectors csim/sim make (800 MB of float64)


def check_inputs(x, graph, source: str, several: str = "a dict keyed by input name") -> dict[str, np.ndarray]:
    """``x`` (one array, or a dict by input name) as float64 arrays of shape [batch, ...] (one
    sample gets its batch axis), real and finite, one per model input, with one batch size.
    ``source`` names where they came from in messages (``"input file 'x.npy'"``, ``"x"``);
    ``several`` says how to give several inputs."""
    names = list(graph.inputs)
    if not isinstance(x, dict):
        if len(names) != 1:
            raise UserError(f"{source} holds one array, but the model has {len(names)} inputs "
                            f"({', '.join(names)}); give {several}")
        x = {names[0]: x}
    missing, unknown = [n for n in names if n not in x], [k for k in x if k not in names]
    if missing or unknown:
        raise UserError(f"{source} has arrays {sorted(map(str, x))}, but the model's inputs are {names}"
                        + (f"; missing {missing}" if missing else "") + (f"; unknown {unknown}" if unknown else ""))
    checked, batches = {}, {}
    for name in names:
        shape = tuple(graph.tensor(name).shape)
        want = f"[batch, {', '.join(map(str, shape))}]"
        try:
            a = np.asarray(x[name])
        except (ValueError, TypeError, RuntimeError) as err:  # ragged lists, torch tensors numpy cannot take
            raise UserError(f"input {name!r} in {source} is not an array of numbers ({type(err).__name__}: "
                            f"{str(err)[:120]}); give a numpy array of shape {want} (from a torch tensor: "
                            f"x.detach().float().numpy())") from None
        if a.dtype.kind not in "biuf":  # (timedelta64 counts as an integer to np.issubdtype)
            raise UserError(f"input {name!r} in {source} holds {a.dtype} values; expected real numbers of shape "
                            f"{want}")
        if a.shape == shape:
            a = a[np.newaxis]
        if a.shape[1:] != shape or a.shape[0] < 1:
            raise UserError(f"input {name!r} has shape {list(a.shape)}; expected {want} with batch >= 1 ({source})")
        bad = ~np.isfinite(a.astype(np.float64))
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise UserError(f"input {name!r} has {int(bad.sum())} non-finite values (NaN or infinite), the first "
                            f"at index {list(first)} ({source}); inputs must be finite numbers")
        checked[name] = a.astype(np.float64)
        batches[name] = a.shape[0]
    if len(set(batches.values())) > 1:
        raise UserError(f"the inputs in {source} have different batch sizes: {batches}; give each the same")
    return checked


def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 1 << 63:
        raise UsageError(f"{option('seed')} must be an integer from 0 to 2**63 - 1, got {seed!r}")


def random_vectors(graph, vectors, seed) -> dict[str, np.ndarray]:
    """``vectors`` random inputs over each input format's range plus the extreme ones
    (`compiler.verify.vectors.csim_vectors`), within `MAX_VECTOR_VALUES` input values."""
    from .verify.vectors import csim_vectors

    check_seed(seed)
    per_vector = sum(int(np.prod(graph.tensor(n).shape)) for n in graph.inputs)
    most = max(1, MAX_VECTOR_VALUES // max(per_vector, 1))
    if isinstance(vectors, bool) or not isinstance(vectors, (int, np.integer)) or not 0 <= vectors <= most:
        raise UsageError(f"{option('vectors')} must be between 0 and {most:,} for this model ({per_vector:,} input "
                         f"values per vector, at most {MAX_VECTOR_VALUES:,} in all), got {vectors!r}")
    return csim_vectors(graph, int(vectors), seed=int(seed))


DICT_PLAN = "<plan dict>"  # the plan path of a plan given as a dict


def model_argument(model) -> tuple[object, str]:
    """compile_model's ``model``: (what the frontend reads, its name in config.json and messages)."""
    if isinstance(model, (str, os.PathLike)):
        return model, str(model)
    if type(model).__name__ == "ModelProto" and type(model).__module__.split(".")[0] == "onnx":
        return model, f"<onnx.ModelProto {model.graph.name or 'without a graph name'}>"
    raise UserError(f"compile_model: the argument model must be the path of an .onnx file (str or pathlib.Path) or "
                    f"an onnx.ModelProto, got {type(model).__name__} {_shown(model)}")


def plan_argument(plan, no_plan: str):
    """compile_model's ``plan`` as a `Plan` (see `compile_model`)."""
    from .plan import Plan, load_plan, parse_plan

    if plan is None:  # a quantized model's quantizers are its plan (lower_quant); ``no_plan`` names it
        return parse_plan({}, Path("."), no_plan)
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, (str, os.PathLike)):
        return load_plan(plan)
    if isinstance(plan, dict):
        return parse_plan(plan, Path.cwd(), DICT_PLAN)
    raise UserError(f"compile_model: the argument plan must be the path of a plan JSON file (str or pathlib.Path), "
                    f"a dict holding the plan (the file's content), a finegrain.Plan, or None for a quantized "
                    f"model; got {type(plan).__name__} {_shown(plan)}")


def check_options(options: dict, data) -> None:
    """compile_model's keyword options: BuildConfig fields of the types the fields take (the
    values themselves are BuildConfig's to check), and ``data`` in a form it reads."""
    import dataclasses

    from .build_config import BuildConfig

    fields = {f.name for f in dataclasses.fields(BuildConfig)} - {"model", "plan", "output_dir", "check_ir",
                                                                   "finegrain_version"}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UserError(f"compile_model: unknown option(s) {', '.join(unknown)}; the options are "
                        f"{', '.join(sorted(fields))}")
    backends = options.get("backends")
    if backends is not None and (not isinstance(backends, (tuple, list)) or not all(isinstance(b, str)
                                                                                     for b in backends)):
        raise UserError(f"compile_model: the argument backends must be a tuple of backend names, e.g. ('hls',) or "
                        f"('hls', 'rtl'), got {type(backends).__name__} {_shown(backends)}")
    for name in ("part", "board", "strategy", "architecture", "rtl_interface"):
        if options.get(name) is not None and not isinstance(options[name], str):
            raise UserError(f"compile_model: the argument {name} must be a string, got "
                            f"{type(options[name]).__name__} {_shown(options[name])}")
    if isinstance(data, (str, os.PathLike, bytes)):
        raise UserError(f"compile_model: the argument data must be the inputs themselves (an array, a dict by input "
                        f"name, or a function of the graph), got the path {_shown(data)}: load it first, e.g. "
                        f"np.load(path)")


def path_argument(value, name: str, function: str, none: bool = False) -> Path | None:
    """A Python API's path argument ``name`` of ``function`` as a Path (None allowed when
    ``none``), or a clear error naming it."""
    if value is None and none:
        return None
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    allowed = "(str or pathlib.Path) or None" if none else "(str or pathlib.Path)"
    raise UserError(f"{function}: the argument {name} must be a path {allowed}, got {type(value).__name__} "
                    f"{_shown(value)}")


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
