"""minidl.viz: pictures of what a network learned, with the standard library + NumPy only.

* PNG: :func:`encode_png`, :func:`write_png` (8-bit grayscale or RGB).
* Weight and feature-map grids (uint8 arrays): :func:`kernel_grid`,
  :func:`channel_grid`, :func:`image_grid`.
* SVG: :class:`Element`, :func:`svg_document`, :func:`write_svg`.
* Plots: :func:`curves_svg`, :func:`write_curves`, :func:`confusion_matrix`,
  :func:`confusion_svg`, :func:`nice_ticks`.
* Feature maps: :func:`feature_maps`, :func:`feature_map_grid`.
* The report page: :func:`write_report` (also ``python -m minidl.viz RUN_DIR``).
"""

from minidl.viz.features import feature_map_grid, feature_maps
from minidl.viz.grids import CROSS_COLOR, EMPTY_COLOR, channel_grid, image_grid, kernel_grid
from minidl.viz.plots import (confusion_matrix, confusion_svg, curves_svg, line_chart,
                              nice_ticks, write_curves)
from minidl.viz.png import encode_png, write_png
from minidl.viz.report import ReportError, write_report
from minidl.viz.svg import Element, svg_document, to_svg_string, write_svg

__all__ = [
    "encode_png", "write_png",
    "kernel_grid", "channel_grid", "image_grid", "EMPTY_COLOR", "CROSS_COLOR",
    "Element", "svg_document", "to_svg_string", "write_svg",
    "nice_ticks", "line_chart", "curves_svg", "write_curves",
    "confusion_matrix", "confusion_svg",
    "feature_maps", "feature_map_grid", "write_report", "ReportError",
]
