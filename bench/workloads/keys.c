/*
 * keys - N processes with distinct names make system calls in a loop, for the benchmark's
 * scale rows: each process is one more distinct key (pid, comm) for a tracer's maps, and
 * --work W adds W iterations of user-space work between calls, which lowers the events/s;
 * --burst B makes each child yield the CPU after every B calls, so that all N children run
 * (and become keys) within a short window.
 * Pin the whole thing to one CPU with taskset: the children inherit the affinity.
 * Measures from the moment every child is ready, for --seconds S (default 1), and prints
 * calls=N seconds=F rate=F procs=N active=N (children that made at least one call).
 */
#include "workload.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "usage: keys [--seconds S] [--procs N] [--work W] [--burst B] [--name PREFIX]\n"
    "prints: calls=N seconds=F rate=F procs=N active=N\n";

/* One cache line per child: the parent reads them while the children write. */
struct slot {
    _Atomic unsigned long calls;
    char pad[56];
};

struct shared {
    atomic_int ready, stop;
    struct slot slots[];
};

static volatile unsigned long sink;

/* Blocks on the start pipe: a thousand children polling a flag would load the CPU alone. */
__attribute__((noinline)) static void bk_child(struct shared *sh, int i, long work, long burst,
                                               int gate)
{
    unsigned long n = 0;
    char byte;
    atomic_fetch_add(&sh->ready, 1);
    while (read(gate, &byte, 1) < 0 && errno == EINTR)
        ;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        getppid();
        for (long k = 0; k < work; k++)
            sink += k;
        atomic_store_explicit(&sh->slots[i].calls, ++n, memory_order_relaxed);
        if (burst > 0 && n % (unsigned long)burst == 0)
            sched_yield(); /* round-robin quickly, so every child is a key within the window */
    }
}

/* Calls made so far; *active (if given) counts the children that made at least one. */
static unsigned long total(struct shared *sh, long procs, long *active)
{
    unsigned long sum = 0;
    for (long i = 0; i < procs; i++) {
        unsigned long n = atomic_load_explicit(&sh->slots[i].calls, memory_order_relaxed);
        sum += n;
        if (active && n > 0)
            *active += 1;
    }
    return sum;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bk");
    long procs = 1, work = 0, burst = 0;
    c.seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--procs") == 0)
            procs = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--work") == 0)
            work = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--burst") == 0)
            burst = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (procs < 1 || procs > 10000)
        wl_die("%s", "--procs must be 1..10000");
    if (strlen(c.name) > 10)
        wl_die("%s", "--name must be at most 10 characters (a 4-digit index is appended)");
    size_t size = sizeof(struct shared) + (size_t)procs * sizeof(struct slot);
    struct shared *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                             -1, 0);
    if (sh == MAP_FAILED)
        wl_die("%s", "mmap failed");
    wl_setup(&c);
    pid_t parent = getpid();
    int gate[2];
    if (pipe(gate) != 0)
        wl_die("%s", "pipe failed");
    for (long i = 0; i < procs; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            atomic_store(&sh->stop, 1);
            wl_die("%s", "fork failed");
        }
        if (pid == 0) {
            char name[16];
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the parent */
            if (getppid() != parent)
                _exit(0);
            close(gate[1]);
            snprintf(name, sizeof name, "%s%04ld", c.name, i);
            wl_set_thread_name(name);
            bk_child(sh, (int)i, work, burst, gate[0]);
            _exit(0);
        }
    }
    wl_set_thread_name("bk_parent");
    /* With 1000 busy children on its CPU, the parent's timer wakeups would come seconds late
     * and stretch the window: a real-time parent runs the moment its sleep ends. */
    struct sched_param sp = {.sched_priority = 1};
    if (sched_setscheduler(0, SCHED_FIFO, &sp) != 0)
        fprintf(stderr, "keys: no SCHED_FIFO for the parent (%s): the window may stretch\n",
                strerror(errno));
    sigset_t set;
    wl_signal_set(&set);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    while (atomic_load(&sh->ready) < procs && !wl_stopping())
        usleep(1000);
    close(gate[1]); /* EOF: every child starts */
    double start = wl_now();
    unsigned long before = total(sh, procs, NULL);
    double end = start + c.seconds;
    while (!wl_stopping() && wl_now() < end)
        usleep(10000);
    long active = 0;
    unsigned long after = total(sh, procs, &active);
    double elapsed = wl_now() - start;
    atomic_store(&sh->stop, 1);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    printf("calls=%lu seconds=%.6f rate=%.1f procs=%ld active=%ld\n", after - before, elapsed,
           elapsed > 0 ? (double)(after - before) / elapsed : 0.0, procs, active);
    return wl_finish();
}
