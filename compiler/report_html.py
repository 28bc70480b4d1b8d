"""OUT/report.html: the build report as one self-contained page.

Reads OUT/report.json (types, estimate, synthesis and simulation results, whichever are
there) and OUT/ir.pkl (the per-element formats), and writes a page a browser opens with no
network and no other file: CSS inline, every plot an inline SVG drawn by matplotlib (heat
map pixels as inline PNG data). Sections: totals and verdicts, resources per layer,
estimate vs synthesis, latency per layer, the layers' types, bit-width heat maps, warnings.

Matplotlib is imported inside the drawing functions so that `import compiler` stays fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .html_page import CSS, RC, SvgFigures, escape, figure, number
from .ir import Graph, Op, Tensor
from .output_folder import write_whole
from .type_names import readable_type

# A heat map shows at most this many cells per side; bigger tensors are shown by block maxima.
MAX_MAP_SIDE = 256
# At most this many heat maps; the page names the tensors left out.
MAX_MAPS = 48
PRUNED_COLOUR = "#c8c8c8"
RESOURCES = ("lut", "ff", "dsp", "bram", "carry")
RESOURCE_LABELS = {"lut": "LUT", "ff": "FF", "dsp": "DSP", "bram": "BRAM36", "carry": "carry"}
# ECP5 estimates and syntheses count LUT4 sites (a CCU2C two) and CCU2C carry cells
ECP5_LABELS = {**RESOURCE_LABELS, "lut": "LUT4", "carry": "CCU2C"}


def _labels(*reports: dict | None) -> dict:
    """The resource names for the family of an estimate or synthesis (the first that has one)."""
    family = next((r["family"] for r in reports if r and r.get("family")), None)
    return ECP5_LABELS if family == "ecp5" else RESOURCE_LABELS


def write_report_html(out_dir, project=None) -> Path:
    """Write OUT/report.html from OUT/report.json and OUT/ir.pkl (or ``project``, when the
    caller has loaded it already); return its path."""
    from .project import load_project

    out = Path(out_dir)
    path = out / "report.json"
    if not path.is_file():
        raise UserError(f"{str(out)!r} has no report.json; run 'finegrain compile ... -o {out}' first")
    report = json.loads(path.read_text())
    project = project or load_project(out)
    page = render_report_html(report, project.graph, part=project.config.part, clock_ns=project.config.clock_ns,
                              backends=project.config.backends,
                              architecture=project.config.rtl_options().architecture)
    target = out / "report.html"
    write_whole(target, lambda f: f.write(page.encode()))  # an interrupted report leaves no half page
    return target


def render_report_html(report: dict, graph: Graph, part: str, clock_ns: float, backends=("hls", "rtl"),
                       architecture: str | None = None) -> str:
    """The page's text. ``part``/``clock_ns`` are the build's, used when the estimate has none;
    so is ``architecture`` (the RTL's: "parallel" or "stream"), which the estimate describes."""
    import matplotlib

    with matplotlib.rc_context(RC):
        svg = SvgFigures()
        body = [
            _header(report, part, clock_ns, architecture if "rtl" in backends else None),
            _summary(report, clock_ns, backends),
            _resources(report, svg),
            _synthesis(report, svg),
            _board_build(report.get("build")),
            _latency(report, svg),
            _layers_table(report),
            _bit_widths(graph, svg),
            _warnings(report),
        ]
    title = f"finegrain report: {report.get('model', graph.name)}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _verdict(result: dict | None, command: str) -> str:
    if not result:
        return f"<span class=\"note\">not run (<code>{escape(command)}</code>)</span>"
    if result.get("mismatches") == 0:
        return f"<span class=\"ok\">bit-exact</span> over {number(result.get('vectors'))} vectors"
    return (f"<span class=\"bad\">{number(result.get('mismatches'))} mismatches</span> "
            f"over {number(result.get('vectors'))} vectors")


def _ratio(est: dict, synth: dict, key: str) -> float | None:
    """Estimate / synthesis: synthesis' own ratio where it gives one, else computed."""
    ratio = (synth.get("ratio") or {}).get(key)
    if ratio is None and est.get(key) is not None and synth.get(key):
        ratio = est[key] / synth[key]
    return ratio


# --- sections -------------------------------------------------------------------------
def _header(report: dict, part: str, clock_ns: float, architecture: str | None = None) -> str:
    est = report.get("estimate") or {}
    synth = report.get("synth") or {}
    part = est.get("part", part)
    family = est.get("family") or synth.get("family")
    clock = est.get("clock_ns", clock_ns)
    if est.get("architecture"):
        architecture = est["architecture"]
    elif architecture:
        architecture = f"rtl: {'fully parallel' if architecture == 'parallel' else architecture}"
    facts = [f"part <code>{escape(part)}</code>" + (f" ({escape(family)})" if family else ""),
             f"clock {escape(clock)} ns ({1000 / clock:.0f} MHz)" if clock else None,
             f"architecture <span id=\"architecture\">{escape(architecture)}</span>" if architecture else None,
             f"finegrain {escape(report.get('finegrain_version', '?'))}",
             f"compiled in {escape(report['compile_seconds'])} s" if "compile_seconds" in report else None]
    return (f"<h1>finegrain report: {escape(report.get('model', '?'))}</h1>\n"
            f"<p class=\"meta\">{' · '.join(f for f in facts if f)}</p>")


def _summary(report: dict, clock_ns: float, backends) -> str:
    est, synth, sim = report.get("estimate"), report.get("synth"), report.get("sim")
    parts = ["<h2 id=\"summary\">Summary</h2>"]
    if est:
        parts.append(_totals_table(est, synth))
    else:
        parts.append(_no_estimate_note(backends))
    if synth and not est:
        parts.append(_totals_table({}, synth))
    clock = (est or {}).get("clock_ns", clock_ns)
    rows = []
    if est:
        rows.append(("estimate (schedule)", est.get("latency_cycles"), est.get("ii_cycles")))
    if sim:
        rows.append(("measured (Verilator sim)", sim.get("latency_cycles"), sim.get("ii_cycles")))
    if rows:
        lines = ["<table id=\"latency-table\"><tr><th class=\"name\"></th><th>latency (cycles)</th>"
                 "<th>latency (ns)</th><th>II (cycles)</th></tr>"]
        for label, latency, ii in rows:
            ns = f"{latency * clock:g}" if latency is not None and clock else "–"
            lines.append(f"<tr><td class=\"name\">{label}</td><td>{number(latency)}</td><td>{ns}</td>"
                         f"<td>{number(ii)}</td></tr>")
        lines.append("</table>")
        if est and sim and sim.get("latency_cycles") is not None and \
                (est.get("latency_cycles"), est.get("ii_cycles")) != (sim.get("latency_cycles"), sim.get("ii_cycles")):
            lines.append("<p class=\"bad\">The simulated latency or II differs from the estimate.</p>")
        parts.append("\n".join(lines))
    parts.append("<ul>"
                 f"<li>C simulation (g++): {_verdict(report.get('csim'), 'finegrain csim OUT')}</li>"
                 f"<li>RTL simulation (Verilator): {_verdict(sim, 'finegrain sim OUT')}</li></ul>")
    return "\n".join(parts)


def _no_estimate_note(backends) -> str:
    if "rtl" not in backends:
        why = (f"this folder was compiled with backend(s) {', '.join(backends)}, and the estimate "
               f"describes the RTL backend's architecture")
    else:
        why = "run <code>finegrain report OUT</code> to make one"
    return f"<p class=\"note\" id=\"no-estimate\">No resource estimate in report.json: {why}.</p>"


def _totals_table(est: dict, synth: dict | None) -> str:
    synth = synth or {}
    percent = est.get("percent") or {}
    head = ["<th class=\"name\">resource</th>"]
    if est:
        head.append("<th>estimate</th>")
    if synth:
        version = f" ({escape(synth['yosys_version'])})" if synth.get("yosys_version") else ""
        head += [f"<th>synthesis{version}</th>"] + (["<th>estimate / synthesis</th>"] if est else [])
    if est:
        head.append("<th>% of part</th>")
    lines = ["<table id=\"totals\">", "<tr>" + "".join(head) + "</tr>"]
    for key in RESOURCES:
        if key not in est and key not in synth:
            continue
        digits = 1 if key == "bram" else 0
        cells = [f"<td class=\"name\">{_labels(est, synth)[key]}</td>"]
        if est:
            cells.append(f"<td>{number(est.get(key), digits)}</td>")
        if synth:
            cells.append(f"<td>{number(synth.get(key), digits)}</td>")
            if est:
                ratio = _ratio(est, synth, key)
                cells.append(f"<td>{'–' if ratio is None else f'{ratio:.2f}'}</td>")
        if est:
            cells.append(f"<td>{'–' if percent.get(key) is None else f'{percent[key]:.2f} %'}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    times = []
    if est.get("seconds") is not None:
        times.append(f"estimate made in {est['seconds']:.3g} s")
    if synth.get("seconds") is not None:
        command = "synth_ecp5" if synth.get("family") == "ecp5" else "synth_xilinx"
        times.append(f"synthesis (yosys {command}{', ' + escape(synth['family']) if synth.get('family') else ''}) "
                     f"took {synth['seconds']:.3g} s")
    if times:
        lines.append(f"<p>{'; '.join(times)}.</p>")
    return "\n".join(lines)


def _resources(report: dict, svg: "SvgFigures") -> str:
    layers = (report.get("estimate") or {}).get("layers")
    if not layers:
        return ""
    # a stream design's rows are engines, with their folding and throughput
    stream = _is_stream(layers)
    extra = ("reuse", "cycles_per_image") if stream else ()
    unit = "engine" if stream else "layer"
    parts = [f"<h2 id=\"resources\">Resources per {unit} (estimate)</h2>", svg.add(_resource_chart(layers)),
             f"<table id=\"layer-resources\"><tr><th class=\"name\">{unit}</th><th class=\"name\">ops</th>"
             + "".join(f"<th>{_labels(report.get('estimate'))[k]}</th>" for k in RESOURCES)
             + "".join(f"<th>{k.replace('_', ' ')}</th>" for k in extra) + "</tr>"]
    for layer in layers:
        parts.append(f"<tr><td class=\"name\">{escape(layer.get('name'))}</td>"
                     f"<td class=\"name\">{escape(layer.get('ops', ''))}</td>"
                     + "".join(f"<td>{number(layer.get(k), 1 if k == 'bram' else 0)}</td>" for k in RESOURCES)
                     + "".join(f"<td>{number(layer.get(k))}</td>" for k in extra) + "</tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _synthesis(report: dict, svg: "SvgFigures") -> str:
    est, synth = report.get("estimate"), report.get("synth")
    if not synth:
        return ("<h2 id=\"synthesis\">Estimate vs synthesis</h2>\n<p class=\"note\">No synthesis result in "
                "report.json (<code>finegrain report OUT --synth</code> runs yosys).</p>")
    if not est:
        return ""
    parts = ["<h2 id=\"synthesis\">Estimate vs synthesis</h2>", svg.add(_synth_totals_chart(est, synth))]
    if synth.get("layers") and est.get("layers"):  # matched by layer name
        parts.append(svg.add(_synth_layers_chart(est["layers"], synth["layers"])))
    return "\n".join(parts)


def _board_build(build: dict | None) -> str:
    """finegrain build's result: timing against the clock asked for, the part's use, the files."""
    if not build:
        return ""
    met = "<span class=\"ok\">met</span>" if build.get("met") else "<span class=\"bad\">not met</span>"
    where = "Vivado, out of context" if build.get("flow") == "vivado" else "yosys, nextpnr-ecp5, ecppack"
    rows = [("board", f"{build.get('board')} ({build.get('part')}; {where})"),
            ("timing", f"Fmax {number(build.get('fmax_mhz'), 1)} MHz at {number(build.get('clock_ns'), 2)} ns "
                       f"({number(build.get('clock_mhz'), 1)} MHz): "),
            ("critical path", ", ".join(f"{k} {v:.2f} ns" for k, v in (build.get("path") or {}).items()) or "–")]
    if build.get("bitstream"):
        rows.append(("bitstream", f"{build['bitstream']} ({number(build.get('bitstream_bytes'))} bytes), "
                                  f"{number(build.get('vectors'))} vectors checked on the board"))
    lines = ["<h2 id=\"build\">Board build</h2>", "<table>"]
    lines += [f"<tr><th class=\"name\">{escape(k)}</th>"
              f"<td class=\"name\">{escape(v)}{met if k == 'timing' else ''}</td></tr>" for k, v in rows]
    lines += ["</table>", "<table>", "<tr><th class=\"name\">resource</th><th>used</th><th>of</th><th>%</th></tr>"]
    lines += [f"<tr><td class=\"name\">{escape(k)}</td><td>{number(u.get('used'))}</td>"
              f"<td>{number(u.get('available'))}</td><td>{number(u.get('percent'), 2)}</td></tr>"
              for k, u in (build.get("utilisation") or {}).items()]
    return "\n".join(lines + ["</table>"])


def _is_stream(layers: list[dict]) -> bool:
    return bool(layers) and all("cycles_per_image" in ly for ly in layers)


def _latency(report: dict, svg: "SvgFigures") -> str:
    est = report.get("estimate") or {}
    layers = est.get("layers")
    if layers and _is_stream(layers):
        return ("<h2 id=\"throughput\">Cycles per image per engine (schedule)</h2>\n"
                + svg.add(_throughput_chart(layers, est.get("ii_cycles"))))
    if not layers or not all("start_cycle" in ly and "latency_cycles" in ly for ly in layers):
        return ""
    return ("<h2 id=\"latency\">Latency per layer (schedule)</h2>\n"
            + svg.add(_latency_chart(layers, est.get("latency_cycles"), est.get("ii_cycles"))))


def _layers_table(report: dict) -> str:
    head = "".join(f"<th class=\"name\">{h}</th>" for h in ("layer", "ops", "accumulator", "output",
                                                            "weights (non-zero / elements, type)"))
    lines = ["<h2 id=\"layers\">Layers</h2>", f"<div class=\"wide\"><table id=\"layer-types\"><tr>{head}</tr>"]
    for layer in report.get("layers", []):
        acc = next(iter(layer.get("accumulator", {}).values()), None)
        out = next(iter(layer.get("output", {}).values()), {})
        weights = [f"{escape(name)}: {c['nonzero']}/{c['elements']}, {_type_html(c)}"
                   for name, c in layer.get("constants", {}).items() if c.get("role") == "weight"]
        ops = "+<wbr>".join(escape(s) for s in layer.get("stages", []))
        lines.append(f"<tr><td class=\"name\">{escape(layer['name'])}</td><td class=\"name\">{ops}</td>"
                     f"<td class=\"name type\">{_type_html(acc) if acc else '–'}</td>"
                     f"<td class=\"name type\">{_type_html(out)}</td>"
                     f"<td class=\"name type\">{'<br>'.join(weights) or '–'}</td></tr>")
    lines.append("</table></div>")
    return "\n".join(lines)


def _type_html(entry: dict) -> str:
    """A tensor's type; a mixed one (``type_counts`` in its report entry) opens to its legend:
    every type and how many elements have it."""
    counts = entry.get("type_counts")
    if not counts:
        return escape(entry.get("type"))
    items = "".join(f"<li><code>{escape(t)}</code>: {n:,}</li>" for t, n in counts.items())
    return f"<details class=\"types\"><summary>{escape(entry.get('type'))}</summary><ul>{items}</ul></details>"


def _bit_widths(graph: Graph, svg: "SvgFigures") -> str:
    maps = bit_width_tensors(graph)
    parts = ["<h2 id=\"bit-widths\">Bit widths per element</h2>",
             "<p>Every weight tensor and every planned activation (graph inputs and requantized outputs), "
             "one cell per element, coloured by its width in bits (and, below, by its integer bits where "
             "those differ between elements); pruned elements (width 0) in grey. "
             "Weights are drawn [output channel, rest]; activations [channel, position] (a one-channel "
             "image as it is), and vectors wrapped row by row.</p>"]
    if len(maps) > MAX_MAPS:
        left_out = ", ".join(f"<code>{escape(t.onnx_name or t.name)}</code>" for t, _ in maps[MAX_MAPS:])
        parts.append(f"<p class=\"note\">Only the first {MAX_MAPS} of {len(maps)} tensors are drawn; "
                     f"left out: {left_out}.</p>")
    parts.append("<div class=\"maps\">")
    for i, (tensor, role) in enumerate(maps[:MAX_MAPS]):
        grid = width_grid(tensor, role)
        name = tensor.onnx_name or tensor.name
        f = tensor.formats
        kept = ~f.pruned
        stats = f"{f.width.size:,} elements, {int(f.pruned.sum()):,} pruned"
        if kept.any():
            stats += f", widths {int(f.width[kept].min())}..{int(f.width[kept].max())}"
        stats += f", {int(f.width.sum()):,} bits in all"
        parts.append(f"<figure class=\"heatmap\" id=\"map-{i}\" data-tensor=\"{escape(name)}\" data-role=\"{role}\">"
                     + svg.add(_heat_map(grid, name, readable_type(f)))
                     + f"<figcaption><b>{escape(name)}</b> ({role}, shape {escape(list(tensor.shape))}): "
                     f"<code>{escape(readable_type(f))}</code>; {stats}. {escape(grid.note)}</figcaption></figure>")
    parts.append("</div>")
    return "\n".join(parts)


def _warnings(report: dict) -> str:
    items = report.get("warnings", [])
    if not items:
        return "<h2 id=\"warnings\">Warnings</h2>\n<p>None.</p>"
    return ("<h2 id=\"warnings\">Warnings</h2>\n<ul class=\"warnings\">"
            + "".join(f"<li>{escape(w)}</li>" for w in items) + "</ul>")


# --- which tensors, and how their widths are laid out -----------------------------------
def bit_width_tensors(graph: Graph) -> list[tuple[Tensor, str]]:
    """(tensor, "weight" | "activation") for the heat maps, in graph order: the graph inputs,
    then per layer its DENSE/CONV weight and its requantized outputs."""
    seen, found = set(), []

    def add(name: str, role: str) -> None:
        t = graph.tensor(name)
        if name not in seen and t.formats is not None and t.formats.width.size:
            seen.add(name)
            found.append((t, role))

    for name in graph.inputs:
        add(name, "activation")
    for node in graph.nodes:
        for stage in node.stages():
            if stage.op in (Op.DENSE, Op.CONV):
                add(stage.inputs[1], "weight")
            elif stage.op is Op.REQUANTIZE:
                add(stage.outputs[0], "activation")
    return found


@dataclass(frozen=True)
class WidthGrid:
    """A 2-D picture of a tensor's formats: ``width`` per cell (0 = pruned); ``int_bits`` laid
    out the same way, or None when every kept element has the same integer bits; ``filler``
    marks cells that are no element (the end of a wrapped vector); ``note`` says how it was laid out."""

    width: np.ndarray
    int_bits: np.ndarray | None
    filler: np.ndarray
    row_label: str
    col_label: str
    note: str


def width_grid(tensor: Tensor, role: str) -> WidthGrid:
    f = tensor.formats
    kept = ~f.pruned
    width, filler, labels, note = _arrange(f.width, role)
    int_bits = None
    if kept.any() and f.int_bits[kept].min() != f.int_bits[kept].max():
        int_bits = _arrange(np.where(kept, f.int_bits, f.int_bits[kept].min()), role)[0]
    fr, fc = (-(-n // MAX_MAP_SIDE) for n in width.shape)
    if fr > 1 or fc > 1:
        width = _block_max(width, fr, fc)
        int_bits = None if int_bits is None else _block_max(int_bits, fr, fc)
        filler = np.zeros(width.shape, dtype=bool)
        note = (f"Drawn as {width.shape[0]}×{width.shape[1]} blocks of {fr}×{fc} elements: each cell is the "
                f"largest value of its block (grey only when the whole block is pruned). {note}").strip()
    return WidthGrid(width, int_bits, filler, labels[0], labels[1], note)


def _arrange(values: np.ndarray, role: str) -> tuple[np.ndarray, np.ndarray, tuple[str, str], str]:
    """(2-D grid, filler mask, (row label, column label), note) for one per-element array."""
    if values.ndim <= 1:
        flat = values.reshape(-1)
        cols = _wrap_columns(flat.size)
        rows = -(-flat.size // cols)
        grid = np.zeros(rows * cols, dtype=np.int64)
        grid[:flat.size] = flat
        filler = np.arange(rows * cols) >= flat.size
        note = f"Element i is at row i // {cols}, column i % {cols}." if rows > 1 else ""
        return (grid.reshape(rows, cols), filler.reshape(rows, cols),
                (f"element // {cols}", f"element % {cols}"), note)
    if role == "activation" and values.ndim == 3 and values.shape[0] == 1:  # one-channel image: as it is
        return values[0], np.zeros(values.shape[1:], dtype=bool), ("row", "column"), ""
    grid = values.reshape(values.shape[0], -1)
    if role == "weight":
        labels = ("output channel", "input × kernel" if values.ndim > 2 else "input")
    else:
        labels = ("channel", "position")
    return grid, np.zeros(grid.shape, dtype=bool), labels, ""


def _block_max(grid: np.ndarray, fr: int, fc: int) -> np.ndarray:
    rows, cols = grid.shape
    padded = np.full((-(-rows // fr) * fr, -(-cols // fc) * fc), grid.min(), dtype=np.int64)
    padded[:rows, :cols] = grid
    return padded.reshape(padded.shape[0] // fr, fr, padded.shape[1] // fc, fc).max(axis=(1, 3))


def _wrap_columns(n: int) -> int:
    """Columns for a vector of n drawn as a near-square block: a divisor of n when one is close."""
    side = math.isqrt(n - 1) + 1 if n > 1 else 1
    for cols in range(side, 2 * side + 1):
        if n % cols == 0:
            return cols
    return side


# --- plots ------------------------------------------------------------------------------
def _layer_axis(ax, names: list[str]) -> None:
    ax.set_yticks(range(len(names)), [n if len(n) <= 28 else "…" + n[-27:] for n in names])
    ax.invert_yaxis()  # first layer on top


def _resource_chart(layers: list[dict]):
    names = [str(ly.get("name", "?")) for ly in layers]
    y = np.arange(len(layers))
    has_bram = any(ly.get("bram") for ly in layers)
    has_blocks = has_bram or any(ly.get("dsp") for ly in layers)
    fig = figure(10, 1.0 + 0.32 * len(layers))
    if has_blocks:
        ax_lf, ax_d = fig.subplots(1, 2, sharey=True, width_ratios=(3, 1.3))
    else:  # no panel of empty axes
        ax_lf, ax_d = fig.subplots(), None
    h = 0.4
    ax_lf.barh(y - h / 2, [ly.get("lut", 0) for ly in layers], h, label="LUT", color="#4c72b0")
    ax_lf.barh(y + h / 2, [ly.get("ff", 0) for ly in layers], h, label="FF", color="#dd8452")
    ax_lf.set_xlabel("cells")
    ax_lf.legend(loc="lower right")
    _layer_axis(ax_lf, names)
    ax_lf.set_title("LUT and FF" if has_blocks else "LUT and FF (no DSP or block RAM)")
    if ax_d is None:
        return fig
    if has_bram:
        ax_d.barh(y - h / 2, [ly.get("dsp", 0) for ly in layers], h, label="DSP", color="#55a868")
        ax_d.barh(y + h / 2, [ly.get("bram", 0) for ly in layers], h, label="BRAM36", color="#8172b3")
        ax_d.legend(loc="lower right")
    else:
        ax_d.barh(y, [ly.get("dsp", 0) for ly in layers], 0.6, color="#55a868")
        ax_d.set_title("DSP")
    ax_d.set_xlabel("blocks")
    ax_d.xaxis.get_major_locator().set_params(integer=True)
    return fig


def _synth_totals_chart(est: dict, synth: dict):
    """Estimate / synthesis per resource, against the ±15 % the estimate aims for."""
    keys = [k for k in RESOURCES if _ratio(est, synth, k) is not None]
    fig = figure(8, 0.9 + 0.45 * max(len(keys), 1))
    ax = fig.subplots()
    ratios = [_ratio(est, synth, k) for k in keys]
    ax.axvspan(0.85, 1.15, color="#e5efe5", label="±15 %")
    ax.axvline(1.0, color="#777", linewidth=1)
    bars = ax.barh(range(len(keys)), ratios, 0.6, color=["#4c72b0" if 0.85 <= r <= 1.15 else "#c44e52"
                                                         for r in ratios])
    labels = [f"{r:.2f}  ({number(est.get(k), 1 if k == 'bram' else 0)} / "
              f"{number(synth.get(k), 1 if k == 'bram' else 0)})" for k, r in zip(keys, ratios)]
    ax.bar_label(bars, labels=labels, padding=3, fontsize=8)
    _layer_axis(ax, [_labels(est)[k] for k in keys])
    ax.set_xlim(0, max(ratios + [1.15]) * 1.45)
    ax.set_xlabel("estimate / synthesis")
    ax.legend(loc="lower right")
    return fig


def _synth_layers_chart(est_layers: list[dict], synth_layers: list[dict]):
    by_name = {ly.get("name"): ly for ly in synth_layers}
    layers = [ly for ly in est_layers if ly.get("name") in by_name]
    names = [str(ly["name"]) for ly in layers]
    y = np.arange(len(layers))
    fig = figure(10, 1.0 + 0.4 * len(layers))
    axes = fig.subplots(1, 2, sharey=True)
    h = 0.4
    for ax, key in zip(axes, ("lut", "ff")):
        ax.barh(y - h / 2, [ly.get(key, 0) for ly in layers], h, label="estimate", color="#4c72b0")
        ax.barh(y + h / 2, [by_name[ly["name"]].get(key, 0) for ly in layers], h, label="synthesis",
                color="#c44e52")
        ax.set_title(f"{RESOURCE_LABELS[key]} per layer")
        ax.legend(loc="lower right")
    _layer_axis(axes[0], names)
    return fig


def _latency_chart(layers: list[dict], latency, ii):
    names = [str(ly.get("name", "?")) for ly in layers]
    starts = [ly["start_cycle"] for ly in layers]
    lengths = [ly["latency_cycles"] for ly in layers]
    fig = figure(10, 1.0 + 0.32 * len(layers))
    ax = fig.subplots()
    bars = ax.barh(range(len(layers)), lengths, 0.6, left=starts, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{n} cycle{'s' if n != 1 else ''}" for n in lengths], padding=3, fontsize=8)
    if latency is not None:
        ax.axvline(latency, color="#c44e52", linestyle="--", linewidth=1)
        ax.text(latency, -0.7, f" latency {latency}" + (f", II {ii}" if ii is not None else ""), color="#c44e52",
                fontsize=8, va="bottom")
    _layer_axis(ax, names)
    ax.set_xlabel("clock cycle")
    ax.set_xlim(0, max([latency or 0] + [s + n for s, n in zip(starts, lengths)]) * 1.12 + 1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def _throughput_chart(layers: list[dict], ii):
    """A stream design's engines: the cycles each needs per image; the slowest sets the II."""
    names = [str(ly.get("name", "?")) for ly in layers]
    cycles = [ly["cycles_per_image"] for ly in layers]
    fig = figure(10, 1.0 + 0.32 * len(layers))
    ax = fig.subplots()
    bars = ax.barh(range(len(layers)), cycles, 0.6, color="#4c72b0")
    ax.bar_label(bars, labels=[f"{n:,} (reuse {ly.get('reuse')})" for n, ly in zip(cycles, layers)], padding=3,
                 fontsize=8)
    if ii is not None:
        ax.axvline(ii, color="#c44e52", linestyle="--", linewidth=1)
        ax.text(ii, -0.7, f" II {ii}", color="#c44e52", fontsize=8, va="bottom")
    _layer_axis(ax, names)
    ax.set_xlabel("cycles per image")
    ax.set_xlim(0, max(cycles + [ii or 0]) * 1.3 + 1)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def _heat_map(grid: WidthGrid, name: str, summary: str):
    """Widths, and below them integer bits when those vary, one colour per value; pruned in grey."""
    # Fixed margins instead of constrained layout: half the drawing time for these simple figures.
    rows, cols = grid.width.shape
    plot_w = min(4.6, max(3.0, 0.3 * cols))
    plot_h = min(max(plot_w * rows / cols, 0.5), 4.6)
    left, right, bottom, top, gap = 0.75, 1.0, 0.5, 0.5, 0.75
    panels = [(grid.width, "width (bits)", "viridis")]
    if grid.int_bits is not None:
        panels.append((grid.int_bits, "integer bits", "plasma"))
    fig_w, fig_h = left + plot_w + right, bottom + len(panels) * plot_h + (len(panels) - 1) * gap + top
    fig = figure(fig_w, fig_h, layout=None)
    pruned = (grid.width == 0) & ~grid.filler
    for i, (values, label, colours) in enumerate(panels):
        y = fig_h - top - (i + 1) * plot_h - i * gap
        ax = fig.add_axes((left / fig_w, y / fig_h, plot_w / fig_w, plot_h / fig_h))
        bar_ax = fig.add_axes(((left + plot_w + 0.12) / fig_w, y / fig_h, 0.14 / fig_w, plot_h / fig_h))
        _discrete_map(fig, ax, bar_ax, values, pruned, grid.filler, colours, label)
        ax.set_xlabel(grid.col_label)
        ax.set_ylabel(grid.row_label)
        if rows == 1:
            ax.set_yticks([])
        ax.set_title(f"{name}\n{summary}" if i == 0 else label, fontsize=8)
    return fig


def _discrete_map(fig, ax, bar_ax, values: np.ndarray, pruned: np.ndarray, filler: np.ndarray, colours: str,
                  label: str) -> None:
    """imshow of integer values, one colour each, pruned cells grey and filler cells blank,
    with a colour bar that names every value (and "pruned")."""
    import matplotlib
    from matplotlib.colors import BoundaryNorm, ListedColormap

    kept = ~pruned & ~filler
    lo, hi = (int(values[kept].min()), int(values[kept].max())) if kept.any() else (1, 1)
    bins = list(range(lo, hi + 1))
    palette = [tuple(c) for c in matplotlib.colormaps[colours](np.linspace(0.1, 0.95, len(bins)))]
    bounds = [b - 0.5 for b in bins] + [hi + 0.5]
    shown = np.where(kept, values, lo)
    if pruned.any():  # one more colour, below every value
        palette.insert(0, PRUNED_COLOUR)
        bounds.insert(0, lo - 1.5)
        shown = np.where(pruned, lo - 1, shown)
    cmap = ListedColormap(palette).with_extremes(bad=(1, 1, 1, 0))  # filler cells: nothing drawn
    image = ax.imshow(np.ma.masked_array(shown, filler), cmap=cmap, norm=BoundaryNorm(bounds, cmap.N),
                      aspect="auto", interpolation="none")
    for axis in (ax.xaxis, ax.yaxis):
        axis.get_major_locator().set_params(integer=True)
    ticks = bins if len(bins) <= 16 else bins[::-(-len(bins) // 16)]
    ticks = ([lo - 1] if pruned.any() else []) + ticks
    bar = fig.colorbar(image, cax=bar_ax, ticks=ticks, spacing="uniform")
    bar.set_ticklabels(["pruned" if pruned.any() and t == lo - 1 else str(t) for t in ticks])
    bar.set_label(label)
