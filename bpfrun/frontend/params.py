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

PARAM_TYPES = ("int", "string", "bool", "duration", "size", "pid")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def convert(ptype: str, raw: Any) -> Any:
    """Turn a raw value (YAML scalar or command-line string) into the param's typed value.

    Raises ValueError with a message that says what was expected.
    """
    if ptype == "string":
        if isinstance(raw, (dict, list)):
            raise ValueError("expected a string")
        return "" if raw is None else str(raw)
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
        try:
            value = int(str(raw).strip(), 0)
        except ValueError:
            raise ValueError(f"{raw!r} is not an integer") from None
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
            return Size(raw)
        return Size(parse_size(str(raw)))
    raise ValueError(f"unknown param type {ptype!r}")


def display(value: Any) -> str:
    """How a typed value is shown in reports and result.json's params."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def check_defaults(runbook: Runbook, diags: Diagnostics) -> None:
    for p in runbook.params:
        if p.has_default and p.default is not None:
            try:
                value = convert(p.type, p.default)
            except ValueError as e:
                diags.error(f"default of param '{p.name}': {e}", p.loc)
                continue
            if p.choices and value not in [convert(p.type, c) for c in p.choices]:
                diags.error(f"default of param '{p.name}' is not one of its choices", p.loc)


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
    if p.choices and value not in [convert(p.type, c) for c in p.choices]:
        options = ", ".join(display(convert(p.type, c)) for c in p.choices)
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
