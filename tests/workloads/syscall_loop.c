/*
 * syscall_loop - makes one cheap system call in a tight loop.
 * Reproduces a syscall storm ("which process makes the most syscalls, and which one") and is
 * the load for overhead benchmarks: compare rate= with and without tracing.
 * read0 is read(2) of 0 bytes from /dev/zero: a real syscall that moves no data; nr:N is
 * syscall(N), e.g. a number no kernel has (ENOSYS), as fuzzers and broken binaries make.
 */
#include "workload.h"
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char usage[] =
    "usage: syscall_loop [--seconds S] [--name NAME] [--wait-signal]\n"
    "                    [--syscall getppid|getpid|read0|nr:N] [--calls N]\n"
    "prints: calls=N seconds=F rate=F\n";

enum which { GETPPID, GETPID, READ0, NUMBER };

static int zero_fd = -1;
static long number = -1;

__attribute__((noinline)) void bpfr_one_syscall(enum which w)
{
    char byte;
    if (w == GETPPID)
        getppid();
    else if (w == GETPID)
        getpid();
    else if (w == READ0)
        (void)!read(zero_fd, &byte, 0);
    else
        syscall(number);
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_sysloop");
    enum which w = GETPPID;
    long max_calls = -1;
    unsigned long calls = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--syscall") == 0) {
            const char *s = wl_arg_str(argc, argv, &i);
            if (strcmp(s, "getppid") == 0)
                w = GETPPID;
            else if (strcmp(s, "getpid") == 0)
                w = GETPID;
            else if (strcmp(s, "read0") == 0)
                w = READ0;
            else if (strncmp(s, "nr:", 3) == 0 && s[3] >= '0' && s[3] <= '9') {
                w = NUMBER;
                number = strtol(s + 3, NULL, 10);
            } else
                wl_die("unknown --syscall '%s' (getppid, getpid, read0, nr:N)", s);
        } else if (strcmp(argv[i], "--calls") == 0)
            max_calls = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (w == READ0 && (zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC)) < 0)
        wl_die("cannot open %s", "/dev/zero");
    wl_setup(&c);
    wl_start(&c);

    double start = wl_now();
    /* Checking the clock costs about as much as the syscall: do it every 1024 calls. */
    while (wl_running() && (max_calls < 0 || calls < (unsigned long)max_calls)) {
        for (int k = 0; k < 1024 && (max_calls < 0 || calls < (unsigned long)max_calls); k++) {
            bpfr_one_syscall(w);
            calls++;
        }
    }
    double elapsed = wl_now() - start;
    printf("calls=%lu seconds=%.6f rate=%.1f\n", calls, elapsed,
           elapsed > 0 ? (double)calls / elapsed : 0.0);
    return wl_finish();
}
