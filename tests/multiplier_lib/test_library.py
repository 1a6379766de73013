"""The on-disk library: round trips, --force, corruption, atomicity, name resolution."""

from __future__ import annotations

import numpy as np
import pytest

from multiplier_lib import Builder, HwcostError, Multiplier, UnknownMultiplier, exact_lut
from multiplier_lib.library import Library, default_library_dir, resolve


def _netlist_multiplier(name: str = "and_mul") -> Multiplier:
    bd = Builder(2, 2)
    cols: list[list[int]] = [[] for _ in range(4)]
    for i, a in enumerate(bd.a):
        for j, b in enumerate(bd.b):
            cols[i + j].append(bd.and_(a, b))
    nl = bd.finish(bd.reduce_columns(cols, 4))
    return Multiplier.from_netlist(name, nl, signed=False, published={"power_mw": 0.01},
                                   source="generated:test", description="2x2 exact")


def test_default_dir_follows_hwcost_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HWCOST_HOME", str(tmp_path))
    assert default_library_dir() == tmp_path / "multipliers"
    assert Library().root == tmp_path / "multipliers"


def test_save_load_round_trip_keeps_everything(tmp_path):
    lib = Library(tmp_path / "lib")
    m = _netlist_multiplier()
    lib.save(m)
    back = lib.load("and_mul")
    assert np.array_equal(back.lut, exact_lut(2, 2, False))
    assert back.published == {"power_mw": 0.01}
    assert back.description == "2x2 exact" and back.source == "generated:test"
    assert back.netlist is not None
    assert back.netlist.gate_counts() == m.netlist.gate_counts()
    assert np.array_equal(back.netlist.truth_table(), m.netlist.truth_table())
    assert lib.names() == ["and_mul"]


def test_signed_lut_only_round_trip(tmp_path):
    lib = Library(tmp_path)
    lut = exact_lut(8, 4, True)
    lut[0, 0] = 5
    lib.save(Multiplier("s84", 8, 4, True, lut))
    back = lib.load("s84")
    assert back.signed and back.netlist is None and back.lut[0, 0] == 5
    assert np.array_equal(back.lut, lut)


def test_existing_name_needs_force_and_is_left_untouched(tmp_path):
    lib = Library(tmp_path)
    lib.save(Multiplier("m", 2, 2, False, exact_lut(2, 2, False)))
    other = exact_lut(2, 2, False) + 1
    with pytest.raises(HwcostError, match="--force"):
        lib.save(Multiplier("m", 2, 2, False, other))
    assert np.array_equal(lib.load("m").lut, exact_lut(2, 2, False))
    lib.save(Multiplier("m", 2, 2, False, other), force=True)
    assert np.array_equal(lib.load("m").lut, other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temp files left


def test_invalid_name_refused(tmp_path):
    with pytest.raises(HwcostError, match="invalid multiplier name"):
        Library(tmp_path).save(Multiplier("../evil", 2, 2, False, exact_lut(2, 2, False)))


def test_corrupted_entry_is_reported_not_loaded(tmp_path):
    lib = Library(tmp_path)
    (tmp_path / "broken.npz").write_bytes(b"not a zip file")
    with pytest.raises(HwcostError, match="corrupted") as info:
        lib.load("broken")
    assert "broken.npz" in str(info.value)


def test_remove(tmp_path):
    lib = Library(tmp_path)
    lib.save(Multiplier("m", 2, 2, False, exact_lut(2, 2, False)))
    lib.remove("m")
    assert "m" not in lib
    with pytest.raises(UnknownMultiplier):
        lib.remove("m")


def test_resolve_prefers_library_then_builtin_and_suggests(tmp_path):
    lib = Library(tmp_path)
    lut = exact_lut(8, 8, False)
    lut[1, 1] = 7
    lib.save(Multiplier("exact8u", 8, 8, False, lut))  # a library entry shadows the family
    assert resolve("exact8u", lib).lut[1, 1] == 7
    assert resolve("trunc8u_k4", lib).netlist is not None
    lib.save(Multiplier("mul8u_NGR", 2, 2, False, exact_lut(2, 2, False)))
    with pytest.raises(UnknownMultiplier, match="did you mean mul8u_NGR"):
        resolve("mul8u_NGRR", lib)


def test_resolve_path_imports_file(tmp_path):
    path = tmp_path / "table.npy"
    np.save(path, exact_lut(4, 4, False).astype(np.int32))
    m = resolve(str(path), Library(tmp_path / "lib"))
    assert m.a_bits == 4 and np.array_equal(m.lut, exact_lut(4, 4, False))


def test_saved_files_get_normal_permissions(tmp_path):
    import os

    lib = Library(tmp_path)
    path = lib.save(Multiplier("m", 2, 2, False, exact_lut(2, 2, False)))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
