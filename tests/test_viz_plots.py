"""SVG writer, training curves and confusion matrices."""

import math
import os
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from minidl.rundir import metric_series, read_metrics
from minidl.viz import (Element, confusion_matrix, confusion_svg, curves_svg, nice_ticks,
                        svg_document, to_svg_string, write_curves, write_svg)

NS = {"s": "http://www.w3.org/2000/svg"}
HEADER = "epoch,train_loss,train_acc,val_loss,val_acc,test_loss,test_acc,seconds"


def parse(root: Element) -> ET.Element:
    return ET.fromstring(to_svg_string(root).encode("utf-8"))


def texts(tree: ET.Element, cls: str) -> list[str]:
    return [t.text or "" for t in tree.iterfind(".//s:text", NS) if t.get("class") == cls]


def points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in polyline.get("points").split()]


def is_nice_step(step: float) -> bool:
    exponent = math.floor(math.log10(step) + 1e-9)
    mantissa = step / 10 ** exponent
    return any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 5, 10))


def assert_nice(values: list[float]) -> None:
    assert len(values) >= 2
    steps = np.diff(values)
    assert np.allclose(steps, steps[0], rtol=1e-6)
    assert is_nice_step(steps[0])
    multiples = np.array(values) / steps[0]
    assert np.allclose(multiples, np.round(multiples), atol=1e-6)


def metrics(n: int) -> dict[str, list[float]]:
    epochs = list(range(1, n + 1))
    return {
        "epoch": epochs,
        "train_loss": [2.3 / e for e in epochs],
        "test_loss": [2.1 / e + 0.1 for e in epochs],
        "train_acc": [1 - 0.5 / e for e in epochs],
        "test_acc": [0.97 - 0.5 / e for e in epochs],
        "seconds": [3.0] * n,
    }


# ------------------------------------------------------------------------ svg
def test_svg_escaping_roundtrips_through_a_parser(tmp_path):
    root = svg_document(100, 50)
    root.add("text", 'a < b & c > "d"', x=1, y=2, class_="label", font_size=12.5)
    root.add("g").set("data-note", 'quote " amp & lt < tab\tnew\nline')
    tree = ET.fromstring(to_svg_string(root))
    text = tree.find("s:text", NS)
    assert text.text == 'a < b & c > "d"'
    assert text.get("class") == "label" and text.get("font-size") == "12.5"
    assert tree.find("s:g", NS).get("data-note") == 'quote " amp & lt < tab\tnew\nline'
    assert tree.get("viewBox") == "0 0 100 50"
    path = write_svg(tmp_path / "x.svg", root)
    assert ET.parse(path).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert os.listdir(tmp_path) == ["x.svg"]


def test_svg_numbers_and_errors():
    el = Element("rect", x=1.0, y=-0.001, width=3.14159, height=np.int64(7), rx=None)
    assert el.attrs == {"x": "1", "y": "0", "width": "3.14", "height": "7"}
    with pytest.raises(ValueError, match="expected a finite number"):
        Element("rect", x=float("nan"))
    with pytest.raises(ValueError, match="expected an XML element name"):
        Element("not a name")
    with pytest.raises(ValueError, match=r"expected an <svg> root Element, received <g>"):
        to_svg_string(Element("g"))
    # Control characters XML cannot carry are replaced, not written raw.
    root = svg_document(10, 10)
    root.add("text", "bell\x07")
    assert ET.fromstring(to_svg_string(root)).find("s:text", NS).text == "bell\ufffd"


