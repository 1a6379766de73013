"""Jinja2 templates of Timeloop inputs: rendered like timeloopfe renders them, in a bounded
sandbox, every failure one located line."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from core.errors import HwcostError
from hwmodel.templates import (
    MAX_TEMPLATE_STEPS,
    is_template,
    load_vars,
    parse_var,
    render,
)


def _t(tmp_path: Path, text: str, name: str = "t.yaml.jinja2") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_timeloop_style_template(tmp_path):
    """What the exercises' templates use: variables, defaults, if/else, loops, set, ~."""
    p = _t(tmp_path, """\
variables:
  INPUT_WEIGHT_DATAWIDTH: {{ input_weight_datawidth }}
  PES: {{ n_pes | default(8) }}
{%- if mac_class == "fpmac" %}
  FP: true
{%- else %}
  FP: false
{%- endif %}
{%- set spads = ["ifmap", "weights"] %}
{%- for s in spads %}
  {{ s ~ "_spad" }}: {{ loop.index }}
{%- endfor %}
""")
    text = render(p, {"input_weight_datawidth": 32, "mac_class": "fpmac"})
    assert text == ("variables:\n  INPUT_WEIGHT_DATAWIDTH: 32\n  PES: 8\n  FP: true\n"
                    "  ifmap_spad: 1\n  weights_spad: 2\n")
    assert "PES: 4" in render(p, {"input_weight_datawidth": 8, "n_pes": 4,
                                  "mac_class": "intmac"})


def test_undefined_variable_is_one_line_at_its_line(tmp_path):
    p = _t(tmp_path, "a: 1\nb: {{ psum_datawidth }}\n")
    with pytest.raises(HwcostError) as exc:
        render(p, {})
    msg = str(exc.value)
    assert msg.startswith(f"{p}:2: template variable 'psum_datawidth' is undefined")
    assert "--var psum_datawidth=VALUE" in msg and "\n" not in msg


def test_syntax_error_and_undefined_attribute_are_located(tmp_path):
    p = _t(tmp_path, "a: 1\n\n{% if x %}\n")
    with pytest.raises(HwcostError, match=rf"^{p}:3: template syntax error: Unexpected end"):
        render(p, {"x": 1})
    p = _t(tmp_path, "a: {{ cfg.depth }}\n", "u.j2")
    with pytest.raises(HwcostError, match=rf"^{p}:1: template: 'dict object' has no "
                                          "attribute 'depth'"):
        render(p, {"cfg": {}})


def test_includes_only_from_the_template_folder(tmp_path):
    (tmp_path / "parts").mkdir()
    _t(tmp_path / "parts", "depth: {{ depth }}\n", "buf.yaml")
    p = _t(tmp_path, "{% include 'parts/buf.yaml' %}\n")
    assert render(p, {"depth": 64}) == "depth: 64\n\n"
    outside = tmp_path.parent / "outside.yaml"
    outside.write_text("secret: 1\n")
    (tmp_path / "link.yaml").symlink_to(outside)
    for name, needle in (("../outside.yaml", "only files of their own folder"),
                         ("/etc/passwd", "only files of their own folder"),
                         ("link.yaml", "outside the template's folder"),
                         ("missing.yaml", "missing.yaml")):
        q = _t(tmp_path, f"a: 1\n{{% include '{name}' %}}\n", "inc.j2")
        with pytest.raises(HwcostError) as exc:
            render(q, {})
        assert str(exc.value).startswith(f"{q}:2: template include not found"), exc.value
        assert needle in str(exc.value)


def test_error_inside_an_included_file_names_that_file(tmp_path):
    inc = _t(tmp_path, "x: 1\ny: {{ nope }}\n", "part.yaml")
    p = _t(tmp_path, "{% include 'part.yaml' %}\n")
    with pytest.raises(HwcostError, match=rf"^{inc}:2: template variable 'nope'"):
        render(p, {})


