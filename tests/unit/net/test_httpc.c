/*
 * Tests for src/net/httpc.c: status classification, Retry-After, and real
 * HTTP on loopback against a scripted server that answers, loses answers,
 * resets, stalls, streams oversized bodies and counts connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "net/httpc.h"

/* Every request carries this credential; no error message may show it. */
#define SECRET "s3cr3t-token-42"
#define AUTH "Authorization: Bearer " SECRET

/* ---------------------------------------------------------------------- */
/* The scripted server: one thread, one connection at a time. Each request
 * that arrives consumes the next step of the script. */

enum act {
    REPLY,          /* send raw (then zeros zero bytes); keep the connection unless close */
    DROP,           /* read the request, close without answering (lost answer) */
    RST_ON_ARRIVAL, /* once request bytes arrive, reset the connection without reading */
    CLOSE_AT_ONCE,  /* reset the next connection as soon as it is accepted */
    STALL,          /* read the request and hold it unanswered for ms */
};

struct step {
    enum act act;
    const char *raw;
    size_t zeros;
    int close;
    long ms;
};

#define SRV_MAX_STEPS 32
#define SRV_MAX_REQS 32
#define SRV_MAX_REQ_BYTES (1024 * 1024)
#define SRV_IO_TIMEOUT_MS 5000

struct srv {
    int lfd;
    unsigned short port;
    pthread_t th;
    pthread_mutex_t mu;
    int stop;
    struct step steps[SRV_MAX_STEPS];
    size_t nsteps, next;
    int accepts;
    int unscripted;
    char *reqs[SRV_MAX_REQS];
    size_t nreqs;
};

static int srv_stopped(struct srv *s)
{
    pthread_mutex_lock(&s->mu);
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

/* Waits until fd is readable; 0 when it is, -1 on stop or after ms. */
static int wait_in(struct srv *s, int fd, long ms)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (srv_stopped(s)) return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) > 0) return 0;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= 0 && el >= ms) return -1;
    }
}

static void rst_close(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd);
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            return; /* the client gave up (body cap): fine */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one request (head and Content-Length body). Returns new text, or
 * NULL when the peer closed or went silent. */
