/*
 * fuzz_http — the daemon's HTTP front (http/server.c, http/api.c on
 * net/httpd.c) as a client on the network sees it.
 *
 * One server per process, on a loopback port, with a SQLite store in a
 * temporary directory holding one Salla and one Zid connection, and a REST
 * API token. Input: the raw bytes of one HTTP exchange, sent as they are on
 * a fresh connection (then our write side is shut). Must hold: the server
 * answers with an HTTP status line or closes the connection, within the
 * read timeout, and survives (ASan/UBSan watch every thread).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/xmalloc.h"
#include "fuzz/fuzz.h"
#include "http/api.h"
#include "http/server.h"
#include "store/store.h"

#define API_TOKEN "fuzz-api-token-0123456789abcdef"

static struct {
    struct store *store;
    struct api *api;
    struct server *srv;
    uint16_t port;
} G;

static void put_conn(enum model_platform p, int64_t store_id, const char *strategy)
{
    struct store_conn c = {.platform = p, .store_id = store_id, .trigger = MODEL_STATUS_NEW};
    c.webhook_secret = xstrdup("fuzz-webhook-secret-0123456789");
    c.webhook_strategy = xstrdup(strategy);
    c.status = xstrdup("active");
    c.name = xstrdup("fuzz store");
    struct th_err err;
    if (store_conn_put(G.store, &c, &err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
    store_conn_release(&c);
}

static char G_dir[] = "/tmp/th_fuzz_httpXXXXXX";

/* At exit, before the leak check (LeakSanitizer's own exit hook was set
 * earlier, so it runs after this one): the server's threads are stopped
 * first. Left running, one of them could meet the leak checker stopping
 * every thread; a run was seen to hang there. */
static void stop(void)
{
    server_close(G.srv);
    api_close(G.api);
    store_close(G.store);
    char *cmd = xasprintf("rm -rf %s", G_dir);
    if (system(cmd) != 0) fprintf(stderr, "fuzz_http: could not remove %s\n", G_dir);
    free(cmd);
}

static void start(void)
{
    char *dir = G_dir;
    if (!mkdtemp(dir)) abort();
    char *url = xasprintf("sqlite:%s/fuzz.db", dir);
    struct th_err err;
    if (store_open(&G.store, url, &err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
    free(url);
    put_conn(MODEL_PLATFORM_SALLA, 100, "signature");
    put_conn(MODEL_PLATFORM_ZID, 200, "basic");
    struct api_config ac = {.store = G.store, .token = API_TOKEN};
    if (api_open(&G.api, &ac, &err) != 0) abort();
    struct server_config sc = {.listen = "127.0.0.1:0",
                               .store = G.store,
                               .salla = {.webhook_secret = "fuzz-app-secret-0123456789",
                                         .webhook_strategy = "signature",
                                         .api_base = "http://127.0.0.1:1/admin/v2"},
                               .zid = {.webhook_secret = "fuzz-app-secret-0123456789",
                                       .webhook_strategy = "basic",
                                       .api_base = "http://127.0.0.1:1/v1"},
                               .qoyod_base = "http://127.0.0.1:1/2.0",
                               .qoyod_api_key = "fuzz-qoyod-key",
                               .inventory_id = 1,
                               .conn_timeout_s = 2,
                               .api = G.api};
    if (server_open(&G.srv, &sc, &err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
    G.port = server_port(G.srv);
    atexit(stop);
}

/* 1 when buf holds a whole final answer (interim 1xx answers skipped). */
static int answer_complete(const char *buf, size_t n)
{
    size_t at = 0;
    while (at < n) {
        const char *end = memmem(buf + at, n - at, "\r\n\r\n", 4);
        if (!end) return 0;
        size_t hlen = (size_t)(end - (buf + at)) + 4;
        if (n - at >= 10 && buf[at + 9] == '1') { /* "HTTP/1.1 1xx" */
            at += hlen;
            continue;
        }
        const char *cl = memmem(buf + at, hlen, "Content-Length:", 15);
        if (!cl) return 0;
        size_t len = strtoul(cl + 15, NULL, 10);
        return n - at >= hlen + len;
    }
    return 0;
}

static int dial(int wait_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    FUZZ_ASSERT(fd >= 0);
    struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct timeval st = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof st);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(G.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_ASSERT(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    return fd;
}

/* Sends data, shuts our side and reads the first answer into buf (up to
 * n bytes). Waits wait_ms for the first byte; after that, until the answer
 * is complete by its Content-Length, the server closes, or 50 ms of quiet.
 * Returns the bytes read. */
static size_t exchange(const uint8_t *data, size_t size, int wait_ms, char *buf, size_t n)
{
    int fd = dial(wait_ms);
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0) break; /* the server may close early on a bad request */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0) break; /* closed, reset, or quiet */
        got += (size_t)r;
        if (answer_complete(buf, got)) break;
        struct timeval quiet = {.tv_usec = 50 * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof quiet);
    }
    close(fd);
    return got;
}

/* The server still answers a plain health check, within 5 s. */
static void check_alive(void)
{
    static const char probe[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char buf[512];
    size_t got = exchange((const uint8_t *)probe, sizeof probe - 1, 5000, buf, sizeof buf);
    FUZZ_ASSERT(got >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0);
}

/*
 * An input the server cannot parse to its end (a request line without its
 * CRLF, a body shorter than its Content-Length) gets no answer: the server
 * waits for the rest until its idle timeout. So the harness waits only
 * 20 ms for an answer, moves on, and checks every 64 inputs that the server
 * still answers a health check (2 s idle timeout here, so connections left
 * waiting do not pile up).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned long n;
    if (!G.srv) start();
    char buf[8192];
    size_t got = exchange(data, size, 20, buf, sizeof buf);
    if (got > 0) FUZZ_ASSERT(got >= 9 && memcmp(buf, "HTTP/1.", 7) == 0);
    if (++n % 64 == 0) check_alive();
    return 0;
}
