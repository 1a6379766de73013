"""Which inputs are Jinja2 templates, decided without importing Jinja2.

Every spec file is checked, and most are plain YAML: keeping this test apart from
:mod:`hwmodel.templates` keeps Jinja2 out of the start-up of every command that reads no
template (``hwcost estimate`` included)."""

from __future__ import annotations

from pathlib import Path

#: File name endings that mark a template (``top.yaml.jinja2``, ``arch.j2``).
TEMPLATE_SUFFIXES = (".jinja", ".jinja2", ".j2")


def is_template(path: str | Path, text: str | None = None) -> bool:
    """Whether ``path`` is rendered with Jinja2 before it is parsed: its name ends in a
    template suffix, or its text holds Jinja markup (Timeloop renders every input file)."""
    if str(path).lower().endswith(TEMPLATE_SUFFIXES):
        return True
    return text is not None and ("{{" in text or "{%" in text or "{#" in text)
