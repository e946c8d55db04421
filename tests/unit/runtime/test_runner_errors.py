"""Runner internals: clang and verifier messages pointed back at the runbook line the C
came from, and whose memory map symbolizes a user stack."""

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
    from bpfrun.runtime.runner import StepRunner  # noqa: PLC0415

    runner = StepRunner.__new__(StepRunner)  # no BCC: only the bookkeeping is exercised
    runner._owners = {7: 100}
    runner._early = {100, 200}
    runner._known = {}
    gone = 2**22 + 12345  # above any pid_max: no /proc entry
    assert runner._sym_pid(7, gone) == 100
    assert runner._sym_pid(7, 200) == 200  # read in time: its own symbols
    assert runner._sym_pid(8, gone) == gone  # nobody else stored it: nothing better