# ------------------------------------------------------------------ nice_ticks
@pytest.mark.parametrize("lo,hi,kwargs,expected", [
    (0.0, 1.0, {}, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.23, 2.31, {}, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
    (1, 10, {"integer": True, "max_ticks": 8}, [0, 2, 4, 6, 8, 10]),
    (1, 5, {"integer": True, "max_ticks": 8}, [1, 2, 3, 4, 5]),
    (1, 1, {"integer": True}, [0, 1, 2]),          # a single epoch
    (0.5, 0.5, {}, [0.45, 0.5, 0.55]),              # a constant series
    (0.0, 0.0, {}, [-1.0, -0.5, 0.0, 0.5, 1.0]),
    (-3.7, 12.2, {}, [-5.0, 0.0, 5.0, 10.0, 15.0]),
])
def test_nice_ticks_cases(lo, hi, kwargs, expected):
    ticks = nice_ticks(lo, hi, **kwargs)
    assert_nice(ticks)
    assert ticks[0] <= min(lo, hi) and ticks[-1] >= max(lo, hi)
    assert len(ticks) <= kwargs.get("max_ticks", 6)
    if expected is not None:
        assert ticks == expected


def test_nice_ticks_random_ranges():
    rng = np.random.default_rng(0)
    for _ in range(300):
        lo = float(rng.normal() * 10.0 ** rng.integers(-4, 5))
        hi = lo + float(rng.random() * 10.0 ** rng.integers(-4, 5))
        ticks = nice_ticks(lo, hi)
        assert_nice(ticks)
        assert ticks[0] <= lo + 1e-12 and ticks[-1] >= hi - 1e-12 and len(ticks) <= 6
        assert len(ticks) >= 3  # the smallest fitting step, so never wastefully coarse
    with pytest.raises(ValueError, match="expected a finite range"):
        nice_ticks(0.0, float("inf"))


# ---------------------------------------------------------------------- curves
def curves(m, **kwargs):
    """curves_svg of a metrics table, as the report draws it."""
    return curves_svg(m["epoch"], metric_series(m, "loss"), metric_series(m, "acc"), **kwargs)


def test_curves_svg_structure():
    tree = parse(curves(metrics(12), title="LeNet-5"))
    lines = tree.findall(".//s:polyline", NS)
    assert len(lines) == 4  # train/test x loss/accuracy
    assert sorted(p.get("data-series") for p in lines) == ["test", "test", "train", "train"]
    for line in lines:
        pts = points(line)
        assert len(pts) == 12
        assert all(b[0] > a[0] for a, b in zip(pts, pts[1:]))  # epochs go right
    panels = tree.findall("s:g", NS)
    assert len(panels) == 2
    loss_train = [p for p in panels[0].findall("s:polyline", NS)
                  if p.get("data-series") == "train"][0]
    ys = [y for _, y in points(loss_train)]
    assert all(b > a for a, b in zip(ys, ys[1:]))  # falling loss is drawn going down
    for panel in panels:
        assert_nice([float(t) for t in texts(panel, "ytick")])
        assert_nice([float(t) for t in texts(panel, "xtick")])
        assert texts(panel, "xlabel") == ["epoch"]
        legend = panel.find("s:g[@class='legend']", NS)
        assert sorted(t.text for t in legend.iterfind("s:text", NS)) == ["test", "train"]
    assert texts(panels[0], "title") == ["Loss"] and texts(panels[1], "title") == ["Accuracy"]
    assert texts(panels[0], "ylabel") == ["loss"]
    assert texts(panels[1], "ylabel") == ["accuracy"]
    assert texts(tree, "heading") == ["LeNet-5"]


def test_curves_points_lie_on_their_ticks():
    m = metrics(5)
    m["train_loss"] = [2.0, 1.5, 1.0, 0.5, 0.0]
    tree = parse(curves(m))
    panel = tree.findall("s:g", NS)[0]
    ytick_y = {float(t.text): float(t.get("y")) - 4 for t in panel.iterfind("s:text", NS)
               if t.get("class") == "ytick"}
    line = [p for p in panel.findall("s:polyline", NS) if p.get("data-series") == "train"][0]
    for (_, y), value in zip(points(line), m["train_loss"]):
        assert y == pytest.approx(ytick_y[value], abs=0.01)


def test_curves_single_epoch_and_constant_series():
    m = {k: v[:1] for k, v in metrics(3).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = parse(curves(m))
        flat = metrics(4)
        flat["train_loss"] = flat["test_loss"] = [0.7] * 4
        flat_tree = parse(curves(flat))
    for line in tree.findall(".//s:polyline", NS):
        assert len(points(line)) == 1
    assert len(tree.findall(".//s:circle", NS)) == 4  # markers make single points visible
    assert "NaN" not in to_svg_string(curves(m)) and "inf" not in to_svg_string(curves(m))
    for panel in flat_tree.findall("s:g", NS):
        assert_nice([float(t) for t in texts(panel, "ytick")])
    for line in flat_tree.findall(".//s:polyline", NS):
        assert all(math.isfinite(c) for pt in points(line) for c in pt)


def test_curves_skip_missing_points():
    m = metrics(4)
    m["test_loss"] = [1.0, float("nan"), 0.8, 0.7]
    tree = parse(curves(m))
    test_loss = [p for p in tree.findall("s:g", NS)[0].findall("s:polyline", NS)
                 if p.get("data-series") == "test"][0]
    assert len(points(test_loss)) == 3


def test_curves_errors():
    with pytest.raises(ValueError, match="expected at least one loss series, received none"):
        curves_svg([1], {}, {"train": [0.5]})
    with pytest.raises(ValueError, match="expected at least one epoch"):
        curves_svg([], {"train": []}, {"train": []})
    bad = metrics(3)
    bad["test_acc"] = [0.5]
    with pytest.raises(ValueError, match="expected 3 values for series 'test', received 1"):
        curves(bad)


def test_write_curves_from_a_run_s_metrics(tmp_path):
    csv_path = tmp_path / "metrics.csv"
    csv_path.write_text(HEADER + "\n1,2.0,0.5,,,1.9,0.55,1\n2,1.0,0.8,,,1.2,0.75,1\n")
    m = read_metrics(csv_path)
    out = write_curves(tmp_path / "curves.svg", m["epoch"], metric_series(m, "loss"),
                       metric_series(m, "acc"))
    tree = ET.parse(out).getroot()
    # train and test in both panels; validation was not measured, so it has no line
    assert [p.get("data-series") for p in tree.iterfind(".//s:polyline", NS)] == [
        "train", "test", "train", "test"]
    assert [len(points(p)) for p in tree.iterfind(".//s:polyline", NS)] == [2, 2, 2, 2]
    assert sorted(os.listdir(tmp_path)) == ["curves.svg", "metrics.csv"]


def test_curves_draw_validation_when_measured():
    metrics = {"epoch": [1, 2], "train_loss": [2, 1], "train_acc": [0.5, 0.8],
               "val_loss": [1.5, 1.1], "val_acc": [0.6, 0.7]}
    tree = parse(curves(metrics))
    assert [p.get("data-series") for p in tree.iterfind(".//s:polyline", NS)] == [
        "train", "val", "train", "val"]


# ----------------------------------------------------------- confusion matrix
def test_confusion_matrix_hand_computed():
    y_true = np.array([0, 0, 1, 2, 2, 2, 1])
    y_pred = np.array([0, 1, 1, 2, 0, 2, 1])
    m = confusion_matrix(y_true, y_pred, num_classes=3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0], [1, 0, 2]])
    assert m.dtype.kind == "i"
    assert m.sum() == 7 and np.trace(m) == 5
    empty = confusion_matrix(np.array([], int), np.array([], int), num_classes=2)
    np.testing.assert_array_equal(empty, np.zeros((2, 2)))


