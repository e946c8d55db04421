"""Scheduled runs: a systemd oneshot service and timer per runbook, or a /etc/cron.d line.

`install` writes `bpfrun-<runbook>.service` and `.timer` into a units folder (default
/etc/systemd/system); `listing` and `remove` read and delete them. The service runs
`bpfrun run RUNBOOK --quiet` with BPFRUN_SCHEDULED=1 (the policy's `runbooks.scheduled` rule
keys on it; retention then defaults to the newest 96 reports), at low priority, within a
timeout of the runbook's step durations plus a margin, and hardened as far as BPF allows:

- `CapabilityBoundingSet`: CAP_BPF (load programs, create maps), CAP_PERFMON (perf events,
  tracepoints and uprobes, reading kernel memory and stacks), CAP_SYS_RESOURCE (raise the
  locked-memory limit BCC sets on kernels that charge maps to it, before 5.11),
  CAP_SYS_ADMIN (kernels before 5.8 have neither CAP_BPF nor CAP_PERFMON, and BCC needs it
  for some map and tracefs operations there), CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH (naming
  user stacks of other users' processes reads their /proc/PID/maps and binaries). Every other
  capability of root is dropped.
- `ProtectSystem=strict` with the state folder (/var/lib/bpfrun: reports, the run lock) and
  the cache (/var/cache/bpfrun: unwind tables) writable, and any `--prom-textfile` folder;
  `PrivateTmp`, `ProtectHome=read-only`, `NoNewPrivileges`, `UMask=0077`.
- Not set, because BPF needs them: `ProtectKernelTunables` (tracefs under /sys must stay
  writable for uprobe fallbacks), `ProtectKernelModules` (BCC may load kheaders),
  `MemoryDenyWriteExecute` (LLVM compiles in process), `PrivateDevices`, `SystemCallFilter`.

Exit codes 1 (a threshold fired) and 5 (the previous run still holds the lock) are successes
for systemd (`SuccessExitStatus`): the unit fails only when the diagnostic itself could not
run, which is what an operator's "failed units" alert should mean.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from bpfrun.errors import UsageError
from bpfrun.units import parse_duration

DEFAULT_UNIT_ROOT = Path("/etc/systemd/system")
MARKER = "# Written by bpfrun schedule install"
CAPABILITIES = ("CAP_BPF", "CAP_PERFMON", "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN",
                "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH")
STATE_DIR = "/var/lib/bpfrun"
NS = 1_000_000_000
_MINUTE, _HOUR, _DAY = 60, 3600, 86400


@dataclass(frozen=True)
class Schedule:
    """One runbook's schedule: how often, the command it runs and its limits."""

    runbook: str  # the runbook's name (units are named after it)
    every_s: int
    command: tuple[str, ...]  # argv of the scheduled `bpfrun run …`
    timeout_s: int
    random_delay_s: int
    nice: int = 10
    cpu_quota: str = "50%"
    writable: tuple[str, ...] = ()  # further folders the run writes (--prom-textfile)

    @property
    def unit(self) -> str:
        return unit_name(self.runbook)


def unit_name(runbook: str) -> str:
    return "bpfrun-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", runbook).lstrip(".") or "run")


def parse_every(text: str) -> int:
    """`--every 15m` → 900 (seconds): whole minutes that divide an hour, whole hours that
    divide a day, or whole days, so that a calendar (timer, cron) can say it."""
    try:
        seconds, rest = divmod(parse_duration(text), NS)
    except ValueError as e:
        raise UsageError(f"--every {text!r}: {e}") from None
    if rest or not _calendar_parts(seconds):
        raise UsageError(f"--every {text!r}: not a period a calendar can repeat",
                         hint="minutes that divide an hour (1m, 5m, 15m, 30m), hours that "
                              "divide a day (1h, 2h, 6h, 12h), or days (1d is 24h)")
    return seconds


def _calendar_parts(seconds: int) -> tuple[str, str, str] | None:
    """(minute, hour, day-of-month) patterns repeating every `seconds`, or None."""
    if seconds > 0 and seconds < _HOUR and seconds % _MINUTE == 0 and _HOUR % seconds == 0:
        return f"*/{seconds // _MINUTE}" if seconds > _MINUTE else "*", "*", "*"
    if seconds >= _HOUR and seconds < _DAY and seconds % _HOUR == 0 and _DAY % seconds == 0:
        return "0", f"*/{seconds // _HOUR}" if seconds > _HOUR else "*", "*"
    if seconds >= _DAY and seconds % _DAY == 0 and seconds // _DAY <= 31:
        return "0", "0", f"*/{seconds // _DAY}" if seconds > _DAY else "*"
    return None


def on_calendar(seconds: int) -> str:
    minute, hour, day = _calendar_parts(seconds) or ("*", "*", "*")
    m = "00" if minute == "0" else ("*" if minute == "*" else "00/" + minute[2:])
    h = "00" if hour == "0" else ("*" if hour == "*" else "00/" + hour[2:])
    d = "*" if day == "*" else "01/" + day[2:]
    return f"*-*-{d} {h}:{m}:00"


def timeout_for(step_seconds: list[float]) -> int:
    """The runbook's steps plus a margin for compiling each (BCC's clang takes seconds on a
    busy machine) and for writing reports: total + 60 s + 30 s a step, 25 % on top."""
    return int((sum(step_seconds) + 60 + 30 * len(step_seconds)) * 1.25) + 1


