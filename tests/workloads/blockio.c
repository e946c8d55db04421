/*
 * blockio - direct (O_DIRECT) writes and reads of a scratch file, each write made durable with
 * fdatasync, at a steady rate.
 * Reproduces block-device I/O that bypasses the page cache, so every call reaches the disk:
 * block:block_rq_issue/complete fire for the file's device, issued by `bpfr_blockio`
 * (`bpfr_direct_write`, `bpfr_direct_read`), and the disk's completion interrupts fire too.
 * The file must be on a block device (not tmpfs); it is unlinked as soon as it is open, so
 * nothing is left behind even when the workload is killed.
 */
#include "workload.h"
#include <fcntl.h>
#include <unistd.h>

static const char usage[] =
    "usage: blockio [--seconds S] [--name NAME] [--wait-signal] [--path P] [--rate R]\n"
    "               [--size B] [--file-size B] [--no-read]\n"
    "prints: writes=N reads=N bytes=N\n";

#define ALIGN 4096

__attribute__((noinline)) long bpfr_direct_write(int fd, const void *buf, size_t len, off_t off)
{
    long n = (long)pwrite(fd, buf, len, off);
    if (n >= 0 && fdatasync(fd) != 0)
        return -1;
    return n;
}

__attribute__((noinline)) long bpfr_direct_read(int fd, void *buf, size_t len, off_t off)
{
    return (long)pread(fd, buf, len, off);
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_blockio");
    const char *path = "/var/tmp/bpfr_blockio.dat";
    double rate = 200;
    long size = 4096, file_size = 16L << 20;
    bool reads = true;
    unsigned long writes = 0, nreads = 0, bytes = 0;
    void *buf = NULL;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--path") == 0)
            path = wl_arg_str(argc, argv, &i);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--size") == 0)
            size = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--file-size") == 0)
            file_size = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--no-read") == 0)
            reads = false;
        else
            wl_usage_error(usage, argv[i]);
    }
    if (size < ALIGN || size % ALIGN != 0 || file_size < size)
        wl_die("%s", "--size must be a multiple of 4096 and --file-size at least --size");
    wl_setup(&c);
    int fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "workload: cannot open %s with O_DIRECT: %s (it must be on a block "
                        "device, not tmpfs; choose another --path)\n", path, strerror(errno));
        return 2;
    }
    unlink(path);
    if (posix_memalign(&buf, ALIGN, (size_t)size) != 0)
        wl_die("%s", "out of memory");
    memset(buf, 0x5a, (size_t)size);
    long slots = file_size / size;
    wl_start(&c);

    struct wl_pacer pacer = wl_pacer_new(rate);
    int status = 0;
    for (long slot = 0; wl_running(); slot = (slot + 1) % slots) {
        off_t off = (off_t)(slot * size);
        long n = bpfr_direct_write(fd, buf, (size_t)size, off);
        if (n < 0) {
            fprintf(stderr, "workload: write to %s failed: %s\n", path, strerror(errno));
            status = 1;
            break;
        }
        writes++;
        bytes += (unsigned long)n;
        if (reads && bpfr_direct_read(fd, buf, (size_t)size, off) > 0)
            nreads++;
        wl_pace(&pacer);
    }
    close(fd);
    free(buf);
    printf("writes=%lu reads=%lu bytes=%lu\n", writes, nreads, bytes);
    wl_finish();
    return status;
}
