/* The floor for the worker's CPU per heartbeat (bench/vs_original.py): the least a client can
 * do for one heartbeat, one HTTP/1.1 GET on a kept-alive connection per beat, timed, with the
 * whole body read. No TLS, no parsing beyond the status line and Content-Length, no allocation
 * after the start. By hand because it is the yardstick: nothing may sit between it and the
 * kernel.
 *
 * usage: floor HOST_IPV4 PORT PATH INTERVAL_S   (runs until killed)
 * build: gcc -O2 -o floor bench/floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int connect_to(const char *host, int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &address.sin_addr);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One GET and its whole answer; the status, or -1 when the connection broke. */
static int get(int fd, const char *request, size_t length) {
    static char buffer[16384];
    if (send(fd, request, length, MSG_NOSIGNAL) != (ssize_t)length) return -1;
    size_t have = 0;
    char *end = NULL;
    while (!end) {
        ssize_t got = recv(fd, buffer + have, sizeof buffer - 1 - have, 0);
        if (got <= 0) return -1;
        have += got;
        buffer[have] = 0;
        end = strstr(buffer, "\r\n\r\n");
        if (!end && have >= sizeof buffer - 1) return -1;
    }
    int status = atoi(buffer + 9);
    char *field = strcasestr(buffer, "\r\ncontent-length:");
    size_t body = field ? strtoul(field + 17, NULL, 10) : 0;
    size_t header = end + 4 - buffer;
    while (have < header + body) {
        ssize_t got = recv(fd, buffer, sizeof buffer, 0);
        if (got <= 0) return -1;
        have += got;
    }
    return status;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: floor HOST_IPV4 PORT PATH INTERVAL_S\n");
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    double interval_s = atof(argv[4]);
    char request[512];
    int length = snprintf(request, sizeof request,
                          "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: floor/1\r\n"
                          "Cache-Control: no-cache\r\nAccept: */*\r\n\r\n",
                          argv[3], host, port);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long step_ns = (long)(interval_s * 1e9);
    int fd = -1;
    for (;;) {
        if (fd < 0) fd = connect_to(host, port);
        if (fd >= 0) {
            struct timespec started, ended;
            clock_gettime(CLOCK_MONOTONIC, &started);
            int status = get(fd, request, length);
            clock_gettime(CLOCK_MONOTONIC, &ended);
            if (status < 0) {
                close(fd);
                fd = -1;
            }
            /* Kept so the timing is not optimised away, as a worker would use it. */
            volatile long elapsed_ns = (ended.tv_sec - started.tv_sec) * 1000000000L +
                                       (ended.tv_nsec - started.tv_nsec);
            (void)elapsed_ns;
        }
        next.tv_nsec += step_ns;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec += 1;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
}
