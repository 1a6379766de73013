"""Timeloop's several input files, rendered and merged by top-level key.

Timeloop is given a list of YAML files (``arch.yaml components/*.yaml prob.yaml
mapper.yaml``...) and reads them as one specification: each file is a map of top-level
sections (``architecture``, ``problem``, ``variables``, ``mapper``, constraint blocks,
``mapping``, ``components``...) and the sections of all files are merged.  Every file is
rendered with Jinja2 first when it is a template (:mod:`hwmodel.templates`).

:class:`SpecInputs` is that merged specification, with each section remembering the file
and line it came from so that every later error still says ``file:line``.  Merging rules
(Timeloop's, made strict where Timeloop would silently pick one):

* ``architecture``, ``problem``, ``mapper`` and ``mapping``: one of each; a second one in
  another file is an error naming both files;
* ``variables``: the union; one name given two different values is an error;
* constraint blocks (any key containing ``constraints``, as timeloopfe matches them, e.g.
  ``architecture_constraints``, ``mapspace_constraints``; and a v0.3 ``mapspace`` with
  ``targets``): all of them, in file order;
* ``components``/``compound_components`` (Accelergy's compound components: hwcost prices
  components with its estimators or an ERT) and ``globals`` are accepted and not used;
  ``sparse_optimizations`` and custom expression functions are refused (hwcost models dense
  workloads and evaluates only its own functions);
* a file whose top level is a list is a mapping; one with ``shape``/``instance`` at the top
  is a problem in Timeloop's old layout; any other top-level key is an error that lists
  the known ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import HwcostError

from .expressions import Scope, View
from .template_names import is_template
from .yamlio import Located, line_of, load_yaml_text, plain, read_text

#: Sections of which a specification has at most one.
SINGLE = ("architecture", "problem", "mapper", "mapping")
_KNOWN = ("architecture", "problem", "variables", "mapper", "mapping", "<...>constraints",
          "mapspace", "components", "compound_components", "globals",
          "sparse_optimizations", "version")


@dataclass(frozen=True)
class Section:
    """One top-level section of one input file."""

    kind: str          # architecture, problem, variables, mapper, mapping, constraints...
    key: str | None    # the key as written (None: the whole file is the section)
    value: Any         # the loaded YAML node
    path: Path         # the file it came from
    line: int | None   # the line of its key

    @property
    def err(self) -> Located:
        return Located(self.path)


def section_kind(key: str, value: Any) -> str | None:
    """What a top-level key holds, as timeloopfe matches keys (``*constraints*`` by part of
    the name); None for an unknown key."""
    k = key.lower()
    if k in ("architecture", "problem", "variables", "mapper", "mapping", "version"):
        return k
    if "constraints" in k:
        return "constraints"
    if k == "mapspace":
        has_targets = (isinstance(value, Mapping) and "targets" in value) or \
            isinstance(value, list)
        return "constraints" if has_targets else "ignored"
    if "components" in k or k == "globals":
        return "ignored" if k != "globals" else "globals"
    if k == "sparse_optimizations":
        return "sparse"
    if "mapping" in k:
        return "mapping"
    return None


@dataclass
class SpecInputs:
    """A specification merged from several files (see the module docstring)."""

    sections: list[Section] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    #: files that were rendered as templates
    rendered: list[Path] = field(default_factory=list)

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, paths: Iterable[str | Path],
             template_vars: Mapping[str, Any] | None = None) -> SpecInputs:
        """Read, render (templates only) and merge ``paths`` in order."""
        out = cls()
        seen: set[Path] = set()
        for p in paths:
            key = Path(p).resolve() if Path(p).exists() else Path(p)
            if key in seen:              # Timeloop reads a file named twice once
                continue
            seen.add(key)
            out.add_file(Path(p), template_vars)
        return out

    def add_file(self, path: Path, template_vars: Mapping[str, Any] | None = None) -> None:
        text = read_text(path)
        if is_template(path, text):
            from .templates import render

            text = render(path, template_vars, text)
            self.rendered.append(path)
        doc = load_yaml_text(text, path)
        self.files.append(path)
        self.add_document(doc, path)

    def add_document(self, doc: Any, path: Path) -> None:
        """Add the sections of one loaded file."""
        if doc is None:
            return
        if isinstance(doc, list):
            self._add(Section("mapping", None, doc, path, line_of(doc, None, 1)))
            return
        if not isinstance(doc, Mapping):
            raise HwcostError("expected a map of sections (architecture, problem, variables, "
                              "mapper, constraints...)", file=path, line=line_of(doc, None, 1))
        if "problem" not in doc and ("shape" in doc or "instance" in doc):
            self._add(Section("problem", None, doc, path, line_of(doc, None, 1)))
            return
        for key, value in doc.items():
            line = line_of(doc, key)
            kind = section_kind(str(key), value)
            if kind is None:
                hint = " (pass ERT files with --ert)" if str(key) in ("ERT", "ART") else ""
                raise HwcostError(f"unknown top-level section {str(key)[:40]!r}{hint} "
                                  f"(known: {', '.join(_KNOWN)})", file=path, line=line)
            if kind == "sparse" and _has_content(value):
                raise HwcostError("sparse_optimizations are not supported: hwcost models "
                                  "dense workloads", file=path, line=line)
            if kind == "globals" and isinstance(value, Mapping) and \
                    _has_content(value.get("expression_custom_functions")):
                raise HwcostError("globals.expression_custom_functions: custom Python "
                                  "functions in expressions are not supported (hwcost "
                                  "evaluates only its own functions)", file=path, line=line)
            if kind in ("version", "ignored", "globals", "sparse"):
                continue
            self._add(Section(kind, str(key), value, path, line))

    def _add(self, section: Section) -> None:
        if section.kind in SINGLE:
            first = self.first(section.kind)
            if first is not None:
                raise HwcostError(f"{section.kind} given twice: here and in "
                                  f"{_where(first)}", file=section.path, line=section.line)
        self.sections.append(section)

    def merge(self, other: SpecInputs) -> SpecInputs:
        """The sections of both (``other``'s after this one's), with the same checks."""
        out = SpecInputs(list(self.sections), self.files + other.files,
                         self.rendered + other.rendered)
        for s in other.sections:
            out._add(s)
        return out

    # -- access ----------------------------------------------------------------------------

    def of(self, kind: str) -> list[Section]:
        return [s for s in self.sections if s.kind == kind]

    def first(self, kind: str) -> Section | None:
        found = self.of(kind)
        return found[0] if found else None

    def variables(self) -> tuple[dict[str, Any], dict[str, Section]]:
        """The merged ``variables`` (raw values) and the section each came from; the
        architecture's own ``variables`` map (an older hwcost layout) counts too."""
        out: dict[str, Any] = {}
        origin: dict[str, Section] = {}
        blocks = list(self.of("variables"))
        arch = self.first("architecture")
        if arch is not None and isinstance(arch.value, Mapping) and \
                isinstance(arch.value.get("variables"), Mapping):
            blocks.append(Section("variables", "variables", arch.value["variables"],
                                  arch.path, line_of(arch.value, "variables")))
        for block in blocks:
            if block.value is None:
                continue
            if not isinstance(block.value, Mapping):
                raise HwcostError("'variables' must be a map of names to values",
                                  file=block.path, line=block.line)
            for name, value in block.value.items():
                name = str(name)
                if name == "version":
                    continue
                if name in out and plain(out[name]) != plain(value):
                    raise HwcostError(f"variable {name!r} given twice with different values "
                                      f"(also in {_where(origin[name])})", file=block.path,
                                      line=line_of(block.value, name))
                out.setdefault(name, value)
                origin.setdefault(name, block)
        return out, origin


