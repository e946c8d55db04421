/*
 * spin - burns CPU for the whole window, almost all of it in one function.
 * Reproduces "where does this process spend its CPU": CPU profiles of it should show
 * bpfr_hot_function (called from bpfr_outer, called from main) on top, and a little
 * bpfr_cold_function (about 5% of the time).
 */
#include "workload.h"

static const char usage[] =
    "usage: spin [--seconds S] [--name NAME] [--wait-signal]\n"
    "prints: loops=N cold_loops=N\n";

static volatile unsigned long sink;

__attribute__((noinline)) void bpfr_hot_function(void)
{
    for (unsigned long k = 0; k < 200000; k++)
        sink += k;
}

__attribute__((noinline)) void bpfr_cold_function(void)
{
    for (unsigned long k = 0; k < 40000; k++)
        sink ^= k;
}

__attribute__((noinline)) unsigned long bpfr_outer(unsigned long *cold_loops)
{
    unsigned long loops = 0;
    while (wl_running()) {
        bpfr_hot_function();
        loops++;
        if (loops % 4 == 0) {
            bpfr_cold_function();
            *cold_loops += 1;
        }
    }
    return loops;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_spin");
    unsigned long loops, cold_loops = 0;

    for (int i = 1; i < argc; i++) {
        if (!wl_parse_common(&c, argc, argv, &i, usage))
            wl_usage_error(usage, argv[i]);
    }
    wl_setup(&c);
    wl_start(&c);
    loops = bpfr_outer(&cold_loops);
    printf("loops=%lu cold_loops=%lu\n", loops, cold_loops);
    return wl_finish();
}
