"""Clang and verifier messages are pointed back at the runbook line the C came from."""

from bpfrun.runner import _clang_errors

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
