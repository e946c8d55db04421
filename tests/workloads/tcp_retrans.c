/*
 * tcp_retrans - connects over loopback to a listener whose accept queue is full.
 * Reproduces TCP retransmits without touching any network interface: the listener (backlog 0)
 * never accepts, so after the first connection the kernel drops every new SYN ("listen queue
 * overflow"), and each connecting socket retransmits its SYN (state SYN_SENT, tracepoint
 * tcp:tcp_retransmit_skb) after 1 s, 3 s, ... until it is closed after --give-up seconds.
 * All from thread `bpfr_tcpretr` (`bpfr_connect_once`) to 127.0.0.1:--port.
 */
#include "workload.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static const char usage[] =
    "usage: tcp_retrans [--seconds S] [--name NAME] [--wait-signal] [--port P] [--rate R]\n"
    "                   [--give-up S]\n"
    "prints: connects=N port=N\n";

/* A non-blocking connect; the socket stays in SYN_SENT while its SYNs are dropped. */
__attribute__((noinline)) int bpfr_connect_once(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct wl_common c = WL_COMMON("bpfr_tcpretr");
    long port = 0;
    double rate = 20, give_up = 3.5;
    unsigned long connects = 0;

    for (int i = 1; i < argc; i++) {
        if (wl_parse_common(&c, argc, argv, &i, usage))
            continue;
        if (strcmp(argv[i], "--port") == 0)
            port = wl_arg_long(argc, argv, &i);
        else if (strcmp(argv[i], "--rate") == 0)
            rate = wl_arg_double(argc, argv, &i);
        else if (strcmp(argv[i], "--give-up") == 0)
            give_up = wl_arg_double(argc, argv, &i);
        else
            wl_usage_error(usage, argv[i]);
    }
    if (port > 65535 || rate <= 0)
        wl_die("%s", "--port must be at most 65535 and --rate positive");
    wl_setup(&c);

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0
        || listen(listener, 0) != 0 || getsockname(listener, (struct sockaddr *)&addr, &len) != 0)
        wl_die("cannot listen on 127.0.0.1: %s", strerror(errno));
    /* The one connection the queue holds: from now on it is full. */
    int first = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (first < 0 || connect(first, (struct sockaddr *)&addr, sizeof addr) != 0)
        wl_die("cannot connect to the listener: %s", strerror(errno));

    size_t ring_len = (size_t)(rate * give_up) + 2, next = 0;
    int *ring = malloc(ring_len * sizeof *ring);
    if (ring == NULL)
        wl_die("%s", "out of memory");
    for (size_t i = 0; i < ring_len; i++)
        ring[i] = -1;
    wl_start(&c);

    struct wl_pacer pacer = wl_pacer_new(rate);
    while (wl_running()) {
        /* Reusing the oldest slot closes a socket that has been retrying for --give-up s. */
        if (ring[next] >= 0)
            close(ring[next]);
        ring[next] = bpfr_connect_once(&addr);
        if (ring[next] >= 0)
            connects++;
        next = (next + 1) % ring_len;
        wl_pace(&pacer);
    }
    for (size_t i = 0; i < ring_len; i++)
        if (ring[i] >= 0)
            close(ring[i]);
    free(ring);
    close(first);
    close(listener);
    printf("connects=%lu port=%u\n", connects, (unsigned)ntohs(addr.sin_port));
    return wl_finish();
}
