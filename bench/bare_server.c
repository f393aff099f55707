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
 * Usage: bare_server HOST PORT   (prints "listening HOST:PORT" when ready)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void on_close(uv_handle_t *h) { free(h->data); }

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
    if (argc != 3) { fprintf(stderr, "usage: %s HOST PORT\n", argv[0]); return 2; }
    loop = uv_default_loop();
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
