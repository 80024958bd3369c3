"""The HTML report and feature maps, on small synthetic run directories (no MNIST, no train.py)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from minidl import Graph, Sequential, io, rundir
from minidl.rundir import InputSpec, Predictions, Progress, TrainerSettings, TrainingState
from minidl.layers import Conv2D, Flatten, MaxPool2D, ReLU, Tanh
from minidl.viz import CROSS_COLOR, EMPTY_COLOR
from minidl.viz.features import feature_map_grid, feature_maps
from minidl.viz.report import ReportError, default_out_dir, write_report
from models.lenet import LENET5_C3_TABLE, lenet, lenet5

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = 0.1307, 0.3081
N_TEST = 200
STEPS = 3  # activation maximisation: a few steps are enough to check the figures


# ----------------------------------------------------------------- helpers
def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit grayscale/RGB PNG (checks CRCs); (H, W) or (H, W, 3) uint8."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and interlace == 0 and color in (0, 2)
    bpp = 1 if color == 0 else 3
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), np.int64)
    prev = np.zeros(width * bpp, np.int64)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:
            cur = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:
            cur = (line + prev) % 256
        else:
            cur_list, up = line.tolist(), prev.tolist()
            for i in range(len(cur_list)):
                a = cur_list[i - bpp] if i >= bpp else 0
                b = up[i]
                c = up[i - bpp] if i >= bpp else 0
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur_list[i] = (cur_list[i] + pred) % 256
            cur = np.array(cur_list, np.int64)
        out[y] = prev = cur
    pixels = out.astype(np.uint8).reshape(height, width, bpp)
    return pixels[:, :, 0] if bpp == 1 else pixels


class LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.wrong_cells: list[str] = []
        self._in_wrong = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            if attrs.get(key) is not None:
                self.links.append((tag, attrs[key]))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "table" and "wrong" in (attrs.get("class") or ""):
            self._in_wrong += 1
        if tag == "td" and self._in_wrong:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.wrong_cells.append("".join(self._cell).strip())
            self._cell = None
        if tag == "table" and self._in_wrong:
            self._in_wrong -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_page(path: Path) -> LinkParser:
    parser = LinkParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def tiles(grid: np.ndarray, rows: int, cols: int, th: int, tw: int, border: int = 1):
    """Cut a bordered grid into its (rows, cols) tiles, checking the geometry."""
    assert grid.shape[:2] == (rows * th + (rows + 1) * border, cols * tw + (cols + 1) * border)
    return [[grid[border + r * (th + border):border + r * (th + border) + th,
                  border + c * (tw + border):border + c * (tw + border) + tw]
             for c in range(cols)] for r in range(rows)]


def spec(pad: int) -> InputSpec:
    return InputSpec((1, 28, 28), (MEAN,), (STD,), tuple(str(d) for d in range(10)), pad=pad)


def make_run(directory: Path, model, *, name: str, pad: int, rng: np.random.Generator,
             with_meta_metrics: bool = True) -> Path:
    """A run directory in the trainer's format (written through minidl.rundir), with
    synthetic digits and predictions."""
    directory.mkdir(parents=True)
    rows = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.5 + 0.1 * e, "val_loss": None,
             "val_acc": None, "test_loss": 1.5 / e, "test_acc": 0.6 + 0.1 * e, "seconds": 1.25}
            for e in (1, 2, 3)]
    settings = {"model": name, "dataset": "mnist", "epochs": 3, "seed": 0}
    state = TrainingState(trainer=TrainerSettings(3, 64, 0, 100),
                          settings=settings, input=spec(pad),
                          progress=Progress(epoch=3),
                          schedule=None, rng_states={}, metrics=rows if with_meta_metrics else [])
    io.save(directory / rundir.CHECKPOINT, model, meta=state.to_meta())
    rundir.write_metrics(directory, rows)
    rundir.write_settings(directory, settings)

    labels = rng.permutation(np.arange(N_TEST) % 10)
    predictions = labels.copy()
    flip = rng.random(N_TEST) < 0.3
    predictions[flip] = (labels[flip] + rng.integers(1, 10, flip.sum())) % 10
    logits = rng.normal(size=(N_TEST, 10))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    images = rng.integers(0, 256, (N_TEST, 1, 28, 28), dtype=np.uint8)
    rundir.write_predictions(directory, Predictions.from_evaluation(
        "test", images, labels, predictions, probs))
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    rng = np.random.default_rng(1234)
    run5 = make_run(base / "lenet5-run", lenet5(rng=0), name="lenet5", pad=2, rng=rng)
    run1 = make_run(base / "lenet-run", lenet(rng=0), name="lenet", pad=0, rng=rng)
    out5 = base / "report5"
    out1 = base / "report1"
    return {"run5": run5, "run1": run1, "out5": out5, "out1": out1,
            "page5": write_report(run5, out5, maximize_steps=STEPS),
            "page1": write_report(run1, out1, maximize_steps=STEPS)}


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


# ------------------------------------------------------------------ report
def test_report_writes_every_figure(runs):
    out = runs["out5"]
    assert runs["page5"] == out / "report.html"
    names = set(files_of(out))
    expected = {"report.html", "curves.svg", "confusion.svg", "misclassified.png",
                "kernels-c1.png", "channels-c1.png", "channels-c3.png", "channels-c5.png"}
    assert expected <= names
    inputs = sorted(n for n in names if n.startswith("input-"))
    assert len(inputs) == 3
    for name in inputs:
        t = name[len("input-"):-len(".png")]
        for layer in ("c1", "s2", "c3", "s4", "c5"):
            assert f"features-{t}-{layer}.png" in names
    # lenet's conv2 reads 6 maps: a cross-channel grid, but no first-layer style grid.
    names1 = set(files_of(runs["out1"]))
    assert {"kernels-conv1.png", "channels-conv1.png", "channels-conv2.png"} <= names1
    assert "kernels-conv2.png" not in names1


@pytest.mark.parametrize("which", ["out5", "out1"])
def test_links_are_relative_and_exist(runs, which):
    out = runs[which]
    page = parse_page(out / "report.html")
    assert "script" not in page.tags
    targets = set()
    for tag, link in page.links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
        if link.startswith("#"):
            assert link[1:] in page.ids, link
            continue
        assert ".." not in Path(parts.path).parts
        assert (out / parts.path).is_file(), link
        targets.add(parts.path)
    figures = {n for n in files_of(out) if n.endswith((".png", ".svg"))}
    assert targets == figures  # every figure shown, none missing


@pytest.mark.parametrize("which", ["out5", "out1"])
def test_svgs_parse_and_pngs_decode(runs, which):
    out = runs[which]
    for svg in out.glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg")
    for png in out.glob("*.png"):
        assert read_png(png).size > 0


def test_c3_channel_grid_shows_the_connection_table(runs):
    grid = read_png(runs["out5"] / "channels-c3.png")
    assert grid.ndim == 3
    scale = (grid.shape[0] - 17) // (16 * 5)
    cut = tiles(grid, 16, 6, 5 * scale, 5 * scale)
    weight = io.load(runs["run5"] / "checkpoint.npz").model["c3"].weight.data.astype(np.float64)
    for o in range(16):
        peak = np.abs(weight[o]).max()
        for c in range(6):
            t = cut[o][c]
            if LENET5_C3_TABLE[o, c]:
                assert (t[..., 0] == t[..., 1]).all() and (t[..., 1] == t[..., 2]).all()
                # per-kernel symmetric scale: zero is mid-grey, +-max|W[o]| is 255 / 0
                want = np.rint(127.5 + 127.5 * weight[o, c] / peak)
                want = want.repeat(scale, 0).repeat(scale, 1)
                assert np.abs(t[..., 0].astype(int) - want).max() <= 1
            else:
                colors = {tuple(p) for p in t.reshape(-1, 3)}
                assert colors == {tuple(EMPTY_COLOR), tuple(CROSS_COLOR)}


def test_grid_geometry(runs):
    out = runs["out5"]
    c5 = read_png(out / "channels-c5.png")
    scale = (c5.shape[0] - 121) // 600
    assert scale >= 2  # kept readable
    tiles(c5, 120, 16, 5 * scale, 5 * scale)
    kernels = read_png(out / "kernels-c1.png")
    assert kernels.ndim == 2
    ks = (kernels.shape[1] - 7) // 30
    tiles(kernels, 1, 6, 5 * ks, 5 * ks)
    name = next(p.name for p in out.glob("features-*-c3.png"))
    c3 = read_png(out / name)
    fs = (c3.shape[1] - 9) // 80
    tiles(c3, 2, 8, 10 * fs, 10 * fs)


def test_misclassified_grid_and_captions(runs):
    predictions = rundir.read_predictions(runs["run5"])
    labels, preds = predictions.labels, predictions.predicted
    index, images = predictions.misclassified_index, predictions.misclassified_images
    grid = read_png(runs["out5"] / "misclassified.png")
    rows = -(-len(images) // 10)
    cut = tiles(grid, rows, 10, 56, 56)
    for i, image in enumerate(images):
        assert (cut[i // 10][i % 10] == image[0].repeat(2, 0).repeat(2, 1)).all()
    cells = parse_page(runs["out5"] / "report.html").wrong_cells
    expected = [f"{labels[t]}\u2192{preds[t]}" for t in index]
    assert [c.split("%")[0][:3] for c in cells] == expected


def test_page_explains_the_connections(runs):
    text5 = runs["page5"].read_text(encoding="utf-8")
    assert "16 output maps x 6 input maps, 60 of 96 pairs connected" in text5
    assert "120 output maps x 16 input maps, 1920 of 1920 pairs connected" in text5
    assert "6 output maps x 1 input map, 6 of 6 pairs connected" in text5
    assert "<b>sum</b>" in text5 and "not</b>" in text5 and "average" in text5
    assert "1,516" in text5  # C3's trainable parameters, as in LeCun et al. (1998)
    text1 = runs["page1"].read_text(encoding="utf-8")
    assert "16 output maps x 6 input maps, 96 of 96 pairs connected" in text1
    # test accuracy from the predictions, and the run's settings
    predictions = rundir.read_predictions(runs["run1"])
    acc = (predictions.labels == predictions.predicted).mean()
    assert f"{100 * acc:.2f}%" in text1 and "&quot;lenet&quot;" in text1
    assert "could not show" not in text1


def test_deterministic(runs, tmp_path):
    again = write_report(runs["run5"], tmp_path / "again", maximize_steps=STEPS)
    assert files_of(again.parent) == files_of(runs["out5"])
    write_report(runs["run5"], tmp_path / "again", maximize_steps=STEPS)  # over its own files
    assert files_of(again.parent) == files_of(runs["out5"])


def test_bare_checkpoint(runs, tmp_path):
    ckpt = tmp_path / "model.npz"
    shutil.copy(runs["run5"] / "checkpoint.npz", ckpt)
    page = write_report(ckpt)
    assert page == tmp_path / "model-report" / "report.html" == default_out_dir(ckpt) / "report.html"
    names = set(files_of(page.parent))
    assert names == {"report.html", "kernels-c1.png", "channels-c1.png", "channels-c3.png",
                     "channels-c5.png", "curves.svg"}  # curves from the metadata
    text = page.read_text(encoding="utf-8")
    assert "could not show" in text and "no data" in text
    assert "feature maps" in text.lower() and "confusion matrix" in text
    parser = parse_page(page)
    for _, link in parser.links:
        assert link.startswith("#") or (page.parent / link).is_file()


def test_bare_checkpoint_without_history_or_input_spec(tmp_path):
    model = Sequential(Conv2D(1, 4, 3, rng=0), ReLU(), MaxPool2D(2),
                       Conv2D(4, 8, 3, groups=2, rng=1), Tanh(), Flatten())
    io.save(tmp_path / "grouped.npz", model)
    page = write_report(tmp_path / "grouped.npz", tmp_path / "out")
    text = page.read_text(encoding="utf-8")
    assert "8 output maps x 4 input maps, 16 of 32 pairs connected" in text
    assert "groups=2" in text and "Training curves: no per-epoch metrics" in text
    assert not (tmp_path / "out" / "curves.svg").exists()
    grid = read_png(tmp_path / "out" / "channels-conv2.png")
    scale = (grid.shape[0] - 9) // 24
    cut = tiles(grid, 8, 4, 3 * scale, 3 * scale)
    for o in range(8):
        for c in range(4):
            empty = tuple(cut[o][c][0, 1]) == tuple(EMPTY_COLOR)
            assert empty == ((o < 4) != (c < 2))  # off-diagonal blocks are empty


def test_missing_sources_raise(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        write_report(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(ReportError, match="checkpoint.npz"):
        write_report(tmp_path, tmp_path / "out")
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    with pytest.raises(ReportError, match="not a minidl checkpoint"):
        write_report(tmp_path / "fake.npz", tmp_path / "out")


def test_run_without_predictions_says_so(runs, tmp_path):
    run = tmp_path / "partial"
    run.mkdir()
    for name in ("checkpoint.npz", "metrics.csv", "args.json"):
        shutil.copy(runs["run1"] / name, run / name)
    page = write_report(run, run, maximize_steps=STEPS)
    text = page.read_text(encoding="utf-8")
    assert "No predictions.npz" in text
    assert not (run / "confusion.svg").exists() and (run / "curves.svg").exists()


# --------------------------------------------------------------------- CLI
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minidl.viz", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_on_a_run_directory(runs, tmp_path):
    done = run_cli(str(runs["run1"]), "--out", str(tmp_path / "cli"), "--maximize-steps", str(STEPS))
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == tmp_path / "cli" / "report.html"
    assert files_of(tmp_path / "cli") == files_of(runs["out1"])


def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    for source in (tmp_path / "missing", tmp_path / "fake.npz"):
        done = run_cli(str(source))
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and str(source) in done.stderr
    assert run_cli("--help").returncode == 0


# ------------------------------------------------------------- feature maps
def digit(pad: int) -> np.ndarray:
    image = np.random.default_rng(5).integers(0, 256, (1, 1, 28, 28), dtype=np.uint8)
    return spec(pad).prepare(image)[0]


def test_feature_maps_lenet_by_hand():
    model = lenet(rng=0)
    x = digit(0)
    maps = feature_maps(model, x)
    assert [(n, m.shape) for n, m in maps] == [
        ("conv1", (6, 28, 28)), ("pool1", (6, 14, 14)),
        ("conv2", (16, 10, 10)), ("pool2", (16, 5, 5))]
    h = x[None]
    expected = []
    for name in ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2"):
        h = model[name].forward(h, training=False)
        if not name.startswith("conv"):
            expected.append(h[0])
    for (_, got), want in zip(maps, expected):
        np.testing.assert_array_equal(got, want)
    raw = dict(feature_maps(model, x[None], after_activation=False))
    np.testing.assert_array_equal(raw["conv1"], model["conv1"].forward(x[None], training=False)[0])
    assert (raw["conv1"] < 0).any() and (dict(maps)["conv1"] >= 0).all()


def test_feature_maps_lenet5():
    model = lenet5(rng=0)
    maps = feature_maps(model, digit(2))
    assert [(n, m.shape) for n, m in maps] == [
        ("c1", (6, 28, 28)), ("s2", (6, 14, 14)), ("c3", (16, 10, 10)),
        ("s4", (16, 5, 5)), ("c5", (120, 1, 1))]
    h = digit(2)[None]
    for name in ("c1", "tanh1", "s2", "c3", "tanh2"):
        h = model[name].forward(h, training=False)
    np.testing.assert_array_equal(dict(maps)["c3"], h[0])


def test_feature_maps_graph():
    g = Graph()
    g.add("conv", Conv2D(1, 3, 3, padding=1, rng=0), "input")
    g.add("relu", ReLU(), "conv")
    g.add("pool", MaxPool2D(2), "relu")
    g.add("side", Conv2D(1, 2, 3, padding=1, rng=1), "input")  # read twice: not folded
    g.add("tanh", Tanh(), "side")
    g.add("pool_side", MaxPool2D(2), "side")
    g.output = "pool"
    x = np.random.default_rng(0).normal(size=(1, 8, 8)).astype(np.float32)
    maps = dict(feature_maps(g, x))
    assert list(maps) == ["conv", "pool", "side", "pool_side"]
    conv = g["conv"].forward(x[None], training=False)
    np.testing.assert_array_equal(maps["conv"], np.maximum(conv, 0)[0])
    np.testing.assert_array_equal(maps["side"], g["side"].forward(x[None], training=False)[0])
    assert maps["pool_side"].shape == (2, 4, 4)


def test_feature_maps_bad_input():
    with pytest.raises(ValueError, match="floating-point"):
        feature_maps(lenet(rng=0), np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        feature_maps(lenet(rng=0), np.zeros((2, 1, 28, 28), np.float32))


def test_feature_map_grid_geometry():
    maps = np.random.default_rng(0).normal(size=(16, 10, 10))
    grid = feature_map_grid(maps, ncols=8, scale=3)
    cut = tiles(grid, 2, 8, 30, 30)
    assert grid.dtype == np.uint8 and cut[0][0].shape == (30, 30)
    assert grid[1:-1, 1:-1].max() == 255 and grid[1:-1, 1:-1].min() == 0  # one scale per layer
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        feature_map_grid(maps[0])


def test_feature_maps_nested_containers_use_dotted_names():
    block = Sequential(("conv", Conv2D(3, 4, 3, padding=1, rng=0)), ("relu", ReLU()),
                       ("pool", MaxPool2D(2)))
    g = Graph()
    g.add("stem", Conv2D(1, 3, 3, padding=1, rng=1), "input")
    g.add("block", block, "stem")
    x = np.random.default_rng(1).normal(size=(1, 8, 8)).astype(np.float32)
    maps = feature_maps(g, x)
    assert [(n, m.shape) for n, m in maps] == [
        ("stem", (3, 8, 8)), ("block.conv", (4, 8, 8)), ("block.pool", (4, 4, 4))]
    np.testing.assert_array_equal(maps[-1][1], g.forward(x[None], training=False)[0])


# ------------------------------------------------------- Figure 3 in colour
def test_two_column_first_layer_is_drawn_in_colour_as_two_blocks(tmp_path):
    from minidl.inspect import colour_specificity
    from models.cifar import two_column
    model = two_column(rng=0)
    weight = model["conv1"].weight.data
    weight[32:] = weight[32:].mean(axis=1, keepdims=True)  # column 2 sees brightness only
    spec3 = InputSpec((3, 32, 32), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), tuple("abcdefghij"))
    state = TrainingState(trainer=TrainerSettings(1, 128, 0, 100), settings={},
                          input=spec3, progress=Progress(epoch=1), schedule=None,
                          rng_states={}, metrics=[])
    io.save(tmp_path / rundir.CHECKPOINT, model, meta=state.to_meta())
    page = write_report(tmp_path / rundir.CHECKPOINT, tmp_path / "out")
    grid = read_png(tmp_path / "out" / "kernels-conv1.png")
    assert grid.ndim == 3  # colour
    white_rows = np.flatnonzero((grid == 255).all(axis=(1, 2)))
    assert len(white_rows) == 8  # the gap between the two columns' blocks
    top, bottom = grid[:white_rows[0]], grid[white_rows[-1] + 1:]
    assert top.shape == bottom.shape  # 32 kernels each, 16 a row
    # the second block is grey: R = G = B inside every tile
    assert (bottom[..., 0] == bottom[..., 1]).all() and (bottom[..., 1] == bottom[..., 2]).all()
    assert not (top[..., 0] == top[..., 1]).all()
    score = colour_specificity(weight)
    text = page.read_text(encoding="utf-8")
    assert (f"column 1 (kernels 0&ndash;31): <b>{score[:32].mean():.3f}</b>; "
            f"column 2 (kernels 32&ndash;63): <b>{score[32:].mean():.3f}</b>") in text
    assert f"{score[32:].mean():.3f}" == "0.000"
    assert (tmp_path / "out" / "kernels-conv1-rgb-slices.png").is_file()
