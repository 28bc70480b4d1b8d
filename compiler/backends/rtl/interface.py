"""What a simulation and a system see of the generated top: schedule.json's entry (ports,
latency, II) and the AXI4-Stream top around the core."""

from __future__ import annotations

from .options import RTLBackendError

PORT_FIELDS = ("name", "onnx", "size", "width", "signed", "type")
INTERFACES = ("ports", "axis")


def schedule(context: dict, axis: dict | None = None) -> dict:
    """What a simulation needs to know of the generated top(s): ports, latency, II, and with
    ``axis`` (:func:`axis_context`) the AXI4-Stream top's name, tdata widths and latency."""
    entry = {"latency_cycles": context["latency"], "ii_cycles": 1, "clock_ns": context["clock_ns"],
             "levels_per_stage": context["levels_per_stage"], "interface": "axis" if axis else "ports",
             **({"timing": context["timing"]} if context.get("timing") else {})}
    if axis:
        entry["axis"] = {"top": axis["top"], "s_axis_tdata_bits": axis["s"]["tdata_bits"],
                         "m_axis_tdata_bits": axis["m"]["tdata_bits"], "latency_cycles": axis["latency"],
                         "fifo_depth": axis["fifo_depth"]}
    entry.update({
        "inputs": [{k: p[k] for k in PORT_FIELDS} for p in context["inputs"]],
        "outputs": [{k: p[k] for k in PORT_FIELDS} for p in context["outputs"]],
        "layers": [{"name": layer["name"], "onnx": layer["onnx"], "ops": layer["ops"],
                    "start_cycle": layer["start"], "latency_cycles": layer["latency"],
                    **({"critical_ns": layer["critical_ns"]} if "critical_ns" in layer else {}),
                    **({"adders": layer["sums"]["adders"], "adder_levels": layer["sums"]["levels"]}
                       if "sums" in layer else {})}
                   for layer in context["layers"]]})
    return entry


def stream_schedule(context: dict) -> dict:
    """schedule.json of a stream top: ports with their beats, lanes and element order, the
    predicted latency and II, and the engines."""
    keys = (*PORT_FIELDS, "beats", "lanes", "order")
    return {"architecture": "stream", "interface": "stream", "latency_cycles": context["latency"],
            "ii_cycles": context["ii"], "ii_images": context["ii_images"], "clock_ns": context["clock_ns"],
            "levels_per_stage": context["levels_per_stage"],
            **({"timing": context["timing"]} if context.get("timing") else {}),
            "inputs": [{k: p[k] for k in keys} for p in context["inputs"]],
            "outputs": [{k: p[k] for k in keys} for p in context["outputs"]],
            "engines": [{"name": e["name"], "onnx": e["onnx"], "ops": e["ops"], "reuse": e["reuse"],
                         "latency_cycles": e["latency"], "fifo_depth": e["fifo"]["depth"],
                         "beats_in": e["beats_in"], "beats_out": e["beats_out"]} for e in context["engines"]]}


def axis_top_name(model: str) -> str:
    return f"{model}_axis"


def _axis_stream(port: dict) -> dict:
    """One AXI4-Stream side: the core port's packed bits in the low bits of tdata, padded
    with zeros to whole bytes as AXI4-Stream requires."""
    tdata_bits = -(-port["bits"] // 8) * 8
    return {**port, "tdata_bits": tdata_bits, "pad_bits": tdata_bits - port["bits"],
            "msb": port["bits"] - 1, "tdata_msb": tdata_bits - 1}


def axis_context(context: dict) -> dict:
    """The AXI4-Stream top around the core ``context`` describes: fg_axis_wrapper (rtl/) with
    LATENCY = the core's latency and FIFO_DEPTH = latency + 2, the depth its header says
    sustains one beat per clock.  One input and one output tensor only: tdata is one packed
    port."""
    if len(context["inputs"]) != 1 or len(context["outputs"]) != 1:
        names = ", ".join(p["onnx"] for p in context["inputs"]), ", ".join(p["onnx"] for p in context["outputs"])
        raise RTLBackendError(f"model {context['model']!r} has inputs ({names[0]}) and outputs ({names[1]}); "
                              f"the AXI4-Stream top takes one input and one output tensor; "
                              f"compile with --rtl-interface ports")
    latency = context["latency"]
    return {"model": context["model"], "top": axis_top_name(context["model"]), "version": context["version"],
            "source": context["source"], "clock_ns": context["clock_ns"], "core_latency": latency,
            "latency": latency + 1, "fifo_depth": latency + 2,
            "s": _axis_stream(context["inputs"][0]), "m": _axis_stream(context["outputs"][0])}
