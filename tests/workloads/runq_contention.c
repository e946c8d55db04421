/*
 * runq_contention - a victim thread that wakes every ~1 ms and a hog thread that never sleeps.
 * Reproduces run-queue latency: with --same-cpu both share one CPU and the victim runs at the
 * lowest priority, so after each wakeup it waits (often >= 10 ms) for the hog to give up the
 * CPU; with --split they run on different CPUs and the victim barely waits.
 */
#include "workload.h"
#include <sys/resource.h>
#include <unistd.h>

static const char usage[] =
    "usage: runq_contention [--seconds S] [--name NAME] [--wait-signal]\n"
    "                       [--victim NAME] [--hog NAME] [--same-cpu | --split] [--cpu N]\n"
    "prints: victim_wakeups=N hog_loops=N victim_policy=normal|idle|nice19\n";

struct role {
    const char *name;
    int cpu;       /* -1 = not pinned */
    bool low_prio; /* SCHED_IDLE, or nice 19 when that is refused */
    const char *policy;
    unsigned long count;
};

static pthread_barrier_t set_up;
static volatile unsigned long sink;

__attribute__((noinline)) unsigned long hog_spin(void)
{
    unsigned long loops = 0;
    while (wl_running()) {
        for (unsigned long k = 0; k < 100000; k++)
            sink += k;
        loops++;
    }
    return loops;
}

__attribute__((noinline)) void victim_work(void)
{
    for (unsigned long k = 0; k < 20000; k++)
        sink += k;
}

static void prepare(struct role *r)
{
    struct sched_param param = {.sched_priority = 0};
    wl_set_thread_name(r->name);
    if (r->cpu >= 0)
        wl_pin_to_cpu(r->cpu);
    r->policy = "normal";
    if (r->low_prio) {
        /* pid 0 means the calling thread here: Linux scheduling attributes are per thread. */
        if (sched_setscheduler(0, SCHED_IDLE, &param) == 0)
            r->policy = "idle";
        else if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) == 0)
            r->policy = "nice19";
    }
    pthread_barrier_wait(&set_up);
    wl_gate_wait();
}

static void *hog_main(void *arg)
{
    struct role *r = arg;
    prepare(r);
    r->count = hog_spin();
    return NULL;
}

static void *victim_main(void *arg)
{
    struct role *r = arg;
    struct timespec one_ms = {.tv_sec = 0, .tv_nsec = 1000000};
    prepare(r);
    while (wl_running()) {
        nanosleep(&one_ms, NULL);
        r->count++;
        victim_work();
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_runq");
    struct role victim = {.name = "bpfr_victim", .cpu = -1};
    struct role hog = {.name = "bpfr_hog", .cpu = -1};
    bool same_cpu = false, split = false;
    int cpu = 0;
    pthread_t threads[2];

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--victim") == 0)
            victim.name = wl_arg_name(argc, argv, &i);
        else if (strcmp(argv[i], "--hog") == 0)
            hog.name = wl_arg_name(argc, argv, &i);
        else if (strcmp(argv[i], "--same-cpu") == 0)
            same_cpu = true;
        else if (strcmp(argv[i], "--split") == 0)
            split = true;
        else if (strcmp(argv[i], "--cpu") == 0)
            cpu = (int)wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (same_cpu && split)
        wl_die("%s", "--same-cpu and --split exclude each other");
    if (same_cpu) {
        hog.cpu = victim.cpu = cpu;
        victim.low_prio = true;
    } else if (split) {
        hog.cpu = cpu;
        victim.cpu = (cpu + 1) % (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    wl_setup(&c);
    pthread_barrier_init(&set_up, NULL, 3);
    pthread_create(&threads[0], NULL, hog_main, &hog);
    pthread_create(&threads[1], NULL, victim_main, &victim);
    pthread_barrier_wait(&set_up); /* names and priorities are in place before "ready" */
    wl_start(&c);
    wl_idle();
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);
    printf("victim_wakeups=%lu hog_loops=%lu victim_policy=%s\n", victim.count, hog.count,
           victim.policy);
    return wl_finish();
}
