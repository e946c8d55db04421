"""Aggregations of one handler sharing their map work (compile/lower/sharing.py): counts and
stats keyed alike share one map entry, a count keyed by fewer of another count's keys is
summed in user space; everything else is lowered alone. Compiled through the real pipeline
against the recorded tracepoint formats (no root)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from helpers.compiling import compile_first

from bpfrun.compile.program import Program
from bpfrun.runtime.mapvalues import project, recorded


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def compiled(aggregations: str) -> tuple[Program, str]:
    c = compile_first(textwrap.dedent("""\
        apiVersion: bpfrun/v1
        name: t
        title: T
        steps:
          - id: s
            probes:
              - probe: tracepoint:syscalls:sys_exit_write
                aggregate:
        """) + textwrap.indent(textwrap.dedent(aggregations), " " * 10))
    return c.program, c.c_text


def test_counts_and_stats_keyed_alike_share_one_lookup() -> None:
    prog, c = compiled("""\
        - {id: calls, count: true, by: [pid, comm]}
        - {id: bytes, stats: args.ret, by: [pid, comm], where: args.ret > 0}
        - {id: errors, count: true, by: [pid, comm], where: args.ret < 0}
        """)
    maps = [p.map for p in prog.aggs]
    assert len(set(maps)) == 1 and [p.field for p in prog.aggs] == ["m0", "m1", "m2"]
    assert [p.id for p in prog.aggs] == ["calls", "bytes", "errors"]
    assert c.count(".lookup(&k)") == 2  # the lookup, and again after inserting a new key
    assert "struct bpfrun_stats m1;" in c and "int w1 = (args->ret > 0LL);" in c
    assert "if (!(w0 || w1 || w2)) break;" in c
    assert "if (w2) v_" in c and "->m2 += 1;" in c
    # A full map loses one update of each member that wanted one, as before.
    assert c.count("bpfrun_lost(LOST_MAP_FULL);") == 3


def test_a_count_by_fewer_keys_of_another_count_is_summed_in_user_space() -> None:
    prog, c = compiled("""\
        - {id: by_process, count: true, by: [pid]}
        - {id: by_process_fd, count: true, by: [pid, args.ret], top: 5}
        """)
    derived, source = prog.aggs
    assert (derived.id, derived.derived_from, source.derived_from) == \
        ("by_process", "by_process_fd", None)
    assert [k.expr for k in derived.keys] == ["pid"] and derived.top is None
    assert c.count("BPF_PERCPU_HASH(") == 1
    rows = [({"pid": 1, "args.ret": 3}, 2), ({"pid": 1, "args.ret": 4}, 5),
            ({"pid": 2, "args.ret": 3}, 1)]
    assert project(rows, ["pid"]) == [({"pid": 1}, 7), ({"pid": 2}, 1)]


def test_what_cannot_share_is_lowered_alone() -> None:
    prog, c = compiled("""\
        - {id: a, count: true, by: [pid, comm], where: args.ret > 0}
        - {id: b, count: true, by: [pid], where: args.ret < 0}
        - {id: c, sum: args.ret, by: [pid, comm]}
        - {id: d, hist: args.ret, by: [pid, comm]}
        - {id: e, count: true, by: [comm, pid]}
        - {id: f, count: true, by: [pid, kstack]}
        - {id: g, count: true, by: [pid, comm], sample: 1/10}
        """)
    # b's where differs from a's: not derived. c (a sum: an empty member could not be told
    # from a zero sum), d (a histogram), e (other key order), f (a stack), g (sampled): alone.
    assert all(p.derived_from is None for p in prog.aggs)
    shared = [p.id for p in prog.aggs if p.field]
    assert shared == []
    assert c.count("BPF_PERCPU_HASH(") >= 7


def test_a_member_that_never_holds_is_dropped_and_one_left_is_not_shared() -> None:
    prog, c = compiled("""\
        - {id: a, count: true, by: [pid, comm]}
        - {id: b, count: true, by: [pid, comm], where: 1 > 2}
        """)
    assert [p.id for p in prog.aggs] == ["a"] and prog.aggs[0].field == "m0"


def test_members_show_rows_only_where_they_recorded() -> None:
    assert recorded("count", 1) and not recorded("count", 0)
    assert not recorded("stats", {"count": 0, "sum": 0, "min": None, "max": None})
