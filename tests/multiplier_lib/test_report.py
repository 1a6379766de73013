"""Tests for the characterization report (multiplier_lib.report / multiplier_lib.plots)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from PIL import Image

from core.errors import HwcostError
from multiplier_lib import report as report_mod
from multiplier_lib.multiplier import Multiplier, operand_values
from multiplier_lib.plots import ascending_code_order, heatmap_png, histogram_png
from multiplier_lib.report import (
    format_value,
    kind_label,
    pareto_front,
    safe_stem,
    unique_stems,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def exact_mult(name: str = "exact_t", bits: int = 8, signed: bool = False) -> Multiplier:
    v = operand_values(bits, signed)
    return Multiplier(name, bits, bits, signed, np.multiply.outer(v, v))


def trunc_mult(name: str = "trunc4", bits: int = 8, low: int = 4) -> Multiplier:
    m = exact_mult(name, bits)
    return Multiplier(name, bits, bits, False, m.lut & ~((1 << low) - 1))


def record(m: Multiplier, **over) -> dict:
    rec = {
        "name": m.name, "a_bits": m.a_bits, "b_bits": m.b_bits, "signed": m.signed,
        "mae": 1.0, "mae_pct": 0.5, "wce": 3, "wce_pct": 1.25, "wcre_pct": None,
        "mre_pct": 0.75, "ep_pct": 40.0, "mse": 2.0, "bias": -1.5, "error_std": 2.25,
        "gates": {"AND": 64, "FA": 48, "HA": 8}, "area_um2": 712.5, "energy_pj": 0.4,
        "energy_rel_exact": 0.8, "published": {},
    }
    rec.update(over)
    return rec


def table_rows(md: str) -> list[list[str]]:
    """Cells of the metrics table (header and separator excluded)."""
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert lines[0].startswith("| Name | Kind | MAE %")
    rows = []
    for ln in lines[2:]:
        cells = re.split(r"(?<!\\)\|", ln.strip())[1:-1]
        rows.append([c.strip() for c in cells])
    return rows


def assert_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) < 150_000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return img


@pytest.fixture
def stub_plots(monkeypatch) -> None:
    """Replace per-multiplier plots with a 1-pixel PNG for tests about naming/selection only
    (rendering is covered elsewhere; this keeps the suite fast)."""
    buf = BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    png = buf.getvalue()
    monkeypatch.setattr(report_mod, "heatmap_png", lambda *a, **k: png)
    monkeypatch.setattr(report_mod, "histogram_png", lambda *a, **k: png)


@pytest.fixture(scope="module")
def basic_report(tmp_path_factory) -> tuple[Path, dict[str, Path], list[Multiplier]]:
    out = tmp_path_factory.mktemp("rep") / "nested" / "out"  # must be created
    ex, tr, sg = exact_mult(), trunc_mult(), exact_mult("signed4", bits=4, signed=True)
    items = [
        (ex, record(ex, mae_pct=0.0, energy_pj=0.5, energy_rel_exact=1.0,
                    published={"power_mw": 0.391, "area_um2": 710.0})),
        (tr, record(tr, mae_pct=0.0123456, energy_pj=0.3,
                    published={"power_mw": 0.2, "mae_pct": 0.02})),
        (sg, record(sg, mae_pct=1.5, energy_pj=None, area_um2=None, gates=None,
                    energy_rel_exact=None)),
    ]
    paths = write_report(out, items)
    return out, paths, [ex, tr, sg]


def test_files_exist_and_are_readable_pngs(basic_report):
    out, paths, mults = basic_report
    expected = {"markdown", "html", "pareto"}
    for m in mults:
        expected |= {f"{m.name}_heatmap", f"{m.name}_hist"}
    assert set(paths) == expected
    for key, p in paths.items():
        assert p.parent == out and p.is_file()
        if key not in ("markdown", "html"):
            assert p.suffix == ".png"
            assert_png(p)


def test_no_temp_files_left(basic_report):
    out, paths, _ = basic_report
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())


def test_markdown_table_one_row_per_multiplier(basic_report):
    _, paths, mults = basic_report
    md = paths["markdown"].read_text()
    rows = table_rows(md)
    assert [r[0] for r in rows] == [m.name for m in mults]
    assert [r[1] for r in rows] == ["8x8 u", "8x8 u", "4x4 s"]
    assert [r[2] for r in rows] == ["0", "0.01235", "1.5"]  # MAE %, 4 significant digits
    header = [c.strip() for c in md.splitlines()[[ln.startswith("| Name") for ln in
                                                   md.splitlines()].index(True)].split("|")[1:-1]]
    col = {h: i for i, h in enumerate(header)}
    assert all(len(r) == len(header) for r in rows)
    assert rows[0][col["Gates"]] == "120"
    assert rows[0][col["Pub. power mW"]] == "0.391"
    assert rows[0][col["Pub. area um2"]] == "710"
    assert rows[1][col["Pub. MAE %"]] == "0.02"
    assert rows[1][col["Pub. area um2"]] == "-"
    # images referenced by relative path
    for key, p in paths.items():
        if key.endswith(("_heatmap", "_hist")) or key == "pareto":
            assert f"]({p.name})" in md


def test_multiplier_without_estimates_dashed_and_left_out_of_pareto(basic_report, tmp_path,
                                                                    monkeypatch, stub_plots):
    _, paths, _ = basic_report
    md = paths["markdown"].read_text()
    row = table_rows(md)[2]
    header = [c.strip() for c in next(ln for ln in md.splitlines()
                                      if ln.startswith("| Name")).split("|")[1:-1]]
    for col in ("Gates", "Area um2 (est.)", "Energy pJ (est.)", "Energy rel. exact",
                "Pub. power mW"):
        assert row[header.index(col)] == "-"
    assert re.search(r"Not in the Pareto plot.*signed4", md)
    assert "signed4" in paths["html"].read_text().split("Not in the Pareto plot")[1]

    # what actually goes into the plot
    captured = {}
    real_pareto_png = report_mod.pareto_png

    def fake_pareto(estimated, published, front):
        captured.update(estimated=estimated, published=published, front=front)
        return real_pareto_png(estimated, published, front)

    monkeypatch.setattr(report_mod, "pareto_png", fake_pareto)
    a, b, c = exact_mult("a", 4), trunc_mult("b", 4, 2), trunc_mult("c", 4, 1)
    write_report(tmp_path, [
        (a, record(a, mae_pct=0.0, energy_pj=1.0)),
        (b, record(b, mae_pct=2.0, energy_pj=None, published={"power_mw": 0.25})),
        (c, record(c, mae_pct=1.0, energy_pj=None)),
    ])
    assert captured["estimated"] == [("a", 0.0, 1.0)]
    # published power converted to pJ, x falls back to the estimated MAE%
    assert captured["published"] == [("b", 2.0, 0.25)]
    assert captured["front"] == [0]
    md2 = (tmp_path / "report.md").read_text()
    note = next(ln for ln in md2.splitlines() if ln.startswith("Not in the Pareto plot"))
    assert "c" in note.split(":")[1] and "b" not in note.split(":")[1]


class _Checker(HTMLParser):
    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.srcs: list[str] = []
        self.errors: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href"):
                self.srcs.append(v or "")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


def test_html_self_contained_and_well_formed(basic_report):
    _, paths, _ = basic_report
    text = paths["html"].read_text()
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert checker.doctype.lower() == "doctype html"
    assert not checker.errors and not checker.stack
    pngs = [p for k, p in paths.items() if k not in ("markdown", "html")]
    assert text.count("data:image/png;base64,") == len(pngs)
    assert len(checker.srcs) == len(pngs)
    assert all(s.startswith("data:image/png;base64,") for s in checker.srcs)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in checker.srcs}
    assert embedded == {p.read_bytes() for p in pngs}
    assert "<table>" in text and text.count("<tr>") == 1 + 3


def test_html_escapes_names(tmp_path):
    m = exact_mult("<b>&x", 4)
    write_report(tmp_path, [(m, record(m))], title="T <i>")
    text = (tmp_path / "report.html").read_text()
    assert "<b>" not in text and "&lt;b&gt;&amp;x" in text
    assert "<title>T &lt;i&gt;</title>" in text


def test_odd_names_give_safe_unique_filenames(tmp_path, stub_plots):
    assert safe_stem("mul8u/1KV:x y") == "mul8u_1KV_x_y"
    assert safe_stem("..") == "__"
    assert safe_stem("") == "_"
    assert len(safe_stem("x" * 500)) == report_mod.MAX_STEM
    assert unique_stems(["a/b", "a:b", "a_b", "Mul", "mul", "c"]) == [
        "a_b", "a_b_2", "a_b_3", "Mul", "mul_2", "c"]

    names = ["../evil", "mul/1", "mul:1"]
    items = [(exact_mult(n, 4), record(exact_mult(n, 4))) for n in names]
    paths = write_report(tmp_path / "o", items)
    files = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert files == sorted([
        "report.md", "report.html", "pareto.png",
        ".._evil_heatmap.png", ".._evil_hist.png", "mul_1_heatmap.png", "mul_1_hist.png",
        "mul_1_2_heatmap.png", "mul_1_2_hist.png"])
    assert not (tmp_path / "evil_heatmap.png").exists()
    assert paths["mul_1_2_heatmap"] == tmp_path / "o" / "mul_1_2_heatmap.png"
    # the table still shows the original names
    assert [r[0] for r in table_rows(paths["markdown"].read_text())] == [
        "../evil", "mul/1", "mul:1"]


def test_pareto_front_hand_worked():
    pts = [(0, 10), (1, 5), (2, 5), (3, 1), (1, 8), (0, 10), (4, 0.5), (5, 0.5),
           (float("nan"), 0.0)]
    # (2,5) and (1,8) are dominated by (1,5); (5,0.5) by (4,0.5); the duplicate (0,10)s
    # dominate neither each other; NaN is not comparable. Ordered along the front.
    assert pareto_front(pts) == [0, 5, 1, 3, 6]
    assert pareto_front([]) == []
    assert pareto_front([(3.0, 3.0)]) == [0]
    assert pareto_front([(1, 1), (0, 2), (2, 0)]) == [1, 0, 2]
    assert pareto_front([(1, 1), (1, 2), (2, 1)]) == [0]


def test_format_value():
    assert format_value(None) == "-"
    assert format_value(0.0) == "0"
    assert format_value(0.0123456) == "0.01235"
    assert format_value(1.5) == "1.5"
    assert format_value(np.int64(120)) == "120"
    assert format_value(123456.7) == "123457"
    assert format_value(float("nan")) == "nan"
    assert kind_label(8, 4, True) == "8x4 s"


def test_ascending_code_order():
    order = ascending_code_order(8, True)
    vals = operand_values(8, True)[order]
    assert vals[0] == -128 and vals[-1] == 127
    assert np.all(np.diff(vals) == 1)
    assert order[0] == 128 and order[127] == 255 and order[128] == 0
    assert np.array_equal(ascending_code_order(4, False), np.arange(16))


def _rgb(img: np.ndarray, frac_x: float, frac_y: float) -> np.ndarray:
    h, w = img.shape[:2]
    return img[int(h * frac_y), int(w * frac_x), :3]


def test_signed_heatmap_rows_ascend():
    # error +100 where a < 0, -100 where a >= 0 (rows are a, indexed by code)
    a_vals = operand_values(8, True)
    err = np.where(a_vals[:, None] < 0, 100, -100) * np.ones((1, 256), dtype=np.int64)
    img = mpimg.imread(BytesIO(heatmap_png("s", err, 8, 8, True)))
    # origin is at the bottom: with values ascending, negative a (red) fills the lower half
    # and non-negative a (blue) the upper half. Unordered codes would put red on top.
    top, bottom = _rgb(img, 0.4, 0.25), _rgb(img, 0.4, 0.7)
    assert top[2] > 2 * top[0] + 0.1, top  # blue
    assert bottom[0] > 2 * bottom[2] + 0.1, bottom  # red


def test_all_zero_error_heatmap_and_all_exact_set(tmp_path):
    img = mpimg.imread(BytesIO(heatmap_png("z", np.zeros((256, 256), np.int64), 8, 8, False)))
    assert img.shape[0] > 100
    img = mpimg.imread(BytesIO(histogram_png("z", np.zeros((16, 16), np.int64))))
    assert img.shape[0] > 100
    a, b = exact_mult("e1", 4), exact_mult("e2", 4, signed=True)
    paths = write_report(tmp_path, [
        (a, record(a, mae_pct=0.0, energy_pj=1.0, published={"power_mw": 0.9})),
        (b, record(b, mae_pct=0.0, energy_pj=1.2)),
    ])
    assert_png(paths["pareto"])
    assert "Not in the Pareto plot" not in paths["markdown"].read_text()


def test_weighted_histogram_and_bad_weights(tmp_path):
    m = trunc_mult("w", 4, 2)
    w = np.zeros((16, 16))
    w[:4, :4] = 1.0
    paths = write_report(tmp_path, [(m, {**record(m), "_weights": w})])
    assert "weighted" in paths["markdown"].read_text().split("### w")[1]
    assert_png(paths["w_hist"])
    with pytest.raises(HwcostError, match="shape"):
        write_report(tmp_path / "bad", [(m, {**record(m), "_weights": np.ones((4, 4))})])
    with pytest.raises(HwcostError, match="non-negative"):
        write_report(tmp_path / "bad", [(m, {**record(m), "_weights": -np.ones((16, 16))})])


def test_no_pyplot_figures_leaked(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    before = set(plt.get_fignums())
    m = trunc_mult("x", 4, 1)
    write_report(tmp_path, [(m, record(m))])
    assert set(plt.get_fignums()) == before


def test_empty_item_list(tmp_path):
    paths = write_report(tmp_path, [])
    assert table_rows(paths["markdown"].read_text()) == []
    assert_png(paths["pareto"])


def _capture_figures(monkeypatch) -> list:
    """Figures the plot functions would encode, kept for inspection."""
    from multiplier_lib import plots

    seen: list = []

    def keep(fig):
        seen.append((fig.axes[0].get_yscale(), fig.axes[0].get_ylabel(),
                     fig.axes[0].get_xlabel(),
                     [(t.get_text(), t.get_ha()) for t in fig.axes[0].texts]))
        return b""

    monkeypatch.setattr(plots, "_to_png", keep)
    return seen


def test_every_histogram_has_a_log_axis_that_says_so(monkeypatch):
    seen = _capture_figures(monkeypatch)
    narrow = np.array([[0, 1], [1, 2]], np.int64)                 # counts within a decade
    wide = np.zeros((64, 64), np.int64)
    wide[0, 0] = 5                                                  # 4095 zeros and one 5
    histogram_png("narrow", narrow)
    histogram_png("wide", wide)
    histogram_png("weighted", narrow, weights=np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert [s for s, *_ in seen] == ["log", "log", "log"]
    assert all(label.endswith("(log scale)") for _, label, *_ in seen)
    assert seen[2][1].startswith("probability")


def test_pareto_labels_of_right_hand_points_open_to_the_left(monkeypatch):
    from multiplier_lib.plots import pareto_png

    seen = _capture_figures(monkeypatch)
    estimated = [("exact", 0.0, 0.39), ("mid", 0.5, 0.3), ("far", 1.4, 0.31)]
    pareto_png(estimated, [], [0, 1])
    ha = dict(seen[0][3])
    assert ha == {"exact": "left", "mid": "left", "far": "right"}
    # MAE% spanning decades: a symlog axis, and the label says so
    pareto_png([("a", 0.001, 1.0), ("b", 5.0, 0.5), ("c", 0.0, 1.1)], [], [])
    assert seen[1][2] == "MAE % (symmetric log scale)"
    assert dict(seen[1][3])["b"] == "right" and dict(seen[1][3])["c"] == "left"
