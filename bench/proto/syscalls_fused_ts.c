/* bench prototype: unkeyed hist in one per-CPU array entry + keyed aggregations fused into one hash + the span's start time in task-local storage (BPF_TASK_STORAGE) instead of a shared hash
 * (hand-edited from bench/proto/syscalls_fused.c); loaded by bench/bccprog.py. */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>

/* Counters of data that could not be recorded: the report shows them. */
enum { LOST_MAP_FULL = 0, LOST_STACKS = 1, LOST_EVENTS = 2, LOST_PENDING_FULL = 3 };
BPF_PERCPU_ARRAY(bpfrun_lost_map, u64, 4);
static __always_inline void bpfrun_lost(int kind) {
    u64 *n = bpfrun_lost_map.lookup(&kind);
    if (n) *n += 1;
}

struct bpfrun_stats { u64 count; s64 sum; s64 min; s64 max; };
static __always_inline void bpfrun_stats_add(struct bpfrun_stats *st, s64 x) {
    if (st->count == 0 || x < st->min) st->min = x;
    if (st->count == 0 || x > st->max) st->max = x;
    st->count += 1;
    st->sum += x;
}

struct bpfrun_tp_raw_syscalls_sys_exit {
    u8 __common[8];
    s64 id;
    s64 ret;
};
_Static_assert(__builtin_offsetof(struct bpfrun_tp_raw_syscalls_sys_exit, id) == 8, "id");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_raw_syscalls_sys_exit, ret) == 16, "ret");
struct bpfrun_tp_raw_syscalls_sys_enter {
    u8 __common[8];
    s64 id;
    u8 args[48];
};
_Static_assert(__builtin_offsetof(struct bpfrun_tp_raw_syscalls_sys_enter, id) == 8, "id");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_raw_syscalls_sys_enter, args) == 16, "args");
/* by_syscall (stats of duration by id), by_process (count by pid, comm) and
 * by_process_syscall (count by comm, id) all derive from one map keyed by (pid, comm, id)
 * holding duration stats: user space sums the rows it needs. One hash update per event. */
struct bpfrun_fused_key { u64 pid; char comm[16]; u64 id; };
struct bpfrun_syscalls_span_key { u64 k0; };
struct bpfrun_syscalls_span_val { u64 ts; };
struct bpfrun_latency_val { u64 slots[64]; struct bpfrun_stats st; };

BPF_PERCPU_HASH(agg_fused, struct bpfrun_fused_key, struct bpfrun_stats, 10240);
BPF_PERCPU_ARRAY(agg_latency, struct bpfrun_latency_val, 1);
/* A span keyed by the current task needs no shared map: its begin lives with the task. */
BPF_TASK_STORAGE(pending_syscalls, struct bpfrun_syscalls_span_val);

int bpfrun_syscalls_probe2(void *ctx) {
    struct bpfrun_tp_raw_syscalls_sys_exit *args = ctx;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    struct bpfrun_syscalls_span_val *pp = pending_syscalls.task_storage_get(
        (struct task_struct *)bpf_get_current_task_btf(), 0, 0);
    if (!pp || pp->ts == 0) return 0;
    struct bpfrun_syscalls_span_val pv = *pp;
    pp->ts = 0;  /* consumed: the slot stays with the task, no delete needed */
    u64 duration = bpf_ktime_get_ns() - pv.ts;
    do {
        struct bpfrun_fused_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.pid = pid_tgid >> 32;
        bpf_get_current_comm(&k.comm, 16);
        k.id = args->id;
        struct bpfrun_stats z = {};
        struct bpfrun_stats *st = agg_fused.lookup_or_try_init(&k, &z);
        if (st) bpfrun_stats_add(st, (s64)duration); else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    do {
        int zero = 0;
        struct bpfrun_latency_val *d = agg_latency.lookup(&zero);
        if (!d) { bpfrun_lost(LOST_MAP_FULL); break; }
        u64 x = duration;
        u32 slot = bpf_log2l(x / 1000ULL);
        if (slot < 64) d->slots[slot] += 1;
        bpfrun_stats_add(&d->st, (s64)x);
    } while (0);
    return 0;
}

int bpfrun_syscalls_probe3(void *ctx) {
    char s1[16] = {};
    bpf_get_current_comm(&s1, 16);
    if (!!(/* "bpfrun" */ ((u8)s1[0] == 98) && ((u8)s1[1] == 112) && ((u8)s1[2] == 102) && ((u8)s1[3] == 114) && ((u8)s1[4] == 117) && ((u8)s1[5] == 110) && (s1[6] == 0))) return 0;
    struct bpfrun_syscalls_span_val *pv = pending_syscalls.task_storage_get(
        (struct task_struct *)bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!pv) { bpfrun_lost(LOST_PENDING_FULL); return 0; }
    pv->ts = bpf_ktime_get_ns();
    return 0;
}