@pytest.mark.parametrize("text,needle", [
    ("{{ ''.__class__.__mro__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ range.__globals__ }}", "'__globals__'"),
    ("{{ cycler }}", "'cycler' is undefined"),
    ("{{ lipsum() }}", "'lipsum' is undefined"),
    ("{{ '{:>999999999}'.format(1) }}", "attribute 'format' of 'str' object is unsafe"),
    ("{{ 'x'.center(10**9) }}", "attribute 'center' of 'str' object is unsafe"),
    ("{{ '%999999999d' % 1 }}", "string formatting with % is not available"),
    ("{% set l = [] %}{{ l.append(1) }}", "attribute 'append' of 'list' object is unsafe"),
    ("{{ 'x' * 10**9 }}", "would build a value of 1,000,000,000"),
    ("{{ [1] * 10**9 }}", "would build a value"),
    ("{{ 2 ** 100000 }}", "number too large"),
    ("{{ 10**2000 * 10**2000 }}", "number too large"),
    ("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
     "{% endfor %}", "~ would build"),
    ("{% set ns = namespace(s=['x']) %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}"
     "{% endfor %}", "+ would build"),
    ("{{ ('x' * 1000) | replace('', 'y' * 5000) }}", "replace would build"),
    ("{{ ('x' * 100000, 'y' * 100000) | join('z' * 1000000) }}", "join would build"),
    ("{{ 'a\\nb' | indent(10**7) }}", "indent would build"),
    ("{{ 'a' | center(10**9) }}", "center would build"),
    ("{{ ['x' * 900000, 'y' * 900000] | sum(start='') }}", "+ would build"),
    ("{{ 'x' | wordwrap(5) }}", "No filter named 'wordwrap'"),
    ("{{ 'x' | format(1) }}", "No filter named 'format'"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "more than 100,000 steps"),
    ("{% for i in 'x' * 99999 %}{% for j in 'y' * 99999 %}{% endfor %}{% endfor %}",
     "more than 100,000 steps"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "recursion too deep"),
    ("{% include 't.j2' %}", "recursion too deep"),
    ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
    ("{{ 'x' * 600000 }}{{ 'y' * 600000 }}", "rendered template: file size"),
])
def test_sandbox_refuses_escapes_and_blowups_quickly(tmp_path, text, needle):
    p = _t(tmp_path, text, "t.j2")
    start = time.perf_counter()
    with pytest.raises(HwcostError) as exc:
        render(p, {})
    assert time.perf_counter() - start < 5
    msg = str(exc.value)
    assert needle in msg, msg
    assert msg.startswith(str(p)) and "\n" not in msg


def test_step_limit_is_a_setting(tmp_path, monkeypatch):
    p = _t(tmp_path, "{% for i in range(500) %}{% endfor %}ok", "t.j2")
    assert render(p, {}) == "ok"
    monkeypatch.setenv(MAX_TEMPLATE_STEPS.env, "100")
    with pytest.raises(HwcostError, match="HWCOST_MAX_TEMPLATE_STEPS"):
        render(p, {})


def test_template_size_limit(tmp_path, monkeypatch):
    p = _t(tmp_path, "a: {{ 1 }}\n" * 100, "t.j2")
    monkeypatch.setenv("HWCOST_MAX_HW_FILE_BYTES", "200")
    with pytest.raises(HwcostError, match="exceeds the limit"):
        render(p, {})


def test_is_template():
    assert is_template("arch.yaml.jinja2") and is_template("a.J2") and is_template("x.jinja")
    assert not is_template("arch.yaml", "a: 1\n")
    assert is_template("arch.yaml", "a: {{ x }}\n")          # Timeloop renders every file
    assert is_template("arch.yaml", "{% if x %}a: 1{% endif %}\n")


@pytest.mark.parametrize("text,name,value", [
    ("N=8", "N", 8), ("f=1.5", "f", 1.5), ("b=true", "b", True), ("s=intmac", "s", "intmac"),
    ("q='8'", "q", "8"), ("e=", "e", ""), ("x = 3", "x", 3), ("t=a=b", "t", "a=b"),
    ("n=null", "n", None), ("u=[1", "u", "[1"),
])
def test_parse_var(text, name, value):
    assert parse_var(text) == (name, value)


@pytest.mark.parametrize("text,needle", [
    ("N", "expected NAME=VALUE"), ("1x=2", "expected NAME=VALUE"), ("=3", "expected NAME"),
    ("l=[1, 2]", "not a list"), ("m={a: 1}", "not a map"),
])
def test_parse_var_errors(text, needle):
    with pytest.raises(HwcostError, match=needle.replace("[", r"\[")):
        parse_var(text)


def test_load_vars(tmp_path):
    p = tmp_path / "vars.yaml"
    p.write_text("mac_class: fpmac\nwidths: [8, 16]\ncfg: {a: 1}\n")
    assert load_vars(p) == {"mac_class": "fpmac", "widths": [8, 16], "cfg": {"a": 1}}
    p.write_text("")
    assert load_vars(p) == {}
    p.write_text("- 1\n")
    with pytest.raises(HwcostError, match=rf"^{p}:1: a --vars file must be a map"):
        load_vars(p)
    p.write_text("ok: 1\n2bad: 3\n")
    with pytest.raises(HwcostError, match=rf"^{p}:2: bad template variable name '2bad'"):
        load_vars(p)
    with pytest.raises(HwcostError, match="file not found"):
        load_vars(tmp_path / "nope.yaml")


