/*
 * sized_writes - writes to /dev/null whose sizes put an exact share just over a limit.
 * Every `--every`-th write is `--over` bytes, the others `--under` bytes (defaults 1001 and
 * 999: both in the same log2 bucket, [512, 1024), so only an exact count of values above
 * 1000 can tell a p99 over 1000 from one under it). Sizes, not times: the share over the
 * limit is exact whatever the machine's load.
 */
#include "workload.h"

#include <fcntl.h>
#include <unistd.h>

static const char usage[] =
    "usage: sized_writes [--seconds S] [--name NAME] [--wait-signal] [--count N]\n"
    "                    [--every K] [--over B] [--under B] [--rate R]\n"
    "prints: writes=N over=N under=N\n";

static char buf[1 << 16];

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_sizedw");
    long count = 1000, every = 100, over_size = 1001, under_size = 999;
    double rate = 2000;
    unsigned long writes = 0, over = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--count") == 0)
            count = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--every") == 0)
            every = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--over") == 0)
            over_size = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--under") == 0)
            under_size = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (every < 1 || over_size > (long)sizeof(buf) || under_size > (long)sizeof(buf) ||
        over_size < 0 || under_size < 0)
        wl_die("bad --every, --over or --under%s", "");
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        wl_die("cannot open %s", "/dev/null");
    wl_setup(&c);
    wl_start(&c);
    struct wl_pacer pacer = wl_pacer_new(rate);
    while (wl_running() && (long)writes < count) {
        bool big = (long)(writes % (unsigned long)every) == every - 1;
        if (write(fd, buf, (size_t)(big ? over_size : under_size)) < 0)
            break;
        writes++;
        over += big;
        wl_pace(&pacer);
    }
    wl_idle();
    printf("writes=%lu over=%lu under=%lu\n", writes, over, writes - over);
    close(fd);
    return wl_finish();
}
