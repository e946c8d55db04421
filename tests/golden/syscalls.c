/* ===== step syscalls ===== */
/* bpfrun VERSION: runbook syscalls, step syscalls.
 * Generated from runbooks/syscalls.yaml; edit the runbook, not this file. */
#include <uapi/linux/ptrace.h>

/* Counters of data that could not be recorded: the report shows them. */
enum { LOST_MAP_FULL = 0, LOST_STACKS = 1, LOST_EVENTS = 2, LOST_PENDING_FULL = 3 };
BPF_PERCPU_ARRAY(bpfrun_lost_map, u64, 4);
static __always_inline void bpfrun_lost(int kind) {
    u64 *n = bpfrun_lost_map.lookup(&kind);
    if (n) *n += 1;
}

/* Keys inserted into each keyed map (one entry, read in one go): how full the maps are. */
struct bpfrun_fill { u64 n[2]; };
BPF_PERCPU_ARRAY(bpfrun_fill_map, struct bpfrun_fill, 1);
static __always_inline void bpfrun_filled(u32 slot) {
    u32 zero = 0;
    struct bpfrun_fill *f = bpfrun_fill_map.lookup(&zero);
    if (f && slot < 2) f->n[slot] += 1;
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
#define BPFRUN_READ_COMM() do { if (!bpfrun_have_comm) { bpf_get_current_comm(&bpfrun_comm, sizeof(bpfrun_comm)); bpfrun_have_comm = 1; } } while (0)


struct bpfrun_agg0_by_process_syscall_key { u64 k0; char k1[16]; u64 k2; u64 k3; };
struct bpfrun_agg0_by_process_syscall_val { u64 m0; struct bpfrun_stats m1; struct bpfrun_stats m2; };
struct bpfrun_agg5_waits_key { u64 k0; };
struct bpfrun_syscalls_span_val { u64 ts; u64 b0; };

BPF_PERCPU_HASH(agg0_by_process_syscall, struct bpfrun_agg0_by_process_syscall_key, struct bpfrun_agg0_by_process_syscall_val, 10240);
BPF_PERCPU_HASH(agg5_waits, struct bpfrun_agg5_waits_key, struct bpfrun_stats, 1024);
BPF_PERCPU_ARRAY(agg5_waits_idx, struct bpfrun_stats, 512);
BPF_TASK_STORAGE(pending_syscalls, struct bpfrun_syscalls_span_val);

/* span end rawtracepoint:sys_exit (runbook runbooks/syscalls.yaml:61:12) */
static __always_inline int bpfrun_syscalls_probe3_h0(struct bpf_raw_tracepoint_args *ctx) {
    u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;
    char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;
    struct bpfrun_syscalls_span_val *pp = pending_syscalls.task_storage_get((struct task_struct *)bpf_get_current_task_btf(), 0, 0);
    if (!pp || pp->ts == 0) return 0;
    struct bpfrun_syscalls_span_val pv = *pp;
    pp->ts = 0;  /* consumed: the slot stays with the task */
    u64 duration = bpf_ktime_get_ns() - pv.ts;
    /* aggregations by_process_syscall, work, slow_calls: one map, keyed alike (runbook runbooks/syscalls.yaml:67:11) */
    do {
        int w0 = 1;
        int in1 = 0;
        switch ((u64)(pv.b0)) { case 0ULL: /* read */ case 7ULL: /* poll */ case 19ULL: /* readv */ case 23ULL: /* select */ case 34ULL: /* pause */ case 35ULL: /* nanosleep */ case 43ULL: /* accept */ case 45ULL: /* recvfrom */ case 47ULL: /* recvmsg */ case 61ULL: /* wait4 */ case 65ULL: /* semop */ case 70ULL: /* msgrcv */ case 73ULL: /* flock */ case 128ULL: /* rt_sigtimedwait */ case 130ULL: /* rt_sigsuspend */ case 202ULL: /* futex */ case 208ULL: /* io_getevents */ case 220ULL: /* semtimedop */ case 230ULL: /* clock_nanosleep */ case 232ULL: /* epoll_wait */ case 243ULL: /* mq_timedreceive */ case 247ULL: /* waitid */ case 270ULL: /* pselect6 */ case 271ULL: /* ppoll */ case 281ULL: /* epoll_pwait */ case 288ULL: /* accept4 */ case 299ULL: /* recvmmsg */ case 333ULL: /* io_pgetevents */ case 426ULL: /* io_uring_enter */ case 441ULL: /* epoll_pwait2 */ case 449ULL: /* futex_waitv */ case 455ULL: /* futex_wait */ in1 = 1; }
        int w1 = (!in1);
        int w2 = ((duration > 100000ULL) && (!in1));
        if (!(w0 || w1 || w2)) break;
        struct bpfrun_agg0_by_process_syscall_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = (BPFRUN_PID_TGID() >> 32);
        BPFRUN_READ_COMM();
        __builtin_memcpy(&k.k1, bpfrun_comm, 16);
        k.k2 = pv.b0;
        k.k3 = bpf_get_current_cgroup_id();
        struct bpfrun_agg0_by_process_syscall_val z_agg0_by_process_syscall = {};
        struct bpfrun_agg0_by_process_syscall_val *v_agg0_by_process_syscall = agg0_by_process_syscall.lookup(&k);
        if (!v_agg0_by_process_syscall) {
            if (agg0_by_process_syscall.insert(&k, &z_agg0_by_process_syscall) == 0) bpfrun_filled(0);
            v_agg0_by_process_syscall = agg0_by_process_syscall.lookup(&k);
        }
        if (!v_agg0_by_process_syscall) {
            if (w0) bpfrun_lost(LOST_MAP_FULL);
            if (w1) bpfrun_lost(LOST_MAP_FULL);
            if (w2) bpfrun_lost(LOST_MAP_FULL);
            break;
        }
        if (w0) v_agg0_by_process_syscall->m0 += 1;
        if (w1) bpfrun_stats_add(&v_agg0_by_process_syscall->m1, (s64)(duration));
        if (w2) bpfrun_stats_add(&v_agg0_by_process_syscall->m2, (s64)(duration));
    } while (0);
    /* aggregation waits: stats (runbook runbooks/syscalls.yaml:104:11) */
    do {
        int in2 = 0;
        switch ((u64)(pv.b0)) { case 0ULL: /* read */ case 7ULL: /* poll */ case 19ULL: /* readv */ case 23ULL: /* select */ case 34ULL: /* pause */ case 35ULL: /* nanosleep */ case 43ULL: /* accept */ case 45ULL: /* recvfrom */ case 47ULL: /* recvmsg */ case 61ULL: /* wait4 */ case 65ULL: /* semop */ case 70ULL: /* msgrcv */ case 73ULL: /* flock */ case 128ULL: /* rt_sigtimedwait */ case 130ULL: /* rt_sigsuspend */ case 202ULL: /* futex */ case 208ULL: /* io_getevents */ case 220ULL: /* semtimedop */ case 230ULL: /* clock_nanosleep */ case 232ULL: /* epoll_wait */ case 243ULL: /* mq_timedreceive */ case 247ULL: /* waitid */ case 270ULL: /* pselect6 */ case 271ULL: /* ppoll */ case 281ULL: /* epoll_pwait */ case 288ULL: /* accept4 */ case 299ULL: /* recvmmsg */ case 333ULL: /* io_pgetevents */ case 426ULL: /* io_uring_enter */ case 441ULL: /* epoll_pwait2 */ case 449ULL: /* futex_waitv */ case 455ULL: /* futex_wait */ in2 = 1; }
        if (!in2) break;
        struct bpfrun_agg5_waits_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = pv.b0;
        if ((u64)k.k0 < 512) {
            u32 i_agg5_waits = k.k0;
            struct bpfrun_stats *v_agg5_waits = agg5_waits_idx.lookup(&i_agg5_waits);
            if (v_agg5_waits) bpfrun_stats_add(v_agg5_waits, (s64)(duration));
        } else {
            s64 x = (s64)(duration);
            struct bpfrun_stats z_agg5_waits = {};
            struct bpfrun_stats *st_agg5_waits = agg5_waits.lookup(&k);
            if (!st_agg5_waits) {
                if (agg5_waits.insert(&k, &z_agg5_waits) == 0) bpfrun_filled(1);
                st_agg5_waits = agg5_waits.lookup(&k);
            }
            if (st_agg5_waits) bpfrun_stats_add(st_agg5_waits, (s64)x); else bpfrun_lost(LOST_MAP_FULL);
        }
    } while (0);
    return 0;
}

/* span begin rawtracepoint:sys_enter (runbook runbooks/syscalls.yaml:55:9) */
static __always_inline int bpfrun_syscalls_probe4_h0(struct bpf_raw_tracepoint_args *ctx) {
    u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;
    char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;
    BPFRUN_READ_COMM();
    if (!(((BPFRUN_PID_TGID() >> 32) == 42LL) && (/* "bash" */ ((u8)bpfrun_comm[0] == 98) && ((u8)bpfrun_comm[1] == 97) && ((u8)bpfrun_comm[2] == 115) && ((u8)bpfrun_comm[3] == 104) && (bpfrun_comm[4] == 0)))) return 0;
    struct bpfrun_syscalls_span_val val;
    __builtin_memset(&val, 0, sizeof(val));
    val.b0 = ctx->args[1];
    val.ts = bpf_ktime_get_ns();
    struct bpfrun_syscalls_span_val *slot = pending_syscalls.task_storage_get((struct task_struct *)bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (slot) *slot = val; else bpfrun_lost(LOST_PENDING_FULL);
    return 0;
}

/* rawtracepoint:sys_exit */
int bpfrun_syscalls_probe3(struct bpf_raw_tracepoint_args *ctx) {
    bpfrun_syscalls_probe3_h0(ctx);
    return 0;
}

/* rawtracepoint:sys_enter */
int bpfrun_syscalls_probe4(struct bpf_raw_tracepoint_args *ctx) {
    bpfrun_syscalls_probe4_h0(ctx);
    return 0;
}

/* ===== step storm_code ===== */
/* bpfrun VERSION: runbook syscalls, step storm_code.
 * Generated from runbooks/syscalls.yaml; edit the runbook, not this file. */
#include <uapi/linux/ptrace.h>

/* Counters of data that could not be recorded: the report shows them. */
enum { LOST_MAP_FULL = 0, LOST_STACKS = 1, LOST_EVENTS = 2, LOST_PENDING_FULL = 3 };
BPF_PERCPU_ARRAY(bpfrun_lost_map, u64, 4);
static __always_inline void bpfrun_lost(int kind) {
    u64 *n = bpfrun_lost_map.lookup(&kind);
    if (n) *n += 1;
}

/* Keys inserted into each keyed map (one entry, read in one go): how full the maps are. */
struct bpfrun_fill { u64 n[2]; };
BPF_PERCPU_ARRAY(bpfrun_fill_map, struct bpfrun_fill, 1);
static __always_inline void bpfrun_filled(u32 slot) {
    u32 zero = 0;
    struct bpfrun_fill *f = bpfrun_fill_map.lookup(&zero);
    if (f && slot < 2) f->n[slot] += 1;
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
#define BPFRUN_READ_COMM() do { if (!bpfrun_have_comm) { bpf_get_current_comm(&bpfrun_comm, sizeof(bpfrun_comm)); bpfrun_have_comm = 1; } } while (0)


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

struct bpfrun_tp_raw_syscalls_sys_enter {
    u8 __common[8];
    s64 id;
    u8 args[48];
};
_Static_assert(__builtin_offsetof(struct bpfrun_tp_raw_syscalls_sys_enter, id) == 8, "id");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_raw_syscalls_sys_enter, args) == 16, "args");
struct bpfrun_agg0_calls_key { u64 k0; char k1[16]; u64 k2; };
struct bpfrun_agg1_stacks_key { u64 k0; u64 k1; u32 tgid; };

BPF_PERCPU_HASH(agg0_calls, struct bpfrun_agg0_calls_key, u64, 10240);
BPF_PERCPU_HASH(agg1_stacks, struct bpfrun_agg1_stacks_key, u64, 10240);

/* tracepoint:raw_syscalls:sys_enter (runbook runbooks/syscalls.yaml:161:9) */
static __always_inline int bpfrun_storm_code_probe1_h0(void *ctx) {
    struct bpfrun_tp_raw_syscalls_sys_enter *args = ctx;
    u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;
    char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;
    if (!((BPFRUN_PID_TGID() >> 32) == 0 /* steps.syscalls.storm_pid: bound at run time */)) return 0;
    /* aggregation calls: count (runbook runbooks/syscalls.yaml:164:13) */
    do {
        struct bpfrun_agg0_calls_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = ((u32)BPFRUN_PID_TGID());
        BPFRUN_READ_COMM();
        __builtin_memcpy(&k.k1, bpfrun_comm, 16);
        k.k2 = args->id;
        u64 z_agg0_calls = 0;
        u64 *v_agg0_calls = agg0_calls.lookup(&k);
        if (!v_agg0_calls) {
            if (agg0_calls.insert(&k, &z_agg0_calls) == 0) bpfrun_filled(0);
            v_agg0_calls = agg0_calls.lookup(&k);
        }
        if (v_agg0_calls) *v_agg0_calls += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation stacks: count (runbook runbooks/syscalls.yaml:165:13) */
    do {
        struct bpfrun_agg1_stacks_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = args->id;
        k.k1 = bpfrun_stack_id(ctx, BPF_F_USER_STACK);
        k.tgid = BPFRUN_PID_TGID() >> 32;
        u64 z_agg1_stacks = 0;
        u64 *v_agg1_stacks = agg1_stacks.lookup(&k);
        if (!v_agg1_stacks) {
            if (agg1_stacks.insert(&k, &z_agg1_stacks) == 0) bpfrun_filled(1);
            v_agg1_stacks = agg1_stacks.lookup(&k);
        }
        if (v_agg1_stacks) *v_agg1_stacks += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    return 0;
}

/* tracepoint:raw_syscalls:sys_enter */
int bpfrun_storm_code_probe1(void *ctx) {
    bpfrun_storm_code_probe1_h0(ctx);
    return 0;
}
