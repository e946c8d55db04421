/* bench prototype: common subexpressions — bpf_get_current_pid_tgid() and
 * bpf_get_current_comm() called once per event and shared by the span key and every
 * aggregation key (the generated code calls them 3 and 2 times in sys_exit).
 * Otherwise the code `bpfrun compile syscalls` generated on 2026-11-25 (see bench/README.md). */
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
struct bpfrun_agg0_by_syscall_key { u64 k0; };
struct bpfrun_agg1_by_process_key { u64 k0; char k1[16]; };
struct bpfrun_agg2_by_process_syscall_key { char k0[16]; u64 k1; };
struct bpfrun_syscalls_span_key { u64 k0; };
struct bpfrun_syscalls_span_val { u64 ts; };

BPF_PERCPU_HASH(agg0_by_syscall, struct bpfrun_agg0_by_syscall_key, struct bpfrun_stats, 10240);
BPF_PERCPU_HASH(agg1_by_process, struct bpfrun_agg1_by_process_key, u64, 10240);
BPF_PERCPU_HASH(agg2_by_process_syscall, struct bpfrun_agg2_by_process_syscall_key, u64, 10240);
BPF_PERCPU_ARRAY(agg3_latency, u64, 65);
BPF_PERCPU_ARRAY(agg3_latency_stats, struct bpfrun_stats, 1);
BPF_HASH(pending_syscalls, struct bpfrun_syscalls_span_key, struct bpfrun_syscalls_span_val, 10240);

/* span end tracepoint:raw_syscalls:sys_exit (runbook /work/main/runbooks/syscalls.yaml:33:12) */
static __always_inline int bpfrun_syscalls_probe2_h0(void *ctx) {
    struct bpfrun_tp_raw_syscalls_sys_exit *args = ctx;
    struct bpfrun_syscalls_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    u64 pid_tgid = bpf_get_current_pid_tgid();
    key.k0 = (u32)pid_tgid;
    struct bpfrun_syscalls_span_val *pp = pending_syscalls.lookup(&key);
    if (!pp) return 0;
    struct bpfrun_syscalls_span_val pv = *pp;
    pending_syscalls.delete(&key);
    u64 duration = bpf_ktime_get_ns() - pv.ts;
    char comm[16] = {};
    bpf_get_current_comm(&comm, 16);
    /* aggregation by_syscall: stats (runbook /work/main/runbooks/syscalls.yaml:35:11) */
    do {
        struct bpfrun_agg0_by_syscall_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = args->id;
        s64 x = (s64)(duration);
        struct bpfrun_stats z_agg0_by_syscall = {};
        struct bpfrun_stats *st_agg0_by_syscall = agg0_by_syscall.lookup_or_try_init(&k, &z_agg0_by_syscall);
        if (st_agg0_by_syscall) bpfrun_stats_add(st_agg0_by_syscall, (s64)x); else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation by_process: count (runbook /work/main/runbooks/syscalls.yaml:36:11) */
    do {
        struct bpfrun_agg1_by_process_key k;
        __builtin_memset(&k, 0, sizeof(k));
        k.k0 = pid_tgid >> 32;
        __builtin_memcpy(&k.k1, comm, 16);
        u64 z_agg1_by_process = 0;
        u64 *v_agg1_by_process = agg1_by_process.lookup_or_try_init(&k, &z_agg1_by_process);
        if (v_agg1_by_process) *v_agg1_by_process += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation by_process_syscall: count (runbook /work/main/runbooks/syscalls.yaml:37:11) */
    do {
        struct bpfrun_agg2_by_process_syscall_key k;
        __builtin_memset(&k, 0, sizeof(k));
        __builtin_memcpy(&k.k0, comm, 16);
        k.k1 = args->id;
        u64 z_agg2_by_process_syscall = 0;
        u64 *v_agg2_by_process_syscall = agg2_by_process_syscall.lookup_or_try_init(&k, &z_agg2_by_process_syscall);
        if (v_agg2_by_process_syscall) *v_agg2_by_process_syscall += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation latency: hist (runbook /work/main/runbooks/syscalls.yaml:38:11) */
    do {
        u64 x = duration;
        u32 slot = bpf_log2l(x / 1000ULL);
        u64 *v_agg3_latency = agg3_latency.lookup(&slot);
        if (v_agg3_latency) *v_agg3_latency += 1;
        u32 zero = 0;
        struct bpfrun_stats *st_agg3_latency = agg3_latency_stats.lookup(&zero);
        if (st_agg3_latency) bpfrun_stats_add(st_agg3_latency, (s64)x);
    } while (0);
    return 0;
}

/* span begin tracepoint:raw_syscalls:sys_enter (runbook /work/main/runbooks/syscalls.yaml:28:9) */
static __always_inline int bpfrun_syscalls_probe3_h0(void *ctx) {
    struct bpfrun_tp_raw_syscalls_sys_enter *args = ctx;
    char s1[16] = {};
    bpf_get_current_comm(&s1, 16);
    if (!!(/* "bpfrun" */ ((u8)s1[0] == 98) && ((u8)s1[1] == 112) && ((u8)s1[2] == 102) && ((u8)s1[3] == 114) && ((u8)s1[4] == 117) && ((u8)s1[5] == 110) && (s1[6] == 0))) return 0;
    struct bpfrun_syscalls_span_key key;
    __builtin_memset(&key, 0, sizeof(key));
    key.k0 = ((u32)bpf_get_current_pid_tgid());
    struct bpfrun_syscalls_span_val val;
    __builtin_memset(&val, 0, sizeof(val));
    val.ts = bpf_ktime_get_ns();
    if (pending_syscalls.update(&key, &val) != 0) bpfrun_lost(LOST_PENDING_FULL);
    return 0;
}

/* tracepoint:raw_syscalls:sys_exit */
int bpfrun_syscalls_probe2(void *ctx) {
    bpfrun_syscalls_probe2_h0(ctx);
    return 0;
}

/* tracepoint:raw_syscalls:sys_enter */
int bpfrun_syscalls_probe3(void *ctx) {
    bpfrun_syscalls_probe3_h0(ctx);
    return 0;
}