def random_delay(every_s: int) -> int:
    """Spread hosts of a fleet over a quarter of the period, at most 5 minutes."""
    return min(every_s // 4, 300)


def _exec_quote(arg: str) -> str:
    """An ExecStart argument: systemd expands % specifiers and $ variables, so both are
    doubled; quoted when it has spaces, quotes or backslashes."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def service_text(s: Schedule) -> str:
    writable = " ".join(dict.fromkeys((STATE_DIR, "/var/cache/bpfrun", *s.writable)))
    return "\n".join([
        f"{MARKER}; remove with: bpfrun schedule remove {s.runbook}",
        "[Unit]",
        f"Description=bpfrun scheduled diagnostic: {s.runbook}",
        "After=local-fs.target",
        "",
        "[Service]",
        "Type=oneshot",
        "Environment=BPFRUN_SCHEDULED=1",
        "Environment=BPFRUN_CACHE_DIR=/var/cache/bpfrun",
        "ExecStart=" + " ".join(_exec_quote(a) for a in s.command),
        "SuccessExitStatus=1 5",
        f"TimeoutStartSec={s.timeout_s}s",
        f"Nice={s.nice}",
        f"CPUQuota={s.cpu_quota}",
        "IOSchedulingClass=idle",
        "StateDirectory=bpfrun",
        "StateDirectoryMode=0750",
        "CacheDirectory=bpfrun",
        "LimitMEMLOCK=infinity",
        "CapabilityBoundingSet=" + " ".join(CAPABILITIES),
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={writable}",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "ProtectControlGroups=yes",
        "ProtectHostname=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "UMask=0077",
        "",
    ])


def timer_text(s: Schedule) -> str:
    return "\n".join([
        f"{MARKER}; remove with: bpfrun schedule remove {s.runbook}",
        "[Unit]",
        f"Description=Run the bpfrun runbook {s.runbook} every {_period(s.every_s)}",
        "",
        "[Timer]",
        f"OnCalendar={on_calendar(s.every_s)}",
        f"RandomizedDelaySec={s.random_delay_s}s",
        "Persistent=true",
        f"Unit={s.unit}.service",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ])


def cron_line(s: Schedule) -> str:
    """The /etc/cron.d line of the same schedule (no random delay: cron has none)."""
    minute, hour, day = _calendar_parts(s.every_s) or ("*", "*", "*")
    command = " ".join(shlex.quote(a) for a in s.command).replace("%", "\\%")
    return f"{minute} {hour} {day} * * root BPFRUN_SCHEDULED=1 {command}"


def _period(seconds: int) -> str:
    for unit, size in (("d", _DAY), ("h", _HOUR), ("m", _MINUTE)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def install(s: Schedule, root: Path = DEFAULT_UNIT_ROOT) -> list[Path]:
    """Write the service and timer into `root`; returns their paths. A schedule of the same
    runbook is replaced; a file of that name bpfrun did not write is left alone."""
    paths = [root / f"{s.unit}.service", root / f"{s.unit}.timer"]
    for path in paths:
        if path.exists() and MARKER not in _head(path):
            raise UsageError(f"{path} exists and was not written by bpfrun: left alone",
                             hint="remove or rename it first")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for path, text in zip(paths, (service_text(s), timer_text(s)), strict=True):
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o644)
            tmp.replace(path)
    except OSError as e:
        raise UsageError(f"cannot write units to {root}: {e.strerror or e}",
                         hint="run as root, or give --root DIR") from e
    return paths


@dataclass(frozen=True)
class Installed:
    runbook: str
    calendar: str
    command: str
    timer: Path


def listing(root: Path = DEFAULT_UNIT_ROOT) -> list[Installed]:
    """The schedules bpfrun installed in `root`, by runbook name."""
    out = []
    for timer in sorted(root.glob("bpfrun-*.timer")):
        text = _head(timer, 4096)
        if MARKER not in text:
            continue
        runbook = text.split("bpfrun schedule remove ", 1)[1].split("\n", 1)[0].strip()
        calendar = _field(text, "OnCalendar")
        service = timer.with_suffix(".service")
        command = _field(_head(service, 16384), "ExecStart") if service.exists() else "(missing)"
        out.append(Installed(runbook, calendar, command, timer))
    return out


def remove(runbook: str, root: Path = DEFAULT_UNIT_ROOT) -> list[Path]:
    """Delete the runbook's service and timer (only files bpfrun wrote); the paths removed."""
    removed = []
    for suffix in (".timer", ".service"):
        path = root / f"{unit_name(runbook)}{suffix}"
        if path.exists() and MARKER in _head(path):
            path.unlink()
            removed.append(path)
    if not removed:
        raise UsageError(f"no schedule of {runbook} in {root}",
                         hint="bpfrun schedule list shows the installed ones")
    return removed


def _head(path: Path, size: int = 512) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return f.read(size)
    except OSError:
        return ""


def _field(text: str, key: str) -> str:
    m = re.search(rf"^{key}=(.*)$", text, re.M)
    return m.group(1) if m else ""


def systemd_running() -> bool:
    """Whether this host was booted with systemd (sd_booted's test)."""
    return Path("/run/systemd/system").is_dir()
