/*
 * memleak_main - leaks a fixed-size malloc straight from main, slowly, and frees nothing.
 * Reproduces the classic memleak example: every outstanding block was allocated by the one
 * malloc call in main (the line marked BPFR_LEAK_LINE; tests find it by that mark), so a leak
 * report should name `main` and that file:line, however few blocks leaked.
 * Built with -fno-builtin (all variants): GCC may otherwise drop a malloc whose block is unused.
 */
#include "workload.h"

static const char usage[] =
    "usage: memleak_main [--seconds S] [--name NAME] [--wait-signal] [--rate R] [--size B]\n"
    "                    [--count N]\n"
    "prints: leaks=N leaked_bytes=N\n";

/* Leaked blocks are chained through their first word, so every one stays reachable from a
 * global (the compiler cannot drop them) without another allocation. */
void *volatile bpfr_leaked_head;

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_memleak");
    double rate = 5;
    long size = 1024, count = -1;
    unsigned long leaks = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--size") == 0)
            size = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--count") == 0)
            count = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (size < (long)sizeof(void *))
        wl_die("--size must be at least %s bytes", "8");
    wl_setup(&c);
    wl_start(&c);
    struct wl_pacer pacer = wl_pacer_new(rate);
    while (wl_running() && (count < 0 || (long)leaks < count)) {
        void **block = malloc((size_t)size); /* BPFR_LEAK_LINE */
        if (block == NULL)
            break;
        *block = bpfr_leaked_head;
        bpfr_leaked_head = block;
        leaks++;
        wl_pace(&pacer);
    }
    wl_idle();
    printf("leaks=%lu leaked_bytes=%lu\n", leaks, leaks * (unsigned long)size);
    return wl_finish();
}
