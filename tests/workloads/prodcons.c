/*
 * prodcons - a producer that sleeps, then waits for a lock its consumer holds.
 * Reproduces the classic off-CPU example: each round the producer thread `bpfr_producer`
 * sleeps ~80 ms in usleep() (the line marked BPFR_SLEEP_LINE), then blocks ~20 ms in
 * pthread_mutex_lock() (BPFR_LOCK_LINE) because the consumer `bpfr_consumer` holds the
 * mutex while it processes the previous item (it sleeps inside the lock for 100 ms). So the
 * producer's off-CPU time splits ~80 % / ~20 % between clock_nanosleep and a futex wait,
 * both called from bpfr_producer itself.
 */
#include "workload.h"

#include <unistd.h>

static const char usage[] =
    "usage: prodcons [--seconds S] [--name NAME] [--wait-signal] [--sleep-ms MS]\n"
    "                [--wait-ms MS]\n"
    "prints: produced=N consumed=N\n";

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t item_cv = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t set_up;
static bool item_ready;
static long sleep_ms = 80, wait_ms = 20;
static unsigned long produced, consumed;

void *bpfr_producer(void *arg)
{
    (void)arg;
    wl_set_thread_name("bpfr_producer");
    pthread_barrier_wait(&set_up);
    wl_gate_wait();
    while (wl_running()) {
        /* Two halves, so a stop is noticed within 50 ms as workload.h promises. */
        for (int half = 0; half < 2 && wl_running(); half++)
            usleep((useconds_t)(sleep_ms * 1000 / 2)); /* BPFR_SLEEP_LINE */
        pthread_mutex_lock(&lock); /* BPFR_LOCK_LINE */
        item_ready = true;
        produced++;
        pthread_cond_signal(&item_cv);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

void *bpfr_consumer(void *arg)
{
    (void)arg;
    wl_set_thread_name("bpfr_consumer");
    pthread_barrier_wait(&set_up);
    wl_gate_wait();
    pthread_mutex_lock(&lock);
    while (wl_running()) {
        if (!item_ready) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50 * 1000 * 1000;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&item_cv, &lock, &until);
            continue;
        }
        item_ready = false;
        consumed++;
        /* Slow processing inside the lock: it outlasts the producer's sleep by wait_ms. */
        wl_sleep_until(wl_now() + (double)(sleep_ms + wait_ms) / 1000.0);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_prodcons");
    pthread_t threads[2];

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--sleep-ms") == 0)
            sleep_ms = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--wait-ms") == 0)
            wait_ms = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    wl_setup(&c);
    pthread_barrier_init(&set_up, NULL, 3);
    pthread_create(&threads[0], NULL, bpfr_producer, NULL);
    pthread_create(&threads[1], NULL, bpfr_consumer, NULL);
    pthread_barrier_wait(&set_up);
    wl_start(&c);
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);
    printf("produced=%lu consumed=%lu\n", produced, consumed);
    return wl_finish();
}
