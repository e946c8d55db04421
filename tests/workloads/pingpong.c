/*
 * pingpong - two processes bounce one byte over two pipes; every round trip is two wakeups
 * and two context switches. The load for the scheduler-overhead benchmark (pin it to one CPU
 * with taskset): compare rate= with and without tracing.
 * Stops after --round-trips N (default 100000, unlimited when only --seconds is given) or when
 * --seconds S runs out, whichever comes first.
 */
#include "workload.h"
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "usage: pingpong [--seconds S] [--name NAME] [--wait-signal] [--round-trips N]\n"
    "                [--child-name NAME]\n"
    "prints: round_trips=N seconds=F rate=F\n";

/* The child echoes every byte until the parent closes its end. */
__attribute__((noinline)) void bpfr_pong(int in, int out)
{
    char byte;
    while (read(in, &byte, 1) == 1) {
        if (write(out, &byte, 1) != 1)
            break;
    }
}

/* Returns 0 after one full round trip, -1 when interrupted or the child is gone. */
__attribute__((noinline)) int bpfr_ping(int out, int in)
{
    char byte = 'x';
    if (write(out, &byte, 1) != 1)
        return -1;
    while (read(in, &byte, 1) != 1) {
        if (errno != EINTR || wl_stopping())
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_ping");
    const char *child_name = "bpfr_pong";
    long round_trips = -1;
    bool seconds_given = false;
    int to_child[2], to_parent[2];
    char ready;
    unsigned long done = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds_given = true;
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--round-trips") == 0)
            round_trips = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--child-name") == 0)
            child_name = wl_arg_name(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (!seconds_given)
        c.seconds = 0;
    if (round_trips < 0 && !seconds_given)
        round_trips = 100000;
    wl_setup(&c);
    if (pipe(to_child) != 0 || pipe(to_parent) != 0)
        wl_die("%s", "pipe failed");
    pid_t pid = fork();
    if (pid < 0)
        wl_die("%s", "fork failed");
    if (pid == 0) {
        wl_set_thread_name(child_name);
        close(to_child[1]);
        close(to_parent[0]);
        ready = 'r';
        if (write(to_parent[1], &ready, 1) == 1) /* named: the parent may declare readiness */
            bpfr_pong(to_child[0], to_parent[1]);
        _exit(0);
    }
    close(to_child[0]);
    close(to_parent[1]);
    if (read(to_parent[0], &ready, 1) != 1)
        wl_die("%s", "the child did not start");
    wl_start(&c);

    double start = wl_now();
    while (wl_running() && (round_trips < 0 || done < (unsigned long)round_trips)) {
        if (bpfr_ping(to_child[1], to_parent[0]) != 0)
            break;
        done++;
    }
    double elapsed = wl_now() - start;
    close(to_child[1]); /* EOF ends the child */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    printf("round_trips=%lu seconds=%.6f rate=%.1f\n", done, elapsed,
           elapsed > 0 ? (double)done / elapsed : 0.0);
    return wl_finish();
}