@pytest.mark.parametrize("y_true,y_pred,words", [
    ([0, 1], [0, 1, 1], ["same length", "2 and 3"]),
    ([0.0, 1.0], [0, 1], ["integer class labels", "float64"]),
    ([0, 10], [0, 1], ["y_true in [0, 9]", "[0, 10]"]),
    ([0, 1], [-1, 1], ["y_pred in [0, 9]", "[-1, 1]"]),
    ([[0, 1]], [[0, 1]], ["1-D", "(1, 2)"]),
])
def test_confusion_matrix_validation(y_true, y_pred, words):
    with pytest.raises(ValueError) as info:
        confusion_matrix(np.array(y_true), np.array(y_pred))
    message = str(info.value)
    assert "expected" in message and "received" in message
    for word in words:
        assert word in message


def test_confusion_svg_counts_and_labels():
    m = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 9]])
    tree = parse(confusion_svg(m, labels=["cat", "dog", "fox"]))
    assert [int(t) for t in texts(tree, "count")] == m.ravel().tolist()
    cells = [r for r in tree.iterfind(".//s:rect", NS) if r.get("class") == "cell"]
    assert [(int(c.get("data-true")), int(c.get("data-pred"))) for c in cells] == \
        [(i, j) for i in range(3) for j in range(3)]
    assert texts(tree, "xlabel") == ["predicted"] and texts(tree, "ylabel") == ["true"]
    assert texts(tree, "row-label") == ["cat", "dog", "fox"] == texts(tree, "col-label")
    fills = {(int(c.get("data-true")), int(c.get("data-pred"))): c.get("fill") for c in cells}
    darkness = {k: sum(int(v[i:i + 2], 16) for i in (1, 3, 5)) for k, v in fills.items()}
    assert min(darkness, key=darkness.get) == (2, 2)  # the largest count is darkest
    assert darkness[(0, 2)] == max(darkness.values())  # zero is lightest


def test_confusion_svg_all_zero_and_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = parse(confusion_svg(np.zeros((2, 2), int)))
    assert texts(tree, "count") == ["0"] * 4
    with pytest.raises(ValueError, match=r"expected a square \(K, K\) integer matrix"):
        confusion_svg(np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="expected 2 labels, received 3"):
        confusion_svg(np.zeros((2, 2), int), labels=["a", "b", "c"])
