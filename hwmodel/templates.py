"""Jinja2 templates of Timeloop inputs, rendered in a bounded sandbox.

Timeloop's front end (timeloopfe, through Accelergy's YAML loader) renders every input file
with Jinja2 before parsing it as YAML: the template sees the ``jinja_parse_data`` its
caller passes (``{{ input_weight_datawidth }}``, ``{{ n_pes | default(8) }}``, ``{% if
fpmac %}...``), with ``StrictUndefined``, and may ``{% include %}`` files of its own folder.
hwcost does the same for ``.jinja``/``.jinja2``/``.j2`` files and for any input whose text
holds Jinja markup, with the variables of ``--var NAME=VALUE`` and ``--vars FILE``.

Templates come from other people, so rendering is bounded like every other reader:

* Jinja's :class:`ImmutableSandboxedEnvironment` (no ``__class__``/``__mro__`` walks, no
  mutation of lists and maps), plus: only a few plain string methods are reachable, and
  ``str.format``/``%`` formatting (whose field widths allocate without bound) are refused;
* a step budget (:data:`MAX_TEMPLATE_STEPS`): every loop iteration and every call costs a
  step, so nested loops that print nothing cannot spin for hours;
* sizes: ``*``, ``**``, ``+``, ``~`` and the filters that can amplify (``join``,
  ``replace``, ``indent``, ``center``, ``sum``) check the size of what they would build
  before building it, and the rendered text is cut off at :data:`MAX_RENDERED_BYTES`;
* ``{% include %}``/``{% import %}`` and Accelergy's helpers (``include(path, key)``,
  ``include_all``, ``cwd()``, ``path_exists``...; :mod:`hwmodel.template_includes`) read only
  files inside the template's own folder (no ``..``, no symlink out of it), through the same
  size and FIFO checks as any file, at most :data:`MAX_INCLUDE_DEPTH` deep.

Every failure (an undefined variable, a syntax error, a refused operation, a file that
is not there) is one :class:`HwcostError` at ``file:line`` of the template.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError, safe_range
from jinja2.visitor import NodeTransformer
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from core.errors import HwcostError
from core.limits import Limit

from .template_includes import MAX_INCLUDE_DEPTH, IncludeRefused, Includes  # noqa: F401
from .template_names import TEMPLATE_SUFFIXES, is_template  # noqa: F401
from .yamlio import MAX_FILE_BYTES, _one_line, line_of, load_yaml, plain, read_text

#: Loop iterations and calls one rendering may make; real Timeloop templates make tens.
MAX_TEMPLATE_STEPS = Limit("HWCOST_MAX_TEMPLATE_STEPS", 100_000,
                           "template steps (loop iterations and calls)")
#: The rendered text is parsed as YAML next, which is bounded by the same size.
MAX_RENDERED_BYTES = MAX_FILE_BYTES
#: Strings and lists a template builds, and the integers it computes (bits).
_MAX_ITEMS = 1 << 20
_MAX_INT_BITS = 4096
#: String methods a template may call: none of them allocates more than its input.
_STR_METHODS = frozenset({
    "lower", "upper", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
    "startswith", "endswith", "title", "capitalize", "count", "find", "rfind", "index",
    "rindex", "isdigit", "isalpha", "isalnum", "islower", "isupper", "isspace",
    "isidentifier", "isnumeric", "isdecimal", "replace", "join", "casefold", "swapcase",
    "removeprefix", "removesuffix", "partition", "rpartition",
})
_MAP_METHODS = frozenset({"items", "keys", "values", "get"})
_SEQ_METHODS = frozenset({"index", "count"})
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_UNDEFINED_RE = re.compile(r"^'([A-Za-z_][A-Za-z_0-9]*)' is undefined$")


class _Refused(Exception):
    """A template operation refused for its cost; the message says which."""


# ----------------------------------------------------------------------------- variables

def parse_var(text: str) -> tuple[str, Any]:
    """``--var NAME=VALUE``: the value is read as a YAML scalar (``8`` is a number,
    ``true`` a boolean, ``intmac`` a string); a list or map belongs in ``--vars FILE``."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not _NAME_RE.fullmatch(name):
        raise HwcostError(f"--var {text!r}: expected NAME=VALUE with NAME a template "
                          "variable name (letters, digits, _)")
    if not raw.strip():
        return name, ""
    try:
        value = YAML(typ="safe", pure=True).load(raw)
    except (YAMLError, ValueError, OverflowError):
        value = raw
    if isinstance(value, (dict, list)):
        raise HwcostError(f"--var {name}: the value must be a single value, not a "
                          f"{'map' if isinstance(value, dict) else 'list'} (give lists and "
                          "maps in a --vars file)")
    return name, value


