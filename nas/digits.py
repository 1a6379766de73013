"""scikit-learn's handwritten digits: real scans, available offline, small enough for a CPU.

The field's experiment (an energy-aware search against FP32 and exact 8-bit baselines) needs
real data, and CIFAR-10 is both a download and hours of CPU per run.  The UCI optical digits
that ship inside the ``scikit-learn`` package (1,797 scans of handwritten digits by 43 people,
8 x 8 pixels of 0..16) are neither: no network, seconds per epoch.  The file is read directly
(``sklearn/datasets/data/digits.csv.gz``: 64 pixels then the label per line), so importing
scikit-learn itself (and SciPy behind it) is not needed; the images are scaled to 0..255,
replicated to three channels and upsampled to the network's input (16 x 16 by default).

The split is fixed (a seeded permutation, 20 % test) so every run and seed of an experiment
evaluates on the same test set; searches split the training part again, as DARTS does.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from core.errors import HwcostError

from .data_files import FileDataset, Split, resize

PIXELS = 64
LEVELS = 16            # pixel values 0..16
CLASSES = 10
DEFAULT_SIZE = 16
TEST_SHARE = 0.2
SPLIT_SEED = 1797
#: no real digits file is larger (1,797 lines of ~150 bytes, gzip ~60 kB)
MAX_BYTES = 4 << 20


def bundled_path() -> Path:
    """The digits file of the installed scikit-learn, or a clear error without it."""
    from importlib import resources
    from importlib.util import find_spec

    if find_spec("sklearn") is None:
        raise HwcostError("the digits data set ships with scikit-learn: pip install "
                          "scikit-learn (or pip install -e '.[experiment]')")
    path = Path(str(resources.files("sklearn.datasets") / "data" / "digits.csv.gz"))
    if not path.is_file():
        raise HwcostError(f"{path}: scikit-learn is installed but its digits file is missing")
    return path


def read_digits(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 8, 8) of 0..16, labels int64 (N,))`` from a digits CSV (gzip or
    plain); every malformed line is an error naming the file and the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()[:MAX_BYTES + 1]
        if len(raw) > MAX_BYTES:
            raise HwcostError(f"{path}: larger than {MAX_BYTES} bytes; not a digits file")
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("ascii")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError) as err:
        raise HwcostError(f"{path}: cannot read the digits file ({err})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != PIXELS + 1:
            raise HwcostError(f"{path}:{number}: expected {PIXELS} pixels and a label, got "
                              f"{len(fields)} values")
        try:
            values = [int(v) for v in fields]
        except ValueError:
            raise HwcostError(f"{path}:{number}: values must be integers") from None
        if not all(0 <= v <= LEVELS for v in values[:PIXELS]):
            raise HwcostError(f"{path}:{number}: pixels must lie in 0..{LEVELS}")
        if not 0 <= values[PIXELS] < CLASSES:
            raise HwcostError(f"{path}:{number}: label {values[PIXELS]} is not a digit 0..9")
        rows.append(values)
    if len(rows) < 2 * CLASSES:
        raise HwcostError(f"{path}: {len(rows)} digits; too few to split into train and test")
    arr = np.asarray(rows, dtype=np.int64)
    return arr[:, :PIXELS].reshape(-1, 8, 8).astype(np.uint8), arr[:, PIXELS]


def load_digits(size: int | None = None, path: str | Path | None = None) -> FileDataset:
    """The digits as a train/test :class:`~nas.data_files.FileDataset` of ``size`` x ``size``
    RGB images (uint8)."""
    images, labels = read_digits(bundled_path() if path is None else path)
    x = torch.from_numpy(images.astype(np.int64) * 255 // LEVELS).to(torch.uint8)
    x = resize(x.unsqueeze(1).repeat(1, 3, 1, 1), size or DEFAULT_SIZE)
    y = torch.from_numpy(labels)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_test = max(1, round(TEST_SHARE * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    return FileDataset(train=Split(x[train], y[train]), test=Split(x[test], y[test]),
                       classes=CLASSES, class_names=[str(d) for d in range(CLASSES)])
