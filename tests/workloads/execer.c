/*
 * execer - starts a short-lived program again and again (fork + exec + wait).
 * Reproduces "who keeps spawning processes": exec events should show --exec PATH run with
 * the arguments "bpfr-arg1 bpfr-arg2", with this process (named bpfr_execer) as the parent.
 */
#include "workload.h"
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "usage: execer [--seconds S] [--name NAME] [--wait-signal] [--exec PATH] [--rate R]\n"
    "              [--count N]\n"
    "prints: execs=N failed=N\n";

/* Returns the child's exit status, or -1 when fork failed. */
__attribute__((noinline)) int bpfr_spawn(const char *path)
{
    /* Arguments built on the stack, as a shell builds them: memory already paged in. A
     * tracer reads them at execve's entry, where it cannot fault in a page (string literals
     * in a never-touched .rodata page would read as empty: a known limit of execsnoop too). */
    char path_copy[256], arg1[] = "bpfr-arg1", arg2[] = "bpfr-arg2";
    snprintf(path_copy, sizeof(path_copy), "%s", path);
    char *const child_argv[] = {path_copy, arg1, arg2, NULL};
    int status;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* the signal mask survives exec */
        execv(path_copy, child_argv);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) /* a stop signal must not orphan the child */
            return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_execer");
    const char *path = "/bin/true";
    double rate = 20;
    long count = -1;
    unsigned long execs = 0, failed = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--exec") == 0)
            path = wl_arg_str(argc, argv, &i);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--count") == 0)
            count = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    wl_setup(&c);
    wl_start(&c);

    struct wl_pacer pacer = wl_pacer_new(rate);
    while (wl_running() && (count < 0 || execs < (unsigned long)count)) {
        execs++;
        if (bpfr_spawn(path) != 0)
            failed++;
        wl_pace(&pacer);
    }
    wl_idle();
    printf("execs=%lu failed=%lu\n", execs, failed);
    return wl_finish();
}
