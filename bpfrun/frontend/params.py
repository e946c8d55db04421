"""Runbook parameters: parsing `--param name=value` and defaults into typed values.

Everything here happens before anything is loaded into the kernel, so a bad value is a usage
error (exit 2) that names the param and says what a good value looks like.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bpfrun.errors import Diagnostics, UsageError
from bpfrun.frontend.model import Param, Runbook
from bpfrun.units import Duration, Size, parse_duration, parse_size

# A param of a target type is the run's default target, as --cgroup/--unit/--container/--pod
# (which win over it): a string, "" for none; a runbook has at most one.
TARGET_TYPES = ("cgroup", "unit", "container", "pod")
PARAM_TYPES = ("int", "string", "bool", "duration", "size", "pid", *TARGET_TYPES)
# What the kernel program can hold: a 64-bit integer, signed or not.
I64_MIN, U64_MAX = -(2**63), 2**64 - 1
_MAX_INT_DIGITS = 30  # longer than any 64-bit integer, short of Python's 4300-digit limit
# Values that stand in for params without a default when a runbook is checked ahead of a
# run: every check still runs, with a value of the right type.
PLACEHOLDERS = {"int": 1, "pid": 1, "string": "placeholder", "bool": True,
                "duration": Duration(1_000_000), "size": Size(4096),
                **{t: "" for t in TARGET_TYPES}}
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def convert(ptype: str, raw: Any) -> Any:
    """Turn a raw value (YAML scalar or command-line string) into the param's typed value.

    Raises ValueError with a message that says what was expected.
    """
    if ptype in TARGET_TYPES:
        return _target(ptype, convert("string", raw))
    if ptype == "string":
        if isinstance(raw, (dict, list)):
            raise ValueError("expected a string")
        text = "" if raw is None else str(raw)
        try:  # a lone surrogate (YAML "\ud800", undecodable bytes on the command line)
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"not valid UTF-8 text (at character {e.start + 1})") from None
        return text
    if ptype == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{raw!r} is not a bool (use true or false)")
    if ptype in ("int", "pid"):
        if isinstance(raw, bool):
            raise ValueError(f"{raw!r} is not an integer")
        text = str(raw).strip()
        try:
            value = int(text, 0) if len(text) <= _MAX_INT_DIGITS else None
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
        if value is None or not I64_MIN <= value <= U64_MAX:
            raise ValueError(f"{_short(text)} is out of range: an integer must fit in 64 bits")
        if ptype == "pid" and value < 0:
            raise ValueError(f"{value} is not a process id (use a number ≥ 0; 0 = any)")
        return value
    if ptype == "duration":
        if isinstance(raw, Duration):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            raise ValueError(f"{raw} has no unit (write e.g. {raw}ms or {raw}s)")
        return Duration(parse_duration(str(raw)))
    if ptype == "size":
        if isinstance(raw, Size):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            if not 0 <= raw <= U64_MAX:
                raise ValueError(f"{_short(str(raw))} is out of range: a size must fit in "
                                 "64 bits")
            return Size(raw)
        return Size(parse_size(str(raw)))
    raise ValueError(f"unknown param type {ptype!r}")


def _target(ptype: str, text: str) -> str:
    """What a target param names, checked for its form only: whether it exists is known on
    the host of the run (bpfrun.kernel.cgroups.resolve_target)."""
    text = text.strip()
    if any(not c.isprintable() for c in text):
        raise ValueError(f"{text!r} has control characters")
    if ptype in ("unit", "container") and "/" in text:
        raise ValueError(f"{_short(text)!r} is not a {ptype} name (no '/'; for a cgroup path "
                         "use a param of type cgroup)")
    if ptype == "pod" and text.count("/") > 1:
        raise ValueError(f"{_short(text)!r} is not a pod (NAMESPACE/NAME or the pod's UID)")
    return text


def target_param(runbook: Runbook, values: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, what) of the runbook's target param when its value names one, else None."""
    for p in runbook.params:
        if p.type in TARGET_TYPES and values.get(p.name):
            return p.type, str(values[p.name])
    return None


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"


def display(value: Any) -> str:
    """How a typed value is shown in reports and result.json's params."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def check_defaults(runbook: Runbook, diags: Diagnostics) -> None:
    """Each param's choices and default are values of its type; the default is a choice;
    at most one param is a target."""
    targets = [p for p in runbook.params if p.type in TARGET_TYPES]
    for p in targets[1:]:
        diags.error(f"param '{p.name}' is a second target param (type {p.type}; "
                    f"'{targets[0].name}' is the first): a run has one target", p.loc)
    for p in runbook.params:
        choices = []
        for c in p.choices:
            try:
                choices.append(convert(p.type, c))
            except ValueError as e:
                diags.error(f"choice {display(c)!r} of param '{p.name}': {e}", p.loc)
        if p.has_default and p.default is not None:
            try:
                value = convert(p.type, p.default)
            except ValueError as e:
                diags.error(f"default of param '{p.name}': {e}", p.loc)
                continue
            if choices and value not in choices:
                diags.error(f"default of param '{p.name}' is not one of its choices", p.loc)


def placeholder_params(runbook: Runbook) -> dict[str, Any]:
    """Typed values of every param for checking ahead of a run: the default where it is a
    good one, else the first choice, else a placeholder of the param's type."""
    values: dict[str, Any] = {}
    for p in runbook.params:
        candidates = ([p.default] if p.has_default else []) + list(p.choices)
        for raw in candidates:
            try:
                values[p.name] = None if raw is None else convert(p.type, raw)
                break
            except ValueError:
                continue
        else:
            values[p.name] = PLACEHOLDERS.get(p.type)
    return values


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """['a=1', 'b=x=y'] → {'a': '1', 'b': 'x=y'}; a missing '=' is a usage error."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param {item!r} is not NAME=VALUE",
                             "e.g. --param threshold=5ms")
        out[name.strip()] = value
    return out


def _check_choices(p: Param, value: Any) -> None:
    choices = []
    for c in p.choices:
        try:
            choices.append(convert(p.type, c))
        except ValueError:
            continue  # reported at the runbook's place by check_defaults
    if choices and value not in choices:
        options = ", ".join(display(c) for c in choices)
        raise ValueError(f"{display(value)!r} is not one of {options}")


def check_value(p: Param, raw: Any) -> Any:
    """`raw` as the typed value of param `p`; raises ValueError when it is not one."""
    value = convert(p.type, raw)
    _check_choices(p, value)
    return value


def resolve_params(runbook: Runbook, given: Mapping[str, str]) -> dict[str, Any]:
    """Typed values of every param: given ones converted, the rest from defaults.

    Raises UsageError naming every unknown, missing or malformed param.
    """
    problems: list[str] = []
    known = {p.name: p for p in runbook.params}
    for name in given:
        if name not in known:
            names = ", ".join(known) or "none"
            problems.append(f"unknown param '{name}' (runbook {runbook.name} takes: {names})")
    values: dict[str, Any] = {}
    for p in runbook.params:
        try:
            if p.name in given:
                values[p.name] = convert(p.type, given[p.name])
            elif p.has_default:
                values[p.name] = None if p.default is None else convert(p.type, p.default)
            else:
                problems.append(f"param '{p.name}' is required ({p.type}): "
                                f"add --param {p.name}=VALUE")
                continue
            _check_choices(p, values[p.name])
        except ValueError as e:
            problems.append(f"param '{p.name}' ({p.type}): {e}")
    if problems:
        raise UsageError("; ".join(problems))
    return values