def load_vars(path: str | Path) -> dict[str, Any]:
    """A ``--vars`` YAML file: a map of template variable names to values."""
    doc = load_yaml(path)
    if doc is None:
        return {}
    if not isinstance(doc, Mapping):
        raise HwcostError("a --vars file must be a map of variable names to values",
                          file=path, line=line_of(doc, None, 1))
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if not isinstance(key, str) or not _NAME_RE.fullmatch(key):
            raise HwcostError(f"bad template variable name {str(key)[:40]!r} (letters, "
                              "digits, _)", file=path, line=line_of(doc, key))
        out[key] = plain(value)
    return out


# ----------------------------------------------------------------------------- sandbox

class _FolderLoader(jinja2.BaseLoader):
    """Loads templates relative to ``folder`` and from nowhere outside ``root`` (the
    ``{% include %}``/``{% import %}`` of the template)."""

    def __init__(self, folder: Path, root: Path | None = None):
        self.folder = folder.resolve()
        self.root = (root or folder).resolve()
        self.served: set[str] = set()

    def get_source(self, environment: jinja2.Environment,
                   template: str) -> tuple[str, str, Callable[[], bool]]:
        parts = template.replace("\\", "/").split("/")
        if Path(template).is_absolute() or any(p in ("", ".", "..") for p in parts):
            raise jinja2.TemplateNotFound(f"{template} (templates may include only files "
                                          "of their own folder)")
        path = self.folder.joinpath(*parts)
        try:
            inside = path.resolve().is_relative_to(self.root)
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise jinja2.TemplateNotFound(f"{template} (outside the template's folder)")
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        self.served.add(str(path))
        return read_text(path, "template"), str(path), lambda: True


