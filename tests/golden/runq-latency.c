/* ===== step runq ===== */
/* bpfrun VERSION: runbook runq-latency, step runq.
 * Generated from tests/runbooks/valid/runq-latency.yaml; edit the runbook, not this file. */
#include <uapi/linux/ptrace.h>

/* Counters of data that could not be recorded: the report shows them. */
enum { LOST_MAP_FULL = 0, LOST_STACKS = 1, LOST_EVENTS = 2, LOST_PENDING_FULL = 3 };
BPF_PERCPU_ARRAY(bpfrun_lost_map, u64, 4);
static __always_inline void bpfrun_lost(int kind) {
    u64 *n = bpfrun_lost_map.lookup(&kind);
    if (n) *n += 1;
}

/* Keys inserted into each keyed map (one entry, read in one go): how full the maps are. */
struct bpfrun_fill { u64 n[1]; };
BPF_PERCPU_ARRAY(bpfrun_fill_map, struct bpfrun_fill, 1);
static __always_inline void bpfrun_filled(u32 slot) {
    u32 zero = 0;
    struct bpfrun_fill *f = bpfrun_fill_map.lookup(&zero);
    if (f && slot < 1) f->n[slot] += 1;
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
struct bpfrun_agg0_dist_hist { u64 slots[66]; struct bpfrun_stats st; };
struct bpfrun_agg1_slow_by_key { char k0[16]; char k1[16]; };
struct bpfrun_runq_span_val { u64 ts; };
struct bpfrun_runq_span_key { u64 k0; };

BPF_PERCPU_ARRAY(agg0_dist, struct bpfrun_agg0_dist_hist, 1);
BPF_PERCPU_HASH(agg1_slow_by, struct bpfrun_agg1_slow_by_key, u64, 10240);
BPF_HASH(pending_runq, struct bpfrun_runq_span_key, struct bpfrun_runq_span_val, 10240);

/* span end tracepoint:sched:sched_switch (runbook tests/runbooks/valid/runq-latency.yaml:23:14) */
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
    /* aggregation dist: hist (runbook tests/runbooks/valid/runq-latency.yaml:25:11) */
    do {
        u64 x = duration;
        u32 slot = bpf_log2l(x / 1000ULL);
        u32 zero = 0;
        struct bpfrun_agg0_dist_hist *h_agg0_dist = agg0_dist.lookup(&zero);
        if (!h_agg0_dist) break;
        if (slot < 65) h_agg0_dist->slots[slot] += 1;
        if (x > 1000000ULL) h_agg0_dist->slots[65] += 1;
        bpfrun_stats_add(&h_agg0_dist->st, (s64)x);
    } while (0);
    /* aggregation slow_by: count (runbook tests/runbooks/valid/runq-latency.yaml:26:11) */
    do {
        if (!(duration > 1000000ULL)) break;
        struct bpfrun_agg1_slow_by_key k;
        __builtin_memset(&k, 0, sizeof(k));
        bpf_probe_read_kernel(&k.k0, 16, args->next_comm);
        bpf_probe_read_kernel(&k.k1, 16, args->prev_comm);
        u64 z_agg1_slow_by = 0;
        u64 *v_agg1_slow_by = agg1_slow_by.lookup(&k);
        if (!v_agg1_slow_by) {
            if (agg1_slow_by.insert(&k, &z_agg1_slow_by) == 0) bpfrun_filled(0);
            v_agg1_slow_by = agg1_slow_by.lookup(&k);
        }
        if (v_agg1_slow_by) *v_agg1_slow_by += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    return 0;
}

/* span begin tracepoint:sched:sched_wakeup (runbook tests/runbooks/valid/runq-latency.yaml:21:14) */
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

/* ===== step offcpu ===== */
/* bpfrun VERSION: runbook runq-latency, step offcpu.
 * Generated from tests/runbooks/valid/runq-latency.yaml; edit the runbook, not this file. */
#include <uapi/linux/ptrace.h>

/* Counters of data that could not be recorded: the report shows them. */
enum { LOST_MAP_FULL = 0, LOST_STACKS = 1, LOST_EVENTS = 2, LOST_PENDING_FULL = 3 };
BPF_PERCPU_ARRAY(bpfrun_lost_map, u64, 4);
static __always_inline void bpfrun_lost(int kind) {
    u64 *n = bpfrun_lost_map.lookup(&kind);
    if (n) *n += 1;
}

/* Keys inserted into each keyed map (one entry, read in one go): how full the maps are. */
struct bpfrun_fill { u64 n[1]; };
BPF_PERCPU_ARRAY(bpfrun_fill_map, struct bpfrun_fill, 1);
static __always_inline void bpfrun_filled(u32 slot) {
    u32 zero = 0;
    struct bpfrun_fill *f = bpfrun_fill_map.lookup(&zero);
    if (f && slot < 1) f->n[slot] += 1;
}

struct bpfrun_stats { u64 count; s64 sum; s64 min; s64 max; };
static __always_inline void bpfrun_stats_add(struct bpfrun_stats *st, s64 x) {
    if (st->count == 0 || x < st->min) st->min = x;
    if (st->count == 0 || x > st->max) st->max = x;
    st->count += 1;
    st->sum += x;
}

/* Read once per event: each handler declares these values' locals; the first use fills them. */
#define BPFRUN_PID_TGID() (bpfrun_have_pid_tgid ? bpfrun_pid_tgid : (bpfrun_have_pid_tgid = 1, bpfrun_pid_tgid = bpf_get_current_pid_tgid()))


/* Stacks live in a hash map under a 64-bit hash of their frames. A BPF_STACK_TRACE map
 * drops a stack whose bucket another stack holds (-EEXIST: bench/RESULTS.md saw 5-25% of
 * samples lost with 64 to 4,096 distinct call paths in 16,384 buckets); a hash map keeps
 * colliding buckets apart and only loses stacks once it is full. Ids 0 (no stack of that
 * kind here, e.g. a kernel stack sampled in user mode) and 1 (lost) are never hashes. */
#define BPFRUN_STACK_DEPTH 127
struct bpfrun_stack { u64 ip[BPFRUN_STACK_DEPTH]; };
BPF_PERCPU_ARRAY(bpfrun_stack_buf, struct bpfrun_stack, 1);
BPF_HASH(stacks, u64, struct bpfrun_stack, 16384);
/* Each new user stack names its process, so that user space reads the process's memory map
 * while it lives: a process that exits before the step ends would show [unknown] frames.
 * Sent without a wakeup: from a perf-event NMI a wakeup is an IPI, which doubled the cost
 * of a sample on a VM (bench/RESULTS.md); user space reads the buffer every 20 ms instead. */
struct bpfrun_stack_owner { u64 id; u32 tgid; u32 pad; };
BPF_RINGBUF_OUTPUT(bpfrun_owners, 16);
static __always_inline u64 bpfrun_stack_id(void *ctx, u64 flags) {
    u32 zero = 0;
    struct bpfrun_stack *buf = bpfrun_stack_buf.lookup(&zero);
    if (!buf) return 1;
    long len = bpf_get_stack(ctx, buf, sizeof(*buf), flags);  /* zero-fills the rest */
    if (len == 0 || len == -14 /* EFAULT */) return 0;
    if (len < 0) {
        bpfrun_lost(LOST_STACKS);
        return 1;
    }
    /* MurmurHash3-style mixing of each frame, then a finalizer: every bit of every frame
     * reaches every bit of the id. */
    u64 h = 0x9e3779b97f4a7c15ULL ^ (u64)len ^ flags;
#pragma clang loop unroll(disable)
    for (u32 i = 0; i < BPFRUN_STACK_DEPTH; i++) {
        if ((long)i * 8 >= len) break;
        u64 k = buf->ip[i] * 0x87c37b91114253d5ULL;
        k = ((k << 31) | (k >> 33)) * 0x4cf5ad432745937fULL;
        h ^= k;
        h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    if (h < 2) h += 2;
    if (!stacks.lookup(&h)) {
        int err = stacks.insert(&h, buf);
        if (err != 0 && err != -17 /* EEXIST: another CPU stored it first */) {
            bpfrun_lost(LOST_STACKS);  /* the stack storage is full */
            return 1;
        }
        if (err == 0 && (flags & BPF_F_USER_STACK)) {
            struct bpfrun_stack_owner o = {.id = h, .tgid = bpf_get_current_pid_tgid() >> 32};
            bpfrun_owners.ringbuf_output(&o, sizeof(o), BPF_RB_NO_WAKEUP);
        }
    }
    return h;
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
struct bpfrun_agg0_stacks_key { u64 k0; u64 k1; u32 tgid; };
struct bpfrun_offcpu_span_val { u64 ts; u64 b0; u64 b1; u64 b2; };
struct bpfrun_offcpu_span_key { u64 k0; };

BPF_PERCPU_HASH(agg0_stacks, struct bpfrun_agg0_stacks_key, u64, 10240);
BPF_HASH(pending_offcpu, struct bpfrun_offcpu_span_key, struct bpfrun_offcpu_span_val, 10240);

/* span end tracepoint:sched:sched_switch (runbook tests/runbooks/valid/runq-latency.yaml:43:14) */
static __always_inline int bpfrun_offcpu_probe1_h0(void *ctx) {
    struct bpfrun_tp_sched_sched_switch *args = ctx;
    struct bpfrun_offcpu_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = args->next_pid;
    struct bpfrun_offcpu_span_val *pp = pending_offcpu.lookup(&key);
    if (!pp) return 0;
    struct bpfrun_offcpu_span_val pv = *pp;
    pending_offcpu.delete(&key);
    u64 duration = bpf_ktime_get_ns() - pv.ts;
    /* aggregation stacks: sum (runbook tests/runbooks/valid/runq-latency.yaml:45:11) */
    do {
        struct bpfrun_agg0_stacks_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = pv.b0;
        k.k1 = pv.b1;
        k.tgid = pv.b2;
        u64 z_agg0_stacks = 0;
        u64 *v_agg0_stacks = agg0_stacks.lookup(&k);
        if (!v_agg0_stacks) {
            if (agg0_stacks.insert(&k, &z_agg0_stacks) == 0) bpfrun_filled(0);
            v_agg0_stacks = agg0_stacks.lookup(&k);
        }
        if (v_agg0_stacks) *v_agg0_stacks += duration; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    return 0;
}

/* span begin tracepoint:sched:sched_switch (runbook tests/runbooks/valid/runq-latency.yaml:41:14) */
static __always_inline int bpfrun_offcpu_probe1_h1(void *ctx) {
    struct bpfrun_tp_sched_sched_switch *args = ctx;
    u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;
    if (!1 /* not checked: tracepoint formats unreadable */) return 0;
    struct bpfrun_offcpu_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = args->prev_pid;
    struct bpfrun_offcpu_span_val val;
    __builtin_memset(&val, 0, sizeof(val));
    val.b0 = bpfrun_stack_id(ctx, 0);
    val.b1 = bpfrun_stack_id(ctx, BPF_F_USER_STACK);
    val.b2 = (BPFRUN_PID_TGID() >> 32);
    val.ts = bpf_ktime_get_ns();
    if (pending_offcpu.update(&key, &val) != 0) bpfrun_lost(LOST_PENDING_FULL);
    return 0;
}

/* tracepoint:sched:sched_switch */
int bpfrun_offcpu_probe1(void *ctx) {
    bpfrun_offcpu_probe1_h0(ctx);
    bpfrun_offcpu_probe1_h1(ctx);
    return 0;
}