static char *read_request(struct srv *s, int fd)
{
    char *b = xmalloc(SRV_MAX_REQ_BYTES + 1);
    size_t n = 0, want = 0;
    for (;;) {
        if (n >= SRV_MAX_REQ_BYTES || wait_in(s, fd, SRV_IO_TIMEOUT_MS) != 0) break;
        ssize_t r = recv(fd, b + n, SRV_MAX_REQ_BYTES - n, 0);
        if (r <= 0) break;
        n += (size_t)r;
        b[n] = '\0';
        char *end = strstr(b, "\r\n\r\n");
        if (!end) continue;
        if (!want) {
            size_t clen = 0;
            for (char *l = strstr(b, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
                if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
                    clen = strtoul(l + 17, NULL, 10);
            want = (size_t)(end + 4 - b) + clen;
        }
        if (n >= want) return b;
    }
    free(b);
    return NULL;
}

static int take_step(struct srv *s, struct step *st, int peek)
{
    pthread_mutex_lock(&s->mu);
    int have = s->next < s->nsteps;
    if (have) {
        *st = s->steps[s->next];
        if (!peek) s->next++;
    }
    pthread_mutex_unlock(&s->mu);
    return have;
}

static void serve_conn(struct srv *s, int fd)
{
    for (;;) {
        /* The next request, or the client closing its idle connection. */
        char c;
        if (wait_in(s, fd, -1) != 0 || recv(fd, &c, 1, MSG_PEEK) <= 0) break;
        struct step st;
        if (take_step(s, &st, 1) && st.act == RST_ON_ARRIVAL) {
            take_step(s, &st, 0);
            rst_close(fd);
            return;
        }
        char *req = read_request(s, fd);
        if (!req) break;
        int have = take_step(s, &st, 0);
        pthread_mutex_lock(&s->mu);
        if (s->nreqs < SRV_MAX_REQS)
            s->reqs[s->nreqs++] = req;
        else
            free(req);
        if (!have) s->unscripted++;
        pthread_mutex_unlock(&s->mu);
        if (!have) {
            static const char r500[] = "HTTP/1.1 500 Unscripted\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            send_all(fd, r500, sizeof r500 - 1);
            break;
        }
        if (st.act == DROP) break;
        if (st.act == STALL) {
            /* Ends early when the client gives up and closes. */
            wait_in(s, fd, st.ms);
            break;
        }
        send_all(fd, st.raw, strlen(st.raw));
        if (st.zeros) {
            static const char zero[65536];
            for (size_t left = st.zeros; left;) {
                size_t k = left < sizeof zero ? left : sizeof zero;
                send_all(fd, zero, k);
                left -= k;
            }
        }
        if (st.close) break;
    }
    close(fd);
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    while (wait_in(s, s->lfd, -1) == 0) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        pthread_mutex_lock(&s->mu);
        s->accepts++;
        pthread_mutex_unlock(&s->mu);
        struct step st;
        if (take_step(s, &st, 1) && st.act == CLOSE_AT_ONCE) {
            take_step(s, &st, 0);
            rst_close(fd);
            continue;
        }
        serve_conn(s, fd);
    }
    return NULL;
}

/* A socket bound to 127.0.0.1 on a free port; returns the fd. */
static int bind_loopback(unsigned short *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static struct srv *srv_start(void)
{
    struct srv *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = bind_loopback(&s->port);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

static void srv_stop(struct srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    close(s->lfd);
    for (size_t i = 0; i < s->nreqs; i++)
        free(s->reqs[i]);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void srv_script(struct srv *s, struct step st)
{
    pthread_mutex_lock(&s->mu);
    assert_true(s->nsteps < SRV_MAX_STEPS);
    s->steps[s->nsteps++] = st;
    pthread_mutex_unlock(&s->mu);
}

static void srv_reply(struct srv *s, const char *raw)
{
    srv_script(s, (struct step){.act = REPLY, .raw = raw});
}

static int srv_accepts(struct srv *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->accepts;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static size_t srv_nreqs(struct srv *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->nreqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* The i-th recorded request (borrowed until srv_stop). */
static const char *srv_req(struct srv *s, size_t i)
{
    pthread_mutex_lock(&s->mu);
    const char *r = i < s->nreqs ? s->reqs[i] : NULL;
    pthread_mutex_unlock(&s->mu);
    if (!r) fail_msg("the server recorded %zu requests, wanted #%zu", srv_nreqs(s), i + 1);
    return r;
}

static void sleep_ms(long ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* ---------------------------------------------------------------------- */
/* Per-test state: a fresh server and a fresh client. */

struct fx {
    struct srv *srv;
    struct httpc *hc;
    struct httpc_resp resp;
    struct th_err err;
    char url[256];
};

static int fx_setup_timeout(void **state, long timeout_ms)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->srv = srv_start();
    struct httpc_config cfg = {.connect_timeout_ms = 2000, .timeout_ms = timeout_ms};
    f->hc = httpc_new(&cfg);
    httpc_resp_init(&f->resp);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return fx_setup_timeout(state, 5000);
}

/* For the stall cases: a client that gives up after 300 ms. */
static int setup_short(void **state)
{
    return fx_setup_timeout(state, 300);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    httpc_resp_release(&f->resp);
    httpc_free(f->hc);
    srv_stop(f->srv);
    free(f);
    return 0;
}

static const char *fx_url(struct fx *f, const char *path)
{
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u%s", f->srv->port, path);
    return f->url;
}

/* One request with the secret header and a custom one; checks that err
 * never shows the secret and is empty exactly on success. */
static int fx_do(struct fx *f, const char *method, const char *path, const char *body)
{
    const char *hdrs[] = {AUTH, "X-Custom: yes", "Content-Type: application/json", NULL};
    memset(&f->err, 0x55, sizeof f->err); /* stale garbage must be overwritten */
    f->err.msg[sizeof f->err.msg - 1] = '\0';
    int rc = httpc_do(f->hc, method, fx_url(f, path), hdrs, body, body ? strlen(body) : 0, &f->resp,
                      &f->err);
    assert_int_equal(f->err.code, rc);
    if (rc == 0) assert_string_equal(f->err.msg, "");
    if (strstr(f->err.msg, SECRET)) fail_msg("the message shows the secret: %s", f->err.msg);
    if (rc && !strstr(f->err.msg, method)) fail_msg("no method in: %s", f->err.msg);
    return rc;
}

static void expect_rc(int got, int want, const char *what, const struct th_err *err)
{
    if (got != want)
        fail_msg("%s: want %s got %s (%s)", what, th_err_name(want), th_err_name(got),
                 err ? err->msg : "");
}

static void expect_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("\"%s\" not found in: %s", needle, hay);
}

/* ---------------------------------------------------------------------- */
/* Pure functions. */

static void test_classify_status(void **state)
{
    static const char *const idem[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    static const char *const writes[] = {"POST", "PATCH"};
    static const struct {
        long status;
        int idem, write;
    } cases[] = {
        {200, 0, 0},
        {201, 0, 0},
        {204, 0, 0},
        {301, TH_EPERM, TH_EPERM},
        {304, TH_EPERM, TH_EPERM},
        {400, TH_EPERM, TH_EPERM},
        {401, TH_EAUTH, TH_EAUTH},
        {403, TH_EAUTH, TH_EAUTH},
        {404, TH_EPERM, TH_EPERM},
        {408, TH_ETEMP, TH_ETEMP},
        {409, TH_EPERM, TH_EPERM},
        {422, TH_EPERM, TH_EPERM},
        {425, TH_ETEMP, TH_ETEMP},
        {429, TH_ETEMP, TH_ETEMP},
        {500, TH_ETEMP, TH_EUNKNOWN},
        {502, TH_ETEMP, TH_EUNKNOWN},
        {503, TH_ETEMP, TH_ETEMP},
        {504, TH_ETEMP, TH_EUNKNOWN},
    };
    char what[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t m = 0; m < sizeof idem / sizeof idem[0]; m++) {
            snprintf(what, sizeof what, "%s %ld", idem[m], cases[i].status);
            expect_rc(httpc_classify_status(idem[m], cases[i].status), cases[i].idem, what, NULL);
        }
        for (size_t m = 0; m < sizeof writes / sizeof writes[0]; m++) {
            snprintf(what, sizeof what, "%s %ld", writes[m], cases[i].status);
            expect_rc(httpc_classify_status(writes[m], cases[i].status), cases[i].write, what,
                      NULL);
        }
    }
}

static void test_parse_retry_after(void **state)
{
    static const struct {
        const char *in;
        long want;
    } cases[] = {
        {"120", 120}, {"0", 0},
        {" 7 ", 7},   {"99999999999999999999999", LONG_MAX},
        {"", -1},     {"soon", -1},
        {"-5", -1},   {"1.5", -1},
        {"120s", -1}, {"Wed, 21 Oct 2015 07:28:00 GMT", 0}, /* in the past: retry now */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long got = httpc_parse_retry_after(cases[i].in);
        if (got != cases[i].want)
            fail_msg("Retry-After \"%s\": want %ld got %ld", cases[i].in, cases[i].want, got);
    }
    assert_int_equal(httpc_parse_retry_after(NULL), -1);

    char date[64];
    time_t t = time(NULL) + 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    long got = httpc_parse_retry_after(date);
    if (got < 58 || got > 60) fail_msg("Retry-After \"%s\": want ~60 got %ld", date, got);
}

static void test_escape(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", ""},
        {"AZaz09-._~", "AZaz09-._~"},
        {"a b&c=d/e?f#g", "a%20b%26c%3Dd%2Fe%3Ff%23g"},
        {"\xd8\xb3\xd9\x84\xd8\xa9", "%D8%B3%D9%84%D8%A9"}, /* Arabic "basket" */
        {"100%", "100%25"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = httpc_escape(cases[i].in);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("escape \"%s\": want \"%s\" got \"%s\"", cases[i].in, cases[i].want, got);
        free(got);
    }
}

static void test_bad_arguments(void **state)
{
    struct httpc *c = httpc_new(NULL);
    struct httpc_resp r;
    httpc_resp_init(&r);
    struct th_err err;
    static const char *const inject[] = {"X-Ok: 1", "Authorization: Bearer " SECRET "\r\nX-Evil: 1",
                                         NULL};
    static const struct {
        const char *method, *url;
        const char *const *headers;
    } cases[] = {
        {"get", "http://127.0.0.1:9/", NULL}, {"GE T", "http://127.0.0.1:9/", NULL},
        {"", "http://127.0.0.1:9/", NULL},    {"POST", "http://127.0.0.1:9/", inject},
        {"GET", "ftp://127.0.0.1:9/x", NULL}, {"GET", "not a url", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = httpc_do(c, cases[i].method, cases[i].url, cases[i].headers, NULL, 0, &r, &err);
        char what[128];
        snprintf(what, sizeof what, "\"%s\" %s", cases[i].method, cases[i].url);
        expect_rc(rc, TH_EINVAL, what, &err);
        assert_int_equal(r.sent, 0);
        if (strstr(err.msg, SECRET)) fail_msg("the message shows the secret: %s", err.msg);
    }
    httpc_resp_release(&r);
    httpc_free(c);
    httpc_free(NULL);
}

/* ---------------------------------------------------------------------- */
/* Over the wire. */

#define OK_KEEP "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

static void test_request_arrives_intact(void **state)
{
    struct fx *f = *state;
    static const char body[] = "{\"invoice\":{\"reference\":\"1001\",\"note\":\"\xd8\xb3\"}}";
    srv_reply(f->srv, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                      "Content-Length: 9\r\n\r\n{\"id\":7}\n");
    expect_rc(fx_do(f, "POST", "/2.0/invoices?x=1", body), 0, "POST", &f->err);
    assert_int_equal(f->resp.status, 201);
    assert_int_equal(f->resp.sent, 1);
    assert_string_equal(buf_cstr(&f->resp.body), "{\"id\":7}\n");
    assert_string_equal(f->resp.content_type, "application/json");

    const char *req = srv_req(f->srv, 0);
    static const char line[] = "POST /2.0/invoices?x=1 HTTP/1.1\r\n";
    if (strncmp(req, line, sizeof line - 1) != 0) fail_msg("request line: %.60s", req);
    expect_has(req, "\r\nX-Custom: yes\r\n");
    expect_has(req, "\r\n" AUTH "\r\n");
    expect_has(req, "\r\nContent-Type: application/json\r\n");
    char clen[64];
    snprintf(clen, sizeof clen, "\r\nContent-Length: %zu\r\n", strlen(body));
    expect_has(req, clen);
    if (strcasestr(req, "\r\nExpect:")) fail_msg("Expect header sent: %s", req);
    const char *b = strstr(req, "\r\n\r\n");
    assert_non_null(b);
    assert_string_equal(b + 4, body);
}

/* Each method's request line and body, on one reused handle: nothing (such
 * as a POST body) carries over from one request to the next. */
static void test_methods(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *method, *body;
        const char *line; /* request line */
        const char *clen; /* Content-Length header expected, NULL = none */
    } cases[] = {
        {"POST", "{\"a\":1}", "POST /m HTTP/1.1\r\n", "Content-Length: 7"},
        {"GET", NULL, "GET /m HTTP/1.1\r\n", NULL},
        {"PUT", "{\"b\":2}", "PUT /m HTTP/1.1\r\n", "Content-Length: 7"},
        {"PATCH", "{}", "PATCH /m HTTP/1.1\r\n", "Content-Length: 2"},
        {"POST", NULL, "POST /m HTTP/1.1\r\n", "Content-Length: 0"},
        {"DELETE", NULL, "DELETE /m HTTP/1.1\r\n", NULL},
        {"HEAD", NULL, "HEAD /m HTTP/1.1\r\n", NULL},
        {"OPTIONS", NULL, "OPTIONS /m HTTP/1.1\r\n", NULL},
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++) {
        srv_reply(f->srv, OK_KEEP);
        expect_rc(fx_do(f, cases[i].method, "/m", cases[i].body), 0, cases[i].method, &f->err);
        const char *req = srv_req(f->srv, i);
        if (strncmp(req, cases[i].line, strlen(cases[i].line)) != 0)
            fail_msg("%s: request line: %.40s", cases[i].method, req);
        const char *cl = strcasestr(req, "Content-Length:");
        if (cases[i].clen && (!cl || strncmp(cl, cases[i].clen, strlen(cases[i].clen)) != 0))
            fail_msg("%s: want %s in: %s", cases[i].method, cases[i].clen, req);
        if (!cases[i].clen && cl) fail_msg("%s: unexpected body: %s", cases[i].method, req);
        const char *b = strstr(req, "\r\n\r\n") + 4;
        assert_string_equal(b, cases[i].body ? cases[i].body : "");
        if (strcmp(cases[i].method, "HEAD") != 0)
            assert_string_equal(buf_cstr(&f->resp.body), "ok");
    }
    /* All on one kept-alive connection. */
    assert_int_equal(srv_accepts(f->srv), 1);
}

static void test_keepalive_reuse(void **state)
{
    struct fx *f = *state;
    srv_reply(f->srv, OK_KEEP);
    srv_reply(f->srv, OK_KEEP);
    expect_rc(fx_do(f, "GET", "/a", NULL), 0, "first GET", &f->err);
    expect_rc(fx_do(f, "GET", "/b", NULL), 0, "second GET", &f->err);
    assert_int_equal(srv_accepts(f->srv), 1);

    /* A server that closes: the next request opens a new connection. */
    srv_script(f->srv, (struct step){.act = REPLY,
                                     .raw = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                            "Content-Length: 2\r\n\r\nok",
                                     .close = 1});
    srv_reply(f->srv, OK_KEEP);
    expect_rc(fx_do(f, "GET", "/c", NULL), 0, "GET, then close", &f->err);
    expect_rc(fx_do(f, "POST", "/d", "{}"), 0, "POST on a new connection", &f->err);
    assert_int_equal(srv_accepts(f->srv), 2);
    assert_int_equal(srv_nreqs(f->srv), 4);
}

/* Each status over the wire: the code, the status kept, and an operator
 * message naming the method, URL and status. */
static void test_statuses(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *method;
        long status;
        int want;
    } cases[] = {
        {"GET", 200, 0},
        {"POST", 201, 0},
        {"GET", 301, TH_EPERM},
        {"POST", 400, TH_EPERM},
        {"GET", 401, TH_EAUTH},
        {"POST", 403, TH_EAUTH},
        {"GET", 404, TH_EPERM},
        {"POST", 408, TH_ETEMP},
        {"POST", 422, TH_EPERM},
        {"POST", 429, TH_ETEMP},
        {"POST", 500, TH_EUNKNOWN},
        {"GET", 500, TH_ETEMP},
        {"PATCH", 502, TH_EUNKNOWN},
        {"PUT", 502, TH_ETEMP},
        {"POST", 503, TH_ETEMP},
        {"POST", 504, TH_EUNKNOWN},
        {"DELETE", 504, TH_ETEMP},
    };
    static char raw[sizeof cases / sizeof cases[0]][160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(raw[i], sizeof raw[i],
                 "HTTP/1.1 %ld Whatever\r\nLocation: http://elsewhere.invalid/\r\n"
                 "Content-Length: 4\r\n\r\nbody",
                 cases[i].status);
        srv_reply(f->srv, raw[i]);
        int rc = fx_do(f, cases[i].method, "/s", "{}");
        char what[64];
        snprintf(what, sizeof what, "%s -> %ld", cases[i].method, cases[i].status);
        expect_rc(rc, cases[i].want, what, &f->err);
        assert_int_equal(f->resp.status, cases[i].status);
        assert_string_equal(buf_cstr(&f->resp.body), "body");
        if (rc) {
            char want[512];
            snprintf(want, sizeof want, "%s %s: HTTP %ld: body", cases[i].method, fx_url(f, "/s"),
                     cases[i].status);
            assert_string_equal(f->err.msg, want);
        }
    }
    /* No redirect was followed: every answer came from one connection. */
    assert_int_equal(srv_nreqs(f->srv), sizeof cases / sizeof cases[0]);
    assert_int_equal(srv_accepts(f->srv), 1);
}

static void test_error_body_snippet(void **state)
{
    struct fx *f = *state;
    /* 300 bytes: a line break to flatten, then Arabic text (2-byte UTF-8)
     * so the 200-byte cut falls inside a character. */
    char body[301];
    memcpy(body, "{\"errors\":\n\"x", 13);
    for (size_t i = 13; i + 2 <= 299; i += 2)
        memcpy(body + i, "\xd8\xb3", 2);
    body[299] = '}';
    body[300] = '\0';
    static char raw[512];
    snprintf(raw, sizeof raw, "HTTP/1.1 422 Unprocessable\r\nContent-Length: 300\r\n\r\n%s", body);
    srv_reply(f->srv, raw);
    expect_rc(fx_do(f, "POST", "/2.0/invoices", "{}"), TH_EPERM, "422", &f->err);

    char prefix[512];
    snprintf(prefix, sizeof prefix, "POST %s: HTTP 422: {\"errors\": \"x\xd8\xb3",
             fx_url(f, "/2.0/invoices"));
    if (strncmp(f->err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("want prefix %s in: %s", prefix, f->err.msg);
    const char *snip = strstr(f->err.msg, ": {");
    size_t n = strlen(snip + 2);
    if (n > 203 || n < 190) fail_msg("snippet of %zu bytes: %s", n, snip);
    assert_string_equal(snip + 2 + n - 3, "...");
    /* The cut kept whole characters: the byte before "..." ends one. */
    assert_int_equal((unsigned char)snip[2 + n - 4], 0xb3);
    assert_null(strchr(f->err.msg, '\n'));
}

static void test_rate_limit_headers(void **state)
{
    struct fx *f = *state;
    srv_reply(f->srv, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
                      "X-RateLimit-Limit: 100\r\nx-ratelimit-remaining: 0\r\n"
                      "X-RATELIMIT-RESET:   1700000000  \r\nContent-Type: text/plain\r\n"
                      "Content-Length: 4\r\n\r\nslow");
    expect_rc(fx_do(f, "POST", "/2.0/invoices", "{}"), TH_ETEMP, "429", &f->err);
    assert_int_equal(f->resp.status, 429);
    assert_int_equal(f->resp.retry_after_s, 7);
    assert_string_equal(f->resp.ratelimit_limit, "100");
    assert_string_equal(f->resp.ratelimit_remaining, "0");
    assert_string_equal(f->resp.ratelimit_reset, "1700000000");
    assert_string_equal(f->resp.content_type, "text/plain");
    expect_has(f->err.msg, "HTTP 429 (retry after 7 s): slow");
    /* kept after the response is released (an adapter releases it) */
    long last_status = 0, last_wait = 0;
    httpc_resp_release(&f->resp);
    httpc_last_answer(f->hc, &last_status, &last_wait);
    assert_int_equal(last_status, 429);
    assert_int_equal(last_wait, 7);

    /* A date form, then an answer without these headers: nothing stale. */
    char date[64], raw[256];
    time_t t = time(NULL) + 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(raw, sizeof raw, "HTTP/1.1 503 Busy\r\nRetry-After: %s\r\nContent-Length: 0\r\n\r\n",
             date);
    srv_reply(f->srv, raw);
    expect_rc(fx_do(f, "GET", "/x", NULL), TH_ETEMP, "503", &f->err);
    if (f->resp.retry_after_s < 58 || f->resp.retry_after_s > 60)
        fail_msg("Retry-After %s: want ~60 got %ld", date, f->resp.retry_after_s);
    srv_reply(f->srv, OK_KEEP);
    expect_rc(fx_do(f, "GET", "/x", NULL), 0, "200", &f->err);
    assert_int_equal(f->resp.retry_after_s, -1);
    assert_string_equal(f->resp.ratelimit_limit, "");
    httpc_last_answer(f->hc, &last_status, &last_wait);
    assert_int_equal(last_status, 200);
    assert_int_equal(last_wait, -1);
    assert_string_equal(f->resp.content_type, "");

    /* Headers of an interim 1xx answer do not stick to the final one. */
    srv_reply(f->srv, "HTTP/1.1 103 Early Hints\r\nRetry-After: 5\r\nX-RateLimit-Limit: 9\r\n"
                      "\r\n" OK_KEEP);
    expect_rc(fx_do(f, "GET", "/x", NULL), 0, "103 then 200", &f->err);
    assert_int_equal(f->resp.status, 200);
    assert_int_equal(f->resp.retry_after_s, -1);
    assert_string_equal(f->resp.ratelimit_limit, "");
}

/* The answer is lost after the request arrived: a write may have been
 * applied (UNKNOWN); a read is safe to repeat (TEMP). */
static void test_lost_answer(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *method;
        int want;
    } cases[] = {
        {"POST", TH_EUNKNOWN}, {"PATCH", TH_EUNKNOWN}, {"GET", TH_ETEMP},
        {"PUT", TH_ETEMP},     {"DELETE", TH_ETEMP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_script(f->srv, (struct step){.act = DROP});
        int rc = fx_do(f, cases[i].method, "/2.0/invoices", "{}");
        expect_rc(rc, cases[i].want, cases[i].method, &f->err);
        assert_int_equal(f->resp.sent, 1);
        assert_int_equal(f->resp.status, 0);
        expect_has(f->err.msg, "no answer after the request was sent");
        if (rc == TH_EUNKNOWN) expect_has(f->err.msg, "it may have been applied");
        /* Exactly one copy reached the server: nothing was resent. */
        assert_int_equal(srv_nreqs(f->srv), i + 1);
    }
    assert_int_equal(srv_accepts(f->srv), 5);
}

/*
 * libcurl resends a request by itself when a reused keep-alive connection
 * closes without any answer, whatever the method. For a POST that is a
 * possible duplicate; httpc stops it and reports UNKNOWN.
 */
static void test_lost_answer_on_reused_connection(void **state)
{
    struct fx *f = *state;
    srv_reply(f->srv, OK_KEEP);
    srv_script(f->srv, (struct step){.act = DROP});
    srv_reply(f->srv, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"); /* a resend's */
    expect_rc(fx_do(f, "GET", "/warm", NULL), 0, "GET", &f->err);
    expect_rc(fx_do(f, "POST", "/2.0/invoices", "{\"n\":1}"), TH_EUNKNOWN, "POST", &f->err);
    assert_int_equal(f->resp.sent, 1);
    expect_has(f->err.msg, "it may have been applied");
    sleep_ms(100);
    if (srv_nreqs(f->srv) != 2)
        fail_msg("the server got %zu requests, want 2 (GET, one POST): %s", srv_nreqs(f->srv),
                 srv_nreqs(f->srv) > 2 ? srv_req(f->srv, 2) : "");

    /* A GET is harmless to resend: libcurl's retry is allowed and the
     * caller sees the answer of the second connection. */
    struct srv *s2 = f->srv;
    pthread_mutex_lock(&s2->mu);
    s2->next = s2->nsteps; /* forget the unused 201 */
    pthread_mutex_unlock(&s2->mu);
    srv_reply(s2, OK_KEEP);
    srv_script(s2, (struct step){.act = DROP});
    srv_reply(s2, OK_KEEP);
    expect_rc(fx_do(f, "GET", "/a", NULL), 0, "GET on a new connection", &f->err);
    int accepts = srv_accepts(s2);
    expect_rc(fx_do(f, "GET", "/b", NULL), 0, "GET resent by libcurl", &f->err);
    assert_int_equal(srv_accepts(s2), accepts + 1);
    assert_int_equal(srv_nreqs(s2), 5);
}

static void test_reset(void **state)
{
    struct fx *f = *state;
    /* Reset once the request is in the server's socket: it was sent. */
    srv_script(f->srv, (struct step){.act = RST_ON_ARRIVAL});
    expect_rc(fx_do(f, "POST", "/2.0/invoices", "{}"), TH_EUNKNOWN, "POST reset", &f->err);
    assert_int_equal(f->resp.sent, 1);
    srv_script(f->srv, (struct step){.act = RST_ON_ARRIVAL});
    expect_rc(fx_do(f, "GET", "/x", NULL), TH_ETEMP, "GET reset", &f->err);

    /* Reset as soon as accepted: whether the request got out first is a
     * race, and the class must follow what httpc saw. */
    for (int i = 0; i < 5; i++) {
        srv_script(f->srv, (struct step){.act = CLOSE_AT_ONCE});
        int rc = fx_do(f, "POST", "/2.0/invoices", "{}");
        expect_rc(rc, f->resp.sent ? TH_EUNKNOWN : TH_ETEMP, "POST reset at accept", &f->err);
        srv_script(f->srv, (struct step){.act = CLOSE_AT_ONCE});
        expect_rc(fx_do(f, "GET", "/x", NULL), TH_ETEMP, "GET reset at accept", &f->err);
    }
    assert_int_equal(srv_nreqs(f->srv), 0);
}

/* The client (300 ms timeout) gives up on a server that holds the request. */
static void test_timeout_after_send(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *method;
        int want;
    } cases[] = {{"POST", TH_EUNKNOWN}, {"GET", TH_ETEMP}, {"PATCH", TH_EUNKNOWN}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_script(f->srv, (struct step){.act = STALL, .ms = 5000});
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = fx_do(f, cases[i].method, "/2.0/invoices", "{}");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        expect_rc(rc, cases[i].want, cases[i].method, &f->err);
        assert_int_equal(f->resp.sent, 1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms < 250 || ms > 3000) fail_msg("gave up after %ld ms, want ~300", ms);
    }
}

static void test_refused(void **state)
{
    unsigned short port;
    close(bind_loopback(&port)); /* a port nobody listens on */
    struct httpc *c = httpc_new(NULL);
    struct httpc_resp r;
    httpc_resp_init(&r);
    struct th_err err;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/2.0/invoices", port);
    long last_status = -5, last_wait = -5;
    httpc_last_answer(c, &last_status, &last_wait);
    assert_int_equal(last_status, 0);
    assert_int_equal(last_wait, -1);
    const char *hdrs[] = {AUTH, NULL};
    static const char *const methods[] = {"POST", "GET", "PATCH"};
    for (size_t i = 0; i < 3; i++) {
        int rc = httpc_do(c, methods[i], url, hdrs, "{}", 2, &r, &err);
        expect_rc(rc, TH_ETEMP, methods[i], &err);
        assert_int_equal(r.sent, 0);
        assert_int_equal(r.status, 0);
        char want[128];
        snprintf(want, sizeof want, "%s %s: could not connect (", methods[i], url);
        if (strncmp(err.msg, want, strlen(want)) != 0) fail_msg("want %s in: %s", want, err.msg);
        assert_null(strstr(err.msg, SECRET));
        httpc_last_answer(c, &last_status, &last_wait);
        assert_int_equal(last_status, 0);
    }
    httpc_resp_release(&r);
    httpc_free(c);
}

/* A listener whose accept queue is full drops new SYNs, so connecting
 * times out: nothing was sent, TEMP even for a POST. */
static void test_connect_timeout(void **state)
{
    unsigned short port;
    int lfd = bind_loopback(&port);
    assert_int_equal(listen(lfd, 0), 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    sleep_ms(50);
    struct httpc_config cfg = {.connect_timeout_ms = 300, .timeout_ms = 5000};
    struct httpc *c = httpc_new(&cfg);
    struct httpc_resp r;
    httpc_resp_init(&r);
    struct th_err err;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/2.0/invoices", port);
    int rc = httpc_do(c, "POST", url, NULL, "{}", 2, &r, &err);
    expect_rc(rc, TH_ETEMP, "POST to a full backlog", &err);
    assert_int_equal(r.sent, 0);
    expect_has(err.msg, "could not connect");
    httpc_resp_release(&r);
    httpc_free(c);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* HTTPC_MAX_BODY at limit-1, limit and limit+1, with the length known in
 * advance or only at the end (connection close). */
static void test_body_cap(void **state)
{
    struct fx *f = *state;
    static char raw[4][128];
    static const struct {
        size_t len;
        int announce; /* send Content-Length */
        int want;
    } cases[] = {
        {HTTPC_MAX_BODY - 1, 0, 0},
        {HTTPC_MAX_BODY, 0, 0},
        {HTTPC_MAX_BODY + 1, 0, TH_ETOOBIG},
        {HTTPC_MAX_BODY + 1, 1, TH_ETOOBIG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].announce)
            snprintf(raw[i], sizeof raw[i], "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                     cases[i].len);
        else
            snprintf(raw[i], sizeof raw[i], "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        srv_script(f->srv,
                   (struct step){.act = REPLY, .raw = raw[i], .zeros = cases[i].len, .close = 1});
        int rc = fx_do(f, "GET", "/products", NULL);
        char what[64];
        snprintf(what, sizeof what, "%zu bytes%s", cases[i].len,
                 cases[i].announce ? " announced" : "");
        expect_rc(rc, cases[i].want, what, &f->err);
        if (rc == 0) {
            assert_int_equal(f->resp.body.len, cases[i].len);
        } else {
            expect_has(f->err.msg, "HTTPC_MAX_BODY");
            assert_true(f->resp.body.len <= HTTPC_MAX_BODY);
            /* An announced length is refused before any byte is stored. */
            if (cases[i].announce) assert_int_equal(f->resp.body.len, 0);
        }
    }
}

/* Clients in several threads at once (curl_global_init runs once). */
struct worker {
    unsigned short port;
    int fails;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct httpc *c = httpc_new(NULL);
    struct httpc_resp r;
    httpc_resp_init(&r);
    struct th_err err;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/t", w->port);
    for (int i = 0; i < 5; i++)
        if (httpc_do(c, "GET", url, NULL, NULL, 0, &r, &err) != 0 ||
            strcmp(buf_cstr(&r.body), "ok") != 0)
            w->fails++;
    httpc_resp_release(&r);
    httpc_free(c);
    return NULL;
}

static void test_threads(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 20; i++)
        srv_script(f->srv, (struct step){.act = REPLY,
                                         .raw = "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                                "Content-Length: 2\r\n\r\nok",
                                         .close = 1});
    pthread_t th[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.port = f->srv->port};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].fails, 0);
    }
    assert_int_equal(srv_nreqs(f->srv), 20);
}

int main(void)
{
    /* A proxy from the environment would take loopback traffic away. */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("all_proxy");
    unsetenv("ALL_PROXY");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_status),
        cmocka_unit_test(test_parse_retry_after),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_setup_teardown(test_request_arrives_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_body_snippet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_answer_on_reused_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_after_send, setup_short, teardown),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
