"""The YAML loader: positions of keys and values, YAML 1.2 scalars, and every rejection."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bpfrun.errors import Loc, UsageError, ValidationError
from bpfrun.frontend.loader import MAX_EXPANDED_NODES, Document, load_file, load_text

RUNBOOK = """\
apiVersion: bpfrun/v1
name: demo
steps:
  - id: writes
    probes:
      - probe: tracepoint:syscalls:sys_enter_write
        where: comm != "bpfrun"
      - probe: 'tracepoint:syscalls:sys_enter_read'
        where: |
          pid > 1
"""


def errors(text: str, path: str = "t.yaml") -> list[str]:
    """`line:col: message` of every diagnostic load_text raises."""
    with pytest.raises(ValidationError) as info:
        load_text(text, path)
    return [f"{d.loc.line}:{d.loc.col}: {d.message}" for d in info.value.diagnostics
            if d.loc is not None]


# --- positions -------------------------------------------------------------------------------

def test_data_is_plain_python() -> None:
    doc = load_text(RUNBOOK, "demo.yaml")
    assert doc.data["steps"][0]["probes"][0]["where"] == 'comm != "bpfrun"'
    assert doc.data["steps"][0]["probes"][1]["where"] == "pid > 1\n"
    assert type(doc.data) is dict and type(doc.data["steps"]) is list
    assert doc.path == "demo.yaml" and doc.text == RUNBOOK


def test_nested_value_and_key_positions() -> None:
    doc = load_text(RUNBOOK, "demo.yaml")
    where = ("steps", 0, "probes", 0, "where")
    assert doc.loc(where) == Loc("demo.yaml", 7, 16, "", len('comm != "bpfrun"'))
    assert doc.key_loc(where) == Loc("demo.yaml", 7, 9, "", len("where"))
    assert doc.loc(("steps", 0, "id")) == Loc("demo.yaml", 4, 9, "", len("writes"))
    # A mapping in a list starts at its first key; the list starts at its first dash.
    assert (doc.loc(("steps", 0)).line, doc.loc(("steps", 0)).col) == (4, 5)
    assert (doc.loc(("steps",)).line, doc.loc(("steps",)).col) == (4, 3)


def test_scalar_styles_are_recorded() -> None:
    doc = load_text(RUNBOOK, "demo.yaml")
    quoted = doc.loc(("steps", 0, "probes", 1, "probe"))
    assert (quoted.line, quoted.col, quoted.style) == (8, 16, "'")
    assert quoted.length == len("'tracepoint:syscalls:sys_enter_read'")
    # Loc.inner skips the opening quote, so expression offsets map into the file.
    assert quoted.inner(0).col == 17
    block = doc.loc(("steps", 0, "probes", 1, "where"))
    assert (block.line, block.col, block.style) == (9, 16, "|")
    assert block.inner(0).line == 10
    double = load_text('a: "x y"\n').loc(("a",))
    assert (double.style, double.length) == ('"', 5)


def test_loc_falls_back_to_nearest_ancestor_and_root() -> None:
    doc = load_text(RUNBOOK, "demo.yaml")
    assert doc.loc(("steps", 0, "probes", 0, "emit")) == doc.loc(("steps", 0, "probes", 0))
    assert doc.loc(("nope", 3)) == Loc("demo.yaml", 1, 1)
    assert (doc.loc(()).line, doc.loc(()).col) == (1, 1)
    assert doc.key_loc(("steps", 0)) == doc.loc(("steps", 0))  # list items have no key


def test_aliased_values_keep_the_anchor_position() -> None:
    doc = load_text("a: &x {b: 1}\nc: *x\n")
    assert doc.data == {"a": {"b": 1}, "c": {"b": 1}}
    assert doc.data["a"] is not doc.data["c"]
    assert doc.loc(("c", "b")) == doc.loc(("a", "b"))


def test_empty_value_position_is_after_the_colon() -> None:
    doc = load_text("a: 1\nwhere:\n")
    assert doc.data["where"] is None
    assert (doc.loc(("where",)).line, doc.loc(("where",)).col) == (2, 7)


# --- YAML 1.2 scalars ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("0777", 777), ("0o17", 15), ("0x1F", 31), ("-3", -3), ("+4", 4),
    ("1.5", 1.5), (".5", 0.5), ("1e3", 1000.0), ("-.inf", float("-inf")),
    ("true", True), ("True", True), ("TRUE", True), ("false", False),
    ("~", None), ("null", None), ("NULL", None), ("", None),
    ("1:30", "1:30"), ("1_000", "1_000"), ("0b101", "0b101"), ("2024-01-02", "2024-01-02"),
    ("tRue", "tRue"), ("10s", "10s"), ("'no'", "no"), ('"on"', "on"), ("!!str 12", "12"),
])
def test_yaml_1_2_core_resolution(text: str, value: object) -> None:
    got = load_text(f"v: {text}\n").data["v"]
    assert got == value and type(got) is type(value)


def test_nan_resolves_to_float_nan() -> None:
    got = load_text("v: .NaN\n").data["v"]
    assert isinstance(got, float) and got != got


# --- rejections ------------------------------------------------------------------------------

@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "y", "n", "Yes", "NO", "On", "oFF"])
def test_yaml_1_1_booleans_are_rejected(word: str) -> None:
    fix = "true" if word.lower() in ("yes", "on", "y") else "false"
    assert errors(f"name: x\nflag: {word}\n") == [
        f"2:7: '{word}' is a YAML 1.1 boolean; write {fix} for a boolean or quote it "
        f'("{word}") for a string']


def test_yaml_1_1_boolean_words_as_keys_are_names() -> None:
    assert load_text("params:\n  n: {type: int}\n").data == {"params": {"n": {"type": "int"}}}


def test_duplicate_key_points_at_the_second_and_names_the_first() -> None:
    text = "steps:\n  - id: a\n    where: x\n    emit: [pid]\n    where: y\n"
    assert errors(text) == ["5:5: duplicate key 'where' (first at line 3, col 5)"]


def test_syntax_error_position_and_cleaned_message() -> None:
    [problem] = errors("a: 1\nb: c: d\n")
    assert problem.startswith("2:5: invalid YAML: unexpected ':'")


def test_unclosed_flow_points_at_its_start() -> None:
    assert errors("a: 1\nb: [x, y\n") == [
        "2:4: invalid YAML: a flow sequence that starts here is never closed"]


def test_tab_indentation() -> None:
    [problem] = errors("a:\n\tb: 1\n")
    assert problem.startswith("2:1: invalid YAML: a tab")


def test_two_documents_are_rejected() -> None:
    assert errors("a: 1\n---\nb: 2\n") == [
        "2:1: invalid YAML: a runbook file holds a single YAML document"]


def test_billion_laughs_is_rejected_quickly_at_the_alias() -> None:
    lines = ["a: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    started = time.perf_counter()
    found = errors("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0
    assert len(found) == 1
    assert found[0].endswith(f"expands the document beyond {MAX_EXPANDED_NODES} nodes")
    line, col = map(int, found[0].split(":")[:2])
    assert lines[line - 1][col - 1] == "*"


def test_aliases_within_the_bound_are_fine() -> None:
    text = "a: &x [1, 2, 3]\nb: [*x, *x, *x]\n"
    assert load_text(text).data["b"] == [[1, 2, 3]] * 3


def test_recursive_alias_is_rejected() -> None:
    assert errors("a: &x\n  - b\n  - *x\n") == [
        "3:5: alias '*x' refers to a node that contains it; recursive structures are not "
        "allowed"]


def test_merge_key_is_rejected() -> None:
    assert errors("a: &x {b: 1}\nc:\n  <<: *x\n  d: 2\n") == [
        "3:3: merge keys ('<<') are not supported"]


@pytest.mark.parametrize(("text", "expected"), [
    ("a: 1\n3: x\n", "2:1: key '3' is not a string"),
    ("a: 1\ntrue: x\n", "2:1: key 'true' is not a string"),
    ("a: 1\n~: x\n", "2:1: key '~' is not a string"),
    ("a: 1\n[x]: y\n", "2:1: a mapping key must be a plain string, not a list, mapping or tag"),
])
def test_non_string_keys_are_rejected(text: str, expected: str) -> None:
    assert errors(text) == [expected]


def test_quoted_number_key_is_a_string() -> None:
    assert load_text('"3": x\n').data == {"3": "x"}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "~\n", "---\n"])
def test_empty_document(text: str) -> None:
    assert errors(text) == ["1:1: empty runbook"]


@pytest.mark.parametrize(("text", "what"), [("- a\n- b\n", "a list"),
                                            ("just text\n", "a single value")])
def test_top_level_must_be_a_mapping(text: str, what: str) -> None:
    assert errors(text) == [
        f"1:1: a runbook must be a mapping (apiVersion: ..., name: ..., steps: ...), not {what}"]


def test_unsupported_tag() -> None:
    assert errors("a: 1\nb: !!int 3\n") == ["2:4: YAML tag '!!int' is not supported"]


def test_unprintable_character() -> None:
    assert errors("a: 1\nb: x\x07\n") == ["2:5: character #x0007 is not allowed in YAML"]


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    # Refused at the bracket that goes one level too deep, not at 1:1 (issue #13).
    assert errors("a: " + "[" * 3000 + "]" * 3000 + "\n") == [
        "1:67: the document is nested more than 64 levels deep"]


def test_all_problems_are_reported_together_sorted() -> None:
    text = "a: yes\nb: 1\nb: 2\nc: off\n"
    with pytest.raises(ValidationError) as info:
        load_text(text, "many.yaml")
    assert [(d.loc.line, d.loc.col) for d in info.value.diagnostics if d.loc] == [
        (1, 4), (3, 1), (4, 4)]
    assert info.value.sources == {"many.yaml": text}
    rendered = info.value.render()
    assert rendered.splitlines()[0].startswith("many.yaml:1:4: error: 'yes' is a YAML 1.1")
    assert "  a: yes\n     ^~~" in rendered


# --- files -----------------------------------------------------------------------------------

def test_load_file_uses_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rb.yaml").write_text("name: x\n")
    monkeypatch.chdir(tmp_path)
    doc = load_file("rb.yaml")
    assert isinstance(doc, Document) and doc.path == "rb.yaml"
    assert doc.loc(("name",)) == Loc("rb.yaml", 1, 7, "", 1)
    assert load_file(tmp_path / "rb.yaml").path == str(tmp_path / "rb.yaml")


def test_load_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(UsageError, match="missing.yaml"):
        load_file(missing)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(UsageError, match="binary.yaml is not UTF-8"):
        load_file(binary)
    with pytest.raises(UsageError, match="cannot read runbook"):
        load_file(tmp_path)


def test_load_file_syntax_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [\n")
    with pytest.raises(ValidationError) as info:
        load_file(bad)
    assert info.value.render().startswith(f"{bad}:1:5: error: invalid YAML: expected the node")
