"""Reading Accelergy energy reference tables (``ERT.yaml``).

An ERT is what Accelergy computed for every component of a design: per component (full
hierarchical name, e.g. ``system.eyeriss.PE[0..167].weights_spad``) and per action, pJ per
action.  Users who already ran Accelergy (with CACTI, Aladdin or their own plug-ins) want
those numbers, not ours; :func:`hwmodel.energy.build_energy_table` therefore takes an ERT's
figure for every component it names and falls back to the built-in estimators elsewhere.

Two layouts are read:

* Accelergy 0.3: ``ERT: {version, tables: [{name, actions: [{name, arguments, energy}]}]}``;
* Accelergy 0.4: ``ERT: {tables: {NAME: {ACTION: {arguments, energy} | [{arguments,
  energy}, ...]}}}``.

An action listed several times with different ``arguments`` (``address_delta``,
``data_delta``...) is reduced to the **largest** energy, the random-data/random-address
case, because hwcost's model, like Timeloop's default, does not track data properties.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HwcostError

from .yamlio import load_yaml_text, read_text

_BRACKETS = re.compile(r"\[[^\]]*\]")


def short_name(name: str) -> str:
    """``system.PE[0..167].weights_spad`` -> ``weights_spad`` (replication stripped first,
    since ``[0..167]`` itself contains dots)."""
    return _BRACKETS.sub("", str(name)).split(".")[-1].strip()


@dataclass
class ErtTable:
    """One component of an ERT: its full name, action energies (pJ) and where it was read."""

    name: str
    actions: dict[str, float] = field(default_factory=dict)
    line: int | None = None


def _line(node: Any, key: Any = None) -> int | None:
    """1-based line of ``node`` (or of ``node[key]``) in the YAML file, when ruamel knows it."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is not None:
            return lc.value(key)[0] + 1 if isinstance(node, dict) else lc.item(key)[0] + 1
        return lc.line + 1
    except (KeyError, IndexError, TypeError, AttributeError):
        return lc.line + 1


