"""The pieces of an HTML report page: escaping, figure files, layout, style.

Figures are written beside the page by :class:`Figures`, which gives each a
unique URL-safe name and returns its ``<img>`` tag; the page uses relative
links only, no scripts and no network, so it opens from the file system.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from minidl.viz.grids import EMPTY_COLOR
from minidl.viz.png import write_png
from minidl.viz.svg import write_svg

#: (width, height) in pixels up to which small PNGs are shown enlarged (a whole factor).
DISPLAY_MAX = (560, 900)


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def display_size(image: np.ndarray) -> tuple[int, int]:
    """Displayed (width, height): small images enlarged by a whole factor (at most 2)."""
    h, w = image.shape[:2]
    factor = max(1, min(2, DISPLAY_MAX[0] // w, DISPLAY_MAX[1] // h))
    return w * factor, h * factor


def grid_cols(count: int, tile: int, width: int) -> int:
    """Columns for ``count`` tiles of ``tile`` px in about ``width`` px, rows evenly filled."""
    most = max(1, width // (tile + 1))
    rows = math.ceil(count / most)
    return math.ceil(count / rows)


def scale_for(size: int, target: int, most: int = 12) -> int:
    """A whole enlargement factor that brings ``size`` pixels near ``target`` (1..most)."""
    return int(np.clip(round(target / max(size, 1)), 1, most))


class Figures:
    """Writes the figures with unique, URL-safe names and returns their ``<img>`` tags."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.taken: set[str] = set()

    def name(self, stem: str, suffix: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)
        name, k = f"{base}{suffix}", 1
        while name.lower() in self.taken:
            k += 1
            name = f"{base}-{k}{suffix}"
        self.taken.add(name.lower())
        return name

    def png(self, stem: str, image: np.ndarray, alt: str, enlarge: bool = True) -> str:
        """Write a uint8 image; pixel-art images are shown without smoothing."""
        name = self.name(stem, ".png")
        write_png(self.out_dir / name, image)
        w, h = display_size(image) if enlarge else (image.shape[1], image.shape[0])
        return f'<img class="px" src="{name}" width="{w}" height="{h}" alt="{esc(alt)}">'

    def svg(self, stem: str, root: Any, alt: str) -> str:
        name = self.name(stem, ".svg")
        write_svg(self.out_dir / name, root)
        return (f'<img src="{name}" width="{esc(root.attrs["width"])}" '
                f'height="{esc(root.attrs["height"])}" alt="{esc(alt)}">')


def section(anchor: str, title: str, *parts: str) -> str:
    return "\n".join([f'<section id="{anchor}"><h2>{esc(title)}</h2>', *parts, "</section>"])


def missing(text: str) -> str:
    """A paragraph saying what could not be drawn and why."""
    return f'<p class="missing">{text}</p>'


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#222;
 max-width:1200px;margin:1.5em auto;padding:0 1em;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
 margin-top:2em}h3{font-size:1.05em;margin:.3em 0}
nav a{margin-right:1em}
img.px{image-rendering:crisp-edges;image-rendering:pixelated}
img{max-width:none}
code{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.9em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.2em .55em;text-align:left;vertical-align:top}
td.num{text-align:right}tr.total td{font-weight:bold}
table.wrong{margin:0}table.wrong td{width:var(--pitch);height:var(--pitch);padding:0;
 text-align:center;vertical-align:middle;font-size:.85em;line-height:1.15;
 font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:0 1.2em 1em 0;vertical-align:top}
figcaption{font-size:.85em;color:#555;max-width:560px}
.conn{display:flex;gap:.5em;align-items:flex-start;border-top:1px solid #eee;padding:1em 0}
.conn .text{max-width:560px}
.scroll{max-height:720px;overflow:auto;flex:none}
.pair{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.sample{border-top:1px solid #eee;padding-top:.6em}
.row{display:flex;flex-wrap:wrap;align-items:flex-start}
.notes{background:#fff8e1;border-left:4px solid #e0a800;padding:.5em 1em}
.missing{color:#8a5a00}
.formula{font-family:Georgia,serif;font-size:1.1em;margin-left:2em}
.swatch{display:inline-block;width:1em;height:1em;vertical-align:-.15em;
 border:1px solid #999;background:rgb%s}
""" % (str(tuple(EMPTY_COLOR)).replace(" ", ""),)


def page(title: str, intro: str, nav: list[tuple[str, str]], notes: list[str],
         body: list[str]) -> str:
    """The whole document: title, a line about the source, navigation, notes, sections."""
    notes_html = ""
    if notes:
        notes_html = ('<div class="notes" id="missing"><b>What this report could not show, and '
                      'why</b><ul>' + "".join(f"<li>{n}</li>" for n in notes) + "</ul></div>")
    links = "".join(f'<a href="#{anchor}">{esc(label)}</a>' for anchor, label in nav)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        f"<h1>{esc(title)}</h1>", f'<p class="source">{intro}</p>', f"<nav>{links}</nav>",
        notes_html, *body, "</body>", "</html>", ""])
