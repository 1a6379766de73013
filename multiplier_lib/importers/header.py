"""Published figures from an EvoApprox-style header comment.

EvoApprox C and Verilog files open with ``// MAE% = 0.065 %``-style lines giving the error
metrics and the PDK45 power/area/delay measured by the library authors.  We keep them as the
multiplier's ``published`` figures so that our own estimates can be compared with theirs.
Only comment text is read, so a number inside code can never be mistaken for a metric.
"""

from __future__ import annotations

import re

#: Header label -> key in :data:`multiplier_lib.multiplier.PUBLISHED_KEYS`.
_LABELS: dict[str, str] = {
    "MAE%": "mae_pct", "MAE": "mae", "WCE%": "wce_pct", "WCE": "wce", "WCRE%": "wcre_pct",
    "EP%": "ep_pct", "MRE%": "mre_pct", "MSE": "mse", "PDK45_PWR": "power_mw",
    "PDK45_AREA": "area_um2", "PDK45_DELAY": "delay_ns",
    # The older EvoApprox8b headers write relative metrics without the '%' in the label
    # ("MRE = 0.79 %", "WCRE = 200 %", "EP = 79.7 %").
    "MRE": "mre_pct", "WCRE": "wcre_pct", "EP": "ep_pct",
    # ... and PDK45 figures as "Area   (45) = 662.0", "Power  (45) = 0.4287" (no units:
    # um^2, mW and ns by the values' range and the newer headers' units).
    "AREA (45)": "area_um2", "POWER (45)": "power_mw", "DELAY (45)": "delay_ns",
}

#: Unit written after the number -> factor to the unit our key is in (mW, um2, ns).
_UNITS: dict[str, dict[str, float]] = {
    "power_mw": {"w": 1e3, "mw": 1.0, "uw": 1e-3, "nw": 1e-6},
    "delay_ns": {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3},
    "area_um2": {"um2": 1.0, "um^2": 1.0, "mm2": 1e6, "mm^2": 1e6},
}

_BY_COMPACT_LABEL = {re.sub(r"\s+", "", k): v for k, v in _LABELS.items()}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf|nan"
_LINE = re.compile(
    r"^[\s*]*(" + "|".join(re.escape(k).replace(r"\ ", r"\s*")
                           for k in sorted(_LABELS, key=len, reverse=True))
    + r")\s*=\s*(" + _NUMBER + r")\s*([A-Za-z%^0-9]*)", re.IGNORECASE)


def comment_lines(text: str) -> list[str]:
    """Every line of comment text in ``text`` (``//`` comments and ``/* */`` blocks).

    A linear scan: a regex for ``/* ... */`` rescans to the end of the text from every
    unterminated ``/*``, which is quadratic on a file full of them.  An unterminated block
    runs to the end of the text, as it does for a compiler.
    """
    lines: list[str] = []
    pos = 0
    while True:
        start = text.find("/", pos)
        if start < 0 or start + 1 >= len(text):
            return lines
        kind = text[start + 1]
        if kind == "/":
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
            lines.append(text[start + 2:end])
            pos = end
        elif kind == "*":
            end = text.find("*/", start + 2)
            if end < 0:
                lines.extend(text[start + 2:].splitlines())
                return lines
            lines.extend(text[start + 2:end].splitlines())
            pos = end + 2
        else:
            pos = start + 1


def parse_published(text: str) -> dict[str, float]:
    """Published metrics found in the comments of ``text``; unknown lines are ignored.

    The first occurrence of a label wins, since EvoApprox puts the header first and later
    comments (if any) are not about this circuit's figures.
    """
    found: dict[str, float] = {}
    for line in comment_lines(text):
        m = _LINE.match(line)
        if m is None:
            continue
        key = _BY_COMPACT_LABEL[re.sub(r"\s+", "", m.group(1).upper())]
        if key in found:
            continue
        try:
            value = float(m.group(2))
        except ValueError:
            continue
        unit = m.group(3).lower()
        factors = _UNITS.get(key)
        if factors is not None and unit in factors:
            value *= factors[unit]
        found[key] = value
    return found


_SIGNEDNESS = re.compile(r"^[\s*]*Operands\s*=\s*(signed|unsigned)\b", re.IGNORECASE)


def parse_signedness(text: str) -> bool | None:
    """The ``// Operands = signed 8x8`` line our exporter writes, if present.

    It lets a multiplier whose name says nothing (``my_mult``) come back with the signedness
    it was exported with.
    """
    for line in comment_lines(text):
        m = _SIGNEDNESS.match(line)
        if m is not None:
            return m.group(1).lower() == "signed"
    return None
