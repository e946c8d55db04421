/*
 * sysmix - a syscall storm, a slow system call and idle waits, side by side.
 * Reproduces "syscalls ranks idle waits first": thread bpfr_storm calls getpid() in a tight
 * loop (bpfr_storm_loop, ~1 million calls a second), bpfr_fsync write()s 100 bytes and
 * fsync()s after each write (bpfr_sync_write, ~0.1-1 ms a call on a disk), and bpfr_idle
 * only waits (futex with a timeout, poll on a silent pipe), as an idle service thread does:
 * its calls take the most time but do no work. With --fork the fsync writer is a child
 * process of its own (for host-wide runs that name two processes).
 */
#include "workload.h"
#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
    "usage: sysmix [--seconds S] [--name NAME] [--wait-signal] [--path P] [--size B] [--fork]\n"
    "prints: getpids=N fsyncs=N waits=N\n";

struct counters {
    atomic_ulong getpids, fsyncs, waits;
};

static struct counters *counts; /* shared with a --fork child */
static const char *path = "/var/tmp/bpfr_sysmix.dat";
static long size = 100;

__attribute__((noinline)) void bpfr_storm_loop(void)
{
    while (wl_running()) {
        for (int k = 0; k < 1024; k++) /* the clock costs as much as getpid: read it rarely */
            getpid();
        atomic_fetch_add(&counts->getpids, 1024);
    }
}

__attribute__((noinline)) int bpfr_sync_write(int fd, const char *buf)
{
    if (write(fd, buf, (size_t)size) != size)
        return -1;
    return fsync(fd);
}

static void fsync_writer(void)
{
    char buf[4096];
    /* The file is unlinked once open: nothing is left behind, and fsync still hits the disk. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        wl_die("cannot open %s", path);
    unlink(path);
    memset(buf, 'x', sizeof buf);
    for (unsigned long n = 0; wl_running(); n++) {
        if (bpfr_sync_write(fd, buf) != 0)
            wl_die("write/fsync failed on %s", path);
        atomic_fetch_add(&counts->fsyncs, 1);
        if (n % 1000 == 999 && ftruncate(fd, 0) != 0) /* keep the file small */
            wl_die("ftruncate failed on %s", path);
    }
    close(fd);
}

static void *storm_main(void *arg)
{
    (void)arg;
    wl_set_thread_name("bpfr_storm");
    wl_gate_wait();
    bpfr_storm_loop();
    return NULL;
}

static void *fsync_main(void *arg)
{
    (void)arg;
    wl_set_thread_name("bpfr_fsync");
    wl_gate_wait();
    fsync_writer();
    return NULL;
}

__attribute__((noinline)) void bpfr_idle_wait(pthread_mutex_t *mu, pthread_cond_t *cv, int rfd)
{
    struct pollfd p = {.fd = rfd, .events = POLLIN};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 20 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(mu);
    pthread_cond_timedwait(cv, mu, &ts); /* nobody signals: a futex wait of 20 ms */
    pthread_mutex_unlock(mu);
    poll(&p, 1, 20); /* nobody writes: a poll of 20 ms */
    atomic_fetch_add(&counts->waits, 2);
}

static void *idle_main(void *arg)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int *pipefd = arg;
    wl_set_thread_name("bpfr_idle");
    wl_gate_wait();
    while (wl_running())
        bpfr_idle_wait(&mu, &cv, pipefd[0]);
    return NULL;
}

static pid_t fork_writer(void)
{
    pid_t pid = fork();
    if (pid < 0)
        wl_die("cannot fork the %s writer", "fsync");
    if (pid == 0) {
        sigset_t none;
        prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
        wl_set_thread_name("bpfr_fsync");
        signal(SIGUSR1, SIG_IGN); /* meant for the parent */
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        fsync_writer(); /* no deadline here: it writes until the parent's SIGTERM */
        _exit(0);
    }
    return pid;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_sysmix");
    bool fork_it = false;
    pthread_t storm, writer, idle;
    int pipefd[2];
    pid_t child = -1;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--path") == 0)
            path = wl_arg_str(argc, argv, &i);
        else if (strcmp(argv[i], "--size") == 0)
            size = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--fork") == 0)
            fork_it = true;
        else
            wl_usage_error(usage, argv[i]);
    }
    if (size < 1 || size > 4096)
        wl_die("--size must be 1 to 4096 bytes, got %s", "another value");
    counts = mmap(NULL, sizeof *counts, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED || pipe(pipefd) != 0)
        wl_die("cannot set up: %s", strerror(errno));
    wl_setup(&c);
    pthread_create(&storm, NULL, storm_main, NULL);
    pthread_create(&idle, NULL, idle_main, pipefd);
    if (fork_it)
        child = fork_writer();
    else
        pthread_create(&writer, NULL, fsync_main, NULL);
    wl_start(&c);
    wl_idle();
    pthread_join(storm, NULL);
    pthread_join(idle, NULL);
    if (child > 0) {
        kill(child, SIGTERM);
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
    } else
        pthread_join(writer, NULL);
    printf("getpids=%lu fsyncs=%lu waits=%lu\n", atomic_load(&counts->getpids),
           atomic_load(&counts->fsyncs), atomic_load(&counts->waits));
    return wl_finish();
}
