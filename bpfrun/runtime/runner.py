"""Run one compiled step with BCC: load, attach, wait, read the maps, detach.

This is the only module (with bccload) that touches the kernel. It returns raw data — decoded
keys, combined per-CPU values, symbolized stacks, event rows and loss counters — and always
detaches, whatever happens while the step runs.
"""

from __future__ import annotations

import ctypes
import ipaddress
import threading
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bpfrun.compile.program import (
    LOST_KINDS,
    STACK_LOST,
    AggPlan,
    EventPlan,
    KeyField,
    Program,
)
from bpfrun.errors import MachineError, StepError
from bpfrun.kernel.resolve import SOFTWARE_EVENTS
from bpfrun.result import SymbolCounts
from bpfrun.runtime.bccload import import_bcc
from bpfrun.runtime.clangerr import StderrCapture
from bpfrun.runtime.clangerr import clang_errors as _clang_errors
from bpfrun.runtime.drain import DRAIN_TICK, Drain
from bpfrun.runtime.mapvalues import (
    TCP_STATES,
    combine,
    freeze,
    member,
    merge,
    project,
    recorded,
    syscall_name,
)
from bpfrun.runtime.overhead import Measured, OverheadMeter
from bpfrun.runtime.stacks import StackNamer, StackRef, named_key, named_rows
from bpfrun.runtime.unwind_tables import UnwindTables

