/*
 * writer - two threads writing at the same rate, one with big writes and one with small ones.
 * Reproduces "which thread writes the most bytes": the heavy thread should dominate by bytes
 * while both issue the same number of write(2) calls.
 */
#include "workload.h"
#include <fcntl.h>
#include <unistd.h>

static const char usage[] =
    "usage: writer [--seconds S] [--name NAME] [--wait-signal] [--path P] [--rate R] [--count N]\n"
    "              [--heavy NAME] [--light NAME] [--heavy-bytes B] [--light-bytes B]\n"
    "prints: heavy_bytes=N light_bytes=N heavy_writes=N light_writes=N\n";

struct role {
    const char *name;
    long bytes_per_write;
    unsigned long writes, bytes;
    bool failed;
};

static const char *path = "/dev/null";
static double rate = 100;
static long count = -1;
static pthread_barrier_t set_up;

__attribute__((noinline)) long bpfr_write_chunk(int fd, const char *buf, size_t len)
{
    return (long)write(fd, buf, len);
}

static void *writer_main(void *arg)
{
    struct role *r = arg;
    char *buf = calloc(1, (size_t)r->bytes_per_write);
    /* O_APPEND: both threads may write to the same regular file. */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int open_errno = errno;
    wl_set_thread_name(r->name);
    pthread_barrier_wait(&set_up);
    if (fd < 0 || buf == NULL) {
        fprintf(stderr, "workload: cannot open %s: %s\n", path, strerror(open_errno));
        r->failed = true;
        free(buf);
        return NULL;
    }
    wl_gate_wait();
    struct wl_pacer pacer = wl_pacer_new(rate);
    while (wl_running() && (count < 0 || r->writes < (unsigned long)count)) {
        long n = bpfr_write_chunk(fd, buf, (size_t)r->bytes_per_write);
        r->writes++;
        if (n > 0)
            r->bytes += (unsigned long)n;
        wl_pace(&pacer);
    }
    wl_idle();
    close(fd);
    free(buf);
    return NULL;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_writer");
    struct role heavy = {.name = "bpfr_heavy", .bytes_per_write = 65536};
    struct role light = {.name = "bpfr_light", .bytes_per_write = 512};
    pthread_t threads[2];

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--path") == 0)
            path = wl_arg_str(argc, argv, &i);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--count") == 0)
            count = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--heavy") == 0)
            heavy.name = wl_arg_name(argc, argv, &i);
        else if (strcmp(argv[i], "--light") == 0)
            light.name = wl_arg_name(argc, argv, &i);
        else if (strcmp(argv[i], "--heavy-bytes") == 0)
            heavy.bytes_per_write = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--light-bytes") == 0)
            light.bytes_per_write = wl_arg_long(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (heavy.bytes_per_write < 1 || light.bytes_per_write < 1)
        wl_die("%s", "write sizes must be at least 1 byte");
    wl_setup(&c);
    pthread_barrier_init(&set_up, NULL, 3);
    pthread_create(&threads[0], NULL, writer_main, &heavy);
    pthread_create(&threads[1], NULL, writer_main, &light);
    pthread_barrier_wait(&set_up);
    wl_start(&c);
    pthread_join(threads[0], NULL);
    pthread_join(threads[1], NULL);
    printf("heavy_bytes=%lu light_bytes=%lu heavy_writes=%lu light_writes=%lu\n", heavy.bytes,
           light.bytes, heavy.writes, light.writes);
    wl_finish();
    return heavy.failed || light.failed ? 1 : 0;
}
