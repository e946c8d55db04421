"""Schedules: unit text, the cron line, install/list/remove in a folder, systemd-analyze."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.paths import REPO

from bpfrun.errors import UsageError
from bpfrun.frontend.runbooks import find_runbook, load_runbook
from bpfrun.ops import schedule as sched
from bpfrun.ops.runops import build_schedule, step_seconds


def runq_schedule(every: str = "15m", params: tuple[str, ...] = ()) -> sched.Schedule:
    rb = load_runbook(find_runbook("runq-latency"))
    return build_schedule(rb, "runq-latency", {p.name: p.default for p in rb.params},
                          params, every, ["/usr/bin/bpfrun"], ["--prom-textfile", "/var/prom"],
                          ["/var/prom"])


def test_service_text() -> None:
    s = runq_schedule(params=("threshold=5ms", "odd=a b%$"))
    text = sched.service_text(s)
    assert "Type=oneshot" in text and "Environment=BPFRUN_SCHEDULED=1" in text
    assert ("ExecStart=/usr/bin/bpfrun run runq-latency --quiet --param threshold=5ms "
            '--param "odd=a b%%$$" --prom-textfile /var/prom') in text
    assert ("CapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_RESOURCE CAP_SYS_ADMIN"
            in text)
    for line in ("ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "Nice=10", "CPUQuota=50%", "SuccessExitStatus=1 5",
                 "ReadWritePaths=/var/lib/bpfrun /var/cache/bpfrun /var/prom"):
        assert line in text.splitlines()
    rb = load_runbook(find_runbook("runq-latency"))
    total = sum(step_seconds(rb, {p.name: p.default for p in rb.params}))
    assert f"TimeoutStartSec={s.timeout_s}s" in text and s.timeout_s > total + 60


def test_timer_text() -> None:
    text = sched.timer_text(runq_schedule())
    for line in ("OnCalendar=*-*-* *:00/15:00", "RandomizedDelaySec=225s", "Persistent=true",
                 "Unit=bpfrun-runq-latency.service", "WantedBy=timers.target"):
        assert line in text.splitlines()


@pytest.mark.parametrize(("every", "calendar", "cron"), [
    ("1m", "*-*-* *:*:00", "* * *"), ("15m", "*-*-* *:00/15:00", "*/15 * *"),
    ("1h", "*-*-* *:00:00", "0 * *"), ("6h", "*-*-* 00/6:00:00", "0 */6 *"),
    ("24h", "*-*-* 00:00:00", "0 0 *")])
def test_periods(every: str, calendar: str, cron: str) -> None:
    s = runq_schedule(every)
    assert sched.on_calendar(s.every_s) == calendar
    assert sched.cron_line(s).startswith(cron + " * * root BPFRUN_SCHEDULED=1 /usr/bin/bpfrun")


@pytest.mark.parametrize("every", ["7m", "90s", "5h", "0s", "soon", "1500ms"])
def test_periods_a_calendar_cannot_repeat_are_refused(every: str) -> None:
    with pytest.raises(UsageError):
        sched.parse_every(every)


def test_install_list_remove(tmp_path: Path) -> None:
    s = runq_schedule()
    paths = sched.install(s, tmp_path)
    assert [p.name for p in paths] == ["bpfrun-runq-latency.service", "bpfrun-runq-latency.timer"]
    sched.install(s, tmp_path)  # replacing its own units is fine
    (tmp_path / "other.timer").write_text("[Timer]\n")
    [listed] = sched.listing(tmp_path)
    assert listed.runbook == "runq-latency" and listed.calendar == "*-*-* *:00/15:00"
    assert "run runq-latency --quiet" in listed.command
    assert sched.remove("runq-latency", tmp_path) == paths[::-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.timer"]
    with pytest.raises(UsageError):
        sched.remove("runq-latency", tmp_path)


def test_foreign_unit_of_the_same_name_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "bpfrun-runq-latency.service").write_text("[Service]\nExecStart=/bin/true\n")
    with pytest.raises(UsageError):
        sched.install(runq_schedule(), tmp_path)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    s = runq_schedule()
    s = sched.Schedule(s.runbook, s.every_s, ("/bin/true", *s.command[1:]), s.timeout_s,
                       s.random_delay_s)  # verify checks that the binary exists
    paths = sched.install(s, tmp_path)
    done = subprocess.run(["systemd-analyze", "verify", *map(str, paths)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_cli_install_prints_the_cron_line_without_systemd(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bpfrun", "schedule", "install",
                           "runq-latency", "--every", "15m", "--init", "cron"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("*/15 * * * * root BPFRUN_SCHEDULED=1 ")
    done = subprocess.run([sys.executable, "-m", "bpfrun", "schedule", "install",
                           "runq-latency", "--every", "15m", "--init", "systemd",
                           "--root", str(tmp_path), "-p", "nope=1"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2 and not list(tmp_path.iterdir())
