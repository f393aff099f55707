/* The front end's physical limit, for scripts/bench: a minimal HTTP/1.1
 * server on one libuv loop with llhttp (the same two libraries chsidecar's
 * listener uses), answering every request with a fixed 200 "Ok.\n" and
 * keep-alive. No routing, no logging, no limits: whatever the sidecar does
 * beyond this costs throughput, so "sidecar /ping req/s / this req/s" is the
 * fraction of the achievable front end the sidecar reaches.
 *
 * Built by scripts/bench:
 *   cc -O2 -I/usr/share/include/llhttp bench/bare_server.c \
 *      /usr/share/llhttp/{llhttp,api,http}.c -luv -o bare_server
 * Usage: bare_server HOST PORT [CYCLE_US [SYNC_FILE]]
 * (prints "listening HOST:PORT" when ready).
 *
 * Group-commit floors for the spool's scenario: answers go in groups, as
 * the spool sends them, and nothing else is done.
 *   CYCLE_US             no disk: a group is sealed at each tick of a
 *                        CYCLE_US timer and answered at the next.
 *   CYCLE_US SYNC_FILE   the disk: a second thread writes each sealed
 *                        group's 64 bytes per request to SYNC_FILE and
 *                        fdatasyncs it; the group is answered when that
 *                        returns, and the next group (the requests that came
 *                        meanwhile) is sealed and goes at once, as the
 *                        spool's group commit, but no sooner than CYCLE_US
 *                        after the previous one started (0: at once).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <uv.h>
#include "llhttp.h"

static const char RESPONSE[] =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain; charset=UTF-8\r\n"
    "Content-Length: 4\r\n"
    "Keep-Alive: timeout=60\r\n"
    "\r\n"
    "Ok.\n";

#define MAX_PIPELINE 64

typedef struct {
    uv_tcp_t tcp;
    llhttp_t parser;
    int pending;     /* responses completed by the current read */
    int close_after; /* a request asked for Connection: close */
    int grouped;     /* named by the forming group */
    char rbuf[65536];
} conn_t;

typedef struct {
    uv_write_t req;
    conn_t *c;
    int close_after;
    uv_buf_t bufs[MAX_PIPELINE];
} write_t;

static llhttp_settings_t settings;
static uv_loop_t *loop;

#define MAX_GROUP 4096
static int grouped;  /* answers go in groups (either floor) */
static conn_t *forming[MAX_GROUP], *sealed[MAX_GROUP];
static int n_forming, n_sealed;

/* Connections are not freed in group mode: a group may still name one. */
static void on_close(uv_handle_t *h) { if (!grouped) free(h->data); }

static void close_conn(conn_t *c) {
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static int on_message_complete(llhttp_t *p) {
    conn_t *c = p->data;
    c->pending++;
    if (!llhttp_should_keep_alive(p)) c->close_after = 1;
    return 0;
}

static void after_write(uv_write_t *req, int status) {
    write_t *w = (write_t *)req;
    if (status < 0 || w->close_after) close_conn(w->c);
    free(w);
}

static void flush_responses(conn_t *c) {
    c->grouped = 0;
    if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
    while (c->pending > 0) {
        int n = c->pending > MAX_PIPELINE ? MAX_PIPELINE : c->pending;
        write_t *w = malloc(sizeof *w);
        w->c = c;
        for (int i = 0; i < n; i++)
            w->bufs[i] = uv_buf_init((char *)RESPONSE, sizeof RESPONSE - 1);
        c->pending -= n;
        w->close_after = c->pending == 0 && c->close_after;
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, n, after_write) < 0) {
            free(w);
            close_conn(c);
            return;
        }
    }
}

static void answer_sealed(void) {
    for (int i = 0; i < n_sealed; i++) flush_responses(sealed[i]);
    n_sealed = 0;
}

/* Answers the sealed group and seals the forming one. */
static void next_group(void) {
    answer_sealed();
    memcpy(sealed, forming, sizeof forming[0] * n_forming);
    n_sealed = n_forming;
    n_forming = 0;
}

static int tick_fd;
static void on_tick(uv_poll_t *p, int status, int events) {
    uint64_t ticks;
    (void)p; (void)status; (void)events;
    if (read(tick_fd, &ticks, sizeof ticks) == sizeof ticks) next_group();
}

static long cycle_us;
static int sync_fd = -1;
static int syncing;   /* a group is being written and synced */
static int pausing;   /* the next group waits for CYCLE_US to pass */
static uint64_t group_started_ns;
static uv_sem_t group_sealed;
static uv_async_t group_synced;
static int pause_fd;

