/* bench snapshot: what `bpfrun compile` generated at commit 4137b03 (per-CPU hashes for the
 * unkeyed histogram and its stats), unedited; the baseline the v0-based prototypes were
 * edited from. Loaded by bench/bccprog.py. */
/* bpfrun 0.1.0: runbook runq-latency, step runq.
 * Generated from /work/main/runbooks/runq-latency.yaml; edit the runbook, not this file. */
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

struct bpfrun_tp_sched_sched_switch {
    u8 __common[8];
    char prev_comm[16];
    s32 prev_pid;
    s32 prev_prio;
    s64 prev_state;
    char next_comm[16];
    s32 next_pid;
    s32 next_prio;
};
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, prev_comm) == 8, "prev_comm");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, prev_pid) == 24, "prev_pid");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, prev_prio) == 28, "prev_prio");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, prev_state) == 32, "prev_state");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, next_comm) == 40, "next_comm");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, next_pid) == 56, "next_pid");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_switch, next_prio) == 60, "next_prio");
struct bpfrun_tp_sched_sched_wakeup {
    u8 __common[8];
    char comm[16];
    s32 pid;
    s32 prio;
    s32 target_cpu;
};
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_wakeup, comm) == 8, "comm");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_wakeup, pid) == 24, "pid");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_wakeup, prio) == 28, "prio");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_sched_sched_wakeup, target_cpu) == 32, "target_cpu");
struct bpfrun_dist_key { u32 slot; };
struct bpfrun_slow_by_key { char k0[16]; char k1[16]; };
struct bpfrun_runq_span_key { u64 k0; };
struct bpfrun_runq_span_val { u64 ts; };

BPF_PERCPU_HASH(agg_dist, struct bpfrun_dist_key, u64, 81920);
BPF_PERCPU_HASH(agg_dist_stats, struct bpfrun_dist_key, struct bpfrun_stats, 10240);
BPF_PERCPU_HASH(agg_slow_by, struct bpfrun_slow_by_key, u64, 10240);
BPF_HASH(pending_runq, struct bpfrun_runq_span_key, struct bpfrun_runq_span_val, 10240);

/* span end tracepoint:sched:sched_switch (runbook /work/main/runbooks/runq-latency.yaml:36:12) */
static __always_inline int bpfrun_runq_probe1_h0(void *ctx) {
    struct bpfrun_tp_sched_sched_switch *args = ctx;
    struct bpfrun_runq_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = args->next_pid;
    struct bpfrun_runq_span_val *pp = pending_runq.lookup(&key);
    if (!pp) return 0;
    struct bpfrun_runq_span_val pv = *pp;
    pending_runq.delete(&key);
    u64 duration = bpf_ktime_get_ns() - pv.ts;
    /* aggregation dist: hist (runbook /work/main/runbooks/runq-latency.yaml:38:11) */
    do {
        struct bpfrun_dist_key k;
        __builtin_memset(&k, 0, sizeof(k));
        u64 x = duration;
        k.slot = bpf_log2l(x / 1000ULL);
        u64 z_agg_dist = 0;
        u64 *v_agg_dist = agg_dist.lookup_or_try_init(&k, &z_agg_dist);
        if (v_agg_dist) *v_agg_dist += 1; else bpfrun_lost(LOST_MAP_FULL);
        k.slot = 0xFFFFFFFF;  /* the per-key stats entry */
        struct bpfrun_stats z_agg_dist_stats = {};
        struct bpfrun_stats *st_agg_dist_stats = agg_dist_stats.lookup_or_try_init(&k, &z_agg_dist_stats);
        if (st_agg_dist_stats) bpfrun_stats_add(st_agg_dist_stats, (s64)x); else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation slow_by: count (runbook /work/main/runbooks/runq-latency.yaml:39:11) */
    do {
        if (!(duration > 10000000000ULL)) break;
        struct bpfrun_slow_by_key k;
        __builtin_memset(&k, 0, sizeof(k));
        bpf_probe_read_kernel(&k.k0, 16, args->next_comm);
        bpf_probe_read_kernel(&k.k1, 16, args->prev_comm);
        u64 z_agg_slow_by = 0;
        u64 *v_agg_slow_by = agg_slow_by.lookup_or_try_init(&k, &z_agg_slow_by);
        if (v_agg_slow_by) *v_agg_slow_by += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    return 0;
}

/* span begin tracepoint:sched:sched_wakeup (runbook /work/main/runbooks/runq-latency.yaml:33:9) */
static __always_inline int bpfrun_runq_probe2_h0(void *ctx) {
    struct bpfrun_tp_sched_sched_wakeup *args = ctx;
    struct bpfrun_runq_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = args->pid;
    struct bpfrun_runq_span_val val;
    __builtin_memset(&val, 0, sizeof(val));
    val.ts = bpf_ktime_get_ns();
    if (pending_runq.update(&key, &val) != 0) bpfrun_lost(LOST_PENDING_FULL);
    return 0;
}

/* tracepoint:sched:sched_switch */
int bpfrun_runq_probe1(void *ctx) {
    bpfrun_runq_probe1_h0(ctx);
    return 0;
}

/* tracepoint:sched:sched_wakeup */
int bpfrun_runq_probe2(void *ctx) {
    bpfrun_runq_probe2_h0(ctx);
    return 0;
}

