/* ===== step io ===== */
/* bpfrun VERSION: runbook syscall-io, step io.
 * Generated from tests/runbooks/valid/syscall-io.yaml; edit the runbook, not this file. */
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

BPF_RINGBUF_OUTPUT(events, 256);
BPF_ARRAY(bpfrun_emitted, u64, 1);
/* Counts every event of an emitting probe; past `limit` the rest are only counted. */
static __always_inline int bpfrun_emit_allowed(int probe, u64 limit) {
    u64 *n = bpfrun_emitted.lookup(&probe);
    if (!n) return 0;
    u64 seen = *n;
    __sync_fetch_and_add(n, 1);
    return limit == 0 || seen < limit;
}

struct bpfrun_tp_syscalls_sys_enter_write {
    u8 __common[8];
    s32 __syscall_nr;
    u8 __pad1[4];
    u64 fd;
    u64 buf;
    u64 count;
};
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_write, __syscall_nr) == 8, "__syscall_nr");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_write, fd) == 16, "fd");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_write, buf) == 24, "buf");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_write, count) == 32, "count");
struct bpfrun_tp_syscalls_sys_enter_openat {
    u8 __common[8];
    s32 __syscall_nr;
    u8 __pad1[4];
    u64 dfd;
    u64 filename;
    u64 flags;
    u64 mode;
};
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_openat, __syscall_nr) == 8, "__syscall_nr");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_openat, dfd) == 16, "dfd");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_openat, filename) == 24, "filename");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_openat, flags) == 32, "flags");
_Static_assert(__builtin_offsetof(struct bpfrun_tp_syscalls_sys_enter_openat, mode) == 40, "mode");
struct bpfrun_agg0_calls_key { char k0[16]; };
struct bpfrun_agg1_bytes_key { char k0[16]; };
struct bpfrun_ev0 { u32 probe; u64 f0; char f1[16]; char f2[128]; u32 tgid; };

BPF_PERCPU_HASH(agg0_calls, struct bpfrun_agg0_calls_key, u64, 10240);
BPF_PERCPU_HASH(agg1_bytes, struct bpfrun_agg1_bytes_key, u64, 10240);

/* tracepoint:syscalls:sys_enter_write (runbook tests/runbooks/valid/syscall-io.yaml:14:9) */
static __always_inline int bpfrun_io_probe1_h0(void *ctx) {
    struct bpfrun_tp_syscalls_sys_enter_write *args = ctx;
    char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;
    BPFRUN_READ_COMM();
    if (!!(/* "bpfrun" */ ((u8)bpfrun_comm[0] == 98) && ((u8)bpfrun_comm[1] == 112) && ((u8)bpfrun_comm[2] == 102) && ((u8)bpfrun_comm[3] == 114) && ((u8)bpfrun_comm[4] == 117) && ((u8)bpfrun_comm[5] == 110) && (bpfrun_comm[6] == 0))) return 0;
    /* aggregation calls: count (runbook tests/runbooks/valid/syscall-io.yaml:17:13) */
    do {
        struct bpfrun_agg0_calls_key k;
        __builtin_memset(&k, 0, sizeof(k));
        BPFRUN_READ_COMM();
        __builtin_memcpy(&k.k0, bpfrun_comm, 16);
        u64 z_agg0_calls = 0;
        u64 *v_agg0_calls = agg0_calls.lookup(&k);
        if (!v_agg0_calls) {
            if (agg0_calls.insert(&k, &z_agg0_calls) == 0) bpfrun_filled(0);
            v_agg0_calls = agg0_calls.lookup(&k);
        }
        if (v_agg0_calls) *v_agg0_calls += 1; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    /* aggregation bytes: sum (runbook tests/runbooks/valid/syscall-io.yaml:18:13) */
    do {
        struct bpfrun_agg1_bytes_key k;
        __builtin_memset(&k, 0, sizeof(k));
        BPFRUN_READ_COMM();
        __builtin_memcpy(&k.k0, bpfrun_comm, 16);
        u64 z_agg1_bytes = 0;
        u64 *v_agg1_bytes = agg1_bytes.lookup(&k);
        if (!v_agg1_bytes) {
            if (agg1_bytes.insert(&k, &z_agg1_bytes) == 0) bpfrun_filled(1);
            v_agg1_bytes = agg1_bytes.lookup(&k);
        }
        if (v_agg1_bytes) *v_agg1_bytes += args->count; else bpfrun_lost(LOST_MAP_FULL);
    } while (0);
    return 0;
}

/* tracepoint:syscalls:sys_enter_openat (runbook tests/runbooks/valid/syscall-io.yaml:19:9) */
static __always_inline int bpfrun_io_probe2_h0(void *ctx) {
    struct bpfrun_tp_syscalls_sys_enter_openat *args = ctx;
    u64 bpfrun_pid_tgid = 0; int bpfrun_have_pid_tgid = 0;
    char bpfrun_comm[16] = {}; int bpfrun_have_comm = 0;
    /* events */
    do {
        if (!bpfrun_emit_allowed(0, 500)) break;
        struct bpfrun_ev0 *e = events.ringbuf_reserve(sizeof(struct bpfrun_ev0));
        if (!e) { bpfrun_lost(LOST_EVENTS); break; }
        e->probe = 0;
        e->tgid = 0;
        e->f0 = (BPFRUN_PID_TGID() >> 32);
        BPFRUN_READ_COMM();
        __builtin_memcpy(&e->f1, bpfrun_comm, 16);
        bpf_probe_read_user_str(&e->f2, 128, (void *)args->filename);
        events.ringbuf_submit(e, 0);
    } while (0);
    return 0;
}

/* tracepoint:syscalls:sys_enter_write */
int bpfrun_io_probe1(void *ctx) {
    bpfrun_io_probe1_h0(ctx);
    return 0;
}

/* tracepoint:syscalls:sys_enter_openat */
int bpfrun_io_probe2(void *ctx) {
    bpfrun_io_probe2_h0(ctx);
    return 0;
}
