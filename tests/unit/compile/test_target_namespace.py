"""A target whose level is only a floor (bpfrun inside a cgroup namespace that mounts its own
part of the hierarchy, issue #17): the handlers call one search of the task's ancestors from
the floor down instead of reading one level."""

from __future__ import annotations

from bpfrun.compile.lower.target import aim
from bpfrun.compile.program import CgroupFilter, Handler, Program


def test_a_floor_level_searches_the_ancestors_from_it() -> None:
    prog = Program("s", handlers=[Handler("a", "void", "", ["x();"]),
                                  Handler("b", "void", "", ["y();"], span_end=True)])
    aim(prog, CgroupFilter(4242, 1, "cgroup / (the root of this cgroup namespace)",
                           level_exact=False))
    assert prog.handlers[0].body[0].startswith("if (!bpfrun_in_target()) return 0;")
    assert prog.handlers[1].body == ["y();"]
    [search] = prog.maps
    assert "for (int level = 1; level < 1 + 32; level++)" in search
    assert "if (id == 4242ULL) return 1;" in search and "if (id == 0) return 0;" in search
