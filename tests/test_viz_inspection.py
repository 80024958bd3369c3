"""The report's inspection sections (minidl.viz.inspection) on small synthetic run directories.

A grey model whose second convolution has more channels than the report draws,
and a colour model with per-channel normalisation and named classes, each in a
run directory written through minidl.rundir. The figures are checked against
minidl.inspect's own results, so a misplaced crop, a wrong scale or a channel
drawn in the wrong row fails.
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from minidl import Sequential, inspect, io, rundir
from minidl.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from minidl.losses import SoftmaxCrossEntropy
from minidl.rundir import InputSpec, Predictions, Progress, TrainerSettings, TrainingState
from minidl.viz.grids import EMPTY_COLOR
from minidl.viz import inspection
from minidl.inspect import channel_projections
from minidl.viz.inspection import MAX_CHANNELS, TOP_K
from minidl.viz.report import write_report
from test_viz_report import parse_page, read_png, tiles

GREY = InputSpec((1, 12, 12), (0.2,), (0.3,), tuple(str(d) for d in range(10)))
COLOUR = InputSpec((3, 16, 16), (0.5, 0.4, 0.3), (0.25, 0.2, 0.3), ("cat", "dog", "bird"))
N_TEST, N_PROBE = 40, 30
STEPS = 30  # gradient-ascent steps per maximisation image: enough to move, and fast


def grey_net(seed: int = 0) -> Sequential:
    """1x12x12 -> 10 classes; conv2 has 20 channels, more than the report draws."""
    rng = np.random.default_rng(seed)
    return Sequential(
        ("conv1", Conv2D(1, 4, 3, padding=1, rng=rng)), ("relu1", ReLU()),
        ("pool1", MaxPool2D(2)),                                             # 4 x 6x6
        ("conv2", Conv2D(4, 20, 3, rng=rng)), ("relu2", ReLU()),
        ("pool2", MaxPool2D(2)),                                             # 20 x 2x2
        ("flatten", Flatten()), ("fc", Dense(80, 10, rng=rng)))


def colour_net(seed: int = 1) -> Sequential:
    """3x16x16 -> 3 classes."""
    rng = np.random.default_rng(seed)
    return Sequential(
        ("conv1", Conv2D(3, 5, 5, padding=2, rng=rng)), ("relu1", ReLU()),
        ("pool1", MaxPool2D(2)),                                             # 5 x 8x8
        ("conv2", Conv2D(5, 6, 3, rng=rng)), ("relu2", ReLU()),              # 6 x 6x6
        ("flatten", Flatten()), ("fc", Dense(216, 3, rng=rng)))


def make_run(directory: Path, model, spec: InputSpec, rng: np.random.Generator, *,
             probe: int = N_PROBE, weight_stats: bool = True) -> Path:
    """A run directory in the trainer's format with random images and predictions."""
    directory.mkdir(parents=True)
    rows = [rundir.metric_row(e, 1.0 / e, 0.5, None, (0.8 / e, 0.6), 1.0) for e in (1, 2, 3)]
    state = TrainingState(TrainerSettings(3, 16, 0, 100), {"model": "net", "dataset": "toy"},
                          spec, Progress(epoch=3), None, {}, rows)
    io.save(directory / rundir.CHECKPOINT, model, meta=state.to_meta())
    rundir.write_metrics(directory, rows)
    k = spec.num_classes
    labels = rng.permutation(np.arange(N_TEST) % k)
    predicted = np.where(rng.random(N_TEST) < 0.3, (labels + 1) % k, labels)
    probs = rng.dirichlet(np.ones(k), N_TEST).astype(np.float32)
    images = rng.integers(0, 256, (N_TEST,) + spec.shape, dtype=np.uint8)
    rundir.write_predictions(directory, Predictions.from_evaluation(
        "test", images, labels, predicted, probs, per_class=1, probe=probe))
    if weight_stats:
        for epoch in (1, 2, 3):  # |dW| shrinks a hundredfold: that panel needs a log scale
            rundir.append_weight_stats(directory, epoch, [
                (name, 0.1 * epoch, 0.01 / 10 ** epoch, 0.1 / 10 ** epoch / epoch)
                for name in ("conv1", "conv2", "fc")])
    return directory


def fix_steps(patch: pytest.MonkeyPatch) -> None:
    """Every maximisation image gets exactly STEPS steps, whatever the pass budget."""
    patch.setattr(inspection, "MAXIMIZE_STEPS", STEPS)
    patch.setattr(inspection, "MAXIMIZE_MIN_STEPS", STEPS)


