"""The ``cpu`` backend: the reference contract, computed by a native C++ LUT kernel.

Implements :class:`.contract.EmulationBackend` with the same signatures, dtypes and bit-exact
results as :mod:`.reference`; only faster.  It also offers the fused whole-layer path
(:class:`.contract.FusedConv`: :func:`approx_conv2d`, :func:`ste_operands`) for float32 CPU
operands, which :func:`fused_conv2d` hands to the layers.  The
kernel lives in ``multiplier_lib/emulate/csrc/lut_kernels.cpp`` and is compiled on first use
with :func:`torch.utils.cpp_extension.load` (a plain ``TORCH_LIBRARY`` op library, not a
pybind module, because that compiles in seconds rather than a minute).  The build is cached
under ``$HWCOST_CACHE/torch_extensions`` (default ``~/.cache/hwcost/torch_extensions``) in a
folder keyed by a hash of everything the build depends on (:func:`_build_inputs`: sources,
flags, the torch installation, Python ABI, compiler and platform), so an edited kernel, an
upgraded torch or another virtual environment never loads a binary that is not its own, and
environments sharing the cache never rebuild each other's.  Builds are made under a lock and
published whole (:mod:`.kernel_cache`); a complete build is loaded without compiling, and
without needing ninja.  :func:`build` lets CI or an install step pay the compile cost up front.

Tables that are outer products ``u[a] * v[b]`` (exact, DRUM, perforated multipliers; see
:mod:`..factor`) skip the look-ups on wide layers: their sums are the float32 convolution of
``u[codes]`` with ``v[codes]``, exact below ``2**24`` (:func:`_float_sums` decides per call).

Accumulation is int32 (wrap-around, like the reference's final cast).  The contract only
promises exact sums while ``K * max|lut| < 2**31``; this backend checks that and raises
:class:`HwcostError` rather than return silently wrapped sums.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import torch

from core.errors import HwcostError

from ..factor import FLOAT32_EXACT, outer_factors
from . import kernel_cache
from .contract import FusedConv, NonFiniteInput

_CSRC = Path(__file__).resolve().parent.parent / "csrc"
_SOURCES = ("lut_kernels.cpp",)
_lock = threading.Lock()
_ops: SimpleNamespace | None = None
_build_error: HwcostError | None = None
# LUTs prepared for the kernel, keyed by id (checked against the tensor and its version
# counter): layers call the kernel many times with a few LUTs, and re-deriving the transpose,
# the range and the VBMI byte planes per call would be most of a small layer's cost.
_prepared: dict[int, tuple[torch.Tensor, int, Prepared]] = {}
_PREPARED_MAX = 256
# Pack modes understood by the kernel: entries fit int16 / uint16, so two output channels can
# share one 32-bit table word (see lut_kernels.cpp).
_NO_PACK, _PACK_S16, _PACK_U16 = 0, 1, 2


class Prepared(NamedTuple):
    """One LUT in the forms the kernel reads."""

    flat: torch.Tensor      # contiguous (2**a, 2**b)
    lut_t: torch.Tensor     # its transpose, contiguous: tables by weight code
    maxabs: int             # max |entry|, for the overflow check
    pack: int               # pack mode the entries allow
    planes: torch.Tensor    # (2**b, 2, 256) uint8 byte planes of lut_t - centre, or empty
    centre: int             # what the planes' int16 values are relative to
    factors: torch.Tensor   # (1, 2, 256) float32 u and v of a rank-one table, or empty
    factor_peak: int        # max|u| * max|v| (0 without factors)


def _byte_planes(lut_t: torch.Tensor, lo: int, hi: int) -> tuple[torch.Tensor, int]:
    """The VBMI path's tables: each weight code's column of ``entry - centre`` as int16,
    split into a low-byte and a high-byte plane of 256 bytes (activation codes past the
    LUT's width stay 0 and are never read).  Empty when the entries span more than 2**16
    values, as int16 cannot hold them relative to any centre."""
    if hi - lo > 0xFFFF:
        return torch.empty(0, dtype=torch.uint8), 0
    centre = lo + 0x8000
    v = lut_t.to(torch.int32) - centre                       # in [-32768, 32767]
    b, a = lut_t.shape
    planes = torch.zeros(b, 2, 256, dtype=torch.uint8)
    planes[:, 0, :a] = (v & 0xFF).to(torch.uint8)
    planes[:, 1, :a] = ((v >> 8) & 0xFF).to(torch.uint8)
    return planes, centre


def _cache_root() -> Path:
    root = os.environ.get("HWCOST_CACHE")
    if root:
        return Path(root).expanduser() / "torch_extensions"
    return Path.home() / ".cache" / "hwcost" / "torch_extensions"


def _cflags() -> list[str]:
    # ATen's parallel_for is an OpenMP pragma expanded in our own translation unit: without
    # -fopenmp it silently runs on one thread.  libgomp is the runtime torch itself loads.
    omp = ["-fopenmp"] if sys.platform.startswith("linux") else []
    # no FMA contraction: the fused layer path must round like the op-by-op torch path
    return ["-O3", "-ffp-contract=off", *omp]


def _ldflags() -> list[str]:
    return [f for f in _cflags() if f == "-fopenmp"]


def _cxx_command() -> list[str]:
    """The compiler torch's build will run (``$CXX``, default ``c++``), split into words."""
    return shlex.split(os.environ.get("CXX", "")) or ["c++"]


def _compiler_identity(cxx: list[str]) -> dict[str, object]:
    """The compiler as the key sees it: the command, the file it resolves to and what it
    says its version is (an upgraded or switched compiler gets a fresh build)."""
    found = shutil.which(cxx[0])
    try:
        run = subprocess.run([*cxx, "--version"], capture_output=True, text=True, timeout=60,
                             check=False)
        version = (run.stdout + run.stderr).strip() + f" (exit {run.returncode})"
    except (OSError, subprocess.SubprocessError) as err:
        version = f"unavailable: {err}"
    return {"command": cxx, "path": os.path.realpath(found) if found else None,
            "version": version}


def _torch_installation() -> dict[str, object]:
    """The torch the kernel is compiled and linked against: where it is installed, its
    version and build, and the include and library folders torch's build hands the
    compiler.  Two virtual environments with the same torch version differ here."""
    from torch.utils import cpp_extension

    where = Path(torch.__file__).resolve().parent
    try:
        version_py = hashlib.sha256((where / "version.py").read_bytes()).hexdigest()
    except OSError:
        version_py = None
    return {"path": str(where), "version": torch.__version__,
            "git_version": getattr(torch.version, "git_version", None),
            "version_py": version_py,
            "cxx11_abi": bool(getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", False)),
            "include_paths": [str(p) for p in cpp_extension.include_paths()],
            "library_paths": [str(p) for p in cpp_extension.library_paths()]}


def _python_abi() -> dict[str, object]:
    scheme = "nt" if os.name == "nt" else "posix_prefix"    # the one torch's build uses
    return {"version": sys.version, "cache_tag": sys.implementation.cache_tag,
            "abiflags": getattr(sys, "abiflags", ""),
            "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
            "include": sysconfig.get_path("include", scheme=scheme)}


def _platform() -> dict[str, object]:
    return {"system": sys.platform, "machine": platform.machine(),
            "libc": list(platform.libc_ver())}


# compiler environment variables that change what the compiler finds (include and library
# search paths); recorded only when set
_COMPILER_ENV = ("CPATH", "CPLUS_INCLUDE_PATH", "C_INCLUDE_PATH", "LIBRARY_PATH")


def _build_inputs(cxx: list[str] | None = None) -> dict[str, object]:
    """Everything that goes into the kernel build: what the cache key hashes (and what the
    build folder's marker records)."""
    return {"schema": 1,
            "sources": {name: hashlib.sha256((_CSRC / name).read_bytes()).hexdigest()
                        for name in _SOURCES},
            "cflags": _cflags(), "ldflags": _ldflags(),
            "torch": _torch_installation(), "python": _python_abi(),
            "compiler": _compiler_identity(cxx or _cxx_command()),
            "compiler_env": {k: os.environ[k] for k in _COMPILER_ENV if k in os.environ},
            "platform": _platform()}


def _build_key(inputs: dict[str, object] | None = None) -> str:
    """The cache key: a hash of :func:`_build_inputs`."""
    return kernel_cache.key_of(_build_inputs() if inputs is None else inputs)


def _first_error_line(text: str) -> str:
    """The compiler's first diagnostic line, so the HwcostError shows the actual cause."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower() and not ln.lower().startswith("error building extension"):
            return ln
    return lines[-1] if lines else ""


def _kernel_namespace() -> str:
    """Load this environment's kernel (building it if the cache has no complete build for
    its key) and return its op namespace."""
    cxx = _cxx_command()
    if shutil.which(cxx[0]) is None:
        raise HwcostError(
            f"the cpu emulation backend needs a C++ compiler to build its kernel, and "
            f"{cxx[0]!r} was not found; install one (e.g. `apt-get install g++` or Xcode "
            "command line tools), set CXX, or use the 'reference' backend")
    inputs = _build_inputs(cxx)
    key = _build_key(inputs)
    namespace = f"hwcost_lut_{key}"
    root = _cache_root()

    def build_into(folder: Path) -> str:
        from torch.utils import cpp_extension

        # the first run of an environment would otherwise sit silent for half a minute
        print(f"hwcost: building the native cpu kernel into {root} (once per torch "
              "installation and compiler; about 20-30 s)", file=sys.stderr, flush=True)

        if not cpp_extension.is_ninja_available():
            raise HwcostError(
                "the cpu emulation backend builds its kernel with ninja, which was not found; "
                "install it with `pip install ninja`, or use the 'reference' backend")
        try:
            with warnings.catch_warnings():
                # torch warns about compiler versions it has not vetted; the build either
                # works or fails with an error reported below.
                warnings.simplefilter("ignore")
                library = cpp_extension.load(
                    name=namespace,
                    sources=[str(_CSRC / name) for name in _SOURCES],
                    extra_cflags=[*_cflags(), f"-DHWCOST_NS={namespace}"],
                    extra_ldflags=_ldflags(),
                    build_directory=str(folder),
                    is_python_module=False,
                    verbose=False,
                )
        except Exception as err:  # compiler errors, linker errors, load errors
            detail = _first_error_line(str(err))
            raise HwcostError(
                "building the cpu emulation kernel failed"
                + (f": {detail}" if detail else "")
                + f" (build folder {root / namespace}); make sure a C++17 compiler (g++ or "
                "clang++) and ninja are installed, or use the 'reference' backend") from err
        return Path(library).name

    kernel_cache.obtain(root, namespace, key, inputs, build=build_into,
                        load=lambda path: torch.ops.load_library(str(path)))
    return namespace


def _compile() -> SimpleNamespace:
    lib = getattr(torch.ops, _kernel_namespace())
    return SimpleNamespace(conv2d=lib.conv2d_lut, linear=lib.linear_lut,
                           approx_conv2d=lib.approx_conv2d,
                           approx_conv2d_observed=lib.approx_conv2d_observed,
                           ste_operands=lib.ste_operands,
                           simd_level=lib.simd_level, set_simd_level=lib.set_simd_level,
                           set_pack_min_reuse=lib.set_pack_min_reuse,
                           fp32_is_exact=lib.fp32_is_exact)


def _load() -> SimpleNamespace:
    global _ops, _build_error
    if _ops is not None:
        return _ops
    with _lock:
        if _ops is None:
            if _build_error is not None:
                raise _build_error
            try:
                _ops = _compile()
            except HwcostError as err:
                _build_error = err
                raise
    return _ops


def build() -> None:
    """Compile (or load from the cache) the native kernel now; raises HwcostError on failure."""
    _load()


def is_available() -> bool:
    """Whether the native kernel can be built and loaded here (builds it if needed)."""
    try:
        _load()
    except HwcostError:
        return False
    return True


def _check(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor, rank: int, what: str) -> None:
    for name, t in (("x", x), ("w", w), ("lut", lut)):
        if not isinstance(t, torch.Tensor):
            raise HwcostError(f"{what}: {name} must be a torch.Tensor, not {type(t).__name__}")
        if t.device.type != "cpu":
            raise HwcostError(f"{what}: the cpu backend needs CPU tensors, {name} is on "
                              f"{t.device}; use the 'triton' or 'auto' backend for GPU tensors")
    if x.dtype != torch.uint8 or w.dtype != torch.uint8:
        raise HwcostError(f"{what}: activation and weight codes must be uint8, got "
                          f"{x.dtype} and {w.dtype}")
    if lut.dtype != torch.int32:
        raise HwcostError(f"{what}: the lut must be int32, got {lut.dtype}")
    if lut.dim() != 2 or not (1 <= lut.shape[0] <= 256 and 1 <= lut.shape[1] <= 256):
        raise HwcostError(f"{what}: the lut must have shape (2**a, 2**b) with a, b <= 8, got "
                          f"{tuple(lut.shape)}")
    if x.dim() != rank or w.dim() != rank:
        raise HwcostError(f"{what}: x and w must be {rank}-D, got {tuple(x.shape)} and "
                          f"{tuple(w.shape)}")
    # Codes beyond the LUT would read outside it; uint8 codes always fit a 256-wide side.
    if lut.shape[0] < 256 and x.numel() and int(x.max()) >= lut.shape[0]:
        raise HwcostError(f"{what}: activation code {int(x.max())} does not fit the lut's "
                          f"{lut.shape[0]} rows")
    if lut.shape[1] < 256 and w.numel() and int(w.max()) >= lut.shape[1]:
        raise HwcostError(f"{what}: weight code {int(w.max())} does not fit the lut's "
                          f"{lut.shape[1]} columns")


def _prepare(lut: torch.Tensor) -> Prepared:
    """The LUT's kernel forms (cached; a LUT edited in place is noticed by its version)."""
    hit = _prepared.get(id(lut))
    if hit is not None and hit[0] is lut and hit[1] == lut._version:
        return hit[2]
    flat = lut.contiguous()
    lut_t = flat.t().contiguous()
    lo, hi = int(flat.min()), int(flat.max())
    maxabs = max(abs(lo), abs(hi))
    if -(2**15) <= lo and hi < 2**15:
        pack = _PACK_S16
    elif lo >= 0 and hi < 2**16:
        pack = _PACK_U16
    else:
        pack = _NO_PACK
    planes, centre = _byte_planes(lut_t, lo, hi)
    factors, peak = _factor_table(flat)
    prepared = Prepared(flat, lut_t, maxabs, pack, planes, centre, factors, peak)
    if len(_prepared) >= _PREPARED_MAX:
        _prepared.clear()
    _prepared[id(lut)] = (lut, lut._version, prepared)
    return prepared


def _factor_table(lut: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A rank-one table's factors as the kernel reads them, ``(1, 2, 256)`` float32 (``u``
    by activation code, ``v`` by weight code; see :mod:`..factor`), and their peak
    product; empty and 0 for any other table, or factors float32 cannot hold."""
    found = outer_factors(lut)
    if found is None or found.peak >= FLOAT32_EXACT:
        return _NO_FACTORS, 0
    table = torch.zeros(1, 2, 256, dtype=torch.float32)
    table[0, 0, :lut.shape[0]] = found.u.to(torch.float32)
    table[0, 1, :lut.shape[1]] = found.v.to(torch.float32)
    return table, found.peak


_NO_FACTORS = torch.empty(0, dtype=torch.float32)
#: the float sums replace look-ups where each output reduces at least this many products
#: per weight row of its group (``K * M / groups``).  Measured on the DARTS layers of
#: ``benchmarks/bench_emulation.py`` (AMD EPYC Zen 5, VBMI + VNNI look-ups, 2 threads, batch
#: 64): a 27 x 48 stem 2.2-2.9x -> 1.4-1.7x fp32, 1x1 convs of 32 and 64 channels
#: 2.5-3.4x -> 1.6-1.9x; but a 16-channel 1x1 conv 1.6-1.8x either way and 3x3/5x5
#: depthwise convs 2.4-3.1x -> 2.7-3.1x.  There the GEMM saves less than the float copy of
#: the codes costs in memory traffic (and the depthwise look-ups finish each plane while it
#: is in cache).
FLOAT_SUMS_MIN_WORK = 1024
FLOAT_SUMS_MODES = ("auto", "always", "never")
_float_sums_mode = "auto"


def _set_float_sums(mode: str) -> str:
    """``"auto"`` (float sums where :data:`FLOAT_SUMS_MIN_WORK` says they pay), ``"always"``
    (wherever exact) or ``"never"``; returns the previous mode.  For tests, which hold both
    paths against each other on every shape, and for benchmarks."""
    global _float_sums_mode
    if mode not in FLOAT_SUMS_MODES:
        raise HwcostError(f"float sums mode {mode!r}: expected one of {FLOAT_SUMS_MODES}")
    previous, _float_sums_mode = _float_sums_mode, mode
    return previous


def _fp32_is_exact() -> bool:
    """Whether torch's CPU float32 convolutions and products run in float32, as the kernel
    sees torch's settings: where a user lets oneDNN round them to bfloat16 or TF32 the
    kernel ignores the factors (the float sums would be inexact) and looks up."""
    return bool(_load().fp32_is_exact())


def _float_sums(factors: torch.Tensor, peak: int, k: int, rows: int) -> torch.Tensor:
    """The factors to pass the kernel for sums of ``k`` products over ``rows`` weight rows
    per group, or an empty tensor when the look-ups run: a table that does not factor, a
    sum float32 cannot hold exactly (``k * peak >= 2**24``), or (mode "auto") a layer too
    thin for the GEMM to pay.  (The kernel also ignores them while torch's float32
    convolutions are not exact: :func:`_fp32_is_exact`.)"""
    if (not factors.numel() or _float_sums_mode == "never" or k * peak >= FLOAT32_EXACT
            or (_float_sums_mode == "auto" and k * rows < FLOAT_SUMS_MIN_WORK)):
        return _NO_FACTORS
    return factors


def _centres(*values: int) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32)


def _check_range(k: int, maxabs: int, what: str) -> None:
    if k * maxabs >= 2**31:
        raise HwcostError(f"{what}: a sum of {k} lut entries up to {maxabs} in magnitude may "
                          "overflow int32 (K * max|lut| must stay below 2**31)")


def conv2d_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor,
               stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
               groups: int = 1) -> torch.Tensor:
    """``out[n, m, p, q] = sum lut[x, w]`` over the (grouped, strided, dilated) window; int32."""
    _check(x, w, lut, 4, "conv2d_lut")
    sh, sw, dh, dw, k = _conv_geometry(x, w, stride, dilation, groups, "conv2d_lut")
    pr = _prepare(lut)
    _check_range(k, pr.maxabs, "conv2d_lut")
    ops = _load()
    planes = pr.planes.unsqueeze(0) if pr.planes.numel() else pr.planes
    return ops.conv2d(x.contiguous(), w.contiguous(), pr.lut_t, planes, _centres(pr.centre),
                      sh, sw, dh, dw, int(groups), pr.pack, 0,
                      _float_sums(pr.factors, pr.factor_peak, k, w.shape[0] // groups))


def _conv_geometry(x: torch.Tensor, w: torch.Tensor, stride, dilation, groups: int,
                   what: str) -> tuple[int, int, int, int, int]:
    """Validated (sh, sw, dh, dw) and the reduction length K of a convolution."""
    _n, c, h, wd = x.shape
    m, cg, r, s = w.shape
    if groups < 1 or c % groups or m % groups or cg * groups != c:
        raise HwcostError(f"{what}: {c} input channels, {m} output channels and weights "
                          f"of {cg} channels per group do not fit groups={groups}")
    sh, sw = (int(v) for v in stride)
    dh, dw = (int(v) for v in dilation)
    if min(sh, sw, dh, dw) < 1:
        raise HwcostError(f"{what}: stride {stride} and dilation {dilation} must be >= 1")
    if h < dh * (r - 1) + 1 or wd < dw * (s - 1) + 1:
        raise HwcostError(f"{what}: input {h}x{wd} is smaller than the dilated "
                          f"{r}x{s} kernel")
    return sh, sw, dh, dw, cg * r * s


class _Stack(NamedTuple):
    lut_t: torch.Tensor     # (T, 2**b, 2**a)
    maxabs: int
    pack: int               # a pack mode all tables allow
    planes: torch.Tensor    # (T, 2**b, 2, 256), or empty unless every table has planes
    centres: torch.Tensor   # (T,) int32
    factors: torch.Tensor   # (T, 2, 256) float32, or empty unless every table factors
    factor_peak: int


def _prepare_stack(luts, what: str) -> _Stack:
    """Several LUTs of one shape, stacked for one kernel call."""
    if isinstance(luts, torch.Tensor) and luts.dim() == 3:
        luts = list(luts)
    luts = list(luts)
    if not luts:
        raise HwcostError(f"{what}: no lut given")
    prepared = []
    for lut in luts:
        if not isinstance(lut, torch.Tensor) or lut.dtype != torch.int32 or lut.dim() != 2:
            raise HwcostError(f"{what}: every lut must be a 2-D int32 tensor")
        if lut.shape != luts[0].shape:
            raise HwcostError(f"{what}: luts of different shapes "
                              f"{tuple(luts[0].shape)} and {tuple(lut.shape)}")
        prepared.append(_prepare(lut))
    key = tuple((id(lut), lut._version) for lut in luts)
    hit = _stacks.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], luts)):
        return hit[1]
    lut_t = torch.stack([p.lut_t for p in prepared]).contiguous()
    maxabs = max(p.maxabs for p in prepared)
    modes = {p.pack for p in prepared}
    pack = modes.pop() if len(modes) == 1 else _NO_PACK   # one table word layout for all
    if all(p.planes.numel() for p in prepared):
        planes = torch.stack([p.planes for p in prepared]).contiguous()
    else:
        planes = torch.empty(0, dtype=torch.uint8)
    if all(p.factors.numel() for p in prepared):
        factors = torch.cat([p.factors for p in prepared]).contiguous()
        peak = max(p.factor_peak for p in prepared)
    else:
        factors, peak = _NO_FACTORS, 0
    stack = _Stack(lut_t, maxabs, pack, planes, _centres(*(p.centre for p in prepared)),
                   factors, peak)
    if len(_stacks) >= _PREPARED_MAX:
        _stacks.clear()
    _stacks[key] = (tuple(luts), stack)
    return stack


_stacks: dict[tuple, tuple[tuple[torch.Tensor, ...], _Stack]] = {}


def conv2d_multi_lut(x: torch.Tensor, w: torch.Tensor, luts,
                     stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                     groups: int = 1) -> torch.Tensor:
    """``conv2d_lut`` for T tables in one kernel pass: ``(T, N, M, P, Q)`` int32.

    The codes are read (and, for k x k kernels, unfolded) once and every weight row is
    looked up in each table; see ``conv2d_lut`` in ``lut_kernels.cpp``.
    """
    st = _prepare_stack(luts, "conv2d_multi_lut")
    _check(x, w, st.lut_t[0].t(), 4, "conv2d_multi_lut")
    sh, sw, dh, dw, k = _conv_geometry(x, w, stride, dilation, groups, "conv2d_multi_lut")
    _check_range(k, st.maxabs, "conv2d_multi_lut")
    m = w.shape[0]
    out = _load().conv2d(x.contiguous(), w.contiguous(), st.lut_t, st.planes, st.centres,
                         sh, sw, dh, dw, int(groups), st.pack, 0,
                         _float_sums(st.factors, st.factor_peak, k, w.shape[0] // groups))
    t = st.lut_t.shape[0]
    n, _, p, q = out.shape
    # kernel order [group][table][channel] -> [table][sample][group, channel]
    out = out.view(n, groups, t, m // groups, p, q).permute(2, 0, 1, 3, 4, 5)
    return out.reshape(t, n, m, p, q)


def conv2d_block_lut(x: torch.Tensor, w: torch.Tensor, luts,
                     stride: tuple[int, int] = (1, 1), dilation: tuple[int, int] = (1, 1),
                     groups: int = 1) -> torch.Tensor:
    """``conv2d_lut`` with the batch read as ``len(luts)`` equal blocks, block ``t`` looked
    up in ``luts[t]``, in one kernel call (see ``backends.block_conv2d_lut``)."""
    st = _prepare_stack(luts, "conv2d_block_lut")
    _check(x, w, st.lut_t[0].t(), 4, "conv2d_block_lut")
    t = st.lut_t.shape[0]
    if x.shape[0] % t:
        raise HwcostError(f"conv2d_block_lut: a batch of {x.shape[0]} cannot be split into "
                          f"{t} equal blocks")
    sh, sw, dh, dw, k = _conv_geometry(x, w, stride, dilation, groups, "conv2d_block_lut")
    _check_range(k, st.maxabs, "conv2d_block_lut")
    return _load().conv2d(x.contiguous(), w.contiguous(), st.lut_t, st.planes, st.centres,
                          sh, sw, dh, dw, int(groups), st.pack, 1,
                          _float_sums(st.factors, st.factor_peak, k, w.shape[0] // groups))


def approx_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  sx: float, zx: int, sw: torch.Tensor, zw: torch.Tensor,
                  domains: tuple[int, ...], luts: tuple[torch.Tensor, ...],
                  padding: tuple[int, int], stride, dilation, groups: int,
                  replicate: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A whole approximate conv forward in one native call: quantize ``x`` (per tensor,
    ``sx``/``zx``) and ``weight`` (``sw``/``zw``, float32/int64, one or one per channel),
    pad with the zero point's code, LUT-convolve, correct for zero points and scale.

    ``domains`` = (a_qmin, a_qmax, a_mask, w_qmin, w_qmax, w_mask, signed); with several
    ``luts`` the batch is one block per table (``conv2d_block_lut``), or with ``replicate``
    every table multiplies the whole batch and the output has ``len(luts) * M`` channels,
    those of a group in ``[table][channel]`` order.  Returns the float32 output, the padded
    activation codes and the weight codes.  The caller has validated the layer (shapes,
    overflow bound); see ``approx_conv2d`` in ``lut_kernels.cpp``.
    """
    tables, geometry, factors = _call_plan(weight, luts, padding, stride, dilation, groups,
                                           replicate)
    try:
        return _load().approx_conv2d(x.detach().contiguous(), weight.detach().contiguous(),
                                     _bias(bias), float(sx), int(zx), sw, zw, domains, *tables,
                                     geometry, factors)
    except RuntimeError as exc:
        raise _non_finite_refused(exc) from None


def _call_plan(weight: torch.Tensor, luts, padding, stride, dilation, groups: int,
               replicate: bool) -> tuple[tuple, tuple[int, ...], torch.Tensor]:
    """A fused call's table arguments, its geometry tuple and its factors (or none).  Plain
    indexing rather than generators or views: on a small layer this Python ran as long as
    the native call."""
    lut_t, planes, centres, pack, blocks, factors, peak = _plan(luts)
    geometry = (int(padding[0]), int(padding[1]), int(stride[0]), int(stride[1]),
                int(dilation[0]), int(dilation[1]), int(groups),
                2 if replicate and blocks else blocks)
    shape = weight.shape
    k = shape[1] * shape[2] * shape[3]
    return ((lut_t, planes, centres, pack), geometry,
            _float_sums(factors, peak, k, shape[0] // geometry[6]))


def _bias(bias: torch.Tensor | None) -> torch.Tensor:
    if bias is None:
        return _NO_BIAS
    b = bias.detach()
    return b if b.dtype == torch.float32 and b.is_contiguous() else \
        b.to(torch.float32).contiguous()


def _non_finite_refused(exc: RuntimeError) -> Exception:
    """The native ops' refusal of NaN or infinite activations as :class:`NonFiniteInput`
    (the layer turns it into its one-line error); any other error as it was."""
    if "hwcost: non-finite input" in str(exc):
        return NonFiniteInput("input contains NaN or infinite values")
    return exc


def approx_conv2d_observed(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           act_range: tuple[torch.Tensor, torch.Tensor],
                           w_range: tuple[torch.Tensor, torch.Tensor], qflags: tuple[int, ...],
                           domains: tuple[int, ...], luts: tuple[torch.Tensor, ...],
                           padding: tuple[int, int], stride, dilation, groups: int,
                           replicate: bool = False) -> tuple:
    """:func:`approx_conv2d` with the observers' update and the quantizer parameters in the
    same native call (see ``FusedConv.approx_conv2d_observed``); the ranges are float32
    vectors updated in place."""
    tables, geometry, factors = _call_plan(weight, luts, padding, stride, dilation, groups,
                                           replicate)
    try:
        out, xc, wc, aq, sw, zw = _load().approx_conv2d_observed(
            x.detach().contiguous(), weight.detach().contiguous(), _bias(bias), act_range[0],
            act_range[1], w_range[0], w_range[1], qflags, domains, *tables, geometry, factors)
    except RuntimeError as exc:
        raise _non_finite_refused(exc) from None
    sx, zx = aq.tolist()
    return out, xc, wc, sx, int(zx), sw, zw


def ste_operands(x: torch.Tensor, weight: torch.Tensor, x_codes: torch.Tensor,
                 w_codes: torch.Tensor, sx: float, zx: int, sw: torch.Tensor, zw: torch.Tensor,
                 domains: tuple[int, ...], padding: tuple[int, int], x_layout: str = "nchw",
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the straight-through backward of ``approx_conv2d``: dequantized activations
    (unpadded; ``x_layout`` "nchw", "channels_last" or "none" for an empty tensor) and
    weights, and the float 0/1 masks of where neither quantizer clipped."""
    layout = {"none": 0, "nchw": 1, "channels_last": 2}[x_layout]
    return _load().ste_operands(x.detach().contiguous(), weight.detach().contiguous(),
                                x_codes, w_codes, float(sx), int(zx), sw, zw, domains,
                                int(padding[0]), int(padding[1]), layout)


class _Fused:
    """This backend's :class:`.contract.FusedConv`: the two native calls above."""

    approx_conv2d = staticmethod(approx_conv2d)
    approx_conv2d_observed = staticmethod(approx_conv2d_observed)
    ste_operands = staticmethod(ste_operands)


_FUSED = _Fused()


def fused_conv2d(x: torch.Tensor, weight: torch.Tensor) -> FusedConv | None:
    """The fused path for float32 CPU operands when the native kernel is available, else
    None (other dtypes and devices run op by op)."""
    if (x.device.type != "cpu" or x.dtype != torch.float32
            or weight.dtype != torch.float32):
        return None
    return _FUSED if is_available() else None


_plans: dict[tuple, tuple] = {}


def _plan(luts) -> tuple:
    """The kernel's table arguments for one LUT or a block stack (cached per LUT versions)."""
    key = tuple((id(lut), lut._version) for lut in luts)
    hit = _plans.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], luts)):
        return hit[1]
    if len(luts) == 1:
        pr = _prepare(luts[0])
        planes = pr.planes.unsqueeze(0) if pr.planes.numel() else pr.planes
        plan = (pr.lut_t, planes, _centres(pr.centre), pr.pack, 0, pr.factors,
                pr.factor_peak)
    else:
        st = _prepare_stack(luts, "approx_conv2d")
        plan = (st.lut_t, st.planes, st.centres, st.pack, 1, st.factors, st.factor_peak)
    if len(_plans) >= _PREPARED_MAX:
        _plans.clear()
    _plans[key] = (tuple(luts), plan)
    return plan


_NO_BIAS = torch.empty(0, dtype=torch.float32)


def linear_lut(x: torch.Tensor, w: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """``out[n, m] = sum_k lut[x[n, k], w[m, k]]``; int32."""
    _check(x, w, lut, 2, "linear_lut")
    if x.shape[1] != w.shape[1]:
        raise HwcostError(f"linear_lut: x has {x.shape[1]} features but w expects "
                          f"{w.shape[1]}")
    pr = _prepare(lut)
    _check_range(x.shape[1], pr.maxabs, "linear_lut")
    ops = _load()
    planes = pr.planes.unsqueeze(0) if pr.planes.numel() else pr.planes
    return ops.linear(x.contiguous(), w.contiguous(), pr.flat, pr.lut_t, planes,
                      _centres(pr.centre), pr.pack)


def _set_simd_level(level: int) -> int:
    """Cap the kernel's path (see :data:`KERNEL_PATHS`); returns the previous cap.

    For tests: every path the CPU has must stay bit-exact, and the CPU would otherwise
    always take its best one.  A level above what the CPU supports is capped to it.
    """
    return int(_load().set_simd_level(level))


def _set_pack_min_reuse(reuse: int) -> int:
    """Set how many positions must reuse a table before channel pairs are packed; returns
    the previous value.  For tests: packing is skipped on small shapes by default."""
    return int(_load().set_pack_min_reuse(reuse))


def _simd_level() -> int:
    return int(_load().simd_level())


#: the kernel's code paths by run-time level, and the CPU flags that would enable the others
KERNEL_PATHS = {0: "portable (scalar)", 1: "AVX2 gathers", 2: "AVX-512 gathers",
                3: "AVX-512 VBMI byte permutes", 4: "AVX-512 VBMI byte permutes + VNNI"}
_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512vbmi", "avx512_vnni")


def cpu_identity() -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags as /proc/cpuinfo states them (first CPU);
    ``("unknown CPU", frozenset())`` where it cannot be read."""
    model, flags = "unknown CPU", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags


def describe_machine() -> str:
    """One line naming the CPU, the SIMD flags that matter here and the kernel path taken,
    for every benchmark figure (a figure without its CPU and path cannot be compared)."""
    model, flags = cpu_identity()
    have = [f for f in _FLAGS_OF_INTEREST if f in flags] or ["none of " +
                                                              "/".join(_FLAGS_OF_INTEREST)]
    path = KERNEL_PATHS.get(_simd_level(), "unknown") if is_available() else "not built"
    return f"CPU {model} ({', '.join(have)}); cpu backend path: {path}"


def detected_level() -> int:
    """The best kernel path this CPU supports (the cap tests and benchmarks may lower)."""
    ops = _load()
    current = int(ops.set_simd_level(99))
    best = int(ops.simd_level())
    ops.set_simd_level(current)
    return best
