"""A static HTML report of a training run: weights, connections, feature maps, results.

:func:`write_report` reads a run directory (or a bare checkpoint) through
:mod:`minidl.rundir` and writes one ``report.html`` plus its figures into
``out_dir``. The page uses relative links only, no scripts and no network, so
it opens from the file system in any browser; the same inputs give
byte-identical files. Reading the run is :mod:`minidl.viz.run`'s job, the
sections are :mod:`minidl.viz.sections`', the page's pieces
:mod:`minidl.viz.page`'s.

Figures written
---------------
``<conv>`` stands for a layer name, ``<t>`` for an index into the evaluated split.

``channels-<conv>.png``
    For every Conv2D: the cross-channel grid (row = output kernel, column =
    input map; unconnected pairs drawn as empty pale-blue tiles with a cross),
    each row scaled by its own largest |weight| (zero = mid-grey). A layer
    reading one input map has its kernels laid out in rows instead.
``kernels-<conv>.png``
    For every Conv2D reading a 1- or 3-channel image: one tile per kernel, in
    colour for colour images (Krizhevsky et al. 2012, Figure 3).
``input-<t>.png``, ``features-<t>-<layer>.png``
    For a few sample images: the image and the maps after every convolution
    (after its activation) and every pooling layer.
``patches-<conv>.png``, ``projections-<conv>.png``
    For every Conv2D: the top-9 probe-image patches of each channel (one row
    per channel, at most 16 channels) and their guided-backpropagation
    projections, cropped to the same receptive-field windows.
``attribution-<t>.png``, ``saliency-<t>.png``, ``occlusion-<t>.png``
    For the sample images: the model's input, its saliency map and its
    occlusion map for the true class.
``maximized-<conv>.png``, ``maximized-classes.png``
    The inputs that maximise each drawn channel of every Conv2D, and each
    class score (ten classes a picture: ``maximized-classes-10.png`` and so on
    beyond ten).
``weight-stats.svg``, ``gradients-<conv>.png``
    Mean |W|, mean |dW| and their ratio per layer by epoch (weight_stats.csv);
    every Conv2D's weight gradient for one batch of the sample images.
``curves.svg``, ``confusion.svg``, ``misclassified.png``
    Loss and accuracy by epoch; the confusion matrix and the first
    misclassified images of the evaluated split (test, else validation).

Figures that cannot be drawn are left out and the page says what is missing
and why.
"""

from __future__ import annotations

import os
from pathlib import Path

from minidl.atomic import atomic_write_bytes
from minidl.rundir import REPORT
from minidl.viz import inspection, sections
from minidl.viz.page import Figures, esc, page
from minidl.viz.run import ReportError, open_run

__all__ = ["write_report", "default_out_dir", "ReportError", "DEFAULT_SAMPLES"]

DEFAULT_SAMPLES = 3


def default_out_dir(source: str | os.PathLike) -> Path:
    """Where the report goes by default.

    A run directory: the directory itself (next to its checkpoint and metrics,
    as ``train.py`` does). A bare checkpoint ``dir/name.npz``: a new directory
    ``dir/name-report`` beside it, so the figures do not mix with other files.
    """
    path = Path(source)
    return path if path.is_dir() else path.with_name(f"{path.stem}-report")


def write_report(source: str | os.PathLike, out_dir: str | os.PathLike | None = None, *,
                 samples: int = DEFAULT_SAMPLES, maximize_steps: int | None = None) -> Path:
    """Draw a run's figures and write ``report.html`` into ``out_dir``.

    Parameters
    ----------
    source : str or Path
        A run directory written by :class:`minidl.training.Trainer` (``train.py``),
        or a checkpoint file. A file is always read as a bare checkpoint, even
        inside a run directory: weights, model summary and, when its metadata
        holds them, training curves.
    out_dir : str or Path, optional
        Created if needed. Default: :func:`default_out_dir`.
    samples : int
        How many sample images to draw feature maps for (of different classes).
    maximize_steps : int, optional
        Gradient-ascent steps per activation-maximisation image; by default a
        budget shared by all of them (see :mod:`minidl.viz.inspection`); 0 leaves
        the section out.

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.

    Raises
    ------
    ReportError
        If ``source`` does not exist, is a directory without a checkpoint or is
        not a readable minidl checkpoint.
    """
    view = open_run(source)
    out = Path(out_dir) if out_dir is not None else default_out_dir(source)
    out.mkdir(parents=True, exist_ok=True)
    figures = Figures(out)
    records, probe_error = sections.probe(view)
    if probe_error:
        view.notes.append(f"A blank input could not be run through the model "
                          f"({esc(probe_error)}); output shapes are left out.")
    layers = inspection.inspect_layers(view)
    body = []
    for html, notes in (sections.summary_section(view, records),
                        sections.connections_section(view, figures, records),
                        sections.kernels_section(view, figures),
                        sections.features_section(view, figures, samples),
                        inspection.patches_section(view, figures, layers),
                        inspection.attribution_section(view, figures, samples),
                        inspection.maximization_section(view, figures, layers,
                                                        steps=maximize_steps),
                        inspection.weights_section(view, figures, layers),
                        sections.curves_section(view, figures),
                        sections.confusion_section(view, figures),
                        sections.misclassified_section(view, figures)):
        body.append(html)
        view.notes.extend(notes)
    nav = [("model", "Model"), ("connections", "Connections"), ("kernels", "First-layer kernels"),
           ("features", "Feature maps"), ("patches", "Top patches"),
           ("attribution", "Saliency & occlusion"), ("maximization", "Maximisation"),
           ("weights", "Weight statistics"),
           ("curves", "Curves"), ("confusion", "Confusion"), ("misclassified", "Misclassified")]
    what = "run directory" if view.kind == "run" else "checkpoint"
    intro = (f"Drawn from the {what} <code>{esc(view.source.name or view.source)}</code> by "
             f"<code>python -m minidl.viz</code>.")
    text = page(f"minidl report: {view.title}", intro, nav, view.notes, body)
    return atomic_write_bytes(out / REPORT, text.encode("utf-8"))
