"""Atomic writes never replace what is not a regular file (a link, pipe, socket, folder or
device at the destination is refused before anything is written), and still replace a
regular file."""

from __future__ import annotations

import os
import socket

import pytest

from core.atomic import atomic_write_bytes, atomic_write_text
from core.errors import HwcostError


def _link(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep")
    link = tmp_path / "out.npy"
    link.symlink_to(target)
    return link, lambda: target.read_text() == "keep" and link.is_symlink()


def _dangling(tmp_path):
    link = tmp_path / "out.npy"
    link.symlink_to(tmp_path / "nowhere")
    return link, lambda: link.is_symlink() and not (tmp_path / "nowhere").exists()


def _fifo(tmp_path):
    fifo = tmp_path / "out.npy"
    os.mkfifo(fifo)
    return fifo, lambda: fifo.is_fifo()


def _socket(tmp_path):
    path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()
    return path, lambda: path.is_socket()


def _folder(tmp_path):
    folder = tmp_path / "out.npy"
    folder.mkdir()
    (folder / "inside").write_text("keep")
    return folder, lambda: (folder / "inside").read_text() == "keep"


@pytest.mark.parametrize("make,kind", [(_link, "a link"), (_dangling, "a link"),
                                       (_fifo, "a pipe"), (_socket, "a socket"),
                                       (_folder, "a folder")])
@pytest.mark.parametrize("write", [atomic_write_bytes, lambda p, d: atomic_write_text(p, "x")])
def test_a_special_destination_is_refused_and_left_alone(tmp_path, make, kind, write):
    path, untouched = make(tmp_path)
    with pytest.raises(HwcostError, match=f"is {kind}, not a regular file; it is not replaced"):
        write(path, b"data")
    assert untouched()
    # and no temporary file is left beside it
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_device_is_refused(tmp_path):
    with pytest.raises(HwcostError, match="is a device"):
        atomic_write_bytes("/dev/null", b"data")
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_a_regular_file_is_replaced_and_a_new_one_created(tmp_path):
    old = tmp_path / "a.txt"
    old.write_text("old")
    atomic_write_text(old, "new")
    atomic_write_text(tmp_path / "sub" / "b.txt", "fresh")
    assert old.read_text() == "new" and (tmp_path / "sub" / "b.txt").read_text() == "fresh"