def _where(section: Section) -> str:
    return f"{section.path}:{section.line}" if section.line else str(section.path)


def _has_content(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, Mapping):
        return any(_has_content(v) for k, v in value.items() if k != "version")
    if isinstance(value, list):
        return any(_has_content(v) for v in value)
    return True


def spec_scope(inputs: SpecInputs | None, problem: Any = None,
               no_problem: str | None = None) -> Scope:
    """The scope of the spec's expressions: its ``variables`` (each evaluated in this
    scope when used), ``variables`` as a map and ``spec``, a read-only view of every
    section (``spec.problem.instance``, ``spec.variables``...).

    ``problem`` (a raw problem map) stands in for a spec without a ``problem`` section;
    ``no_problem`` is the message for ``spec.problem`` when there is neither.
    """
    inputs = inputs or SpecInputs()
    variables, _ = inputs.variables()
    data: dict[str, Any] = {}
    for s in inputs.sections:
        value = s.value
        if s.kind == "problem" and s.key is None and isinstance(value, Mapping):
            value = value.get("problem", value)
        if s.kind in SINGLE:
            data.setdefault(s.kind, value)
        elif s.kind == "constraints" and s.key is not None:
            data.setdefault(s.key, value)
    if "problem" not in data and problem is not None:
        data["problem"] = problem
    data["variables"] = variables
    missing = {"problem": no_problem or "spec.problem is not available: no problem was "
               "given with the architecture (add --problem)"}
    base = Scope(where="spec")
    scope = base.child(variables, where="variables")
    variables_view = View(variables, "spec.variables", scope, own=True)
    base.fixed["variables"] = variables_view
    base.fixed["spec"] = _SpecView(data, scope, missing, variables_view)
    return scope


class _SpecView(View):
    """``spec``: its sections, with ``spec.variables`` resolved like the bare names."""

    def __init__(self, data: Mapping[str, Any], scope: Scope, missing: Mapping[str, str],
                 variables: View):
        super().__init__(data, "spec", scope, missing)
        self._variables = variables

    def item(self, key: Any, budget: list[int]) -> Any:
        if key == "variables":
            return self._variables
        return super().item(key, budget)
