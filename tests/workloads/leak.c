/*
 * leak - allocates at a steady rate; some allocations are never freed.
 * Reproduces a user-space memory leak: outstanding allocations should point at leaky_alloc
 * (malloc, the biggest), leaky_calloc and leaky_realloc, never at balanced_alloc, whose
 * blocks are freed by balanced_free straight away.
 * Built with -O0 -fno-builtin: at -O1 GCC deletes mallocs whose memory does not escape.
 */
#include "workload.h"

static const char usage[] =
    "usage: leak [--seconds S] [--name NAME] [--wait-signal] [--rate R] [--leak-size B]\n"
    "prints: leaked_bytes=N leaks=N balanced=N\n";

#define BALANCED_SIZE 1024
#define CALLOC_COUNT 16
#define CALLOC_SIZE 128 /* 2048 bytes per calloc */
#define REALLOC_FROM 256
#define REALLOC_TO 1536

/* Leaked blocks form a list threaded through their first word, so every block stays
 * reachable from a global (the compiler cannot drop them) without a bookkeeping allocation. */
void *volatile bpfr_leaked_head;
void *volatile bpfr_escape; /* balanced blocks escape through here before being freed */

static void keep(void *p)
{
    *(void **)p = bpfr_leaked_head;
    bpfr_leaked_head = p;
}

__attribute__((noinline)) size_t leaky_alloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        return 0;
    keep(p);
    return size;
}

__attribute__((noinline)) size_t leaky_calloc(void)
{
    void *p = calloc(CALLOC_COUNT, CALLOC_SIZE);
    if (p == NULL)
        return 0;
    keep(p);
    return CALLOC_COUNT * CALLOC_SIZE;
}

__attribute__((noinline)) size_t leaky_realloc(void)
{
    void *p = malloc(REALLOC_FROM);
    void *q = p ? realloc(p, REALLOC_TO) : NULL;
    if (q == NULL) {
        free(p);
        return 0;
    }
    keep(q);
    return REALLOC_TO;
}

__attribute__((noinline)) void balanced_free(void *p)
{
    free(p);
}

__attribute__((noinline)) void balanced_alloc(void)
{
    void *p = malloc(BALANCED_SIZE);
    bpfr_escape = p;
    balanced_free(bpfr_escape);
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_leak");
    double rate = 200;
    long leak_size = 4096;
    unsigned long leaked_bytes = 0, leaks = 0, balanced = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--leak-size") == 0)
            leak_size = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (leak_size < (long)sizeof(void *))
        wl_die("%s", "--leak-size must be at least the size of a pointer (8)");
    wl_setup(&c);
    wl_start(&c);

    struct wl_pacer pacer = wl_pacer_new(rate);
    while (wl_running()) {
        leaked_bytes += leaky_alloc((size_t)leak_size);
        leaked_bytes += leaky_calloc();
        leaked_bytes += leaky_realloc();
        leaks += 3;
        balanced_alloc();
        balanced++;
        wl_pace(&pacer);
    }
    printf("leaked_bytes=%lu leaks=%lu balanced=%lu\n", leaked_bytes, leaks, balanced);
    return wl_finish();
}
