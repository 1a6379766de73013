"""The cpu backend's kernel cache (issue 20): keyed by everything the build depends on, built
under a lock, published whole, loaded without recompiling.

Most tests drive :mod:`kernel_cache` with a fake build (a few bytes written to a file) and a
fake load, so they need no compiler.  One test builds the real kernel, in subprocesses that
share a fresh cache: two environments (told apart by the torch installation the key sees)
started together, one of them twice, on a cache where the other one's folder was left half
built.  Each key must compile exactly once, and every process must get a working kernel.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from core.errors import HwcostError
from multiplier_lib.emulate.backends import cpu, kernel_cache

NAME = "hwcost_lut_0123456789abcdef"
KEY = "0123456789abcdef"
INPUTS = {"sources": {"k.cpp": "abc"}}
PAYLOAD = b"FAKE LIBRARY, COMPLETE\n"


class FakeToolchain:
    """A build that writes a small 'library' slowly, and a load that refuses anything but a
    complete one (a reader that got a half-written file fails the test)."""

    def __init__(self, root: Path, delay_s: float = 0.0) -> None:
        self.root, self.delay_s = root, delay_s
        self.builds: list[Path] = []
        self.loads: list[Path] = []
        self.bad: set[Path] = set()         # paths whose load raises OSError (damaged file)
        self.replacing = False              # a complete build is being replaced
        self._mutex = threading.Lock()

    def build(self, folder: Path) -> str:
        with self._mutex:
            self.builds.append(folder)
        assert folder.parent == self.root and folder.name.startswith(f".{NAME}.tmp-")
        lib = folder / "fake.so"
        lib.write_bytes(PAYLOAD[:5])        # half written ...
        time.sleep(self.delay_s)
        # ... and the keyed folder is not complete yet (unless an old build is replaced)
        if not self.replacing:
            assert kernel_cache.complete_library(self.root / NAME, KEY) is None
        lib.write_bytes(PAYLOAD)
        self.load(lib)                      # the real build loads what it built
        return lib.name

    def load(self, path: Path) -> None:
        if path in self.bad:
            raise OSError(f"{path}: invalid ELF header")
        assert path.read_bytes() == PAYLOAD, f"loaded an incomplete library {path}"
        with self._mutex:
            self.loads.append(path)

    def obtain(self, key: str = KEY) -> kernel_cache.Obtained:
        return kernel_cache.obtain(self.root, NAME, key, INPUTS, self.build, self.load)


def test_a_complete_build_is_loaded_without_building_or_locking(tmp_path):
    fake = FakeToolchain(tmp_path)
    first = fake.obtain()
    assert first == (tmp_path / NAME / "fake.so", True)
    assert len(fake.builds) == 1
    (tmp_path / f"{NAME}.lock").unlink()
    second = fake.obtain()
    assert second == (tmp_path / NAME / "fake.so", False)
    assert len(fake.builds) == 1 and fake.loads[-1] == tmp_path / NAME / "fake.so"
    # the fast path needs no lock (a read-only cache holding the build works)
    assert not (tmp_path / f"{NAME}.lock").exists()
    marker = json.loads((tmp_path / NAME / kernel_cache.MARKER).read_text())
    assert marker["key"] == KEY and marker["library"] == "fake.so"
    assert marker["inputs"] == INPUTS
    # nothing but the keyed folder is left behind (no temporary folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]
    # published with the umask's permissions, like any folder (a shared cache stays usable)
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / NAME).stat().st_mode & 0o777 == 0o777 & ~umask


def test_concurrent_loaders_build_once_and_all_load_the_complete_build(tmp_path):
    fake = FakeToolchain(tmp_path, delay_s=0.4)
    results: list[kernel_cache.Obtained] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(fake.obtain())
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(fake.builds) == 1
    assert sorted(r.built for r in results) == [False, False, False, True]
    assert {r.library for r in results} == {tmp_path / NAME / "fake.so"}
    # three waiters loaded the published build; the builder loaded its own copy
    assert fake.loads.count(tmp_path / NAME / "fake.so") == 3


def _plant(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


@pytest.mark.parametrize("leftover", [
    # an interrupted build: build.ninja and objects, a truncated library, no marker
    {"build.ninja": b"rule cxx\n", "lut_kernels.o": b"\x7fELF", "fake.so": PAYLOAD[:5]},
    # a marker whose library is missing
    {kernel_cache.MARKER: json.dumps({"key": KEY, "library": "fake.so"}).encode()},
    # a marker of another key (hand-copied folder)
    {kernel_cache.MARKER: json.dumps({"key": "feedfacefeedface", "library": "fake.so"}).encode(),
     "fake.so": PAYLOAD},
    # a marker naming a file outside the folder
    {kernel_cache.MARKER: json.dumps({"key": KEY, "library": "../x.so"}).encode()},
], ids=["no-marker", "no-library", "other-key", "escaping-name"])
def test_a_partial_folder_is_rebuilt_not_loaded(tmp_path, leftover):
    _plant(tmp_path / NAME, leftover)
    (tmp_path / "x.so").write_bytes(PAYLOAD)
    fake = FakeToolchain(tmp_path)
    got = fake.obtain()
    assert got.built and len(fake.builds) == 1
    assert kernel_cache.complete_library(tmp_path / NAME, KEY) == tmp_path / NAME / "fake.so"
    assert (tmp_path / NAME / "fake.so").read_bytes() == PAYLOAD
    assert not (tmp_path / NAME / "build.ninja").exists()       # replaced whole
    assert tmp_path / "x.so" not in fake.loads
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME, f"{NAME}.lock", "x.so"]


def test_leftover_temporary_folders_are_never_loaded_and_are_cleared(tmp_path):
    dead = tmp_path / f".{NAME}.tmp-deadbeef"
    _plant(dead, {"fake.so": PAYLOAD,
                  kernel_cache.MARKER: json.dumps({"key": KEY, "library": "fake.so"}).encode()})
    aside = tmp_path / f".{NAME}.stale-deadbeef"
    _plant(aside, {"fake.so": PAYLOAD[:3]})
    other = tmp_path / ".hwcost_lut_ffffffffffffffff.tmp-alive"   # another key's live build
    _plant(other, {"fake.so": PAYLOAD[:3]})
    fake = FakeToolchain(tmp_path)
    assert fake.obtain().built
    assert dead / "fake.so" not in fake.loads
    assert not dead.exists() and not aside.exists()
    assert other.exists()              # not ours to clear: its builder holds another lock


def test_a_failed_build_publishes_nothing_and_the_next_one_builds(tmp_path):
    fake = FakeToolchain(tmp_path)

    def broken(folder: Path) -> str:
        (folder / "fake.so").write_bytes(PAYLOAD[:5])
        raise HwcostError("building the cpu emulation kernel failed: simulated")

    with pytest.raises(HwcostError, match="simulated"):
        kernel_cache.obtain(tmp_path, NAME, KEY, INPUTS, broken, fake.load)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{NAME}.lock"]
    assert fake.obtain().built and len(fake.builds) == 1


def test_a_damaged_complete_build_is_replaced_once(tmp_path):
    fake = FakeToolchain(tmp_path)
    fake.obtain()
    lib = tmp_path / NAME / "fake.so"
    old_id = json.loads((tmp_path / NAME / kernel_cache.MARKER).read_text())["build_id"]
    fake.bad.add(lib)
    fake.replacing = True
    assert fake.obtain().built and len(fake.builds) == 2
    new_id = json.loads((tmp_path / NAME / kernel_cache.MARKER).read_text())["build_id"]
    assert new_id != old_id
    fake.bad.clear()
    assert not fake.obtain().built and len(fake.builds) == 2


def test_an_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    fake = FakeToolchain(blocker / "cache")
    with pytest.raises(HwcostError, match="set HWCOST_CACHE to a writable folder"):
        fake.obtain()
    # the same through the backend, with HWCOST_CACHE (fails before any compiling)
    monkeypatch.setenv("HWCOST_CACHE", str(blocker))
    with pytest.raises(HwcostError, match=r"cannot create the kernel build folder .*a-file"):
        cpu._compile()


def test_the_key_covers_every_input_of_the_build(monkeypatch, tmp_path):
    base = cpu._build_inputs()
    key = cpu._build_key(base)
    assert cpu._build_key(cpu._build_inputs()) == key             # stable
    assert cpu._build_key(dict(reversed(list(base.items())))) == key

    def changed(fn_name: str, field: str, value: object) -> str:
        real = getattr(cpu, fn_name)
        with monkeypatch.context() as m:
            m.setattr(cpu, fn_name, lambda *a: {**real(*a), field: value})
            return cpu._build_key()

    keys = {
        "torch path": changed("_torch_installation", "path", "/other/venv/torch"),
        "torch build": changed("_torch_installation", "git_version", "0" * 40),
        "torch includes": changed("_torch_installation", "include_paths", ["/x/include"]),
        "compiler": changed("_compiler_identity", "version", "g++ (GCC) 14.1.0"),
        "compiler path": changed("_compiler_identity", "path", "/opt/gcc/bin/g++"),
        "python abi": changed("_python_abi", "cache_tag", "cpython-312"),
        "platform": changed("_platform", "machine", "aarch64"),
    }
    with monkeypatch.context() as m:
        m.setattr(cpu, "_cflags", lambda: ["-O2"])
        keys["flags"] = cpu._build_key()
    with monkeypatch.context() as m:
        m.setenv("CPLUS_INCLUDE_PATH", "/opt/include")
        keys["compiler env"] = cpu._build_key()
    csrc = tmp_path / "csrc"
    shutil.copytree(cpu._CSRC, csrc)
    with (csrc / cpu._SOURCES[0]).open("a") as f:
        f.write("\n// edited\n")
    with monkeypatch.context() as m:
        m.setattr(cpu, "_CSRC", csrc)
        keys["source"] = cpu._build_key()
    assert key not in keys.values(), keys
    assert len(set(keys.values())) == len(keys), keys


def test_two_environments_get_their_own_folders_and_never_rebuild_each_other(
        tmp_path, monkeypatch):
    """Two virtual environments with the same torch version, torch installed in two places,
    one cache: the backend's own path, with the compile step faked."""
    import torch
    from torch.utils import cpp_extension

    if shutil.which(cpu._cxx_command()[0]) is None:
        pytest.skip("no C++ compiler: the key asks the compiler for its version")
    built: list[str] = []
    loaded: list[Path] = []

    def fake_build(name, sources, extra_cflags, extra_ldflags, build_directory,
                   is_python_module, verbose):
        assert f"-DHWCOST_NS={name}" in extra_cflags and not is_python_module
        lib = Path(build_directory) / f"{name}.so"
        lib.write_bytes(PAYLOAD)
        built.append(name)
        return str(lib)

    monkeypatch.setattr(cpp_extension, "load", fake_build)
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    monkeypatch.setattr(torch.ops, "load_library", lambda path: loaded.append(Path(path)))
    monkeypatch.setenv("HWCOST_CACHE", str(tmp_path))
    real = cpu._torch_installation

    def in_env(env: str) -> str:
        monkeypatch.setattr(cpu, "_torch_installation",
                            lambda: {**real(), "path": f"/venvs/{env}/site-packages/torch"})
        return cpu._kernel_namespace()

    a, b = in_env("a"), in_env("b")
    assert a != b and built == [a, b]
    assert in_env("a") == a and in_env("b") == b and in_env("a") == a
    assert built == [a, b]                                  # nobody rebuilt anything
    root = tmp_path / "torch_extensions"
    assert loaded[-3:] == [root / a / f"{a}.so", root / b / f"{b}.so", root / a / f"{a}.so"]
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([a, b])


