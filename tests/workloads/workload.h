/*
 * workload.h - shared plumbing for the bpfrun test workloads (header-only, static inline).
 *
 * Gives every workload the same command line (--seconds, --name, --wait-signal, --help), the
 * same start protocol and the same clean stop:
 *   - SIGTERM/SIGINT set a flag; loops poll it, so the program still prints its totals.
 *   - Readiness: the SIGUSR1 handler is installed only once the workload (and its threads) is
 *     fully set up, so "SIGUSR1 is caught" in /proc/PID/status means "ready"; the Python helper
 *     waits for that before sending SIGUSR1 or looking at thread names.
 *   - Worker threads inherit a mask that blocks those signals, so they are always delivered to
 *     the main thread; workers notice the stop flag within 50 ms (sleeps are chunked).
 * Include this first: it defines _GNU_SOURCE before any system header.
 */
#ifndef BPFR_WORKLOAD_H
#define BPFR_WORKLOAD_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define WL_NAME_MAX 15 /* TASK_COMM_LEN - 1: the kernel silently truncates longer names */
#define WL_SLEEP_CHUNK 0.05

struct wl_common {
    double seconds; /* 0 = until SIGTERM/SIGINT */
    const char *name;
    bool wait_signal;
};

#define WL_COMMON(default_name) {.seconds = 10.0, .name = (default_name), .wait_signal = false}

static atomic_int wl_stop_flag;
static atomic_int wl_usr1_flag;
static double wl_deadline; /* written before the gate opens; 0 = no deadline */
static bool wl_gate_is_open;
static pthread_mutex_t wl_gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wl_gate_cv = PTHREAD_COND_INITIALIZER;

static inline void wl_on_stop(int sig) { (void)sig; atomic_store(&wl_stop_flag, 1); }
static inline void wl_on_usr1(int sig) { (void)sig; atomic_store(&wl_usr1_flag, 1); }

static inline double wl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline bool wl_stopping(void) { return atomic_load(&wl_stop_flag) != 0; }

/* True while the workload should keep working: no stop signal and the window not over. */
static inline bool wl_running(void)
{
    return !wl_stopping() && (wl_deadline == 0 || wl_now() < wl_deadline);
}

static inline void wl_die(const char *fmt, const char *arg)
{
    fprintf(stderr, "workload: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static inline const char *wl_arg_str(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc)
        wl_die("missing value for %s", argv[*i]);
    *i += 1;
    return argv[*i];
}

static inline double wl_arg_double(int argc, char **argv, int *i)
{
    const char *s = wl_arg_str(argc, argv, i);
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0))
        wl_die("expected a non-negative number, got '%s'", s);
    return v;
}

static inline long wl_arg_long(int argc, char **argv, int *i)
{
    const char *s = wl_arg_str(argc, argv, i);
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 0)
        wl_die("expected a non-negative integer, got '%s'", s);
    return v;
}

static inline const char *wl_arg_name(int argc, char **argv, int *i)
{
    const char *s = wl_arg_str(argc, argv, i);
    if (s[0] == '\0' || strlen(s) > WL_NAME_MAX)
        wl_die("thread name must be 1-15 characters, got '%s'", s);
    return s;
}

static inline void wl_usage_error(const char *usage, const char *arg)
{
    fprintf(stderr, "workload: unknown argument '%s'\n%s", arg, usage);
    exit(2);
}

/* Consumes argv[*i] if it is a common option; --help prints the usage and exits. */
static inline bool wl_parse_common(struct wl_common *c, int argc, char **argv, int *i,
                                   const char *usage)
{
    const char *a = argv[*i];
    if (strcmp(a, "--seconds") == 0)
        c->seconds = wl_arg_double(argc, argv, i);
    else if (strcmp(a, "--name") == 0)
        c->name = wl_arg_name(argc, argv, i);
    else if (strcmp(a, "--wait-signal") == 0)
        c->wait_signal = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        fputs(usage, stdout);
        exit(0);
    } else
        return false;
    return true;
}

static inline void wl_set_thread_name(const char *name)
{
    prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
}

/* Pins the calling thread; a missing CPU is a warning so the workload still runs. */
static inline void wl_pin_to_cpu(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        fprintf(stderr, "workload: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

static inline void wl_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
}

/* Call after parsing and before creating threads or children. */
static inline void wl_setup(const struct wl_common *c)
{
    sigset_t set;
    struct sigaction sa;
    wl_set_thread_name(c->name);
    wl_signal_set(&set);
    sigprocmask(SIG_BLOCK, &set, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wl_on_stop; /* no SA_RESTART: blocking calls return EINTR on stop */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* Declares the workload ready, waits for SIGUSR1 if asked, then starts the clock. */
static inline void wl_start(const struct wl_common *c)
{
    sigset_t set, wait_mask;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wl_on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    wl_signal_set(&set);
    if (c->wait_signal) {
        sigprocmask(SIG_BLOCK, NULL, &wait_mask);
        sigdelset(&wait_mask, SIGTERM);
        sigdelset(&wait_mask, SIGINT);
        sigdelset(&wait_mask, SIGUSR1);
        while (!atomic_load(&wl_usr1_flag) && !wl_stopping())
            sigsuspend(&wait_mask);
    }
    pthread_mutex_lock(&wl_gate_mu);
    wl_deadline = c->seconds > 0 ? wl_now() + c->seconds : 0;
    wl_gate_is_open = true;
    pthread_cond_broadcast(&wl_gate_cv);
    pthread_mutex_unlock(&wl_gate_mu);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* Worker threads call this after their own setup; it returns once wl_start has run. */
static inline void wl_gate_wait(void)
{
    pthread_mutex_lock(&wl_gate_mu);
    while (!wl_gate_is_open)
        pthread_cond_wait(&wl_gate_cv, &wl_gate_mu);
    pthread_mutex_unlock(&wl_gate_mu);
}

/* Sleeps until the absolute monotonic time t, the end of the window, or a stop signal. */
static inline void wl_sleep_until(double t)
{
    for (;;) {
        double now = wl_now(), until = t;
        struct timespec ts;
        if (!wl_running() || now >= t)
            return;
        if (wl_deadline != 0 && wl_deadline < until)
            until = wl_deadline;
        if (until - now > WL_SLEEP_CHUNK)
            until = now + WL_SLEEP_CHUNK;
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    }
}

/* After a --count is reached the workload stays alive until the window ends. */
static inline void wl_idle(void)
{
    while (wl_running())
        wl_sleep_until(wl_now() + WL_SLEEP_CHUNK);
}

/* Keeps a steady rate on an absolute schedule, so short stalls do not lower the average. */
struct wl_pacer {
    double next, interval;
};

static inline struct wl_pacer wl_pacer_new(double rate)
{
    struct wl_pacer p = {wl_now(), rate > 0 ? 1.0 / rate : 0};
    return p;
}

static inline void wl_pace(struct wl_pacer *p)
{
    double now = wl_now();
    if (p->interval == 0)
        return;
    p->next += p->interval;
    if (p->next < now - 1.0) /* a long stall: do not burst to catch up */
        p->next = now;
    wl_sleep_until(p->next);
}

static inline int wl_finish(void)
{
    fflush(stdout);
    return 0;
}

#endif
