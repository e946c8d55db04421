"""Shared test set-up: the `bpf` and `chromium` markers' skip-or-fail rules, `repo_root`.

A test marked `@pytest.mark.bpf` loads real BPF programs. On a machine that cannot (not root,
no BCC, no tracefs, no headers) it is skipped with the reason, except where BPF is required
(BPFRUN_REQUIRE_BPF=1, or CI=true): there the same reason fails the test, so CI never passes by
silently skipping the end-to-end runs.

A test marked `@pytest.mark.chromium` drives a headless Chromium (Debian's `chromium`). Without
one it is skipped, except in CI (CI=true) or with BPFRUN_REQUIRE_CHROMIUM=1, where it fails:
scripts/setup.sh installs chromium when CI=true or BPFRUN_WITH_CHROMIUM=1.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
UNIT = REPO_ROOT / "tests" / "unit"

# What a real BPF run cannot do without; optional kernel features are the tests' own business.
_BPF_PREREQUISITES = ("privileges", "bcc", "kernel headers", "tracefs")


def bpf_required() -> bool:
    """True where a missing BPF environment must fail tests instead of skipping them."""
    if os.environ.get("BPFRUN_REQUIRE_BPF", "") not in ("", "0"):
        return True
    return os.environ.get("CI", "").lower() in ("true", "1")


@functools.cache
def bpf_unavailable_reason() -> str | None:
    """Why this machine cannot run BPF programs, or None when it can. Checked once per session."""
    try:
        from bpfrun.runtime.doctor import run_checks

        checks = run_checks()
    except Exception as exc:  # a broken doctor must not pass for a working machine
        return f"bpfrun.runtime.doctor.run_checks() failed: {type(exc).__name__}: {exc}"
    failed = [c for c in checks if c.name in _BPF_PREREQUISITES and not c.ok]
    if not failed:
        return None
    return "; ".join(
        f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in failed
    )


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def chromium_path() -> str | None:
    """The headless browser the HTML tests drive, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chromium: drives a headless Chromium (Debian package chromium)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("chromium") is not None and chromium_path() is None:
        ci = os.environ.get("CI", "").lower() in ("true", "1")
        if ci or _flag("BPFRUN_REQUIRE_CHROMIUM"):
            pytest.fail("no chromium on PATH, and it is required here (CI=true or "
                        "BPFRUN_REQUIRE_CHROMIUM=1): run scripts/setup.sh with CI=true or "
                        "BPFRUN_WITH_CHROMIUM=1, or apt-get install chromium", pytrace=False)
        pytest.skip("no chromium on PATH (apt-get install chromium, or BPFRUN_WITH_CHROMIUM=1 "
                    "scripts/setup.sh)")
    if item.get_closest_marker("bpf") is None:
        return
    if UNIT in Path(str(getattr(item, "path", "/"))).parents:
        pytest.fail("a test that loads BPF programs belongs in tests/bpf/, not tests/unit/ "
                    "(which must run in seconds without root)", pytrace=False)
    reason = bpf_unavailable_reason()
    if reason is None:
        return
    if bpf_required():
        pytest.fail(
            f"this machine cannot run BPF, and BPF is required here "
            f"(BPFRUN_REQUIRE_BPF=1 or CI=true): {reason}",
            pytrace=False,
        )
    pytest.skip(f"this machine cannot run BPF: {reason}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder (holds pyproject.toml, runbooks/, tests/)."""
    return REPO_ROOT
