"""An error message is one line whatever the names in it: control characters (newline,
carriage return, escape sequences, Unicode line separators) print as their escapes."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import HwcostError, one_line


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(), st.text(), st.one_of(st.none(), st.integers(1, 10**6)))
def test_every_message_is_one_line_that_keeps_the_printable_text(name, message, line):
    text = str(HwcostError(message, file=name or None, line=line))
    assert text.splitlines() == [text] or text == ""
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text
    for ch in name + message:        # printable characters survive as they are
        if ch in string.printable and ch not in "\n\r\t\x0b\x0c":
            assert ch in text


def test_a_forged_second_line_shows_as_the_name_it_is():
    err = HwcostError("not a TFApprox table", file="mul8u_sp\nError: injected.bin")
    assert str(err) == "mul8u_sp\\nError: injected.bin: not a TFApprox table"
    assert one_line("a\x1b[2Jb\u2028c\r") == "a\\x1b[2Jb\\u2028c\\r"
