"""The text `finegrain report` prints from a folder's report.json: the per-layer table of types
and widths, the resource estimate (and synthesis beside it), csim and sim results, warnings.
report.html (compiler/report_html.py) renders the same report as a page."""

from __future__ import annotations

from .text_table import format_table, terminal_width, wrap_text

LEGEND_WEIGHTS = "weights: per weight tensor, its non-zero / all elements (nz) and its type."
LEGEND_MIXED = ("mixed T<W,I>: a tensor whose elements have different types; W and I are the ranges of their widths "
                "and integer bits (report.html lists each type and its count).")


def format_report(report: dict, width: int | None = None) -> str:
    """The text `finegrain report` prints, in lines of at most ``width`` characters (default
    the terminal's, 80 off a terminal; $COLUMNS overrides): the per-layer table of types, the
    estimate, csim and sim results, warnings."""
    width = width or terminal_width()
    rows = [("layer", "ops", "accumulator", "output", "weights")]
    for layer in report["layers"]:
        acc = next(iter(layer.get("accumulator", {}).values()), None)
        out = next(iter(layer["output"].values()))
        weights = [c for c in layer.get("constants", {}).values() if c["role"] == "weight"]
        wtext = "; ".join(f"{c['nonzero']}/{c['elements']} nz {c['type']}" for c in weights)
        rows.append((layer["name"], "+".join(layer["stages"]), acc["type"] if acc else "-", out["type"], wtext or "-"))
    lines = wrap_text(f"model {report['model']}: {len(report['layers'])} layers, compiled in "
                      f"{report['compile_seconds']} s", width)
    lines += format_table(rows, width)
    legend = [LEGEND_WEIGHTS] if any(r[4] != "-" for r in rows[1:]) else []
    legend += [LEGEND_MIXED] if any(c.startswith("mixed ") for r in rows[1:] for c in r[2:]) else []
    for text in legend:
        lines += wrap_text(text, width)
    lines += format_estimate(report, width)
    csim = report.get("csim")
    if csim:
        verdict = "bit-exact" if csim["mismatches"] == 0 else f"{csim['mismatches']} mismatches"
        lines.append(f"csim (g++): {csim['vectors']} vectors, {verdict}; build {csim['build_seconds']} s, "
                     f"run {csim['run_seconds']} s")
    sim = report.get("sim")
    if sim:
        verdict = "bit-exact" if sim["mismatches"] == 0 else f"{sim['mismatches']} mismatches"
        timing = "latency and II not measured (a run with --gaps or --stall)"
        if sim.get("latency_cycles") is not None:
            timing = f"latency {sim['latency_cycles']} cycles, II {sim['ii_cycles']}"
        lines.append(f"sim (Verilator): {sim['vectors']} vectors, {verdict}; {timing}; build {sim['build_seconds']} s, "
                     f"run {sim['run_seconds']} s")
    build = report.get("build")
    if build and build.get("flow") == "ecp5":
        lines.append(f"build ({build['board']}, nextpnr-ecp5): Fmax {build['fmax_mhz']:.1f} MHz, "
                     f"{'met' if build['met'] else 'NOT met'} at {build['clock_ns']:g} ns; "
                     f"bitstream {build['bitstream']} ({build['bitstream_bytes']:,} bytes)")
    for w in report.get("warnings", []):
        lines.append(f"warning: {w}")
    return "\n".join(out for line in lines for part in line.split("\n")
                     for out in (wrap_text(part, width) if len(part) > width else [part]))


def format_estimate(report: dict, width: int = 80) -> list[str]:
    """The resource table (estimate, and synthesis beside it) and its notes."""
    est = report.get("estimate")
    if not est:
        return []
    synth = report.get("synth")
    keys = ("lut", "ff", "dsp", "bram")
    # a stream design's rows are its engines: their reuse factor and cycles per image
    stream = est["architecture"].startswith("rtl: stream")
    timing = ("reuse", "cycles/image", "latency") if stream else ("start", "cycles")
    # ECP5 counts LUT4 sites (a CCU2C carry cell two), Xilinx parts LUT6s
    lut = "LUT4" if est.get("lut_kind") == "LUT4" else "LUT"
    rows = [("engine" if stream else "layer", lut, "FF", "DSP", "BRAM", "products (built)", *timing)]
    for layer in est["layers"]:
        built = f"{layer['adders']:,} adders" if "adders" in layer else f"{layer['products_built']:,}"
        products = f"{layer['products']:,} ({built})" if layer.get("products") else "-"
        cycles = ((layer["reuse"], f"{layer['cycles_per_image']:,}") if stream else (layer["start_cycle"],))
        rows.append((layer["name"], *(f"{layer[k]:,}" for k in keys), products,
                     *(str(c) for c in cycles), str(layer["latency_cycles"])))
    blank = ("",) * len(timing)
    rows.append(("total (estimate)", *(f"{est[k]:,}" for k in keys), "", *blank[1:], str(est["latency_cycles"])))
    pct = est.get("percent") or {}
    if pct:
        rows.append((f"% of {est['part']}", *(f"{pct[k]:.2f}%" for k in keys), "", *blank))
    if synth:
        command = "synth_ecp5" if synth["family"] == "ecp5" else f"synth_xilinx ({synth['family']})"
        rows.append((f"yosys {command}", *(f"{synth[k]:,}" for k in keys), "", *blank))
        ratio = synth.get("ratio", {})
        ratios = (f"{ratio[k]:.2f}" if ratio.get(k) else "-" for k in ("lut", "ff", "dsp"))
        rows.append(("estimate / synthesis", *ratios, "", "", *blank))
    # the heading names the table (short enough for 80 columns); the latency follows it
    lines = [f"resources ({est['architecture']}, clock {est['clock_ns']} ns, {est['family']})"]
    # on a narrow terminal these headers would leave no room for the names: abbreviated, with a legend
    short = {5: "prod.", **({6: "RF", 7: "c/img", 8: "lat."} if stream else {7: "cyc."})}
    lines += format_table(rows, width, right=tuple(range(1, len(rows[0]))), short=short)
    lines.append(f"latency {est['latency_cycles']} cycles = {est['latency_cycles'] * est['clock_ns']:g} ns, "
                 f"II {est['ii_cycles']}")
    timing = est.get("timing")
    if timing:
        verdict = "meets" if timing["met"] else "does NOT meet"
        lines.append(f"timing (predicted, {timing['family']} delay model): critical path {timing['critical_ns']} ns "
                     f"in {timing['critical_layer']} (Fmax {timing['fmax_mhz']} MHz), {verdict} the "
                     f"{timing['clock_ns']} ns clock" + (f" ({timing['scope']})" if timing.get("scope") else ""))
    if est.get("placed_lut") is not None:
        lines.append(f"placed: about {est['placed_lut']:,} LUT4 sites (nextpnr's TRELLIS_COMB: the cells' and two "
                     f"CCU2C at the ends of each carry chain), as the % of the part counts them")
    if synth:
        origin = "cached result of a run of" if synth.get("cached") else "took"
        lines.append(f"synthesis {origin} {synth['seconds']} s ({synth['yosys_version']}); "
                     f"carry cells: estimate {est['carry']:,}, synthesis {synth['carry']:,}")
    return lines
