/*
 * stacks - burns CPU along N distinct user call chains of the same depth. Reproduces a
 * profile with many distinct stacks (stack storage filling, stack-id collisions) and is the
 * benchmark's stack-scale load: the number of keys grows with N, the cost of a walk does not.
 *
 * Each unit of work (sb_work, about 10 us) runs at the bottom of 12 levels of calls; at every
 * level one of two functions is called (sb_<level>_a or sb_<level>_b), chosen by one bit of
 * the unit's path. Paths cycle through 0 .. N-1, so N (a power of two, 1..4096) distinct
 * stacks of 28 frames appear, each with its own function names, in equal shares.
 * Prints units=N stacks=N seconds=F.
 */
#include "workload.h"

static const char usage[] =
    "usage: stacks [--seconds S] [--stacks N (power of two, 1..4096)] [--name NAME]\n"
    "prints: units=N stacks=N seconds=F\n";

static volatile unsigned long sink;

/* One unit of CPU work: far shorter than a 999 Hz profiler's period, so consecutive samples
 * land on unrelated paths. */
__attribute__((noinline)) static void sb_work(void)
{
    for (unsigned long k = 0; k < 20000; k++)
        sink += k;
}

/* One of level d's two functions; `op` differs so the compiler cannot merge them. */
#define SB_FN(d, v, op, below)                                                             \
    __attribute__((noinline)) static void sb_##d##_##v(unsigned p)                         \
    {                                                                                      \
        sink op d;                                                                         \
        below(p >> 1);                                                                     \
    }
/* Level d: its two functions, and the choice between them by the path's lowest bit. */
#define SB_LEVEL(d, below)                                                                 \
    SB_FN(d, a, +=, below)                                                                 \
    SB_FN(d, b, -=, below)                                                                 \
    static void sb_##d(unsigned p) { (p & 1) ? sb_##d##_a(p) : sb_##d##_b(p); }

static void sb_0(unsigned p)
{
    (void)p;
    sb_work();
}
SB_LEVEL(1, sb_0)
SB_LEVEL(2, sb_1)
SB_LEVEL(3, sb_2)
SB_LEVEL(4, sb_3)
SB_LEVEL(5, sb_4)
SB_LEVEL(6, sb_5)
SB_LEVEL(7, sb_6)
SB_LEVEL(8, sb_7)
SB_LEVEL(9, sb_8)
SB_LEVEL(10, sb_9)
SB_LEVEL(11, sb_10)
SB_LEVEL(12, sb_11)

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_stacks");
    long stacks = 1;
    c.seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--stacks") == 0)
            stacks = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (stacks < 1 || stacks > 4096 || (stacks & (stacks - 1)) != 0)
        wl_die("%s", "--stacks must be a power of two, 1..4096");
    wl_setup(&c);
    wl_start(&c);
    double start = wl_now();
    unsigned long units = 0;
    while (wl_running()) {
        sb_12((unsigned)(units & (unsigned long)(stacks - 1)));
        units++;
    }
    printf("units=%lu stacks=%ld seconds=%.6f\n", units, stacks, wl_now() - start);
    return wl_finish();
}