def test_fifo_include_is_refused(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.yaml")
    p = _t(tmp_path, "{% include 'pipe.yaml' %}\n", "t.j2")
    with pytest.raises(HwcostError):
        render(p, {})


def test_accelergy_include_helpers(tmp_path):
    """``include``/``include_all``/``include_text``/``cwd``/``path_exists``/``find_path``/
    ``add_to_path`` as Accelergy's loader gives them to Timeloop templates; included files
    are templates too and keep their tags and quoted strings."""
    (tmp_path / "parts").mkdir()
    _t(tmp_path / "parts", "architecture:\n  nodes:\n  - !Component {name: buf, "
       "attributes: {technology: \"45nm\", depth: {{ depth }}}}  # a comment\n", "arch.yaml")
    _t(tmp_path / "parts", "compound_components: {classes: [a]}\n", "c1.yaml")
    _t(tmp_path / "parts", "compound_components: {classes: [b]}\n", "c2.yaml")
    p = _t(tmp_path, """\
{{ add_to_path(cwd()) }}
architecture: {{ include(cwd() ~ '/parts/arch.yaml', 'architecture') }}
classes: {{ include_all('parts/c*.yaml', 'compound_components.classes') }}
text: {{ include_text('parts/c1.yaml') | trim | tojson }}
exists: {{ path_exists('parts/c1.yaml') }} {{ path_exists('parts/nope.yaml') }}
found: {{ find_path('parts/c1.yaml') == cwd() ~ '/parts/c1.yaml' }}
""")
    text = render(p, {"depth": 64})
    lines = text.splitlines()
    assert lines[0] == ""
    assert lines[1] == ('architecture: {nodes: [!Component {name: buf, attributes: '
                        '{technology: "45nm", depth: 64}}]}')
    assert lines[2] == "classes: [[a], [b]]"
    assert lines[3] == 'text: "compound_components: {classes: [a]}"'
    assert lines[4:] == ["exists: True False", "found: True"]


@pytest.mark.parametrize("call,needle", [
    ("include('../x.yaml')", "outside the template's folder"),
    ("include('/etc/hostname')", "outside the template's folder"),
    ("include('nope.yaml')", "file not found: 'nope.yaml'"),
    ("include('t.j2')", "includes nested more than 8 deep"),
    ("include('data.yaml', 'a.b')", "data.yaml has no 'b'"),
    ("include_all('../*.yaml')", "may not climb out"),
    ("include_all('*.none')", "no file matches"),
    ("setenv('A', 1)", "may not change the environment"),
    ("add_to_path('/')", "outside the template's folder"),
])
def test_include_helpers_refuse_with_the_calling_line(tmp_path, call, needle):
    _t(tmp_path, "a: {c: 1}\n", "data.yaml")
    p = _t(tmp_path, f"x: 1\ny: {{{{ {call} }}}}\n", "t.j2")
    with pytest.raises(HwcostError) as exc:
        render(p, {})
    msg = str(exc.value)
    assert needle in msg, msg
    assert msg.startswith(f"{p}:2: ") and "\n" not in msg


def test_error_in_an_included_yaml_file_names_that_file(tmp_path):
    bad = _t(tmp_path, "a: {c: 1\n", "bad.yaml")
    p = _t(tmp_path, "x: {{ include('bad.yaml', 'a') }}\n", "t.j2")
    with pytest.raises(HwcostError, match=rf"^{bad}:2: YAML syntax error"):
        render(p, {})


# ----------------------------------------------------------------------------- line numbers

def _random_template(rng) -> tuple[str, dict[str, int]]:
    """YAML keys (``k0: 0``, ...) among multi-line comments, one-line comments, comments
    after text, ``{% if %}`` blocks and trimmed comments before nothing of interest; returns
    the template and, per key, its 1-based line in the template."""
    lines: list[str] = []
    keys: dict[str, int] = {}
    for i in range(rng.randrange(3, 12)):
        kind = rng.choice(["comment", "short", "if", "plain", "plain"])
        if kind == "comment":
            body = "\n".join(f"  note {j}" for j in range(rng.randrange(1, 5)))
            lines.extend(("{# header\n" + body + " #}").split("\n"))
        elif kind == "short":
            lines.append("{# one line #}")
        elif kind == "if":
            lines.append("{% if flag %}")
            keys[f"c{i}"] = len(lines) + 1
            lines.append(f"c{i}: {i}")
            lines.append("{% endif %}")
            continue
        keys[f"k{i}"] = len(lines) + 1
        tail = rng.choice(["", "  {# a\n   b #}", "  # yaml comment"])
        lines.extend(f"k{i}: {i}{tail}".split("\n"))
    return "\n".join(lines) + "\n", keys


@pytest.mark.parametrize("seed", range(40))
def test_rendered_lines_are_the_template_lines(tmp_path, seed):
    """An error found in the rendered YAML names the template's line: multi-line comments
    keep their line breaks (Jinja drops them), blocks keep theirs (no trim_blocks)."""
    import random

    from ruamel.yaml import YAML

    text, keys = _random_template(random.Random(seed))
    rendered = render(_t(tmp_path, text), {"flag": True})
    doc = YAML().load(rendered)
    for key, line in keys.items():
        assert doc.lc.key(key)[0] + 1 == line, (key, text, rendered)


def test_trimmed_comments_and_raw_blocks_render_as_jinja_renders_them(tmp_path):
    import jinja2

    # trimmed on purpose; literal inside raw; text after the comment on its last line
    text = ("{#- trimmed\n  comment -#}\na: 1\n{% raw %}{# not\n a comment #}{% endraw %}\n"
            "b: 2 {# then\n text #} c\nd: 3\n")
    plain = jinja2.Environment(keep_trailing_newline=True).from_string(text).render()
    assert render(_t(tmp_path, text), {}) == plain
