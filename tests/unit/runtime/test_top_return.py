"""A user stack taken at a uretprobe starts with a return address: it is looked up as one
(the call's line), from the compiled key field through the stack namer to the symbolizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from helpers.paths import FIXTURES, REPO

from bpfrun.compile.pipeline import compile_step, placeholder_values
from bpfrun.frontend.params import resolve_params
from bpfrun.frontend.runbooks import load_runbook
from bpfrun.kernel.symbolize import Frame, ProcessMaps, Symbolizer
from bpfrun.kernel.tracefs import FakeKernel
from bpfrun.runtime.stacks import StackNamer, StackRef


def test_memleak_keys_say_which_user_stacks_were_taken_at_a_return() -> None:
    rb = load_runbook(str(REPO / "runbooks" / "memleak.yaml"))
    step = rb.steps[0]
    compiled = compile_step(rb, step, resolve_params(rb, {}), placeholder_values(rb, step),
                            FakeKernel(FIXTURES / "tracefs"))
    keys = {a.id: a.keys[0] for a in compiled.program.aggs if a.keys}
    # Taken at `uretprobe:libc:malloc`: directly, kept in a pending record, or copied from
    # the span's begin into an aggregation at the end (`free`).
    for agg in ("allocs", "outstanding_bytes", "outstanding_blocks", "freed"):
        assert keys[agg].kind == "ustack" and keys[agg].top_return, agg
    # Taken at a function's entry (`uprobe:libc:malloc`): the top frame is exact.
    assert keys["malloc_bytes"].caller and not keys["malloc_bytes"].top_return


class Recording(Symbolizer):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[list[list[int]], list[bool]]] = []

    def symbolize_stacks(self, maps: ProcessMaps, stacks: Sequence[Sequence[int]],
                         top_returns: Sequence[bool] = ()) -> list[list[list[Frame]]]:
        self.asked.append(([list(s) for s in stacks], list(top_returns)))
        return [[[Frame(a, "prog", function=f"f{a}")] for a in s] for s in stacks]


class FakeStacks:
    def __init__(self, stacks: dict[int, list[int]]) -> None:
        self.stacks = stacks

    def __getitem__(self, key: Any) -> Any:
        ips = self.stacks[key.value] + [0]
        return type("Trace", (), {"ip": ips})()


def test_the_namer_passes_the_top_frames_kind_to_the_symbolizer() -> None:
    symbolizer = Recording()
    bpf = {"stacks": FakeStacks({5: [0x1000, 0x2000], 6: [0x3000]})}
    namer = StackNamer(bpf, symbolizer)
    namer._maps[42] = ProcessMaps(42, ())  # noqa: SLF001 - a captured map, without /proc
    namer._early.add(42)  # noqa: SLF001
    named = namer.resolve([StackRef(5, True, 42, top_return=True), StackRef(6, True, 42)])
    assert symbolizer.asked == [([[0x1000, 0x2000], [0x3000]], [True, False])]
    assert len(named) == 2


def test_a_top_return_address_is_looked_up_one_byte_earlier() -> None:
    class Vaddrs(Symbolizer):
        def _symbolize(self, maps: ProcessMaps,
                       requests: list[tuple[int, bool]]) -> dict[tuple[int, bool], list[Frame]]:
            return {r: [Frame(r[0], "m", function="ret" if r[1] else "exact")]
                    for r in requests}

    stacks = Vaddrs().symbolize_stacks(ProcessMaps(1, ()), [[10, 20], [10, 20]], [True])
    assert [[f[0].function for f in s] for s in stacks] == [["ret", "ret"], ["exact", "ret"]]