# --- the real kernel, in processes sharing one fresh cache -------------------------------

_PROBE = textwrap.dedent("""
    import json
    import torch
    from multiplier_lib.emulate.backends import cpu, kernel_cache
    from multiplier_lib.emulate.backends import reference as ref

    seen = []
    real_obtain = kernel_cache.obtain
    def spy(*args, **kwargs):
        seen.append(real_obtain(*args, **kwargs))
        return seen[-1]
    kernel_cache.obtain = spy
    cpu.build()
    g = torch.Generator().manual_seed(1)
    lut = torch.randint(-30000, 30000, (256, 256), dtype=torch.int32, generator=g)
    x = torch.randint(0, 256, (5, 40), dtype=torch.uint8, generator=g)
    w = torch.randint(0, 256, (7, 40), dtype=torch.uint8, generator=g)
    xc = torch.randint(0, 256, (2, 4, 6, 6), dtype=torch.uint8, generator=g)
    wc = torch.randint(0, 256, (3, 4, 3, 3), dtype=torch.uint8, generator=g)
    exact = (torch.equal(cpu.linear_lut(x, w, lut), ref.linear_lut(x, w, lut))
             and torch.equal(cpu.conv2d_lut(xc, wc, lut), ref.conv2d_lut(xc, wc, lut)))
    print(json.dumps({"library": str(seen[0].library), "built": seen[0].built,
                      "exact": exact}))
""")