PERF_PAGES = 64  # per CPU
# How often the wait loop wakes; 20 ms where the program tells of new processes' stacks
# without waking user space (their memory maps must be read before they exit).
TICK, OWNER_TICK = 0.1, 0.02
class _StackOwner(ctypes.Structure):
    """struct bpfrun_stack_owner of the template: a new user stack and its process."""

    _fields_ = [("id", ctypes.c_uint64), ("tgid", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


@dataclass
class RawAgg:
    plan: AggPlan
    rows: list[tuple[dict[str, Any], Any]]  # (key values by expr, combined value)


@dataclass
class RawEvents:
    plan: EventPlan
    rows: list[dict[str, Any]]
    seen: int  # all hits of the emitting probe, kept or not


@dataclass
class RawStep:
    aggs: list[RawAgg] = field(default_factory=list)
    events: list[RawEvents] = field(default_factory=list)
    lost: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    compile_seconds: float = 0.0
    interrupted: bool = False
    series: list[dict[str, Any]] = field(default_factory=list)  # interval snapshots
    symbols: SymbolCounts | None = None  # how well user stacks were named, when any
    overhead: Measured | None = None  # its programs' cost; None: statistics unavailable
    over_budget: Measured | None = None  # the second that broke the budget: stopped early
    budget: float | None = None  # percent; None: no limit


class StepRunner:
    def __init__(self, prog: Program, c_text: str, seconds: float,
                 stop: threading.Event, on_attached: Callable[[], None] = lambda: None,
                 on_tick: Callable[[int | None], None] = lambda _n: None,
                 budget: float | None = None) -> None:
        self.on_attached = on_attached
        self.budget = budget or None  # 0: no limit
        self.meter: OverheadMeter | None = None
        self.on_tick = on_tick
        self.perf_lost = 0
        self.prog = prog
        self.c_text = c_text
        self.seconds = seconds
        self.stop = stop
        self.bcc = import_bcc()
        self.b: Any = None
        self.events: dict[int, list[dict[str, Any]]] = {e.index: [] for e in prog.events}
        self.ev_types = {e.index: self._ctype(e) for e in prog.events}
        self.stacks: StackNamer | None = None  # once the program is loaded
        self.unwind: UnwindTables | None = None  # libc's unwind maps, once filled
        self._buffers = bool(prog.events) or prog.user_stacks  # ring/perf buffers to poll

    def run(self) -> RawStep:
        raw = RawStep()
        t0 = time.monotonic()
        self.load()
        self.stacks = StackNamer(self.b)
        self.drain = Drain(self.b, self.prog.aggs, self.prog.fill_maps)
        raw.compile_seconds = time.monotonic() - t0
        try:
            self.attach()
            attached = time.monotonic()
            meter = OverheadMeter([f.fd for f in self.b.funcs.values()], self.budget)
            self.meter = meter if meter.start() else None
            self.on_attached()
            raw.interrupted = self.wait(raw)
            raw.seconds = time.monotonic() - attached  # what the probes saw: `elapsed`
            if self.meter is not None:
                raw.overhead, raw.over_budget = self.meter.total(), self.meter.over
            raw.budget = self.budget
            self.read(raw)
        finally:
            if self.meter is not None:
                self.meter.close()
            self.b.cleanup()
        return raw

    def load(self) -> None:
        usdt = self._usdt_contexts()
        cap = StderrCapture()
        try:
            with cap:
                self.b = self.bcc.BPF(text=self.c_text.encode(), cflags=["-Wno-unused-value"],
                                      usdt_contexts=usdt)
        except Exception as e:  # BCC raises plain Exceptions for clang failures
            raise StepError(f"step '{self.prog.step_id}' did not compile: "
                            f"{_clang_errors(self.c_text, getattr(cap, 'text', str(e)))}",
                            "the generated C is saved next to the report") from None

    def _usdt_contexts(self) -> list[Any]:
        """USDT probes are enabled before compiling: BCC generates their argument readers
        and attaches them itself when the program loads."""
        from bcc import USDT  # noqa: PLC0415 (import_bcc made it importable)

        contexts = []
        for a in self.prog.attaches:
            if a.kind == "usdt":
                ctx = USDT(path=a.target[0])
                try:
                    ctx.enable_probe(probe=f"{a.target[1]}:{a.target[2]}", fn_name=a.fn_name)
                except Exception as e:
                    raise MachineError(f"cannot enable {a.probe}: "
                                       f"{str(e).splitlines()[0]}",
                                       f"list its probes: readelf -n {a.target[0]}") from None
                contexts.append(ctx)
        return contexts

    def verify(self) -> None:
        """Load every function first: a verifier rejection is a step failure (exit 4) with the
        verifier's words, unlike an attach failure, which is this machine's (exit 3)."""
        bpf = self.bcc.BPF
        types = {"tracepoint": bpf.TRACEPOINT, "rawtracepoint": bpf.RAW_TRACEPOINT,
                 "profile": bpf.PERF_EVENT, "software": bpf.PERF_EVENT}
        for a in self.prog.attaches:
            if a.kind == "usdt":
                continue  # loaded and attached by BPF() itself
            cap = StderrCapture()
            try:
                with cap:
                    self.b.load_func(a.fn_name, types.get(a.kind, bpf.KPROBE))
            except Exception:
                tail = [ln for ln in getattr(cap, "text", "").splitlines() if ln.strip()][-6:]
                raise StepError(f"the kernel's verifier rejected step '{self.prog.step_id}' "
                                f"({a.probe}): " + " | ".join(tail),
                                "the generated C is saved next to the report") from None

    def attach(self) -> None:
        from bcc import PerfSWConfig, PerfType  # noqa: PLC0415 (import_bcc made it importable)

        self.verify()
        self.unwind = UnwindTables.load(self.b, self.prog)  # before any stack is taken
        self._open_buffers()
        for a in self.prog.attaches:
            try:
                if a.kind == "tracepoint":
                    self.b.attach_tracepoint(tp=f"{a.target[0]}:{a.target[1]}", fn_name=a.fn_name)
                elif a.kind == "rawtracepoint":
                    self.b.attach_raw_tracepoint(tp=a.target[0], fn_name=a.fn_name)
                elif a.kind in ("kprobe", "kretprobe"):
                    fn = self.b.attach_kprobe if a.kind == "kprobe" else self.b.attach_kretprobe
                    fn(event=a.target[0], fn_name=a.fn_name)
                elif a.kind in ("uprobe", "uretprobe"):
                    fn = self.b.attach_uprobe if a.kind == "uprobe" else self.b.attach_uretprobe
                    fn(name=a.target[0], sym=a.target[1], fn_name=a.fn_name)
                elif a.kind == "profile":
                    unit, n = a.target[0], int(a.target[1])
                    period = {"s": 10**9, "ms": 10**6, "us": 10**3, "hz": 0}[unit]
                    opts = {"sample_freq": n} if unit == "hz" else {"sample_period": n * period}
                    self.b.attach_perf_event(ev_type=PerfType.SOFTWARE,
                                             ev_config=PerfSWConfig.CPU_CLOCK,
                                             fn_name=a.fn_name, **opts)
                elif a.kind == "software":
                    self.b.attach_perf_event(ev_type=PerfType.SOFTWARE,
                                             ev_config=SOFTWARE_EVENTS[a.target[0]],
                                             fn_name=a.fn_name, sample_period=int(a.target[1]))
                elif a.kind != "usdt":  # usdt: attached when the program loaded
                    raise MachineError(f"{a.kind} probes cannot be attached yet")
            except MachineError:
                raise
            except Exception as e:
                hint = None
                if a.kind in ("kprobe", "kretprobe"):
                    hint = "kprobes may be off on this kernel (bpfrun doctor); add a fallback"
                raise MachineError(f"cannot attach {a.probe}: {e}", hint) from None

    def _open_buffers(self) -> None:
        """Before attaching: a perf buffer drops what is sent before it is opened, and the
        first events (which `limit` counts) would be lost."""
        if self.prog.events and self.prog.event_buffer == "ringbuf":
            self.b["events"].open_ring_buffer(self._on_event)
        elif self.prog.events:
            self.b["events"].open_perf_buffer(self._on_event, page_cnt=PERF_PAGES,
                                              lost_cb=self._on_lost)
        if self.prog.user_stacks and self.prog.event_buffer == "ringbuf":
            self.b["bpfrun_owners"].open_ring_buffer(self._on_owner)
        elif self.prog.user_stacks:  # a lost notice only costs symbol names: not counted
            # Never woken (see the template); read every OWNER_TICK by _consume().
            self.b["bpfrun_owners"].open_perf_buffer(self._on_owner, page_cnt=8,
                                                     lost_cb=lambda _n: None,
                                                     wakeup_events=1 << 30)

    def wait(self, raw: RawStep) -> bool:
        """Wait out the step; True when interrupted (Ctrl-C/SIGTERM)."""
        start = time.monotonic()
        deadline = start + self.seconds
        period = OWNER_TICK if self.prog.user_stacks else TICK
        if self.drain.wanted:  # a fill check is one read: often enough for a burst of keys
            period = min(period, DRAIN_TICK)
        tick = self.prog.interval
        next_tick = start + tick if tick else None
        next_progress = start  # progress and stop_after: every TICK, however often we wake
        while (left := deadline - time.monotonic()) > 0:
            if next_tick is not None and time.monotonic() >= next_tick:
                raw.series.append({"t": round(time.monotonic() - start, 3), **self._totals()})
                next_tick += tick  # type: ignore[operator]
            if self.stop.is_set():
                return True
            if self.meter is not None and self.meter.check():
                break  # over budget: what was collected so far is read as usual
            if self._buffers:
                self._poll(int(min(left, period) * 1000) or 1)
                self._consume()
            else:
                self.stop.wait(min(left, period))
            if time.monotonic() < next_progress:
                self.drain.check()  # before a map keyed by short-lived processes fills
                continue
            next_progress = time.monotonic() + TICK
            self.drain.check(walk=True)  # and the maps without a fill counter
            hits = self._hits() if self.prog.stop_after else None
            self.on_tick(sum(len(v) for v in self.events.values()) if self.prog.events else hits)
            if self.prog.stop_after and hits is not None and hits >= self.prog.stop_after:
                break
        return self.stop.is_set()

    def _totals(self) -> dict[str, int]:
        """Each aggregation's running total: counts and sums add up, others count hits."""
        out = {}
        plans = {p.id: p for p in self.prog.aggs}
        for agg in (p for p in self.prog.aggs if not p.pending):  # those are read at the end
            # A derived count sums its source over fewer keys: the same total.
            plan = plans[agg.derived_from] if agg.derived_from else agg
            name = plan.stats_map or plan.map
            summed = plan.kind in ("count", "sum")
            hist_array = plan.array and plan.kind in ("hist", "lhist")
            tables = [name] + ([plan.index_map] if plan.index_map else [])
            out[agg.id] = plan.sample * sum(  # as if unsampled, like the final rows
                int(sum(values)) if summed else
                sum(int(v.st.count if hist_array else v.count) for v in values)
                for table in tables for _, per_cpu in self.drain.items(table)
                for values in [member(per_cpu, plan.field)])
        return out

    def _hits(self) -> int:
        return int(self.b["bpfrun_hits"][ctypes.c_int(0)].value)

    # -- reading -----------------------------------------------------------------------
    def _poll(self, timeout_ms: int) -> None:
        if self.prog.event_buffer == "ringbuf":
            self.b.ring_buffer_poll(timeout=timeout_ms)
        else:
            self.b.perf_buffer_poll(timeout=timeout_ms)

    def _consume(self) -> None:
        """Reads what was sent without a wakeup (the new user stacks' processes)."""
        if not self.prog.user_stacks:
            return
        if self.prog.event_buffer == "ringbuf":
            self.b.ring_buffer_consume()
        else:
            self.b.perf_buffer_consume()

    def _on_lost(self, count: int) -> None:
        self.perf_lost += int(count)

    def _on_owner(self, _ctx: Any, data: Any, _size: int) -> None:
        rec = ctypes.cast(data, ctypes.POINTER(_StackOwner)).contents
        assert self.stacks is not None
        self.stacks.on_owner(int(rec.id), int(rec.tgid))
        if self.unwind is not None:  # its later stacks walk through libc too
            self.unwind.add(int(rec.tgid))

    def read(self, raw: RawStep) -> None:
        if self._buffers:
            self._poll(0)
            self._consume()
        lost = self.b["bpfrun_lost_map"]
        for i, kind in enumerate(LOST_KINDS):
            raw.lost[kind] = int(sum(lost[ctypes.c_int(i)]))
        raw.lost["events"] += self.perf_lost
        raw.lost["unpaired"] = (sum(1 for _ in self.b[self.prog.pending_map])
                                if self.prog.pending_map else 0)
        read = {p.id: self._read_agg(p) for p in self.prog.aggs if not p.derived_from}
        for plan in self.prog.aggs:
            raw.aggs.append(RawAgg(plan, read[plan.id] if not plan.derived_from else
                                   project(read[plan.derived_from], [k.expr for k in plan.keys])))
        for ev in self.prog.events:
            seen = int(self.b["bpfrun_emitted"][ctypes.c_int(ev.index)].value)
            rows = self.events[ev.index]
            if ev.limit is not None:
                rows = rows[: ev.limit]
            raw.events.append(RawEvents(ev, rows, seen))
        self._name_stacks(raw)

    def _name_stacks(self, raw: RawStep) -> None:
        """Stack keys were read as StackRefs: name them all in one batch, then merge the
        rows whose stacks got the same names (one stack stored by several processes)."""
        refs = [v for agg in raw.aggs for key, _ in agg.rows for v in key.values()
                if isinstance(v, StackRef)]
        refs += [v for ev in raw.events for row in ev.rows for v in row.values()
                 if isinstance(v, StackRef)]
        if not refs:
            return
        assert self.stacks is not None
        named = self.stacks.resolve(refs)
        raw.symbols = self.stacks.counts
        for agg in raw.aggs:
            agg.rows = named_rows(agg.rows, named)
        for ev in raw.events:
            ev.rows = [named_key(row, named) for row in ev.rows]

    def _read_agg(self, plan: AggPlan) -> list[tuple[dict[str, Any], Any]]:
        table = self.b[plan.map]
        if plan.pending:
            return self._read_pending(plan, table)
        if plan.array:
            return self._read_array(plan, table)
        if plan.kind in ("hist", "lhist"):
            return self._read_hist(plan, table)
        rows: dict[tuple[Any, ...], tuple[dict[str, Any], Any]] = {}
        if plan.index_map:
            for i, per_cpu in self.b[plan.index_map].items():
                value = combine(plan.kind, per_cpu)
                if value != 0 if plan.kind in ("count", "sum") else value["count"]:
                    key = {plan.keys[0].expr: self._decode_field(plan.keys[0], i.value, None)}
                    rows[freeze(key)] = (key, value)
        for k, per_cpu in self.drain.items(plan.map):
            value = combine(plan.kind, member(per_cpu, plan.field))
            if plan.field and not recorded(plan.kind, value):
                continue  # the entry is another member's
            key = self._decode_key(plan.keys, k)
            ident = freeze(key)
            if ident in rows:  # same stack from several processes, merged after symbolizing
                value = merge(plan.kind, rows[ident][1], value)
            rows[ident] = (key, value)
        return list(rows.values())

    def _read_pending(self, plan: AggPlan, table: Any) -> list[tuple[dict[str, Any], Any]]:
        """Aggregate the begins still open (the span's pending map) by their begin values."""
        rows: dict[tuple[Any, ...], tuple[dict[str, Any], Any]] = {}
        for _, val in table.items():
            tgid = int(getattr(val, plan.tgid_field)) if plan.tgid_field else 0
            record = types.SimpleNamespace(tgid=tgid)
            key = {f.expr: self._decode_field(f, getattr(val, f.name), record)
                   for f in plan.keys}
            amount = int(getattr(val, plan.value_field)) if plan.value_field else 1
            ident = freeze(key)
            rows[ident] = (key, rows[ident][1] + amount if ident in rows else amount)
        return list(rows.values())

    def _read_array(self, plan: AggPlan, table: Any) -> list[tuple[dict[str, Any], Any]]:
        """Unkeyed aggregations: one row, or none when nothing was recorded."""
        if plan.kind in ("hist", "lhist"):  # one entry: {slots[], st} per CPU
            per_cpu = table[ctypes.c_int(0)]
            slots: dict[int, int] = {}
            for cpu in per_cpu:
                for i, n in enumerate(cpu.slots):
                    if n:
                        slots[i] = slots.get(i, 0) + int(n)
            stats = combine("stats", [cpu.st for cpu in per_cpu])
            return [({}, {"slots": slots, "stats": stats})] if slots else []
        value = combine(plan.kind, table[ctypes.c_int(0)])
        # An unkeyed array always has its slot: zero means nothing was recorded.
        empty = value == 0 if plan.kind in ("count", "sum") else not value["count"]
        return [] if empty else [({}, value)]

    def _read_hist(self, plan: AggPlan, table: Any) -> list[tuple[dict[str, Any], Any]]:
        groups: dict[tuple[Any, ...], dict[str, Any]] = {}
        for k, per_cpu in self.drain.items(plan.map):
            key = self._decode_key(plan.keys, k)
            g = groups.setdefault(freeze(key), {"key": key, "slots": {}, "stats": None})
            g["slots"][int(k.slot)] = g["slots"].get(int(k.slot), 0) + int(sum(per_cpu))
        assert plan.stats_map is not None
        for k, per_cpu in self.drain.items(plan.stats_map):
            key = self._decode_key(plan.keys, k)
            g = groups.setdefault(freeze(key), {"key": key, "slots": {}, "stats": None})
            st = combine("stats", per_cpu)
            g["stats"] = st if g["stats"] is None else merge("stats", g["stats"], st)
        return [(g["key"], {"slots": g["slots"], "stats": g["stats"]}) for g in groups.values()]

    def _decode_key(self, fields: list[KeyField], k: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields:
            out[f.expr] = self._decode_field(f, getattr(k, f.name), k)
        return out

    def _decode_field(self, f: KeyField, value: Any, record: Any) -> Any:
        if f.kind == "str":
            data = bytes(value) if not isinstance(value, bytes) else value
            return data.split(b"\0", 1)[0].decode("utf-8", "replace")
        if f.kind in ("stack", "ustack"):  # named after the step, all at once
            caller = int(getattr(record, f.caller)) if f.caller else None
            return StackRef(int(value), f.kind == "ustack", int(getattr(record, "tgid", 0)),
                            caller if caller and int(value) > STACK_LOST else None,
                            f.top_return)
        if f.kind == "addr":
            addr = ipaddress.ip_address(bytes(value))
            mapped = getattr(addr, "ipv4_mapped", None)  # tcp tracepoints map IPv4 into v6
            return str(mapped or addr)
        if f.decode == "syscall":
            return syscall_name(int(value))
        if f.decode == "tcp_state":
            return TCP_STATES.get(int(value), str(int(value)))
        n = int(value)
        return n - (1 << 64) if f.signed and n >= 1 << 63 else n

    # -- events ------------------------------------------------------------------------
    @staticmethod
    def _ctype(plan: EventPlan) -> type[ctypes.Structure]:
        fields: list[tuple[str, Any]] = [("probe", ctypes.c_uint32)]
        for f in plan.fields:
            if f.kind == "str":
                fields.append((f.name, ctypes.c_char * f.size))
            elif f.kind == "addr":
                fields.append((f.name, ctypes.c_ubyte * f.size))
            elif f.kind in ("stack", "ustack"):
                fields.append((f.name, ctypes.c_uint64))
                if f.caller:
                    fields.append((f.caller, ctypes.c_uint64))
            else:
                fields.append((f.name, ctypes.c_uint64))
        fields.append(("tgid", ctypes.c_uint32))
        return type(f"Event{plan.index}", (ctypes.Structure,), {"_fields_": fields})

    def _on_event(self, _ctx: Any, data: Any, _size: int) -> None:
        probe = ctypes.cast(data, ctypes.POINTER(ctypes.c_uint32)).contents.value
        plan = self.prog.events[probe]
        rows = self.events[probe]
        if plan.limit is not None and len(rows) >= plan.limit:
            return
        ev = ctypes.cast(data, ctypes.POINTER(self.ev_types[probe])).contents
        row: dict[str, Any] = {}
        for f in plan.fields:
            raw = getattr(ev, f.name)
            row[f.expr] = self._decode_field(f, raw, ev)
        rows.append(row)