static void sync_loop(void *arg) {
    static char bytes[64 * MAX_GROUP];
    off_t off = 0;
    (void)arg;
    memset(bytes, 'x', sizeof bytes);
    for (;;) {
        uv_sem_wait(&group_sealed);
        size_t n = 64 * (size_t)n_sealed;  /* the loop leaves the group alone until told */
        if (off + (off_t)n > (8 << 20)) off = 0;  /* stay within the blocks written at start */
        if (pwrite(sync_fd, bytes, n, off) < 0 || fdatasync(sync_fd) != 0) {
            perror("bare_server: sync file");
            exit(1);
        }
        off += (off_t)n;
        uv_async_send(&group_synced);
    }
}

static void start_sync(void) {
    next_group();  /* nothing sealed: just seals */
    syncing = 1;
    group_started_ns = uv_hrtime();
    uv_sem_post(&group_sealed);
}

static void on_group_synced(uv_async_t *a) {
    (void)a;
    answer_sealed();
    syncing = 0;
    uint64_t next_ns = group_started_ns + (uint64_t)cycle_us * 1000, now = uv_hrtime();
    if (now < next_ns) {
        struct itimerspec once = {{0, 0}, {0, (long)(next_ns - now)}};
        timerfd_settime(pause_fd, 0, &once, NULL);
        pausing = 1;
    } else if (n_forming > 0) {
        start_sync();
    }
}

static void on_pause_over(uv_poll_t *p, int status, int events) {
    uint64_t ticks;
    (void)p; (void)status; (void)events;
    if (read(pause_fd, &ticks, sizeof ticks) != sizeof ticks) return;
    pausing = 0;
    if (n_forming > 0) start_sync();
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    conn_t *c = h->data;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn_t *c = s->data;
    if (nread < 0) { close_conn(c); return; }
    if (nread == 0) return;
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (err != HPE_OK) { close_conn(c); return; }
    if (grouped) {
        if (c->pending > 0 && !c->grouped) {
            if (n_forming == MAX_GROUP) { fprintf(stderr, "bare_server: group full\n"); exit(1); }
            forming[n_forming++] = c;
            c->grouped = 1;
        }
        if (sync_fd >= 0 && !syncing && !pausing && n_forming > 0) start_sync();
        return;
    }
    flush_responses(c);
    if (c->close_after) uv_read_stop(s);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) return;
    conn_t *c = calloc(1, sizeof *c);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) { close_conn(c); return; }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s HOST PORT [CYCLE_US [SYNC_FILE]]\n", argv[0]);
        return 2;
    }
    loop = uv_default_loop();
    static uv_poll_t tick, pause;
    static uv_thread_t syncer;
    if (argc >= 4) cycle_us = atol(argv[3]);
    if (cycle_us < 0 || (argc == 4 && cycle_us == 0) || cycle_us > 1000000) {
        fprintf(stderr, "bare_server: CYCLE_US out of range\n");
        return 2;
    }
    if (argc == 4) {
        long us = cycle_us;
        struct itimerspec every = {{us / 1000000, us % 1000000 * 1000},
                                   {us / 1000000, us % 1000000 * 1000}};
        grouped = 1;
        tick_fd = timerfd_create(CLOCK_MONOTONIC, 0);
        timerfd_settime(tick_fd, 0, &every, NULL);
        uv_poll_init(loop, &tick, tick_fd);
        uv_poll_start(&tick, UV_READABLE, on_tick);
    } else if (argc == 5) {
        grouped = 1;
        sync_fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (sync_fd < 0) { perror("bare_server: sync file"); return 1; }
        /* Written once first, so that the syncs overwrite blocks the file
           has, as the spool's reused segments do. */
        static char zeros[1 << 16];
        for (int i = 0; i < (8 << 20) / (int)sizeof zeros; i++)
            if (write(sync_fd, zeros, sizeof zeros) != sizeof zeros) { perror("bare_server"); return 1; }
        fsync(sync_fd);
        uv_sem_init(&group_sealed, 0);
        uv_async_init(loop, &group_synced, on_group_synced);
        pause_fd = timerfd_create(CLOCK_MONOTONIC, 0);
        uv_poll_init(loop, &pause, pause_fd);
        uv_poll_start(&pause, UV_READABLE, on_pause_over);
        uv_thread_create(&syncer, sync_loop, NULL);
    }
    llhttp_settings_init(&settings);
    settings.on_message_complete = on_message_complete;
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    if (uv_ip4_addr(argv[1], atoi(argv[2]), &addr) != 0) { fprintf(stderr, "bad address\n"); return 2; }
    int r = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (r == 0) r = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    if (r != 0) { fprintf(stderr, "listen: %s\n", uv_strerror(r)); return 1; }
    printf("listening %s:%s\n", argv[1], argv[2]);
    fflush(stdout);
    return uv_run(loop, UV_RUN_DEFAULT);
}