def _run_together(count: int, env: dict[str, str], cwd: Path) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", _PROBE], env=env, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(count)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=400)
        assert p.returncode == 0, stderr[-3000:]
        out.append({**json.loads(stdout.strip().splitlines()[-1]),
                    "announced": "building the native cpu kernel" in stderr})
    return out


def _compiles(counter: Path) -> list[str]:
    return counter.read_text().split() if counter.exists() else []


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as the compiler")
def test_concurrent_processes_compile_the_real_kernel_once_and_both_load_it(
        tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    real_cxx = cpu._cxx_command()
    if shutil.which(real_cxx[0]) is None or not cpp_extension.is_ninja_available():
        pytest.skip("no C++ compiler or ninja: the real kernel cannot be built here")
    # the compiler, wrapped to log the kernel namespace of every compile (not link) step
    counter = tmp_path / "compiles.log"
    wrapper = tmp_path / "cxx"
    wrapper.write_text(
        "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in -DHWCOST_NS=*) "
        f"echo \"${{a#-DHWCOST_NS=}}\" >> {shlex.quote(str(counter))};; esac; done\n"
        f"exec {shlex.join(real_cxx)} \"$@\"\n")
    wrapper.chmod(0o755)
    cache = tmp_path / "cache"
    env = {**os.environ, "HWCOST_CACHE": str(cache), "CXX": str(wrapper),
           "TORCH_NO_COMPILER_WRAPPER": "1", "OMP_NUM_THREADS": "1"}
    root = cache / "torch_extensions"
    monkeypatch.setenv("CXX", str(wrapper))
    name = f"hwcost_lut_{cpu._build_key()}"                # what the processes will compute
    monkeypatch.undo()
    # the folder was left half built by a build that died, with its temporary folder
    _plant(root / name, {"build.ninja": b"", f"{name}.so": b"\x7fELF trunc"})
    _plant(root / f".{name}.tmp-dead", {f"{name}.so": b"\x7fELF trunc"})
    cwd = Path(__file__).resolve().parents[3]

    t0 = time.perf_counter()
    first = _run_together(2, env, cwd)
    build_s = time.perf_counter() - t0
    assert all(r["exact"] for r in first), first
    assert _compiles(counter) == [name]
    assert sorted(r["built"] for r in first) == [False, True]   # one built, one waited
    assert all(r["announced"] == r["built"] for r in first)    # the builder said so, once
    assert {r["library"] for r in first} == {str(root / name / f"{name}.so")}
    build_id = json.loads((root / name / kernel_cache.MARKER).read_text())["build_id"]
    assert sorted(p.name for p in root.iterdir()) == [name, f"{name}.lock"]

    # a later process loads the cached build: no compile, the folder untouched
    t0 = time.perf_counter()
    (again,) = _run_together(1, env, cwd)
    load_s = time.perf_counter() - t0
    assert again["exact"] and not again["built"], again
    assert not again["announced"]
    assert _compiles(counter) == [name]
    assert json.loads((root / name / kernel_cache.MARKER).read_text())["build_id"] == build_id
    print(f"real kernel: two processes, one build {build_s:.1f} s; cached load {load_s:.1f} s")
