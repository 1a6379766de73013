"""Per-epoch CSV logs of search and training runs, rewritten atomically after each epoch."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from core.atomic import atomic_write_text


def write_csv(path: Path, rows: list[dict], fields: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
