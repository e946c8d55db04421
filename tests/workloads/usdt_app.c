/*
 * usdt_app - fires a USDT probe `bpfr:request` (args: request number, size in bytes) at a
 * fixed rate, like an application server instrumented with static probes.
 * Needs <sys/sdt.h> (Debian: systemtap-sdt-dev). Prints: requests=N bytes=N
 */
#include "workload.h"
#include <sys/sdt.h>

static const char usage[] =
    "usage: usdt_app [--seconds S] [--name NAME] [--wait-signal] [--rate R] [--count N]\n"
    "prints: requests=N bytes=N\n";

__attribute__((noinline)) void bpfr_handle_request(long n, long size)
{
    DTRACE_PROBE2(bpfr, request, n, size);
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_usdt");
    double rate = 100;
    long count = -1, n = 0, bytes = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--count") == 0)
            count = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    wl_setup(&c);
    wl_start(&c);
    struct wl_pacer p = wl_pacer_new(rate);
    while (wl_running() && (count < 0 || n < count)) {
        long size = 100 + n % 10; /* sizes 100..109 */
        bpfr_handle_request(n, size);
        bytes += size;
        n++;
        wl_pace(&p);
    }
    while (wl_running())
        wl_idle();
    printf("requests=%ld bytes=%ld\n", n, bytes);
    return wl_finish();
}
