"""--dataset digits: scikit-learn's real scans read from its own file, without importing it;
a file in the same format made here checks the reader's arithmetic and its errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import HwcostError
from nas import digits


def write_digits(path: Path, rows: list[list[int]], compress: bool = True) -> Path:
    text = "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
    path.write_bytes(gzip.compress(text.encode()) if compress else text.encode())
    return path


def made_rows(n: int = 40, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(v) for v in rng.integers(0, 17, 64)] + [i % 10] for i in range(n)]


@pytest.mark.parametrize("compress", [True, False])
def test_reader_keeps_pixels_labels_and_order(tmp_path, compress):
    rows = made_rows()
    images, labels = digits.read_digits(write_digits(tmp_path / "d.csv.gz", rows, compress))
    assert images.shape == (40, 8, 8) and images.dtype == np.uint8
    assert images[3].reshape(-1).tolist() == rows[3][:64] and labels.tolist() == [
        r[64] for r in rows]


def test_dataset_scales_replicates_upsamples_and_splits_without_overlap(tmp_path):
    rows = made_rows(50)
    data = digits.load_digits(12, write_digits(tmp_path / "d.csv.gz", rows))
    assert data.train.images.shape[1:] == (3, 12, 12) and data.train.images.dtype == torch.uint8
    assert len(data.test.labels) == 10 and len(data.train.labels) == 40
    assert torch.equal(data.train.images[:, 0], data.train.images[:, 2])   # grey in RGB
    same = digits.load_digits(8, write_digits(tmp_path / "e.csv.gz", rows))
    # at 8x8 nothing is resampled: pixel p becomes p*255//16, and the split is fixed
    every = torch.cat([same.train.images, same.test.images])[:, 0].reshape(50, 64)
    want = {tuple(v * 255 // 16 for v in r[:64]) for r in rows}
    assert {tuple(v.tolist()) for v in every} == want
    again = digits.load_digits(8, tmp_path / "e.csv.gz")
    assert torch.equal(again.test.labels, same.test.labels)


@pytest.mark.parametrize("line, match", [
    ("1,2,3", "expected 64 pixels and a label, got 3 values"),
    (",".join(["0"] * 64 + ["x"]), "values must be integers"),
    (",".join(["17"] + ["0"] * 63 + ["1"]), "pixels must lie in 0..16"),
    (",".join(["0"] * 64 + ["10"]), "label 10 is not a digit"),
])
def test_malformed_lines_name_the_file_and_line(tmp_path, line, match):
    good = made_rows(30)
    path = tmp_path / "bad.csv"
    text = "\n".join(",".join(map(str, r)) for r in good[:5]) + "\n" + line + "\n"
    path.write_text(text)
    with pytest.raises(HwcostError, match=f"bad.csv:6: {match}"):
        digits.read_digits(path)
    (tmp_path / "few.csv").write_text("\n".join(",".join(map(str, r)) for r in good[:5]))
    with pytest.raises(HwcostError, match="too few"):
        digits.read_digits(tmp_path / "few.csv")
    (tmp_path / "junk.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(HwcostError, match="cannot read the digits file"):
        digits.read_digits(tmp_path / "junk.gz")


def test_missing_scikit_learn_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sklearn" else real(name, *a))
    with pytest.raises(HwcostError, match="pip install scikit-learn"):
        digits.bundled_path()


def test_the_real_scans_load_and_train_a_step():
    pytest.importorskip("sklearn")
    from nas.data import make_loaders

    data = digits.load_digits()
    assert len(data.train.labels) + len(data.test.labels) == 1797
    assert sorted(set(data.test.labels.tolist())) == list(range(10))
    assert data.train.images.shape[1:] == (3, 16, 16)
    train, test = make_loaders("digits", "unused", 32, search=False)
    x, y = next(iter(train))
    assert x.shape == (32, 3, 16, 16) and train.num_classes == 10 and y.max() < 10
    assert test.num_samples == len(data.test.labels)
    assert abs(float(x.mean())) < 1.0        # normalised with the training statistics
