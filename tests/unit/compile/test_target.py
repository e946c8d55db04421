"""A run's target (issue #17) is compiled into every handler as its first statement, but a
span's end (it completes only begins recorded, and those were filtered); the root needs none."""

from __future__ import annotations

from bpfrun.compile.lower.target import aim
from bpfrun.compile.program import CgroupFilter, Handler, Program

CHECK = "if (bpf_get_current_ancestor_cgroup_id(3) != 4242ULL) return 0;"


def program() -> Program:
    return Program("s", handlers=[Handler("a", "void", "", ["x();"]),
                                  Handler("b", "void", "", ["y();"], span_end=True)])


def test_every_handler_but_a_span_end_checks_the_target_first() -> None:
    prog = program()
    aim(prog, CgroupFilter(4242, 3, "pod p */ x"))
    assert prog.handlers[0].body[0].startswith(CHECK)
    assert "*/ x" not in prog.handlers[0].body[0]  # a label cannot end the C comment
    assert prog.handlers[1].body == ["y();"]
    assert prog.cgroup is not None and prog.cgroup.id == 4242


def test_the_root_and_no_target_add_nothing() -> None:
    for target in (None, CgroupFilter(1, 0, "cgroup /")):
        prog = program()
        aim(prog, target)
        assert prog.handlers[0].body == ["x();"]
