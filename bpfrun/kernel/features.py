"""What the kernel offers that changes the generated C: the BPF ring buffer, task-local storage
and the architecture.

Lowering reads these only through `Kernel.features()`, so a fake kernel pins them and the same
runbook gives byte-identical C on every machine. The live kernel reads them from the host, and
two environment variables override them (the real-BPF tests exercise both paths on one host).
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass

EVENT_BUFFER_ENV = "BPFRUN_EVENT_BUFFER"  # perf | ringbuf
SPAN_STORAGE_ENV = "BPFRUN_SPAN_STORAGE"  # hash | task
BTF_VMLINUX = "/sys/kernel/btf/vmlinux"
RING_BUFFER_SINCE = (5, 8)
TASK_STORAGE_SINCE = (5, 11)  # from tracing programs; needs BTF as well
TASK_PT_REGS_SINCE = (5, 15)  # bpf_task_pt_regs: user registers for unwinding; needs BTF
USER_UNWIND_ENV = "BPFRUN_USER_UNWIND"  # 0 | 1


@dataclass(frozen=True)
class Features:
    """The kernel facts the compiler decides on. The defaults are a recent x86-64 kernel's."""

    ring_buffer: bool = True  # BPF ring buffer; else events go through the perf buffer
    task_storage: bool = True  # task-local storage from tracing programs (span begins)
    arch: str = "x86_64"  # `uname -m`
    # User stacks walked through libc by its unwind table (x86-64: the template reads
    # pt_regs' registers by name). Off unless asked for or found on the host, so that a fake
    # kernel's C keeps the plain frame-pointer walk.
    user_unwind: bool = False

    @property
    def user_mode_check(self) -> bool:
        """A perf-event sample can tell that it interrupted user mode: the template knows
        where the privilege level sits in x86-64's pt_regs only."""
        return self.arch == "x86_64"


DEFAULT_FEATURES = Features()  # what a fake kernel has unless told otherwise


def _release_at_least(release: str, since: tuple[int, int]) -> bool:
    m = re.match(r"(\d+)\.(\d+)", release)
    return m is not None and (int(m.group(1)), int(m.group(2))) >= since


def host_features(release: str | None = None, machine: str | None = None,
                  env: Mapping[str, str] | None = None, btf: str = BTF_VMLINUX) -> Features:
    """The running machine's features (`uname -r`, `uname -m`, BTF), with the environment's
    overrides BPFRUN_EVENT_BUFFER=perf|ringbuf, BPFRUN_SPAN_STORAGE=hash|task and
    BPFRUN_USER_UNWIND=0|1."""
    release = platform.release() if release is None else release
    env = os.environ if env is None else env
    ring_buffer = _release_at_least(release, RING_BUFFER_SINCE)
    if env.get(EVENT_BUFFER_ENV) in ("perf", "ringbuf"):
        ring_buffer = env[EVENT_BUFFER_ENV] == "ringbuf"
    task_storage = _release_at_least(release, TASK_STORAGE_SINCE) and os.path.exists(btf)
    if env.get(SPAN_STORAGE_ENV) in ("hash", "task"):
        task_storage = env[SPAN_STORAGE_ENV] == "task"
    machine = platform.machine() if machine is None else machine
    user_unwind = (machine == "x86_64" and _release_at_least(release, TASK_PT_REGS_SINCE)
                   and os.path.exists(btf))
    if env.get(USER_UNWIND_ENV) in ("0", "1"):
        user_unwind = env[USER_UNWIND_ENV] == "1"
    return Features(ring_buffer, task_storage, machine, user_unwind)
