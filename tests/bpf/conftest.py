"""Every result.json a real run writes is a valid result.json (schema/result.schema.json).

The unit tests check the schema against recorded and built results; these tests are where
real programs fill it with what a kernel gives (stack frames, decoded keys, lost counts), so
each test here also fails when a result.json it made does not pass `validate_result`.

The tests write their reports under their `tmp_path` (`bpfrun run -o`, `run_selftest(out_dir=)`).
Runs that choose their own folder are steered there as well, for the duration of the test:
the default reports folder (`BPFRUN_REPORTS_DIR`) and the temporary folders of `bpfrun test`
without `-o` (`TMPDIR`, and `tempfile.tempdir` for runs in this process).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest

from bpfrun.result import validate_result

_OUTPUT_ROOT = pytest.StashKey[Path]()
PROBLEMS_SHOWN = 20


@pytest.fixture(autouse=True)
def _results_land_in_tmp_path(request: pytest.FixtureRequest, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "_bpfrun"
    (scratch / "tmp").mkdir(parents=True)
    monkeypatch.setenv("BPFRUN_REPORTS_DIR", str(scratch / "reports"))
    monkeypatch.setenv("TMPDIR", str(scratch / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch / "tmp"))
    request.node.stash[_OUTPUT_ROOT] = tmp_path


def invalid_results(root: Path) -> list[str]:
    """`<path>: <problem>` for every problem of every result.json under `root`."""
    out: list[str] = []
    for path in sorted({p.resolve() for p in root.rglob("result.json")}):  # `latest` links
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            out.append(f"{path}: unreadable: {e}")
            continue
        out += [f"{path}: {problem}" for problem in validate_result(doc)]
    return out


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    # In the call phase, so that a bad result.json fails the test itself (not its teardown);
    # a test that already failed keeps its own failure.
    outcome = yield
    root = item.stash.get(_OUTPUT_ROOT, None)
    problems = invalid_results(root) if root is not None else []
    if problems:
        more = len(problems) - PROBLEMS_SHOWN
        pytest.fail("result.json does not match schema/result.schema.json:\n  "
                    + "\n  ".join(problems[:PROBLEMS_SHOWN])
                    + (f"\n  … and {more} more" if more > 0 else ""), pytrace=False)
    return outcome
