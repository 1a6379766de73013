"""A process killed with SIGKILL while writing checkpoints never leaves half a checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from nas import checkpoint

# Writes checkpoint i (an 8 MB array filled with i) over the same file, forever.
_WRITER = """
import sys
import numpy as np
from nas import checkpoint
path = sys.argv[1]
i = 0
while True:
    checkpoint.save(path, {"epoch": i, "weights": np.full(2_000_000, i, dtype=np.float32)})
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def test_sigkill_during_saves_leaves_a_whole_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    rng = random.Random(12)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    epochs = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(rng.uniform(0.05, 0.6))   # somewhere inside a later save
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        state = checkpoint.load(path)            # raises on a torn or truncated file
        weights = state["weights"]
        assert weights.shape == (2_000_000,)
        assert np.all(weights == state["epoch"]), "checkpoint mixes two saves"
        epochs.append(state["epoch"])
        # the only other files are the unfinished temporaries of the killed save
        others = [p.name for p in tmp_path.iterdir() if p != path]
        assert all(name.startswith(".checkpoint.pt.") and name.endswith(".tmp")
                   for name in others), others
    assert max(epochs) > 0, "the writer never got past its first save"