class _Budget(NodeTransformer):
    """Rewrites a parsed template so that loops and ``~`` go through the sandbox's checks:
    ``{% for x in xs %}`` iterates ``_hw_steps(xs)``, ``a ~ b`` is ``_hw_concat(a, b)``."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name("_hw_steps", "load", lineno=node.lineno),
                               [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return nodes.Call(nodes.Name("_hw_concat", "load", lineno=node.lineno),
                          list(node.nodes), [], None, None, lineno=node.lineno)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, dict)) else 0


class _Sandbox(ImmutableSandboxedEnvironment):
    """The environment of one rendering: Jinja's sandbox plus step and size budgets."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, folder: Path, root: Path | None = None):
        self.folder_loader = _FolderLoader(folder, root)
        super().__init__(loader=self.folder_loader, undefined=jinja2.StrictUndefined,
                         keep_trailing_newline=True, autoescape=False)
        self.steps = MAX_TEMPLATE_STEPS.value
        for name in ("lipsum", "cycler", "joiner"):
            self.globals.pop(name, None)
        self.globals.update(range=self._range, _hw_steps=self._iterate,
                            _hw_concat=self._concat)
        self.filters = {name: self.filters[name] for name in _PLAIN_FILTERS}
        self.filters.update(join=self._join, replace=self._replace, indent=self._indent,
                            center=self._center, sum=self._sum)

    # -- budgets -------------------------------------------------------------------------

    @property
    def served(self) -> set[str]:
        """Files the template included (for error positions)."""
        return self.folder_loader.served

    def step(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise _Refused(f"template takes more than {MAX_TEMPLATE_STEPS.value:,} steps "
                           f"(loop iterations and calls; set {MAX_TEMPLATE_STEPS.env} to "
                           "allow more)")

    @staticmethod
    def _fits(items: int, what: str) -> None:
        if items > _MAX_ITEMS:
            raise _Refused(f"{what} would build a value of {items:,} items or characters")

    def _iterate(self, iterable: Any) -> Iterator[Any]:
        if isinstance(iterable, jinja2.Undefined):
            iterable._fail_with_undefined_error()
        for item in iterable:
            self.step()
            yield item

    def _range(self, *args: int) -> range:
        rng = safe_range(*args)
        self.step(len(rng))
        return rng

    def _concat(self, *parts: Any) -> str:
        texts = [str(p) for p in parts]
        self._fits(sum(map(len, texts)), "~")
        return "".join(texts)

    # -- sandbox hooks -------------------------------------------------------------------

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self.step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and getattr(__obj, "__name__", "") == "replace":
            __self._replace(owner, *args, **kwargs)
        elif isinstance(owner, str) and getattr(__obj, "__name__", "") == "join" and args:
            items = list(__self._iterate(args[0]))
            __self._fits(sum(_size(x) for x in items) + len(owner) * len(items), "join")
            args = (items, *args[1:])
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.step()
        if operator == "%" and isinstance(left, str):
            raise _Refused("string formatting with % is not available in templates")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    self._fits(len(seq) * max(n, 0), "*")
            if isinstance(left, int) and isinstance(right, int) and \
                    abs(left).bit_length() + abs(right).bit_length() > _MAX_INT_BITS:
                raise _Refused("number too large")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and \
                abs(left) > 1 and right * abs(left).bit_length() > _MAX_INT_BITS:
            raise _Refused("number too large")
        if operator == "+" and isinstance(left, (str, list, tuple)):
            self._fits(_size(left) + _size(right), "+")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str):
            return attr in _STR_METHODS
        if isinstance(obj, (bytes, bytearray, int, float, complex)):
            return False
        if isinstance(obj, dict):
            return attr in _MAP_METHODS
        if isinstance(obj, (list, tuple)):
            return attr in _SEQ_METHODS
        return True

    def wrap_str_format(self, value: Any) -> None:
        """``str.format`` is not reachable at all (see :data:`_STR_METHODS`): its field
        widths allocate without bound."""
        return None

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Budget().visit(super()._parse(source, name, filename))

    # -- filters that could amplify, checked before they build --------------------------

    def _join(self, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
        items = list(self._iterate(value))
        if attribute is not None:
            items = [self.getitem(x, attribute) for x in items]
        texts = [str(x) for x in items]
        self._fits(sum(map(len, texts)) + len(str(d)) * len(texts), "join")
        return str(d).join(texts)

    def _replace(self, s: Any, old: Any, new: Any, count: Any = None) -> str:
        s, old, new = str(s), str(old), str(new)
        hits = (len(s) + 1 if old == "" else s.count(old)) if count is None or count < 0 \
            else int(count)
        self._fits(len(s) + hits * max(0, len(new) - len(old)), "replace")
        return s.replace(old, new, -1 if count is None else int(count))

    def _indent(self, s: Any, width: Any = 4, first: bool = False,
                blank: bool = False) -> str:
        s = str(s)
        pad = width if isinstance(width, str) else " " * min(int(width), _MAX_ITEMS + 1)
        self._fits(len(s) + (s.count("\n") + 1) * len(pad), "indent")
        return jinja2.filters.do_indent(s, width, first, blank)

    def _center(self, value: Any, width: int = 80) -> str:
        self._fits(int(width), "center")
        return str(value).center(int(width))

    def _sum(self, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
        items = list(self._iterate(iterable))
        if attribute is not None:
            items = [self.getitem(x, attribute) for x in items]
        total = start
        for x in items:
            total = self.call_binop(None, "+", total, x)
        return total


#: Jinja's filters that build nothing larger than their input (the amplifying ones are
#: wrapped above; ``format``, ``wordwrap``, ``batch``, ``slice``, ``random`` and the HTML
#: ones are left out).
_PLAIN_FILTERS = ("abs", "attr", "capitalize", "count", "d", "default", "dictsort", "first",
                  "float", "groupby", "int", "items", "last", "length", "list", "lower", "map",
                  "max", "min", "reject", "rejectattr", "reverse", "round", "select",
                  "selectattr", "sort", "string", "title", "tojson", "trim", "truncate",
                  "unique", "upper", "wordcount")


# ----------------------------------------------------------------------------- rendering

_RAW_OR_COMMENT = re.compile(r"{%-?\s*raw\s*-?%}.*?{%-?\s*endraw\s*-?%}|{#.*?#}", re.S)


def keep_comment_lines(source: str) -> str:
    """``source`` with the line breaks of its multi-line Jinja comments put back after them.

    Jinja drops a comment whole, line breaks included, so every line below a five-line
    header comment would come out five lines up, and an error found in the rendered YAML
    would name the wrong template line.  Each such comment that ends its line is followed by
    as many blank lines as it spanned (blank lines are nothing to YAML).  Comments with
    whitespace control (``{#-``, ``-#}``) trim line breaks on purpose and are left alone, as
    are comments followed by text on their last line; ``{% raw %}`` blocks are not touched."""
    out: list[str] = []
    pos = 0
    for m in _RAW_OR_COMMENT.finditer(source):
        body = m.group(0)
        breaks = body.count("\n")
        if (not body.startswith("{#") or not breaks or body.startswith("{#-")
                or body.endswith("-#}")):
            continue
        end = source.find("\n", m.end())
        end = len(source) if end < 0 else end
        if source[m.end():end].strip():
            continue
        out.append(source[pos:end] + "\n" * breaks)
        pos = end
    out.append(source[pos:])
    return "".join(out)


def render(path: str | Path, variables: Mapping[str, Any] | None = None,
           text: str | None = None, *, root: Path | None = None, depth: int = 0) -> str:
    """The text of template ``path`` rendered with ``variables`` (``text``: its content,
    when already read).  Every failure is a HwcostError at the template's file and line.

    ``root``: the folder includes may not leave (the top template's, for files it
    includes); ``depth``: how deep in includes this file is.
    """
    path = Path(path)
    root = (root or path.parent).resolve()
    env = _Sandbox(path.parent, root)
    env.globals.update(Includes(path.parent, root, variables or {}, depth,
                                render).globals())
    if text is not None:
        MAX_FILE_BYTES.check(len(text.encode("utf-8", "surrogatepass")), file=path)
    out: list[str] = []
    size = 0                           # characters: a lower bound of the bytes
    limit = MAX_RENDERED_BYTES.value
    try:
        source = text if text is not None else read_text(path, "template")
        code = env.compile(keep_comment_lines(source), path.name, str(path))
        template = env.template_class.from_code(env, code, env.make_globals(None), None)
        for chunk in template.generate(dict(variables or {})):
            size += len(chunk)
            if size > limit:
                MAX_RENDERED_BYTES.check(size, file=path, context="rendered template")
            out.append(chunk)
    except HwcostError:
        raise
    except jinja2.TemplateSyntaxError as exc:
        where = exc.filename or str(path)
        raise HwcostError(f"template syntax error: {_one_line(exc.message or str(exc))}",
                          file=where, line=exc.lineno) from None
    except Exception as exc:     # user template code can raise anything a filter raises
        file, line = _template_position(exc, str(path), env.served)
        raise HwcostError(_message(exc), file=file, line=line) from None
    return "".join(out)


def _message(exc: BaseException) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        text = _one_line(exc.message or str(exc))
        m = _UNDEFINED_RE.match(text)
        if m:
            return (f"template variable {m.group(1)!r} is undefined (set it with --var "
                    f"{m.group(1)}=VALUE or in a --vars file, or give a default: "
                    f"{{{{ {m.group(1)} | default(...) }}}})")
        return f"template: {text}"
    if isinstance(exc, SecurityError):
        return f"template: not allowed: {_one_line(str(exc))}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template include not found: {_one_line(str(exc.message or exc))}"
    if isinstance(exc, (_Refused, IncludeRefused)):
        return f"template: {exc}"
    if isinstance(exc, RecursionError):
        return "template: recursion too deep (a macro or include that calls itself?)"
    if isinstance(exc, MemoryError):
        return "template: out of memory"
    return f"template: {type(exc).__name__}: {_one_line(str(exc))}"


def _template_position(exc: BaseException, main: str,
                       included: set[str]) -> tuple[str, int | None]:
    """The innermost frame of ``exc``'s traceback that is template code (Jinja rewrites
    tracebacks so that template code shows with its file and line); ``files``: the
    template and the files it included."""
    files = {main, *included}
    file, line = main, None
    tb = exc.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in files:
            file, line = name, tb.tb_lineno
        tb = tb.tb_next
    return file, line
