"""Fuzzing `bpfrun validate` and the C it leads to (issue #13).

Properties, for runbooks drawn from the schema's shapes and for mutations of them and of the
shipped runbooks:
- validate exits 0 or 2, never with an internal error, and every error has a file:line:col
  inside the file;
- a runbook that validates compiles (every step, against the recorded tracefs);
- in its C, every runbook-supplied string is a byte comparison, a string literal or a
  comment: the C lexes with every comment and literal closed, nothing a runbook wrote shows
  in the code outside them, and the code is the same, literals and numbers aside, as for the
  same runbook with each of its strings replaced by plain letters of the same length.
Bounded: about 30 s in all on a 2-CPU VM (hypothesis' deadline off, examples counted).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.fuzz_clex import code_only, skeleton, tokens
from helpers.fuzz_runbooks import (
    EXTREMES,
    Drawn,
    dump,
    expr_string,
    mutated,
    outcome,
    paths_of,
    replaced,
    runbooks,
)
from helpers.paths import REPO, TESTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def bounded(examples: int) -> settings:
    """Fixed examples (derandomized: the same inputs on every run, so `make test` is stable
    and bounded in time); no deadline, as one example compiles C."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")
SEEDS = sorted((REPO / "runbooks").glob("*.yaml")) + sorted(
    (TESTS / "runbooks" / "valid").glob("*.yaml"))


def check_outcome(path: Path, text: str) -> Any:
    """The properties every input must have; returns the outcome for more checks."""
    path.write_text(text, encoding="utf-8")
    result = outcome(path)
    assert "internal error" not in result.stderr, f"{result.stderr}\n--- input:\n{text}"
    assert result.code in (0, 2), result.stderr
    if result.code == 2:
        assert result.errors, f"exit 2 without a positioned error:\n{result.stderr}"
        lines = text.splitlines() or [""]
        for line in result.errors:
            _, lineno, col = line.split(":")[:3]
            assert 1 <= int(lineno) <= len(lines) + 1, line
            assert int(col) >= 1, line
    for c_text in result.c_texts:
        tokens(c_text)  # every comment and literal closed, no stray character
        assert not CONTROL.search(c_text), "a raw control character in the C"
    return result


def test_the_clex_catches_an_escaped_string() -> None:
    """The checker itself: a comment closed early or a raw quote would fail it."""
    assert skeleton('/* "x" */ if (a == "*/") return 1;') == [
        "/**/", "if", "(", "a", "=", "=", '""', ")", "return", "0", ";"]
    with pytest.raises(AssertionError):
        tokens('/* title: */ evil(); /* */ x = "a')


@bounded(40)
@given(drawn=runbooks())
def test_drawn_runbooks_keep_their_strings_in_literals_and_comments(
        drawn: Drawn, tmp_path: Path) -> None:
    hostile = check_outcome(tmp_path / "fuzz.yaml", dump(drawn.data))
    benign_data = yaml.safe_load(_benign(dump(drawn.data), drawn.strings))
    benign = check_outcome(tmp_path / "benign.yaml", dump(benign_data))
    if hostile.code == 0 and benign.code == 0:
        for c_hostile, c_benign in zip(hostile.c_texts, benign.c_texts, strict=True):
            assert skeleton(c_hostile) == skeleton(c_benign)
            code = code_only(c_hostile)
            for s in drawn.strings:
                if len(s) > 3 and not s.isalnum():
                    assert s not in code, f"{s!r} reached the C outside literals"


@bounded(40)
@given(data=st.data())
def test_mutated_runbooks_are_refused_with_a_place_or_compile(
        data: st.DataObject, tmp_path: Path) -> None:
    drawn = data.draw(runbooks())
    check_outcome(tmp_path / "fuzz.yaml", dump(data.draw(mutated(drawn.data))))


@bounded(60)
@given(data=st.data())
def test_mutated_shipped_runbooks(data: st.DataObject, tmp_path: Path) -> None:
    seed = data.draw(st.sampled_from(SEEDS), label="seed")
    original = yaml.safe_load(seed.read_text(encoding="utf-8"))
    check_outcome(tmp_path / seed.name, dump(data.draw(mutated(original))))


@bounded(80)
@given(text=st.lists(st.sampled_from([*"ab:-[]{}&*!|>'\"%@` #\n\t,?0x.~", "steps", "id",
                                       "probe", "\\", "\0", "\x85", "  ", "- "]),
                     max_size=40).map("".join))
def test_yaml_noise(text: str, tmp_path: Path) -> None:
    check_outcome(tmp_path / "noise.yaml", text)


def test_an_extreme_in_every_place_of_a_shipped_runbook(tmp_path: Path) -> None:
    """Every place of syscalls.yaml gets one extreme value, in turn (exhaustive, not drawn)."""
    original = yaml.safe_load((REPO / "runbooks" / "syscalls.yaml").read_text())
    for i, path in enumerate(paths_of(original)[1:]):
        value = EXTREMES[i % len(EXTREMES)]
        check_outcome(tmp_path / "x.yaml", dump(replaced(original, path, value)))


def _benign(text: str, strings: list[str]) -> str:
    """`text` (YAML) with each hostile string swapped for letters of its UTF-8 length."""
    data = yaml.safe_load(text)

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str):
            for s in sorted(set(strings), key=len, reverse=True):
                if value == s:
                    return "a" * len(s.encode())
                quoted = expr_string(s)
                if quoted in value:
                    value = value.replace(quoted, expr_string("a" * len(s.encode())))
        return value

    return dump(swap(data))
