/*
 * oncpu - one thread burns CPU in a small helper that reads the clock (vDSO) in its loop.
 * Reproduces the classic CPU-profile example: the thread `bpfr_spinner` spends nearly all
 * its time in bpfr_busy_spin_us(), which spins on clock_gettime (the line marked
 * BPFR_SPIN_LINE; libc answers it from the vDSO, __vdso_clock_gettime). At -O2 the helper is
 * inlined into its caller bpfr_spinner() (at the line marked BPFR_SPIN_CALL_LINE), so a
 * symbolizer must show it as an inlined frame; at -O0 it is a function of its own.
 */
#include "workload.h"

static const char usage[] =
    "usage: oncpu [--seconds S] [--name NAME] [--wait-signal] [--spin-us US] [--idle-us US]\n"
    "prints: spins=N\n";

static pthread_barrier_t set_up;
static long spin_us = 1000, idle_us;
static unsigned long spins;

static inline void bpfr_busy_spin_us(long us)
{
    struct timespec start, now;
    long elapsed;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do {
        clock_gettime(CLOCK_MONOTONIC, &now); /* BPFR_SPIN_LINE */
        elapsed = (now.tv_sec - start.tv_sec) * 1000000L + (now.tv_nsec - start.tv_nsec) / 1000;
    } while (elapsed < us);
}

void *bpfr_spinner(void *arg)
{
    (void)arg;
    wl_set_thread_name("bpfr_spinner");
    pthread_barrier_wait(&set_up);
    wl_gate_wait();
    while (wl_running()) {
        bpfr_busy_spin_us(spin_us); /* BPFR_SPIN_CALL_LINE */
        spins++;
        if (idle_us > 0)
            wl_sleep_until(wl_now() + (double)idle_us / 1e6);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_oncpu");
    pthread_t thread;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--spin-us") == 0)
            spin_us = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--idle-us") == 0)
            idle_us = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    wl_setup(&c);
    pthread_barrier_init(&set_up, NULL, 2);
    pthread_create(&thread, NULL, bpfr_spinner, NULL);
    pthread_barrier_wait(&set_up);
    wl_start(&c);
    pthread_join(thread, NULL);
    printf("spins=%lu\n", spins);
    return wl_finish();
}
