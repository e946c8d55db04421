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


struct bpfrun_agg0_by_syscall_key { u64 k0; };
struct bpfrun_agg1_by_process_key { u64 k0; char k1[16]; };
struct bpfrun_agg2_by_process_syscall_key { char k0[16]; u64 k1; };
struct bpfrun_agg3_latency_hist { u64 slots[65]; struct bpfrun_stats st; };
struct bpfrun_syscalls_span_val { u64 ts; u64 b0; };

BPF_PERCPU_HASH(agg0_by_syscall, struct bpfrun_agg0_by_syscall_key, struct bpfrun_stats, 1024);
BPF_PERCPU_ARRAY(agg0_by_syscall_idx, struct bpfrun_stats, 512);
BPF_PERCPU_HASH(agg1_by_process, struct bpfrun_agg1_by_process_key, u64, 10240);
BPF_PERCPU_HASH(agg2_by_process_syscall, struct bpfrun_agg2_by_process_syscall_key, u64, 10240);
BPF_PERCPU_ARRAY(agg3_latency, struct bpfrun_agg3_latency_hist, 1);
BPF_TASK_STORAGE(pending_syscalls, struct bpfrun_syscalls_span_val);

/* span end rawtracepoint:sys_exit (runbook runbooks/syscalls.yaml:36:12) */
static __always_inline int bpfrun_syscalls_probe1_h0(struct bpf_raw_tracepoint_args *ctx) {
    u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;
    char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;
    struct bpfrun_syscalls_span_val *pp = pending_syscalls.task_storage_get((struct task_struct *)bpf_get_current_task_btf(), 0, 0);
    if (!pp || pp->ts == 0) return 0;
    struct bpfrun_syscalls_span_val pv = *pp;
    pp->ts = 0;  /* consumed: the slot stays with the task */
    u64 duration = bpf_ktime_get_ns() - pv.ts;
    /* aggregation by_syscall: stats (runbook runbooks/syscalls.yaml:38:11) */
    do {
        struct bpfrun_agg0_by_syscall_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = pv.b0;
        if ((u64)k.k0 < 512) {
            u32 i_agg0_by_syscall = k.k0;
            struct bpfrun_stats *v_agg0_by_syscall = agg0_by_syscall_idx.lookup(&i_agg0_by_syscall);
            if (v_agg0_by_syscall) bpfrun_stats_add(v_agg0_by_syscall, (s64)(duration));
        } else {
            s64 x = (s64)(duration);
            struct bpfrun_stats z_agg0_by_syscall = {};
            struct bpfrun_stats *st_agg0_by_syscall = agg0_by_syscall.lookup_or_try_init(&k, &z_agg0_by_syscall);
            if (st_agg0_by_syscall) bpfrun_stats_add(st_agg0_by_syscall, (s64)x); else bpfrun_lost(LOST_MAP_FULL);
        }
    } while (0);
    /* aggregation by_process: count (runbook runbooks/syscalls.yaml:39:11) */
    do {
        struct bpfrun_agg1_by_process_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = (BPFRUN_PID_TGID() >> 32);
        BPFRUN_READ_COMM();
        __builtin_memcpy(&k.k1, bpfrun_comm, 16);
        u64 z_agg1_by_process = 0;
        u64 *v_agg1_by_process = agg1_by_process.lookup_or_try_init(&k, &z_agg1_by_process);
        if (v_agg1_by_process) *v_agg1_by_process += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation by_process_syscall: count (runbook runbooks/syscalls.yaml:40:11) */
    do {
        struct bpfrun_agg2_by_process_syscall_key k;
        __builtin_memset(&k, 0, sizeof(k));
        BPFRUN_READ_COMM();
        __builtin_memcpy(&k.k0, bpfrun_comm, 16);
        k.k1 = pv.b0;
        u64 z_agg2_by_process_syscall = 0;
        u64 *v_agg2_by_process_syscall = agg2_by_process_syscall.lookup_or_try_init(&k, &z_agg2_by_process_syscall);
        if (v_agg2_by_process_syscall) *v_agg2_by_process_syscall += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation latency: hist (runbook runbooks/syscalls.yaml:41:11) */
    do {
        u64 x = duration;
        u32 slot = bpf_log2l(x / 1000ULL);
        u32 zero = 0;
        struct bpfrun_agg3_latency_hist *h_agg3_latency = agg3_latency.lookup(&zero);
        if (!h_agg3_latency) break;
        if (slot < 65) h_agg3_latency->slots[slot] += 1;
        bpfrun_stats_add(&h_agg3_latency->st, (s64)x);
    } while (0);
    return 0;
}

/* span begin rawtracepoint:sys_enter (runbook runbooks/syscalls.yaml:30:9) */
static __always_inline int bpfrun_syscalls_probe2_h0(struct bpf_raw_tracepoint_args *ctx) {
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
int bpfrun_syscalls_probe1(struct bpf_raw_tracepoint_args *ctx) {
    bpfrun_syscalls_probe1_h0(ctx);
    return 0;
}

/* rawtracepoint:sys_enter */
int bpfrun_syscalls_probe2(struct bpf_raw_tracepoint_args *ctx) {
    bpfrun_syscalls_probe2_h0(ctx);
    return 0;
}
