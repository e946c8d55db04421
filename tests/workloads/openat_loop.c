/*
 * openat_loop - opens one file again and again with openat(2) + close(2) at a steady rate.
 * Reproduces "who opens which file, how often" and, with --fail-path, failing opens (ENOENT).
 */
#include "workload.h"
#include <fcntl.h>
#include <unistd.h>

#define MISSING_PATH "/nonexistent/bpfr_missing_file"

static const char usage[] =
    "usage: openat_loop [--seconds S] [--name NAME] [--wait-signal]\n"
    "                   [--path P] [--rate R] [--count N] [--fail-path]\n"
    "prints: opens=N failed=N\n";

/* Returns 0 when the open succeeded, -1 when it failed. */
__attribute__((noinline)) int bpfr_open_once(const char *path)
{
    int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_openat");
    const char *path = "/etc/hostname";
    double rate = 200;
    long count = -1;
    bool fail_path = false;
    unsigned long opens = 0, failed = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--path") == 0)
            path = wl_arg_str(argc, argv, &i);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--count") == 0)
            count = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--fail-path") == 0)
            fail_path = true;
        else
            wl_usage_error(usage, argv[i]);
    }
    wl_setup(&c);
    wl_start(&c);

    struct wl_pacer pacer = wl_pacer_new(rate);
    while (wl_running() && (count < 0 || opens < (unsigned long)count)) {
        opens++;
        if (bpfr_open_once(path) < 0)
            failed++;
        if (fail_path && bpfr_open_once(MISSING_PATH) < 0)
            failed++;
        wl_pace(&pacer);
    }
    wl_idle();
    printf("opens=%lu failed=%lu\n", opens, failed);
    return wl_finish();
}
