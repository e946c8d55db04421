"""The lowered form of one step: maps, structs, handlers, attach plan, and how to read it.

The lower package builds a Program from the model; emit.py lays it out as C; runner.py
attaches it and decodes the maps with the layouts recorded here (key fields, units, histogram
bounds). What the code needs around it (helpers, caches, buffers) is recorded here as data
when the code is produced, so emit never searches the C.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MAP_SIZE = 10240
HIST_SLOTS = 64
LIMIT_SLOT = 0xFFFFFF00  # keyed histograms: the slot of a key's first limit counter
DEFAULT_MAX_PENDING = 10240
STACK_STORAGE = 16384  # distinct stacks a step keeps, at least
STACK_NONE, STACK_LOST = 0, 1  # stack ids that are not stacks (the template's bpfrun_stack_id)
LOST_KINDS = ("map_full", "stacks", "events", "pending_full")
# Keys whose values are small integers: an aggregation keyed by one of them alone is kept in
# a per-CPU array indexed by the value (no hashing, no insertion, cannot fill), and only
# values past the end go to the hash. 512 holds every syscall number of x86_64 and arm64.
INDEX_DOMAINS = {"syscall": 512}
SPILL_MAP_SIZE = 1024  # the hash behind such an array: invalid syscall numbers and the like
CTX_TYPES = {
    "tracepoint": "void", "rawtracepoint": "struct bpf_raw_tracepoint_args",
    "kprobe": "struct pt_regs", "kretprobe": "struct pt_regs", "uprobe": "struct pt_regs",
    "uretprobe": "struct pt_regs", "usdt": "struct pt_regs",
    "profile": "struct bpf_perf_event_data", "software": "struct bpf_perf_event_data",
}


@dataclass
class KeyField:
    """One field of a map key or event record, and how to read it back in user space."""

    name: str  # C field name
    expr: str  # as written in the runbook (the result key)
    kind: str  # int | str | stack | ustack | tgid
    vtype: str  # int duration size bool str stack
    size: int = 8
    decode: str | None = None  # "syscall": an int shown by name
    caller: str | None = None  # ustack at a uprobe: field with the return address
    # ustack taken at a uretprobe: its top frame is the return address into the caller, to
    # be looked up as one (the call's line, not the line after it)
    top_return: bool = False
    signed: bool = False  # int: decode as a signed 64-bit number


@dataclass
class AggPlan:
    id: str
    kind: str
    map: str
    stats_map: str | None
    keys: list[KeyField]
    value_type: str  # int | duration | size
    unit: str | None
    scale: int  # base units per display unit
    top: int | None
    lhist: tuple[int, int, int] | None  # native min, max, step
    array: bool = False  # unkeyed: a per-CPU array indexed by slot (hist) or 0
    # Keyed by one small integer (INDEX_DOMAINS): values the per-CPU array index_map has room
    # for live there at that index, the rest in `map`.
    index_map: str | None = None
    # Pending aggregation: computed in user space from the span's pending map at the end;
    # `value_field` is the begin value summed (None: count), `tgid_field` the begin pid.
    pending: bool = False
    value_field: str | None = None
    tgid_field: str | None = None
    # hist/lhist: values L (base units) whose `x > L` count the kernel keeps beside the buckets
    # (lower/limits.py), as slots limit_slot, limit_slot + 1, ... of the same map.
    limits: tuple[int, ...] = ()
    limit_slot: int = 0
    # `sample: 1/N` on its probe: the kernel records every Nth hit; counts and sums are read
    # multiplied by N (1: every hit).
    sample: int = 1
    # A member of a map shared by aggregations keyed alike (lower/sharing.py): its value is
    # this member of the map's value struct.
    field: str | None = None
    # A count summed in user space from the rows of the aggregation with this id, whose keys
    # include all of this one's (lower/sharing.py): no map of its own.
    derived_from: str | None = None


@dataclass
class EventPlan:
    index: int
    probe: str
    id: str
    fields: list[KeyField]
    limit: int | None


@dataclass
class AttachPlan:
    kind: str
    target: tuple[str, ...]  # tracepoint (cat, event); rawtp (event,); uprobe (path, sym); ...
    fn_name: str
    probe: str  # canonical probe that runs
    requested: str  # the probe as first written
    skipped: list[str]  # why earlier candidates were not used


@dataclass
class Function:
    name: str
    ctx_type: str
    comment: str
    prologue: list[str]
    handlers: list[str]  # names of inline handler functions called in order


@dataclass
class Handler:
    name: str
    ctx_type: str
    comment: str
    body: list[str]
    caches: list[str] = field(default_factory=list)  # EVENT_CACHES the body reads
    string_compare: bool = False  # calls bpfrun_streq()
    user_mode_check: bool = False  # calls BPFRUN_IN_USER_MODE()
    span_end: bool = False  # a span's end: it only finds begins its lookup matches
    every_task: bool = False  # bookkeeping for all tasks (task_cgroup's record): no target
    # The target is tested on a thread the handler names (target_task), not the current task
    target_task: bool = False


@dataclass(frozen=True)
class CgroupFilter:
    """The run's target (--cgroup/--unit/--container/--pod): every handler returns at once
    unless the task's cgroup is this one or below it (its ancestor at `level` has `id`)."""

    id: int
    level: int
    label: str  # "unit checkout.service", "container 4f1c0ffee2b0 (docker)", ...
    kind: str = "cgroup"  # cgroup | unit | container | pod: the option given
    asked: str = ""  # as given
    path: str = ""  # relative to the unified hierarchy's root
    # False: `level` is only the least it can be (bpfrun inside a cgroup namespace that shows
    # its own part of the hierarchy, whose root's level is hidden): every level from it is tried
    level_exact: bool = True


@dataclass
class Program:
    step_id: str
    structs: list[str] = field(default_factory=list)
    maps: list[str] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    attaches: list[AttachPlan] = field(default_factory=list)
    aggs: list[AggPlan] = field(default_factory=list)
    events: list[EventPlan] = field(default_factory=list)
    pending_map: str | None = None
    uses_stacks: bool = False
    # A user stack is taken: the program tells user space which process stored each new one
    # (the bpfrun_owners buffer), to read its memory map in time.
    user_stacks: bool = False
    # Some user stack is walked through libc by its unwind table (templates/unwind.c.j2):
    # user space loads the table and each process's libc address (runtime/unwind_tables.py).
    unwind_user: bool = False
    stack_storage: int = STACK_STORAGE  # entries of the stacks map (grows with `size:`)
    event_buffer: str = "ringbuf"  # or "perf" where the kernel has no BPF ring buffer
    span_storage: str | None = None  # "task" (task-local storage) or "hash": span begins
    stop_after: int | None = None
    interval: float | None = None  # seconds between snapshots of the aggregations
    predicates: dict[str, str] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)  # kernel checks skipped (unreadable)
    cgroup: CgroupFilter | None = None  # the run's target, compiled into every handler
    # Keyed maps whose new keys the kernel counts (slot i of bpfrun_fill_map counts the keys
    # inserted into fill_maps[i]): user space knows how full each is from one read, and
    # drains it before it fills (runtime/drain.py).
    fill_maps: list[str] = field(default_factory=list)

