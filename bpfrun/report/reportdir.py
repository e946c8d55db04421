"""Where a run's report goes when `-o DIR` is not given, and the `latest` link to it.

The reports directory is, first match wins:

1. `$BPFRUN_REPORTS_DIR`, when set and not empty;
2. `/var/lib/bpfrun/reports` when running as root and that directory exists or can be created
   (created 0750: traces name other users' processes and files);
3. `$XDG_STATE_HOME/bpfrun/reports`, that is `~/.local/state/bpfrun/reports` by default.

Each run gets its own folder in it, `<runbook>-<UTC start, YYYYmmddTHHMMSSZ>` (a `-2`, `-3`
suffix when two runs start in the same second), private (0700) unless a wider mode is asked
for (`run --report-mode`), and `<reports dir>/latest` is a relative
symlink to the newest complete report: it is moved (atomically, by rename) only after
result.json is written, so `latest/result.json` is always a whole result.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

from bpfrun.errors import UsageError

REPORTS_ENV = "BPFRUN_REPORTS_DIR"
SYSTEM_REPORTS_DIR = Path("/var/lib/bpfrun/reports")
LATEST = "latest"
PRIVATE = 0o600  # report files: they name other users' processes and files, and what was read


def folder_mode(mode: int) -> int:
    """The mode of a folder whose files have `mode`: x wherever r is (0600 → 0700)."""
    return mode | (mode & 0o444) >> 2


def refuse_planted_links(folder: Path) -> None:
    """Raise UsageError when, as root, a component of `folder` is a symlink another user owns.

    Such a link (`/tmp/report -> /etc`) would let that user steer root's report files
    anywhere; the kernel's `protected_symlinks` only guards sticky world-writable folders.
    Links root owns (`/var/run -> /run`) are followed. The files themselves are safe without
    this: each is written to a new temporary file (O_EXCL) and renamed over the name, so a
    link planted at `report.md` is replaced, never followed.
    """
    if os.geteuid() != 0:
        return  # a user's links can only lead where that user may write anyway
    path = Path(os.path.abspath(folder))
    for part in (path, *path.parents):
        try:
            st = part.lstat()
        except OSError:
            continue  # not there yet: created as a folder below
        if stat.S_ISLNK(st.st_mode) and st.st_uid != 0:
            raise UsageError(f"{part} is a symbolic link owned by uid {st.st_uid}: bpfrun, "
                             "running as root, does not write a report through it",
                             hint=f"pass -o with the real path ({os.path.realpath(part)}), "
                                  "or remove the link")


def make_folder(folder: Path, mode: int = PRIVATE) -> None:
    """Create `folder` (and its parents) for files of `mode`; one that exists is left as is."""
    refuse_planted_links(folder)
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=folder_mode(mode))
    except FileExistsError:
        return
    os.chmod(folder, folder_mode(mode))  # mkdir's mode is cut by the umask


def prepare_folder(folder: Path, mode: int = PRIVATE) -> None:
    """Create `folder` before a run and check it can be written (a read-only mount, another
    user's link): UsageError now rather than after the whole measurement."""
    try:
        make_folder(folder, mode)
    except OSError as e:
        raise UsageError(f"cannot create the report folder {folder}: {e.strerror or e}",
                         hint="choose a writable directory with -o DIR") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the report to {folder}: "
                         f"{os.strerror(errno.EROFS if _read_only(folder) else errno.EACCES)}",
                         hint="choose a writable directory with -o DIR")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def reports_base() -> Path:
    """The reports directory (see the module docstring); not created here unless system-wide."""
    env = os.environ.get(REPORTS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    if os.geteuid() == 0:
        try:
            SYSTEM_REPORTS_DIR.mkdir(mode=0o750, parents=True, exist_ok=True)
        except OSError:
            pass  # read-only /var (a container, a live image): fall back to the user's
        else:
            if os.access(SYSTEM_REPORTS_DIR, os.W_OK | os.X_OK):
                return SYSTEM_REPORTS_DIR
    state = os.environ.get("XDG_STATE_HOME", "")
    home = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return home / "bpfrun" / "reports"


def default_report_dir(runbook_name: str, now: datetime | None = None,
                       base: Path | None = None, mode: int = PRIVATE) -> Path:
    """Create and return a new, empty folder for one run's report.

    `<base>/<runbook>-<YYYYmmddTHHMMSSZ>`, the time in UTC (`now`, default the current time;
    a naive `now` is taken as UTC); `base` defaults to `reports_base()`, whose rules the
    module docstring gives; the folder is made for files of `mode` (folder_mode). Raises
    UsageError when no folder can be created there.
    """
    root = base if base is not None else reports_base()
    when = now or datetime.now(UTC)
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", runbook_name).lstrip(".") or "run"
    stem = f"{name}-{when.strftime('%Y%m%dT%H%M%SZ')}"
    refuse_planted_links(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            folder = root / (stem if n == 1 else f"{stem}-{n}")
            try:
                folder.mkdir(mode=folder_mode(mode))
            except FileExistsError:
                continue
            os.chmod(folder, folder_mode(mode))  # mkdir's mode is cut by the umask
            return folder
    except OSError as e:
        raise UsageError(f"cannot create a report folder in {root}: {e.strerror or e}",
                         hint=f"pass -o DIR, or set {REPORTS_ENV} to a writable directory"
                         ) from e
    raise UsageError(f"{root} already holds 999 reports named {stem}*",
                     hint="pass -o DIR")


def link_latest(folder: Path) -> bool:
    """Point `<folder's parent>/latest` at `folder` in one rename; False if that cannot be done
    (a read-only parent, or a `latest` that is a real directory, which is left alone)."""
    link = folder.parent / LATEST
    if link.exists() and not link.is_symlink():
        return False
    tmp = folder.parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(folder.name)  # relative: the reports directory may be moved or mounted
        os.replace(tmp, link)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True
