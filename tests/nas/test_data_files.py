"""The user's own data: ImageFolder trees, .npz arrays, SVHN .mat files, each generated here."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from core.errors import HwcostError
from hwcost.cli import cli
from hwcost.options import DATASETS as CLI_DATASETS
from nas.data import DATASETS, make_loaders
from nas.data_files import channel_stats, load_folder, load_npz, load_svhn

GENO = "examples/small_genotype.json"


def _arrays(n_train=24, n_test=8, size=12, classes=3, layout="nhwc", seed=0):
    rng = np.random.default_rng(seed)
    shape = {"nhwc": (size, size, 3), "nchw": (3, size, size), "gray": (size, size)}[layout]
    return {"x_train": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
            "y_train": np.arange(n_train) % classes,
            "x_test": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
            "y_test": np.arange(n_test) % classes}


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "gray"])
def test_npz_layouts_load_as_rgb_nchw_with_training_statistics(tmp_path, layout):
    arrays = _arrays(layout=layout)
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    ds = load_npz(path)
    assert ds.train.images.shape == (24, 3, 12, 12) and ds.classes == 3
    x = arrays["x_train"]
    first = {"nhwc": lambda: x[0, :, :, 0], "nchw": lambda: x[0, 0], "gray": lambda: x[0]}[layout]()
    assert torch.equal(ds.train.images[0, 0], torch.from_numpy(first))
    if layout == "gray":
        assert torch.equal(ds.train.images[:, 0], ds.train.images[:, 2])
    train, test = make_loaders("npz", path, 8, search=False)
    mean, std = channel_stats(ds.train.images)
    assert train.mean == mean and train.std == std and train.num_classes == 3
    expected_mean = (x.astype(np.float64) / 255).mean()
    assert np.mean(mean) == pytest.approx(expected_mean)
    assert test.num_samples == 8
    small, _ = make_loaders("npz", path, 8, search=False, input_size=8)
    assert small.images.shape[-2:] == (8, 8)


@pytest.mark.parametrize(("change", "message"), [
    (lambda a: a.pop("y_test"), "missing array(s) y_test"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "x_train must be uint8"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "one label per image"),
    (lambda a: a.update(y_train=np.where(a["y_train"] == 1, 0, a["y_train"])),
     "class 1 has no training image"),
    (lambda a: a.update(x_test=a["x_test"][:, :6]), "differ in shape"),
    (lambda a: a.update(x_train=np.zeros((4, 5, 6, 7, 3), np.uint8)), "has shape"),
])
def test_npz_mistakes_name_the_file(tmp_path, change, message):
    arrays = _arrays()
    change(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(HwcostError, match=re.escape(message)) as err:
        load_npz(path)
    assert str(path) in str(err.value)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(HwcostError, match=r"not a readable \.npz") as err:
        load_npz(junk)
    assert str(junk) in str(err.value)


def _image_tree(root, sizes=((20, 14), (9, 9)), classes=("cat", "dog")):
    rng = np.random.default_rng(1)
    for part, n in (("train", 3), ("test", 2)):
        for c in classes:
            d = root / part / c
            d.mkdir(parents=True)
            for i in range(n):
                w, h = sizes[i % len(sizes)]
                arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.{'png' if i % 2 else 'jpg'}")


def test_image_folder_resizes_mixed_sizes_and_labels_by_sorted_class(tmp_path):
    _image_tree(tmp_path)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("ignored")
    ds = load_folder(tmp_path, size=16)
    assert ds.class_names == ["cat", "dog"] and ds.classes == 2
    assert ds.train.images.shape == (6, 3, 16, 16) and ds.test.images.shape == (4, 3, 16, 16)
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    one = np.asarray(Image.open(tmp_path / "train" / "cat" / "1.png").convert("RGB")
                     .resize((16, 16), Image.Resampling.BILINEAR))
    assert torch.equal(ds.train.images[1], torch.from_numpy(one.transpose(2, 0, 1).copy()))
    train, test = make_loaders("folder", tmp_path, 4, search=False)
    assert train.images.shape[-1] == 32 and test.num_classes == 2


def test_image_folder_mistakes_name_the_file(tmp_path):
    _image_tree(tmp_path)
    (tmp_path / "train" / "bird").mkdir()
    with pytest.raises(HwcostError, match="empty class") as err:
        load_folder(tmp_path)
    assert str(tmp_path / "train" / "bird") in str(err.value)
    (tmp_path / "train" / "bird").rmdir()
    bad = tmp_path / "train" / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG but not really")
    with pytest.raises(HwcostError, match="cannot decode image") as err:
        load_folder(tmp_path)
    assert str(bad) in str(err.value)
    bad.unlink()
    (tmp_path / "test" / "fox").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "test" / "fox" / "a.png")
    with pytest.raises(HwcostError, match="'fox' is not among the training classes"):
        load_folder(tmp_path)
    with pytest.raises(HwcostError, match="missing the train/ folder"):
        load_folder(tmp_path / "test")


def test_svhn_mat_files_map_label_10_to_0(tmp_path):
    savemat = pytest.importorskip("scipy.io").savemat
    rng = np.random.default_rng(2)
    for part, n in (("train", 10), ("test", 4)):
        savemat(tmp_path / f"{part}_32x32.mat",
                {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                 "y": (np.arange(n) % 10 + 1).reshape(-1, 1)})
    ds = load_svhn(tmp_path)
    assert ds.train.images.shape == (10, 3, 32, 32)
    assert ds.train.labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    with pytest.raises(HwcostError, match="missing SVHN train split"):
        load_svhn(tmp_path / "nowhere")


def test_cli_trains_on_an_npz_file_and_reports_a_bad_one_in_one_line(tmp_path):
    assert tuple(CLI_DATASETS) == tuple(DATASETS)
    path = tmp_path / "d.npz"
    np.savez(path, **_arrays(n_train=32, n_test=8, size=16, classes=4))
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["train", GENO, "--dataset", "npz", "--data-dir", str(path),
                                   "--epochs", "1", "--layers", "3", "--channels", "4",
                                   "--batch-size", "8", "--max-steps", "2", "--backend", "cpu",
                                   "--arch", "edge", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert 0.0 <= json.loads((out / "result.json").read_text())["test_acc"] <= 1.0
    res = CliRunner().invoke(cli, ["train", GENO, "--dataset", "npz", "--data-dir",
                                   str(tmp_path / "missing.npz"), "--out", str(out / "x"),
                                   "--threads", "1"])   # no busy-machine warning line
    assert res.exit_code == 1 and "missing.npz" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
