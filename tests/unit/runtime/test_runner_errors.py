"""Runner internals: clang and verifier messages pointed back at the runbook line the C
came from, and whose memory map symbolizes a user stack."""

import sys

import pytest

from bpfrun.runtime.runner import _clang_errors

C = """\
/* header */
/* aggregation calls: count (runbook runbooks/x.yaml:12:11) */
do {
    k.k0 = nonsense;
} while (0);
"""


def test_clang_error_names_the_runbook_line() -> None:
    log = ("/virtual/main.c:4:12: error: use of undeclared identifier 'nonsense'\n"
           "    k.k0 = nonsense;\n"
           "/virtual/main.c:1:1: warning: something harmless\n")
    msg = _clang_errors(C, log)
    assert msg == ("generated C line 4 (from runbooks/x.yaml:12:11): "
                   "use of undeclared identifier 'nonsense'")


def test_unparsed_log_is_kept() -> None:
    assert _clang_errors(C, "LLVM ERROR: something odd") == "LLVM ERROR: something odd"


def test_a_gone_process_borrows_the_symbols_of_the_first_owner_of_its_stack() -> None:
    # A forked worker whose stacks were all stored before by its parent never triggers an
    # early read of its own memory map; the same return addresses mean the same layout.
    from bpfrun.runtime.stacks import StackNamer, StackRef  # noqa: PLC0415

    namer = StackNamer(None)  # no BCC: only the bookkeeping is exercised
    namer._owners = {7: 100}
    namer._early = {100, 200}
    gone = 2**22 + 12345  # above any pid_max: no /proc entry
    assert namer._sym_pid(StackRef(7, True, gone)) == 100
    assert namer._sym_pid(StackRef(7, True, 200)) == 200  # read in time: its own symbols
    assert namer._sym_pid(StackRef(8, True, gone)) == gone  # nobody else stored it


def test_event_buffers_are_opened_before_anything_attaches(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A perf buffer drops records sent before it is opened: the first events of a step
    # (which `limit` counts as kept) were lost when the probes attached first.
    import types  # noqa: PLC0415

    from bpfrun.compile.program import AttachPlan, EventPlan, Program  # noqa: PLC0415
    from bpfrun.runtime.runner import StepRunner  # noqa: PLC0415

    calls: list[str] = []

    class Table:
        def __init__(self, name: str) -> None:
            self.name = name

        def open_perf_buffer(self, *_a: object, **_k: object) -> None:
            calls.append(f"open {self.name}")

    class FakeBPF:
        TRACEPOINT = KPROBE = RAW_TRACEPOINT = PERF_EVENT = 0

        def __getitem__(self, name: str) -> Table:
            return Table(name)

        def load_func(self, *_a: object) -> None:
            pass

        def attach_tracepoint(self, tp: str, fn_name: str) -> None:
            calls.append(f"attach {tp}")

    prog = Program("s", event_buffer="perf", user_stacks=True)
    prog.events.append(EventPlan(0, "tracepoint:a:b", "e", [], None))
    prog.attaches.append(AttachPlan("tracepoint", ("a", "b"), "f", "tracepoint:a:b",
                                    "tracepoint:a:b", []))
    runner = StepRunner.__new__(StepRunner)  # no BCC: only the order is exercised
    runner.prog, runner.b = prog, FakeBPF()
    runner.bcc = types.SimpleNamespace(BPF=FakeBPF)
    monkeypatch.setitem(sys.modules, "bcc", types.SimpleNamespace(PerfSWConfig=0, PerfType=0))
    runner.attach()
    assert calls == ["open events", "open bpfrun_owners", "attach a:b"]