@pytest.fixture(autouse=True)
def few_steps(monkeypatch):
    fix_steps(monkeypatch)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("inspection")
    rng = np.random.default_rng(7)
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        fix_steps(patch)
        for key, net, spec in (("grey", grey_net(), GREY), ("colour", colour_net(), COLOUR)):
            run = make_run(base / key, net, spec, rng)
            out[key] = run
            out[key + "_page"] = write_report(run, base / f"{key}-report")
    return out


def names(page: Path) -> set[str]:
    return {p.name for p in page.parent.iterdir()}


def sample_indices(page: Path) -> list[int]:
    return sorted(int(n[len("saliency-"):-len(".png")]) for n in names(page)
                  if n.startswith("saliency-"))


def model_of(run: Path):
    return io.load(run / rundir.CHECKPOINT).model


def shown_channels(model, run: Path, spec: InputSpec, layer: str) -> list[int]:
    """The channels the report draws: all, or the 16 whose top-9 activations on the probe
    images are largest on average, in channel order."""
    probe = spec.prepare(rundir.read_predictions(run).probe_images)
    strength = inspect.top_patches(model, layer, probe, k=TOP_K).values.mean(axis=1)
    return sorted(np.argsort(-strength, kind="stable")[:MAX_CHANNELS].tolist())


