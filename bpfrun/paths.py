"""Where bpfrun finds its shipped runbooks and schemas, installed or from a source checkout."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PKG / "_data" / name  # wheel: force-included by pyproject.toml
    if installed.is_dir():
        return installed
    return _PKG.parent / name  # source checkout / editable install


def runbooks_dir() -> Path:
    return _data_dir("runbooks")


def schema_path() -> Path:
    return _data_dir("schema") / "runbook.schema.json"


def result_schema_path() -> Path:
    """schema/result.schema.json: the shape of result.json (bpfrun.result.validate_result)."""
    return _data_dir("schema") / "result.schema.json"


def policy_schema_path() -> Path:
    """schema/policy.schema.json: the shape of a policy file (bpfrun.frontend.policy)."""
    return _data_dir("schema") / "policy.schema.json"


# The host's policy, read when no --policy is given (bpfrun.frontend.policy).
SYSTEM_POLICY = Path("/etc/bpfrun/policy.yaml")