def _energy(value: Any, where: str, path: Path, line: int | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise HwcostError(f"{where}: energy must be a number (pJ), got {value!r}",
                          file=path, line=line)
    try:       # a YAML integer has no size limit; a float does
        value = float(value)
    except OverflowError:
        raise HwcostError(f"{where}: energy is an integer of {len(str(abs(value))):,} digits, "
                          "beyond any float (pJ)", file=path, line=line) from None
    if not math.isfinite(value):
        raise HwcostError(f"{where}: energy must be a finite number (pJ), got {value!r}",
                          file=path, line=line)
    if value < 0:
        raise HwcostError(f"{where}: energy must not be negative, got {value!r}",
                          file=path, line=line)
    return float(value)


def _add_action(table: ErtTable, action: str, energy: float) -> None:
    table.actions[action] = max(energy, table.actions.get(action, energy))


def _read_entry(table: ErtTable, action: str, entry: Any, path: Path, line: int | None) -> None:
    where = f"ERT table {table.name}, action {action}"
    if not isinstance(entry, dict):
        raise HwcostError(f"{where}: expected a mapping with 'energy', got {entry!r}",
                          file=path, line=line)
    if "energy" not in entry:
        raise HwcostError(f"{where}: missing 'energy'", file=path, line=_line(entry) or line)
    _add_action(table, action, _energy(entry["energy"], where, path, _line(entry, "energy")))


def _tables_v03(tables: list, path: Path) -> list[ErtTable]:
    out: list[ErtTable] = []
    for i, t in enumerate(tables):
        line = _line(tables, i)
        if not isinstance(t, dict) or "name" not in t:
            raise HwcostError("ERT table must be a mapping with 'name' and 'actions'",
                              file=path, line=line)
        table = ErtTable(str(t["name"]), line=line)
        actions = t.get("actions")
        if not isinstance(actions, list):
            raise HwcostError(f"ERT table {table.name}: 'actions' must be a list",
                              file=path, line=_line(t, "actions") if "actions" in t else line)
        for j, a in enumerate(actions):
            a_line = _line(actions, j)
            if not isinstance(a, dict) or "name" not in a:
                raise HwcostError(f"ERT table {table.name}: every action needs a 'name'",
                                  file=path, line=a_line)
            _read_entry(table, str(a["name"]), a, path, a_line)
        out.append(table)
    return out


def _tables_v04(tables: dict, path: Path) -> list[ErtTable]:
    out: list[ErtTable] = []
    for name, actions in tables.items():
        line = _line(tables, name)
        table = ErtTable(str(name), line=line)
        if not isinstance(actions, dict):
            raise HwcostError(f"ERT table {name}: expected a mapping of actions",
                              file=path, line=line)
        for action, entries in actions.items():
            a_line = _line(actions, action)
            for k, entry in enumerate(entries if isinstance(entries, list) else [entries]):
                e_line = _line(entries, k) if isinstance(entries, list) else a_line
                _read_entry(table, str(action), entry, path, e_line)
        out.append(table)
    return out


def load_ert_tables(path: str | Path) -> list[ErtTable]:
    """Every table of the ERT at ``path``, with line numbers; errors say file and line."""
    path = Path(path)
    doc = load_yaml_text(read_text(path, "ERT"), path)
    if not isinstance(doc, dict):
        raise HwcostError("not an ERT: expected a mapping with 'ERT: {tables: ...}'",
                          file=path, line=1)
    root = doc.get("ERT", doc)
    if not isinstance(root, dict) or "tables" not in root:
        raise HwcostError("not an ERT: missing 'tables' (expected 'ERT: {version, tables: "
                          "[...]}')", file=path, line=_line(root) or 1)
    tables = root["tables"]
    if isinstance(tables, list):
        out = _tables_v03(tables, path)
    elif isinstance(tables, dict):
        out = _tables_v04(tables, path)
    else:
        raise HwcostError("ERT 'tables' must be a list (Accelergy 0.3) or a mapping (0.4)",
                          file=path, line=_line(root, "tables"))
    seen: dict[str, ErtTable] = {}
    for t in out:
        if t.name in seen:
            raise HwcostError(f"ERT table {t.name} appears twice (first at line "
                              f"{seen[t.name].line})", file=path, line=t.line)
        seen[t.name] = t
    return out


def load_ert(path: str | Path) -> dict[str, dict[str, float]]:
    """ERT at ``path`` as ``{full component name: {action: pJ}}``."""
    return {t.name: dict(t.actions) for t in load_ert_tables(path)}


def index_by_short_name(tables: list[ErtTable], path: str | Path | None = None
                        ) -> dict[str, ErtTable]:
    """Tables keyed by :func:`short_name`, the name an hwcost architecture uses.

    Two different components with the same short name (``A.mac`` and ``B.mac``) are
    ambiguous only if their energies differ; then the user must say which one is meant.
    """
    out: dict[str, ErtTable] = {}
    for t in tables:
        key = short_name(t.name)
        prev = out.get(key)
        if prev is not None and prev.actions != t.actions:
            raise HwcostError(f"ERT tables {prev.name} and {t.name} both match component "
                              f"'{key}' with different energies", file=path, line=t.line)
        out.setdefault(key, t)
    return out


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def ert_table_name(component: str, instances: int) -> str:
    """Timeloop's flattened name, e.g. ``system_top_level.shared_glb[1..1]``; :func:`short_name`
    gives the component's own name back, which is how hwcost matches it when read."""
    return f"system_top_level.{component}[1..{max(1, int(instances))}]"


def ert_document(arch: Any, table: Any) -> dict[str, Any]:
    """The Accelergy ERT (``ERT: {version: '0.4', tables: [...]}``) of an energy table.

    Why this layout: it is what Accelergy writes for Timeloop and what :func:`load_ert_tables`
    reads, so a written ERT can be given back with ``--ert`` (or to Timeloop).  Storage
    actions are per row access (the table's per-word figures times the block size), ``leak``
    per instance and cycle where the table has one.  The compute unit's ``compute`` is its
    **exact** MAC (an approximate multiplier is applied on top by hwcost when the ERT is read,
    as for any ERT); ``multiply`` and ``add`` carry its split, which hwcost uses on reading.
    """
    tables = []
    for lv in arch.levels:
        acts = table.entries[lv.name]
        actions = [{"name": a, "arguments": {}, "energy": table.per_vector(lv.name, a)}
                   for a in ("read", "write", "update") if a in acts]
        if "leak" in acts:
            actions.append({"name": "leak", "arguments": {},
                            "energy": table.leak_per_cycle(lv.name)})
        tables.append({"name": ert_table_name(lv.name, lv.instances), "actions": actions})
    cu = arch.compute
    exact = table.exact_compute or table.entries[cu.name]
    tables.append({"name": ert_table_name(cu.name, cu.instances), "actions": [
        {"name": a, "arguments": {}, "energy": exact[k].energy_pj}
        for a, k in (("compute", "mac"), ("multiply", "multiply"), ("add", "add"))]})
    return {"ERT": {"version": "0.4", "tables": tables}}


def write_ert(path: str | Path, arch: Any, table: Any, header: str = "") -> Path:
    """Write the ERT of ``table`` (an :class:`~hwmodel.energy.EnergyTable` of ``arch``) to
    ``path`` atomically; ``header`` lines become YAML comments (provenance)."""
    from io import StringIO

    from ruamel.yaml import YAML

    from core.atomic import atomic_write_text

    yaml = YAML()
    yaml.default_flow_style = False
    buf = StringIO()
    for line in header.splitlines():
        buf.write(f"# {line}\n")
    yaml.dump(ert_document(arch, table), buf)
    path = Path(path)
    try:
        atomic_write_text(path, buf.getvalue())
    except OSError as exc:
        raise HwcostError(f"cannot write the ERT: {exc.strerror or exc}", file=path) from None
    return path