def pixels(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Model inputs (..., C, h, w) back to 0..255 pixels, as the report draws them."""
    v = x * np.array(spec.std)[:, None, None] + np.array(spec.mean)[:, None, None]
    return np.clip(np.rint(v * 255), 0, 255)


# ------------------------------------------------------------------ figures
@pytest.mark.parametrize("key,spec", [("grey", GREY), ("colour", COLOUR)])
def test_every_figure_is_written_linked_and_decodes(runs, key, spec):
    page = runs[key + "_page"]
    found = names(page)
    samples = sample_indices(page)
    assert len(samples) == 3
    expected = {"weight-stats.svg"}
    for conv in ("conv1", "conv2"):
        expected |= {f"patches-{conv}.png", f"projections-{conv}.png", f"maximized-{conv}.png",
                     f"gradients-{conv}.png"}
    expected |= {"maximized-classes.png"}
    for t in samples:
        expected |= {f"attribution-{t}.png", f"saliency-{t}.png", f"occlusion-{t}.png"}
    assert expected <= found
    parsed = parse_page(page)
    linked = {link for tag, link in parsed.links if tag == "img"}
    assert expected <= linked
    for anchor in ("patches", "attribution", "maximization", "weights"):
        assert anchor in parsed.ids and ("a", f"#{anchor}") in parsed.links
    for name in expected:
        if name.endswith(".png"):
            image = read_png(page.parent / name)
            assert image.size > 0
        else:
            assert ET.parse(page.parent / name).getroot().tag.endswith("svg")
    text = page.read_text(encoding="utf-8")
    assert "could not show" not in text


def test_top_patch_grid_matches_k_the_receptive_field_and_the_probe_images(runs):
    run, page = runs["grey"], runs["grey_page"]
    model = model_of(run)
    probe = rundir.read_predictions(run).probe_images
    top = inspect.top_patches(model, "conv2", GREY.prepare(probe), k=TOP_K)
    field = top.receptive_field
    assert field.size == (8, 8) and field.stride == (2, 2) and field.offset == (-1, -1)
    # 20 channels: the 16 whose top-9 activations are largest on average, in channel order.
    shown = shown_channels(model, run, GREY, "conv2")
    assert len(shown) == MAX_CHANNELS and shown != list(range(MAX_CHANNELS))
    grid = read_png(page.parent / "patches-conv2.png")
    scale = (grid.shape[1] - TOP_K - 1) // (TOP_K * 8)
    assert scale >= 2
    cut = tiles(grid, MAX_CHANNELS, TOP_K, 8 * scale, 8 * scale)
    for row, channel in enumerate(shown):
        for j in range(TOP_K):
            tile = cut[row][j][::scale, ::scale]
            image = probe[top.indices[channel, j], 0]
            top_, left = field.corner(*top.positions[channel, j])
            for r in range(8):
                for c in range(8):
                    y, x = top_ + r, left + c
                    if 0 <= y < 12 and 0 <= x < 12:
                        assert (tile[r, c] == image[y, x]).all()
                    else:
                        assert tuple(tile[r, c]) == EMPTY_COLOR
    text = page.read_text(encoding="utf-8")
    assert f"the {MAX_CHANNELS} of its 20 channels" in text
    # the row labels beside the grid name those channels
    block = text[:text.index('src="patches-conv2.png"')].rsplit('<div class="pair">', 1)[1]
    assert [int(label) for label in re.findall(r">(\d+)</td>", block)] == shown


def test_first_layer_projection_is_the_kernel_in_the_window(runs):
    """d conv1[c, i, j] / d x is kernel c placed on the window: the guided projection
    crop must show exactly the kernel, scaled symmetrically, clipped where the window
    leaves the image."""
    run, page = runs["grey"], runs["grey_page"]
    model = model_of(run)
    top = inspect.top_patches(model, "conv1", GREY.prepare(rundir.read_predictions(run)
                                                           .probe_images), k=TOP_K)
    weight = model["conv1"].weight.data.astype(np.float64)
    grid = read_png(page.parent / "projections-conv1.png")
    scale = (grid.shape[1] - TOP_K - 1) // (TOP_K * 3)
    cut = tiles(grid, 4, TOP_K, 3 * scale, 3 * scale)
    for channel in range(4):
        for j in range(TOP_K):
            tile = cut[channel][j][::scale, ::scale]
            top_, left = top.receptive_field.corner(*top.positions[channel, j])
            inside = np.zeros((3, 3), bool)
            inside[max(0, -top_):12 - top_, max(0, -left):12 - left] = True
            kernel = weight[channel, 0]
            want = np.rint(127.5 + 127.5 * kernel / np.abs(kernel[inside]).max())
            got = tile[..., 0].astype(int)
            assert np.abs(got[inside] - want[inside]).max() <= 1
            assert (tile[~inside] == EMPTY_COLOR).all()


def test_channel_projections_are_input_gradients_and_leave_the_model_alone():
    model = Sequential(Conv2D(2, 3, 3, padding=1, rng=0, dtype=np.float64), ReLU(),
                       MaxPool2D(2), Conv2D(3, 4, 3, rng=1, dtype=np.float64), ReLU(),
                       Flatten(), Dense(16, 3, rng=2, dtype=np.float64))
    x = np.random.default_rng(3).normal(size=(2, 2, 8, 8))
    targets = np.array([[1, 0, 1], [3, 1, 1]])
    got = channel_projections(model, "conv2", x, targets, rule="gradient")

    def activation(images, n):
        h = images
        for name in ("conv1", "relu1", "pool1", "conv2"):
            h = model[name].forward(h, training=False)
        return h[n, targets[n, 0], targets[n, 1], targets[n, 2]]

    eps = 1e-6
    for n in range(2):
        for index in [(0, 3, 4), (1, 0, 0), (1, 5, 2), (0, 7, 7)]:
            plus, minus = x.copy(), x.copy()
            plus[(n,) + index] += eps
            minus[(n,) + index] -= eps
            numeric = (activation(plus, n) - activation(minus, n)) / (2 * eps)
            assert got[(n,) + index] == pytest.approx(numeric, abs=1e-7)
    guided = channel_projections(model, "conv2", x, targets)
    assert all(relu.backward_rule == "gradient" for relu in (model["relu1"], model["relu2"]))
    assert all((p.grad == 0).all() for p in model.parameters())
    # guided backprop passes only positive signals through relu1
    assert np.abs(guided).sum() <= np.abs(got).sum() + 1e-12
    with pytest.raises(ValueError, match="channel_projections: expected targets"):
        channel_projections(model, "conv2", x, targets[:1])
    with pytest.raises(ValueError, match=r"expected \(channel, i, j\) within"):
        channel_projections(model, "conv2", x, np.array([[4, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="layer_name"):
        channel_projections(model, "nope", x, targets)


def test_saliency_and_occlusion_figures(runs):
    run, page = runs["colour"], runs["colour_page"]
    model = model_of(run)
    preds = rundir.read_predictions(run)
    text = page.read_text(encoding="utf-8")
    for t in sample_indices(page):
        pos = int(np.flatnonzero(preds.sample_index == t)[0])
        x = COLOUR.prepare(preds.sample_images[pos:pos + 1])[0]
        label = int(preds.labels[t])
        # the heading names the index as an index and the classes by name
        truth = COLOUR.class_names[label]
        guess = COLOUR.class_names[int(preds.predicted[t])]
        assert f"Test image #{t}: true &ldquo;{truth}&rdquo;, predicted &ldquo;{guess}&rdquo;" \
            in text
        image = read_png(page.parent / f"attribution-{t}.png")
        scale = (image.shape[0] - 2) // 16
        assert image.ndim == 3 and scale >= 4  # colour, enlarged
        (tile,) = tiles(image, 1, 1, 16 * scale, 16 * scale)[0]
        assert (tile[::scale, ::scale] == pixels(x, COLOUR).transpose(1, 2, 0)).all()
        assert (tile == tile[::scale, ::scale].repeat(scale, 0).repeat(scale, 1)).all()
        saliency = inspect.saliency(model, x, label)
        (grey,) = tiles(read_png(page.parent / f"saliency-{t}.png"), 1, 1, 16 * scale,
                        16 * scale)[0]
        want = np.rint(saliency / saliency.max() * 255)
        assert np.abs(grey[::scale, ::scale].astype(int) - want).max() <= 1
        drops = inspect.occlusion(model, x, label, 5, 1)     # 16 // 4 | 1 = 5, 12x12 positions
        (heat,) = tiles(read_png(page.parent / f"occlusion-{t}.png"), 1, 1, 16 * scale,
                        16 * scale)[0]
        heat = heat[::scale, ::scale].astype(int)
        # pixel (y, x) shows the patch centred on it: centre 2 + position
        centre = heat[2:14, 2:14]
        peak = np.abs(drops).max()
        assert f"largest change {peak:.3f}" in text
        red = drops > 0.05 * peak
        blue = drops < -0.05 * peak
        assert ((centre[..., 0] == 255) & (centre[..., 2] < 255))[red].all()
        assert ((centre[..., 2] == 255) & (centre[..., 0] < 255))[blue].all()
        strongest = np.unravel_index(np.abs(drops).argmax(), drops.shape)
        assert tuple(centre[strongest]) in ((255, 0, 0), (0, 0, 255))


def test_maximisation_images_are_the_ascent_in_the_valid_range(runs):
    run, page = runs["colour"], runs["colour_page"]
    model = model_of(run)
    low = tuple((0 - m) / s for m, s in zip(COLOUR.mean, COLOUR.std))
    high = tuple((1 - m) / s for m, s in zip(COLOUR.mean, COLOUR.std))
    grid = read_png(page.parent / "maximized-conv2.png")
    assert grid.ndim == 3  # RGB for three channels
    scale = (grid.shape[0] - 2) // 16
    cut = tiles(grid, 1, 6, 16 * scale, 16 * scale)  # six channels in one row
    for channel in (0, 5):
        found = inspect.maximize(model, "conv2", channel, (3, 16, 16), steps=STEPS,
                                 clip=(low, high), rng=0, position="centre")
        assert found.objective[-1] > found.objective[0]
        want = pixels(found.image.astype(np.float64), COLOUR).transpose(1, 2, 0)
        assert np.abs(cut[0][channel][::scale, ::scale].astype(int) - want).max() <= 1
    classes = read_png(page.parent / "maximized-classes.png")
    s = (classes.shape[0] - 2) // 16
    cut = tiles(classes, 1, 3, 16 * s, 16 * s)
    for c in range(3):
        found = inspect.maximize(model, "", c, (3, 16, 16), steps=STEPS, clip=(low, high),
                                 rng=0)
        want = pixels(found.image.astype(np.float64), COLOUR).transpose(1, 2, 0)
        assert np.abs(cut[0][c][::s, ::s].astype(int) - want).max() <= 1
    # the names beneath, one cell per tile, as wide as a tile
    text = page.read_text(encoding="utf-8")
    assert "".join(f'<td style="width:{16 * s}px;padding:0;text-align:center">&ldquo;{name}'
                   f"&rdquo;</td>" for name in COLOUR.class_names) in text


def test_weight_statistics_plot(runs):
    svg = ET.parse(runs["grey_page"].parent / "weight-stats.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    legend = [t.text for g in svg.iter(f"{ns}g") if g.get("class") == "legend"
              for t in g.iter(f"{ns}text")]
    assert legend == ["conv1", "conv2", "fc"]
    panels = [g for g in svg.iter(f"{ns}g") if g.get("class") == "panel"]
    assert len(panels) == 3
    ylabels = [next(t.text for t in p.iter(f"{ns}text") if t.get("class") == "ylabel")
               for p in panels]
    # |W| spans 0.1..0.3 (linear); |dW| and the ratio span decades (log)
    assert ylabels == ["mean |W|", "mean |dW| (log scale)", "mean |dW| / mean |W| (log scale)"]
    ticks = [t.text for t in panels[1].iter(f"{ns}text") if t.get("class") == "ytick"]
    assert ticks == ["1e-05", "0.0001", "0.001"]
    for panel in panels:
        lines = [p for p in panel.iter(f"{ns}polyline")]
        assert [p.get("data-series") for p in lines] == ["conv1", "conv2", "fc"]
        assert all(len(p.get("points").split()) == 3 for p in lines)


@pytest.mark.parametrize("key,spec", [("grey", GREY), ("colour", COLOUR)])
def test_weight_gradient_montage(runs, key, spec):
    run, page = runs[key], runs[key + "_page"]
    model = model_of(run)
    preds = rundir.read_predictions(run)
    grads = inspect.weight_gradients(model, SoftmaxCrossEntropy(),
                                     spec.prepare(preds.sample_images),
                                     preds.labels[preds.sample_index])
    # conv2 reads several maps: a cross-channel grid of the channels drawn above, one
    # symmetric scale over the whole layer
    grad = grads["conv2"].astype(np.float64)
    _, m, kh, _ = grad.shape
    rows = shown_channels(model, run, spec, "conv2")
    grid = read_png(page.parent / "gradients-conv2.png")
    scale = (grid.shape[1] - m - 1) // (m * kh)
    cut = tiles(grid, len(rows), m, kh * scale, kh * scale)
    peak = np.abs(grad).max()
    for r, o in enumerate(rows):
        for c in range(m):
            want = np.rint(127.5 + 127.5 * grad[o, c] / peak)
            assert np.abs(cut[r][c][::scale, ::scale, 0].astype(int) - want).max() <= 1
    # conv1 reads the image: one tile per kernel, colour for colour images, in a row
    first = read_png(page.parent / "gradients-conv1.png")
    assert first.ndim == (3 if spec.channels == 3 else 2)
    assert first.shape[1] > first.shape[0]


# --------------------------------------------------------- what is missing
def test_sections_say_what_is_missing(tmp_path):
    rng = np.random.default_rng(0)
    run = make_run(tmp_path / "bare-run", grey_net(), GREY, rng, probe=0, weight_stats=False)
    page = write_report(run, tmp_path / "out")
    text = page.read_text(encoding="utf-8")
    assert "predictions.npz holds no probe images" in text and "could not show" in text
    assert "no weight_stats.csv in the run directory" in text
    found = names(page)
    assert not any(n.startswith(("patches-", "projections-")) for n in found)
    assert "weight-stats.svg" not in found
    # what needs no probe images or statistics is still drawn
    assert {"maximized-conv1.png", "gradients-conv2.png"} <= found
    assert any(n.startswith("saliency-") for n in found)
    # without probe images the bound takes the first channels
    assert f"its first {MAX_CHANNELS} of 20 channels" in text


def test_bare_checkpoints(tmp_path, runs):
    ckpt = tmp_path / "model.npz"
    shutil.copy(runs["grey"] / rundir.CHECKPOINT, ckpt)
    page = write_report(ckpt)
    text = page.read_text(encoding="utf-8")
    found = names(page)
    # the weights' own pictures only: nothing that needs data, nor the costly ascent
    assert not any(n.startswith(("patches-", "saliency-", "occlusion-", "gradients-",
                                 "maximized-")) for n in found)
    assert "Not drawn from a bare checkpoint: thousands of passes" in text
    assert "need the run&#x27;s probe images" in text or "need the run's probe images" in text
    assert "no weight_stats.csv in a bare checkpoint" in text
    assert "Weight gradients: not drawn" in text
    # a checkpoint without a training state: no input spec, nothing that needs images
    io.save(tmp_path / "plain.npz", grey_net())
    plain = write_report(tmp_path / "plain.npz", tmp_path / "plain")
    words = plain.read_text(encoding="utf-8")
    assert "the input spec (image size, normalisation) is unknown" in words
    assert not any(n.startswith("maximized-") for n in names(plain))


def test_maximisation_shares_a_bounded_number_of_passes(monkeypatch):
    for name, value in (("MAXIMIZE_STEPS", 100), ("MAXIMIZE_MIN_STEPS", 20),
                        ("MAXIMIZE_PASSES", 3200)):
        monkeypatch.setattr(inspection, name, value)
    assert inspection.maximization_steps(32) == 100      # LeNet: 6 + 16 channels, 10 classes
    assert inspection.maximization_steps(58) == 3200 // 58
    assert inspection.maximization_steps(10_000) == inspection.MAXIMIZE_MIN_STEPS
