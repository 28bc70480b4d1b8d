"""The sweep's table (Markdown, also printed) and OUT/report.html: the accuracy-vs-LUT Pareto plot
(an inline SVG drawn by matplotlib, no script or network: `compiler.html_page`'s figure
helpers and style) with the front highlighted and every point labelled, then the table and
the failed points' errors."""

from __future__ import annotations

from pathlib import Path

from .output_folder import write_whole
from .html_page import CSS, RC, SvgFigures, escape, figure, number

FRONT_COLOUR = "#c44e52"
POINT_COLOUR = "#4c72b0"
SYNTH_COLOUR = "#55a868"


def _params(entry: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in entry["point"].items() if k not in ("name", "seed"))


def _rows(sweep: dict) -> list[list[str]]:
    """One row per point: name, parameters, accuracy, estimate, yosys LUTs, front, status."""
    clock = sweep["options"]["clock_ns"]
    rows = []
    for e in sweep["points"]:
        est, synth = e["estimate"] or {}, e["synth"] or {}
        cycles = est.get("latency_cycles")
        synth_lut = ("error" if synth.get("error") else number(synth.get("lut"))) if synth else "–"
        rows.append([e["name"], _params(e), "–" if e["accuracy"] is None else f"{100 * e['accuracy']:.2f}",
                     number(est.get("lut")), number(est.get("ff")), number(est.get("dsp")),
                     "–" if cycles is None else f"{cycles} ({cycles * clock:g} ns)", synth_lut,
                     "yes" if e["pareto"] else "", e["status"]])
    return rows


HEADER = ["point", "parameters", "accuracy (%)", "LUT (est.)", "FF (est.)", "DSP (est.)", "latency (cycles)",
          "LUT (yosys)", "Pareto", "status"]


def sweep_table(sweep: dict) -> str:
    """The points as a Markdown table (readable in a terminal too), failed points' errors below."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(sweep)]
    for e in sweep["points"]:
        if e["error"]:
            lines.append(f"\n{e['name']} failed: {e['error'].splitlines()[-1]}")
    return "\n".join(lines)


def pareto_chart(sweep: dict):
    """Accuracy (%) against estimated LUTs: every point, the front joined by a step line, yosys
    LUTs as hollow squares beside the estimates, each point labelled with its parameters."""
    ok = [e for e in sweep["points"] if e["status"] == "ok"]
    fig = figure(9.5, 4.8)
    ax = fig.subplots()
    front = sorted((e for e in ok if e["pareto"]), key=lambda e: e["estimate"]["lut"])
    if front:
        ax.step([e["estimate"]["lut"] for e in front], [100 * e["accuracy"] for e in front], where="post",
                color=FRONT_COLOUR, lw=1.5, zorder=1)
    rest = [e for e in ok if not e["pareto"]]
    ax.scatter([e["estimate"]["lut"] for e in rest], [100 * e["accuracy"] for e in rest], s=36,
               color=POINT_COLOUR, label="point (estimate)", zorder=2)
    ax.scatter([e["estimate"]["lut"] for e in front], [100 * e["accuracy"] for e in front], s=70,
               color=FRONT_COLOUR, marker="D", label="Pareto front (estimate)", zorder=3)
    synthesized = [e for e in ok if (e["synth"] or {}).get("lut")]
    if synthesized:
        ax.scatter([e["synth"]["lut"] for e in synthesized], [100 * e["accuracy"] for e in synthesized], s=60,
                   facecolors="none", edgecolors=SYNTH_COLOUR, marker="s", lw=1.5, label="yosys", zorder=3)
    for e in ok:
        ax.annotate(_params(e) or e["name"], (e["estimate"]["lut"], 100 * e["accuracy"]),
                    textcoords="offset points", xytext=(6, 5), fontsize=8)
    luts = [e["estimate"]["lut"] for e in ok] + [e["synth"]["lut"] for e in synthesized]
    if luts and min(luts) > 0 and max(luts) / min(luts) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(f"LUTs (estimated for {sweep['options']['part']}; yosys where marked)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy vs LUTs: the front is the points no other beats on both")
    ax.grid(True, alpha=0.3)
    ax.margins(0.15)
    if ok:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # beside the plot: it hides no point
    return fig


def _plot(svg: SvgFigures, sweep: dict) -> str:
    import matplotlib

    with matplotlib.rc_context(RC):  # text stays text in the SVG, ids stable
        return svg.add(pareto_chart(sweep))


def render_sweep_html(sweep: dict) -> str:
    svg = SvgFigures()
    ok = [e for e in sweep["points"] if e["status"] == "ok"]
    failed = [e for e in sweep["points"] if e["error"]]
    head = "".join(f"<th>{escape(h)}</th>" if i > 1 else f"<th class=\"name\">{escape(h)}</th>"
                   for i, h in enumerate(HEADER))
    rows = "\n".join("<tr>" + "".join(f"<td class=\"name\">{escape(c)}</td>" if i < 2 else f"<td>{escape(c)}</td>"
                                      for i, c in enumerate(row)) + "</tr>" for row in _rows(sweep))
    opts = sweep["options"]
    meta = (f"SPEC <code>{escape(sweep['spec'])}</code> · part <code>{escape(opts['part'])}</code> · clock "
            f"{escape(opts['clock_ns'])} ns · {len(ok)} of {len(sweep['points'])} points compiled · "
            f"seed {sweep['seed']} "
            f"· {escape(sweep['seconds'])} s · finegrain {escape(sweep['finegrain_version'])}")
    body = [f"<h1>finegrain plan sweep</h1>\n<p class=\"meta\">{meta}</p>",
            "<h2 id=\"pareto\">Accuracy vs LUTs</h2>",
            _plot(svg, sweep) if ok else "<p class=\"note\">No point compiled: nothing to plot.</p>",
            "<h2 id=\"points\">Points</h2>",
            f"<div class=\"wide\"><table id=\"points-table\"><tr>{head}</tr>\n{rows}\n</table></div>",
            "<p class=\"note\">Each point's export and compiled project are in <code>points/NAME/</code>; "
            "<code>finegrain report points/NAME/build</code> shows one in detail.</p>"]
    if failed:
        body.append("<h2 id=\"failed\">Failed points</h2>")
        body += [f"<h3>{escape(e['name'])}</h3>\n<pre>{escape(e['error'])}</pre>" for e in failed]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>finegrain plan sweep</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_sweep_html(out_dir, sweep: dict) -> Path:
    path = Path(out_dir) / "report.html"
    write_whole(path, lambda f: f.write(render_sweep_html(sweep).encode()))
    return path
