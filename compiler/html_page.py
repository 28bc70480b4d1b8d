"""What finegrain's HTML pages share (report.html, a sweep's report.html): the stylesheet, text
escaping and number formatting, and matplotlib figures turned into inline SVG with ids unique
on the page.  Matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

import html
import io
import re

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
th { background: #f4f4f4; }
td.name, th.name { text-align: left; font-family: ui-monospace, monospace; overflow-wrap: break-word; }
td.type { min-width: 16em; }
td.name:first-child { min-width: 12em; overflow-wrap: anywhere; }
.wide { overflow-x: auto; }
.ok { color: #176b2c; font-weight: 600; }
.bad { color: #b3261e; font-weight: 600; }
.note { color: #555; font-style: italic; }
svg { max-width: 100%; height: auto; }
.maps { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 1em; }
figure { margin: 0; }
figcaption { font-size: 0.9em; color: #444; }
figcaption code { word-break: break-all; }
ul.warnings li { margin-bottom: 0.3em; }
"""

# Text in the SVGs stays text (small, searchable); ids are stable across runs.
RC = {"svg.fonttype": "none", "svg.hashsalt": "finegrain", "font.size": 9}


def escape(value) -> str:
    return html.escape(str(value), quote=True)


def number(value, digits: int = 0) -> str:
    if value is None:
        return "–"
    if digits or (isinstance(value, float) and not value.is_integer()):
        return f"{value:,.{digits or 1}f}"
    return f"{int(value):,}"


class SvgFigures:
    """Turns matplotlib figures into inline <svg> elements with ids unique on the page."""

    def __init__(self):
        self.count = 0

    def add(self, fig) -> str:
        self.count += 1
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        text = buf.getvalue()
        text = text[text.index("<svg"):]  # no XML declaration or DOCTYPE inside HTML
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
        prefix = f"f{self.count}-"
        text = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}\1"', text)
        text = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', text)
        return re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", text)


def figure(width_in: float, height_in: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout=layout)
