"""Issue #13 in the small: exact 64-bit units and params, placeholders, template arithmetic
bounds, carets inside escaped and folded scalars, and every stage's problems in one pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from bpfrun.errors import Loc
from bpfrun.expr.evaluate import EvalError, render_template
from bpfrun.expr.lexer import ExprSyntaxError
from bpfrun.expr.parser import parse, parse_template
from bpfrun.frontend.params import PLACEHOLDERS, convert, placeholder_params
from bpfrun.frontend.positions import char_locs
from bpfrun.frontend.runbooks import check_file, clean_steps
from bpfrun.units import parse_duration, parse_size

HEAD = "apiVersion: bpfrun/v1\nname: t\ntitle: T\n"


def test_durations_and_sizes_are_exact_and_64_bit() -> None:
    assert parse_duration("9007199254740993ns") == 9007199254740993  # not through a float
    assert parse_duration("1.5us") == 1500 and parse_size("0.5KiB") == 512
    with pytest.raises(ValueError, match="not a whole number of nanoseconds"):
        parse_duration("0.4ns")
    with pytest.raises(ValueError, match="must fit in 64 bits"):
        parse_duration("18446744073709551616ns")
    with pytest.raises(ValueError, match="must fit in 64 bits"):
        parse_size("9" * 400 + "GiB")


def test_params_refuse_what_the_kernel_cannot_hold() -> None:
    assert convert("int", "18446744073709551615") == 2**64 - 1
    assert convert("int", "-9223372036854775808") == -(2**63)
    for bad in ("18446744073709551616", "9" * 5000, "-9223372036854775809"):
        with pytest.raises(ValueError, match="64 bits"):
            convert("int", bad)
    with pytest.raises(ValueError, match="not valid UTF-8"):
        convert("string", "\udce9t\udce9")  # Latin-1 bytes of a command line (surrogateescape)


def test_params_without_default_get_a_placeholder_of_their_type(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(HEAD + "params:\n  a: {type: int}\n  b: {type: duration}\n"
                    "  c: {type: string, choices: [x, y]}\n  d: {type: size, default: 1KiB}\n"
                    "steps:\n  - id: s\n    probes:\n      - probe: tracepoint:a:b\n"
                    "        aggregate: [{id: c, count: true}]\n")
    rb = check_file(path).runbook
    assert rb is not None
    values = placeholder_params(rb)
    assert values["a"] == PLACEHOLDERS["int"] and values["b"] == PLACEHOLDERS["duration"]
    assert values["c"] == "x" and values["d"].bytes == 1024


@pytest.mark.parametrize(("template", "message"), [
    ("${{ 1 << 64 }}", "cannot shift by 64"),
    ("${{ 1 >> -1 }}", "cannot shift by -1"),
    ("${{ 1 << 99999999999 }}", "cannot shift by 99999999999"),
    ("${{ 18446744073709551615 + 1 }}", "does not fit in 64 bits"),
    ("${{ 4294967296 * 4294967296 }}", "does not fit in 64 bits"),
    ("${{ -params.s }}", "cannot negate a str"),
    ("${{ 1s * 18446744073709551615 }}", "does not fit in 64 bits"),
])
def test_template_arithmetic_is_bounded(template: str, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        render_template(tuple(parse_template(template)), {"params": {"s": "x"}})


def test_numbers_past_64_bits_are_refused_where_written() -> None:
    with pytest.raises(ExprSyntaxError, match="more than 40 digits") as info:
        parse("pid > " + "9" * 5000)
    assert info.value.offset == 6
    with pytest.raises(ExprSyntaxError, match="does not fit in 64 bits"):
        parse("duration > 99999999999999999999h")
    assert parse("pid == 18446744073709551615") is not None


@pytest.mark.parametrize(("line", "style", "value", "index", "col"), [
    (r'    where: "\t\tcomm == \"a\" && nosuch"', '"', '\t\tcomm == "a" && nosuch', 18, 35),
    ("    where: 'it''s && zz'", "'", "it's && zz", 8, 22),
    (r'    where: "\x41\u00e9 zz"', '"', "Aé zz", 3, 24),
])
def test_carets_find_the_character_in_the_file(line: str, style: str, value: str, index: int,
                                               col: int) -> None:
    loc = Loc("t.yaml", 1, line.index(style) + 1, style)
    assert char_locs([line], loc, value)[index] == (1, col)
    assert line[col - 1] == value[index] or value[index] in "\t\"'A"


def test_a_folded_plain_scalar_maps_each_line() -> None:
    lines = ["    where: comm == 1 &&", "      zz > 1"]
    locs = char_locs(lines, Loc("t.yaml", 1, 12, ""), "comm == 1 && zz > 1")
    assert locs[13] == (2, 7)  # `zz` on the second line


def test_problems_of_every_stage_come_together(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(HEAD + "x: yes\nsteps:\n  - id: s\n    probes:\n"
                    "      - probe: tracepoint:a:b\n        wehre: 1\n"
                    "        where: params.nope > 1\n        aggregate: [{id: c, count: true}]\n"
                    "  - id: t\n    probes:\n      - probe: tracepoint:a:b\n"
                    "        aggregate: [{id: c, count: true}]\n")
    checked = check_file(path)
    messages = [d.message for d in checked.problems]
    assert messages[0].startswith("'yes' is a YAML 1.1 boolean")
    assert "unknown key 'x' in runbook" in messages
    assert any(m.startswith("unknown key 'wehre'") for m in messages)
    assert "unknown param 'nope'" in messages
    assert clean_steps(checked) == {"t"}  # s has problems: not lowered against the kernel
