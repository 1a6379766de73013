"""The file helpers Accelergy's YAML loader gives Timeloop templates, confined to one folder.

Timeloop's example designs are run through a top-level template (``top.yaml.jinja2``) that
assembles the specification from other files::

    {% set problem = problem | default('_include/default_problem.yaml') %}
    problem: {{ include(problem, 'problem') }}
    architecture: {{ include(cwd() ~ '/' ~ architecture ~ '/arch.yaml', 'architecture') }}
    {% if path_exists(mapping) %} ... {% endif %}

Accelergy (``accelergy/utils/yaml.py``) provides ``cwd``, ``include``, ``include_all``,
``include_text``, ``find_path``, ``find_paths``, ``add_to_path`` and ``setenv``; newer
templates also call ``path_exists``.  hwcost provides the same names with the same meaning,
except that every path must lie inside the top template's folder (its root) and nothing
changes the environment (``setenv`` is refused):

* ``include(path, key)`` renders and parses ``path`` (a template too, with the same
  variables), takes the value at the dotted ``key`` (``'compound_components.classes'``) and
  writes it in place as one line of flow-style YAML (tags such as ``!Container`` and quoted
  strings kept), so a mistake inside the included file is reported at that file's line, and
  one in the included value at the line of the ``include`` call;
* ``include_all(pattern, key)`` does the same for every file the glob matches, as a list;
* ``include_text(path)`` is the rendered text; ``find_path``/``find_paths`` the absolute
  paths; ``path_exists`` whether a path exists; ``add_to_path`` is accepted and adds nothing
  (the root folder is already where includes are looked up).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

#: Includes may nest (an included file may include others) this deep.
MAX_INCLUDE_DEPTH = 8
#: Files one ``include_all``/``find_paths`` pattern may match.
MAX_GLOB_FILES = 256


class IncludeRefused(Exception):
    """An include helper refused its argument; the message says why (the template renderer
    reports it at the line of the call)."""


class Includes:
    """The helpers of one template: ``folder`` is its own folder (relative paths start
    there), ``root`` the folder no path may leave; ``render`` renders an included template
    at ``depth + 1``."""

    def __init__(self, folder: Path, root: Path, variables: Mapping[str, Any], depth: int,
                 render: Callable[..., str]):
        self.folder = folder.resolve()
        self.root = root.resolve()
        self.variables = dict(variables)
        self.depth = depth
        self._render = render

    def globals(self) -> dict[str, Callable[..., Any]]:
        return {"cwd": self.cwd, "path_exists": self.path_exists, "find_path": self.find_path,
                "find_paths": self.find_paths, "add_to_path": self.add_to_path,
                "include": self.include, "include_all": self.include_all,
                "include_text": self.include_text, "setenv": self.setenv}

    # -- paths -----------------------------------------------------------------------------

    def _inside(self, text: Any) -> Path:
        p = Path(str(text))
        p = p if p.is_absolute() else self.folder / p
        try:
            resolved = p.resolve()
        except (OSError, RuntimeError):
            raise IncludeRefused(f"bad path {str(text)[:80]!r}") from None
        if not resolved.is_relative_to(self.root):
            raise IncludeRefused(f"{str(text)[:80]!r} is outside the template's folder "
                                 f"{self.root} (templates may include only files there)")
        return resolved

    def cwd(self) -> str:
        return str(self.folder)

    def path_exists(self, path: Any) -> bool:
        try:
            return self._inside(path).exists()
        except IncludeRefused:
            return False

    def find_path(self, path: Any) -> str:
        p = self._inside(path)
        if not p.exists():
            raise IncludeRefused(f"file not found: {str(path)[:80]!r}")
        return str(p)

    def find_paths(self, pattern: Any) -> list[str]:
        text = str(pattern)
        base = Path(text)
        if base.is_absolute():
            try:
                rel = base.relative_to(self.folder)
            except ValueError:
                rel = None
            if rel is None:
                self._inside(text)                      # refuses outside the root
                raise IncludeRefused(f"absolute patterns must lie in the template's own "
                                     f"folder: {text[:80]!r}")
            text = str(rel)
        if ".." in Path(text).parts:
            raise IncludeRefused(f"{text[:80]!r}: patterns may not climb out with '..'")
        found: list[str] = []
        for p in sorted(self.folder.glob(text)):
            if p.is_file():
                found.append(str(self._inside(p)))
                if len(found) > MAX_GLOB_FILES:
                    raise IncludeRefused(f"{text[:80]!r} matches more than {MAX_GLOB_FILES} "
                                         "files")
        if not found:
            raise IncludeRefused(f"no file matches {str(pattern)[:80]!r}")
        return found

    def add_to_path(self, path: Any) -> str:
        self._inside(path)
        return ""

    def setenv(self, key: Any, value: Any) -> str:
        raise IncludeRefused("setenv: templates may not change the environment")

    # -- includes --------------------------------------------------------------------------

    def _load(self, path: Path) -> Any:
        from .yamlio import load_yaml_text

        if self.depth + 1 > MAX_INCLUDE_DEPTH:
            raise IncludeRefused(f"includes nested more than {MAX_INCLUDE_DEPTH} deep (a file "
                                 "that includes itself?)")
        text = self._render(path, self.variables, root=self.root, depth=self.depth + 1)
        return load_yaml_text(text, path)

    @staticmethod
    def _at(doc: Any, key: Any, path: Path) -> Any:
        node = doc
        for part in [k for k in str(key or "").split(".") if k]:
            if not isinstance(node, Mapping) or part not in node:
                have = ", ".join(str(k) for k in node) if isinstance(node, Mapping) else "none"
                raise IncludeRefused(f"{path.name} has no {part!r} (keys: {have[:120]})")
            node = node[part]
        return node

    def include(self, path: Any, key: Any = "") -> str:
        p = Path(self.find_path(path))
        return flow_yaml(self._at(self._load(p), key, p))

    def include_all(self, pattern: Any, key: Any = "") -> str:
        values = []
        for found in self.find_paths(pattern):
            p = Path(found)
            values.append(self._at(self._load(p), key, p))
        return flow_yaml(values)

    def include_text(self, path: Any) -> str:
        p = Path(self.find_path(path))
        if self.depth + 1 > MAX_INCLUDE_DEPTH:
            raise IncludeRefused(f"includes nested more than {MAX_INCLUDE_DEPTH} deep")
        return self._render(p, self.variables, root=self.root, depth=self.depth + 1)


def _plain_flow(node: Any) -> Any:
    """``node`` without comments (a comment would end the one line), tags kept, every map
    and list in flow style."""
    tag = getattr(getattr(node, "tag", None), "value", None)
    if isinstance(node, Mapping):
        out: Any = CommentedMap((k, _plain_flow(v)) for k, v in node.items())
    elif isinstance(node, (list, tuple)):
        out = CommentedSeq(_plain_flow(v) for v in node)
    else:
        return node
    if isinstance(tag, str) and tag.startswith("!"):
        out.yaml_set_ctag(node.tag)
    out.fa.set_flow_style()
    return out


def flow_yaml(node: Any) -> str:
    """``node`` as one line of flow-style YAML, to be written in place of an include."""
    yaml = YAML(typ="rt")
    yaml.width = 1 << 30
    yaml.default_flow_style = True
    buf = io.StringIO()
    yaml.dump(_plain_flow(node), buf)
    text = buf.getvalue().strip()
    if text.endswith("\n...") or text.endswith("..."):
        text = text[:-3].strip()
    return " ".join(text.splitlines())
