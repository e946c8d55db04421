/* bench prototype: unkeyed hist in a per-CPU array (64 slots) with its stats in the same entry: one array lookup instead of two per-CPU hash lookup_or_try_init
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
struct bpfrun_slow_by_key { char k0[16]; char k1[16]; };
struct bpfrun_runq_span_key { u64 k0; };
struct bpfrun_runq_span_val { u64 ts; };
/* The whole unkeyed histogram, slots and summary, in one per-CPU array entry. */
struct bpfrun_dist_val { u64 slots[64]; struct bpfrun_stats st; };

BPF_PERCPU_ARRAY(agg_dist, struct bpfrun_dist_val, 1);
BPF_PERCPU_HASH(agg_slow_by, struct bpfrun_slow_by_key, u64, 10240);
BPF_HASH(pending_runq, struct bpfrun_runq_span_key, struct bpfrun_runq_span_val, 10240);

int bpfrun_runq_probe1(void *ctx) {
    struct bpfrun_tp_sched_sched_switch *args = ctx;
    struct bpfrun_runq_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = args->next_pid;
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
        bpf_probe_read_kernel(&k.k0, 16, args->next_comm);
        bpf_probe_read_kernel(&k.k1, 16, args->prev_comm);
        u64 z = 0;
        u64 *v = agg_slow_by.lookup_or_try_init(&k, &z);
        if (v) *v += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    return 0;
}

int bpfrun_runq_probe2(void *ctx) {
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
