"""TFApprox ``.bin`` and numpy ``.npy`` tables, and format/name detection in import_file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from multiplier_lib.errors import ImportFailed
from multiplier_lib.export import write_bin
from multiplier_lib.importers import import_file
from multiplier_lib.multiplier import Multiplier


def f(a: int, b: int) -> int:
    """An asymmetric 16-bit function, so swapped operands or byte order would show."""
    return (a * 251 + b * 7 + (a ^ b)) & 0xFFFF


def test_bin_layout_built_independently(tmp_path: Path) -> None:
    values = [f(code >> 8, code & 0xFF) for code in range(65536)]
    path = tmp_path / "table.bin"
    path.write_bytes(struct.pack("<65536H", *values))
    m = import_file(path)
    assert (m.name, m.a_bits, m.b_bits, m.signed) == ("table", 8, 8, False)
    for a, b in [(0, 0), (1, 0), (0, 1), (3, 200), (200, 3), (255, 255), (17, 129)]:
        assert m.lut[a, b] == f(a, b)
    assert "TFApprox" in m.description


def test_bin_signed_entries(tmp_path: Path) -> None:
    values = [f(code >> 8, code & 0xFF) for code in range(65536)]
    path = tmp_path / "mul8s_TAB.bin"
    path.write_bytes(struct.pack("<65536H", *values))
    m = import_file(path)  # signed from the name
    assert m.signed
    for a, b in [(1, 0), (255, 255), (200, 3), (17, 129)]:
        v = f(a, b)
        assert m.lut[a, b] == (v - 65536 if v >= 32768 else v)


def test_bin_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for signed, lo, hi in ((False, 0, 65536), (True, -32768, 32768)):
        lut = rng.integers(lo, hi, size=(256, 256))
        m = Multiplier("rnd", 8, 8, signed, lut)
        path = tmp_path / f"rnd_{signed}.bin"
        write_bin(m, path)
        assert path.stat().st_size == 131072
        back = import_file(path, signed=signed)
        assert np.array_equal(back.lut, lut)


def test_bin_wrong_size(tmp_path: Path) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * 1000)
    with pytest.raises(ImportFailed) as exc:
        import_file(path)
    assert "1000" in str(exc.value) and "131072" in str(exc.value) and "short.bin" in str(
        exc.value)


def test_npy_unsigned_small_table(tmp_path: Path) -> None:
    lut = np.multiply.outer(np.arange(16), np.arange(4)).astype(np.uint8)
    path = tmp_path / "m4x2.npy"
    np.save(path, lut)
    m = import_file(path)
    assert (m.a_bits, m.b_bits, m.signed) == (4, 2, False)
    assert np.array_equal(m.lut, lut)


def test_npy_negative_values_mean_signed(tmp_path: Path) -> None:
    codes = np.arange(16)
    vals = np.where(codes >= 8, codes - 16, codes)
    lut = np.multiply.outer(vals, vals).astype(np.int16)
    path = tmp_path / "s.npy"
    np.save(path, lut)
    m = import_file(path)
    assert m.signed and (m.a_bits, m.b_bits) == (4, 4)
    assert m.lut[15, 15] == 1 and m.lut[8, 1] == -8


@pytest.mark.parametrize("array, words", [
    (np.zeros((3, 256), dtype=np.int32), ["(3, 256)"]),
    (np.zeros((512, 2), dtype=np.int32), ["(512, 2)"]),
    (np.zeros((256, 256), dtype=np.float64), ["float64"]),
    (np.zeros((4, 4, 4), dtype=np.int32), ["3-D"]),
    (np.full((4, 4), 16, dtype=np.int32), ["16", "4-bit"]),
    (np.full((4, 4), -9, dtype=np.int32), ["-9"]),
])
def test_npy_rejected(tmp_path: Path, array: np.ndarray, words: list[str]) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ImportFailed) as exc:
        import_file(path)
    assert "bad.npy" in str(exc.value)
    for w in words:
        assert w in str(exc.value)


def test_npy_explicit_unsigned_with_negative_values(tmp_path: Path) -> None:
    path = tmp_path / "neg.npy"
    np.save(path, np.full((4, 4), -1, dtype=np.int8))
    with pytest.raises(ImportFailed, match="unsigned"):
        import_file(path, signed=False)


def test_npy_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.npy"
    path.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ImportFailed, match=r"junk\.npy"):
        import_file(path)


def test_missing_file_and_bad_names(tmp_path: Path) -> None:
    with pytest.raises(ImportFailed, match=r"nope\.v"):
        import_file(tmp_path / "nope.v")
    path = tmp_path / "9lives.npy"
    np.save(path, np.zeros((2, 2), dtype=np.int32))
    with pytest.raises(ImportFailed, match="not a valid multiplier name"):
        import_file(path)
    assert import_file(path, name="nine-lives").name == "nine-lives"
    with pytest.raises(ImportFailed, match="not a valid multiplier name"):
        import_file(path, name="has space")


def test_format_detected_from_content(tmp_path: Path) -> None:
    text = "module m(A, B, O); input A; input B; output [1:0] O;\n" \
           "assign O[0] = A & B; assign O[1] = 1'b0; endmodule\n"
    (tmp_path / "gates.txt").write_text(text)
    m = import_file(tmp_path / "gates.txt")
    assert m.netlist is not None and list(m.lut.ravel()) == [0, 0, 0, 1]
    lut = np.arange(4).reshape(2, 2)
    with open(tmp_path / "table.dat", "wb") as fh:
        np.save(fh, lut)
    assert np.array_equal(import_file(tmp_path / "table.dat").lut, lut)
    (tmp_path / "what.xyz").write_bytes(b"\0\1\2")
    with pytest.raises(ImportFailed, match="cannot tell the file format"):
        import_file(tmp_path / "what.xyz")
