/*
 * lockwait - one thread holds a mutex through a long, busy critical section; another blocks
 * waiting for it.
 * Reproduces off-CPU time spent on a lock: the waiter `bpfr_waiter` is off the CPU most of the
 * time in `bpfr_wait_for_lock` (pthread_mutex_lock -> futex), and it is woken by the holder
 * `bpfr_holder` when that unlocks; the holder is on the CPU, computing in `bpfr_hold_lock`.
 */
#include "workload.h"

static const char usage[] =
    "usage: lockwait [--seconds S] [--name NAME] [--wait-signal] [--hold-ms MS]\n"
    "                [--holder NAME] [--waiter NAME]\n"
    "prints: holds=N waits=N\n";

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t set_up;
static double hold_seconds = 0.02;
static const char *holder_name = "bpfr_holder";
static const char *waiter_name = "bpfr_waiter";
static unsigned long holds, waits;

volatile unsigned long bpfr_work_done;

__attribute__((noinline)) void bpfr_hold_lock(void)
{
    pthread_mutex_lock(&lock);
    for (double until = wl_now() + hold_seconds; wl_running() && wl_now() < until;)
        bpfr_work_done++;
    pthread_mutex_unlock(&lock);
}

__attribute__((noinline)) void bpfr_wait_for_lock(void)
{
    pthread_mutex_lock(&lock);
    pthread_mutex_unlock(&lock);
}

static void *holder_main(void *arg)
{
    (void)arg;
    wl_set_thread_name(holder_name);
    pthread_barrier_wait(&set_up);
    wl_gate_wait();
    while (wl_running()) {
        bpfr_hold_lock();
        holds++;
        /* Leave the lock free for a moment, so the waiter gets it and then blocks again. */
        wl_sleep_until(wl_now() + 0.001);
    }
    return NULL;
}

static void *waiter_main(void *arg)
{
    (void)arg;
    wl_set_thread_name(waiter_name);
    pthread_barrier_wait(&set_up);
    wl_gate_wait();
    while (wl_running()) {
        bpfr_wait_for_lock();
        waits++;
        /* Short nap after each turn: the holder has retaken the lock when the waiter is back. */
        wl_sleep_until(wl_now() + 0.002);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_lockwait");
    pthread_t threads[2];

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--hold-ms") == 0)
            hold_seconds = wl_arg_double(argc, argv, &i) / 1000.0;
        else if (strcmp(argv[i], "--holder") == 0)
            holder_name = wl_arg_name(argc, argv, &i);
        else if (strcmp(argv[i], "--waiter") == 0)
            waiter_name = wl_arg_name(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    wl_setup(&c);
    pthread_barrier_init(&set_up, NULL, 3);
    pthread_create(&threads[0], NULL, holder_main, NULL);
    pthread_create(&threads[1], NULL, waiter_main, NULL);
    pthread_barrier_wait(&set_up);
    wl_start(&c);
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);
    printf("holds=%lu waits=%lu\n", holds, waits);
    return wl_finish();
}
