/* bench prototype: raw tracepoints + the unkeyed hist and its stats in one per-CPU array entry
 * A hand-edited copy of bpfrun's generated C for runq-latency step runq
 * (bench/proto/runq_v0_hash.c, threshold=10s); loaded by bench/bccprog.py. */
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

/* Raw tracepoints get the kernel's arguments, not a formatted record: sched_switch
 * (bool preempt, struct task_struct *prev, struct task_struct *next, ...), sched_wakeup
 * (struct task_struct *p). Offsets come from the running kernel's BTF (OFF__ macros, defined
 * by the loader), never from the installed headers. */
static __always_inline u32 bench_task_pid(const void *task) {
    u32 pid = 0;
    bpf_probe_read_kernel(&pid, sizeof(pid), (const char *)task + OFF__task_struct__pid);
    return pid;
}
struct bpfrun_slow_by_key { char k0[16]; char k1[16]; };
struct bpfrun_runq_span_key { u64 k0; };
struct bpfrun_runq_span_val { u64 ts; };
struct bpfrun_dist_val { u64 slots[64]; struct bpfrun_stats st; };

BPF_PERCPU_ARRAY(agg_dist, struct bpfrun_dist_val, 1);
BPF_PERCPU_HASH(agg_slow_by, struct bpfrun_slow_by_key, u64, 10240);
BPF_HASH(pending_runq, struct bpfrun_runq_span_key, struct bpfrun_runq_span_val, 10240);

int bpfrun_runq_probe1(struct bpf_raw_tracepoint_args *ctx) {
    const void *prev = (const void *)ctx->args[1];
    const void *next = (const void *)ctx->args[2];
    struct bpfrun_runq_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = bench_task_pid(next);
    struct bpfrun_runq_span_val *pp = pending_runq.lookup(&key);
    if (!pp) return 0;
    struct bpfrun_runq_span_val pv = *pp;
    pending_runq.delete(&key);
    u64 duration = bpf_ktime_get_ns() - pv.ts;
    do {
        int zero = 0;
        struct bpfrun_dist_val *d = agg_dist.lookup(&zero);
        if (!d) { bpfrun_lost(LOST_MAP_FULL); break; }
        u64 x = duration;
        u32 slot = bpf_log2l(x / 1000ULL);
        if (slot < 64) d->slots[slot] += 1;
        bpfrun_stats_add(&d->st, (s64)x);
    } while (0);
    do {
        if (!(duration > 10000000000ULL)) break;
        struct bpfrun_slow_by_key k;
        __builtin_memset(&k, 0, sizeof(k));
        bpf_probe_read_kernel(&k.k0, 16, (const char *)next + OFF__task_struct__comm);
        bpf_probe_read_kernel(&k.k1, 16, (const char *)prev + OFF__task_struct__comm);
        u64 z = 0;
        u64 *v = agg_slow_by.lookup_or_try_init(&k, &z);
        if (v) *v += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    return 0;
}

int bpfrun_runq_probe2(struct bpf_raw_tracepoint_args *ctx) {
    struct bpfrun_runq_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = bench_task_pid((const void *)ctx->args[0]);
    struct bpfrun_runq_span_val val;
    __builtin_memset(&val, 0, sizeof(val));
    val.ts = bpf_ktime_get_ns();
    if (pending_runq.update(&key, &val) != 0) bpfrun_lost(LOST_PENDING_FULL);
    return 0;
}
