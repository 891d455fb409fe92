/* Tests for src/net/httpd.c: body cap, query arguments, headers, drop,
 * answering later (suspend and resume). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/xmalloc.h"
#include "net/httpd.h"
#include "th_test.h"

#define CAP 1000

/* Echoes what the server saw as JSON: method, path, args, a header, body length. */
static void echo(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    if (strcmp(httpd_req_path(req), "/drop") == 0) {
        resp->drop = 1;
        return;
    }
    json_t *args = json_array();
    for (size_t i = 0; i < httpd_req_nargs(req); i++) {
        const char *k, *v;
        httpd_req_arg_at(req, i, &k, &v);
        json_array_append_new(args, json_pack("[s,s]", k, v));
    }
    size_t len;
    const char *body = httpd_req_body(req, &len);
    const char *h = httpd_req_header(req, "x-test");
    json_t *o = json_pack("{s:s,s:s,s:o,s:s?,s:I,s:s,s:s?}", "method", httpd_req_method(req),
                          "path", httpd_req_path(req), "args", args, "x_test", h, "len",
                          (json_int_t)len, "peer", httpd_req_peer(req), "first_q",
                          httpd_req_arg(req, "q[status_in][]"));
    httpd_resp_header(resp, "X-Echo", "1");
    sim_json(resp, 200, o);
    (void)body;
}

static int setup(void **state)
{
    struct httpd *d;
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .max_body = CAP, .handler = echo};
    struct th_err err;
    assert_int_equal(httpd_open(&d, &cfg, &err), 0);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    httpd_close(*state);
    return 0;
}

static const char *url(struct httpd *d, const char *path)
{
    static char u[512];
    snprintf(u, sizeof u, "http://127.0.0.1:%u%s", httpd_port(d), path);
    return u;
}

static void test_body_cap(void **state)
{
    struct httpd *d = *state;
    static const struct {
        size_t len;
        long status;
    } cases[] = {{CAP - 1, 200}, {CAP, 200}, {CAP + 1, 413}, {CAP * 10, 413}, {0, 200}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = xmalloc(cases[i].len + 1);
        memset(body, 'a', cases[i].len);
        body[cases[i].len] = '\0';
        struct tt_resp r;
        tt_http("POST", url(d, "/echo"), NULL, cases[i].len ? body : NULL, &r);
        if (r.status != cases[i].status)
            fail_msg("body of %zu bytes: want %ld got %ld", cases[i].len, cases[i].status,
                     r.status);
        if (r.status == 200)
            assert_int_equal(json_integer_value(json_object_get(r.json, "len")), cases[i].len);
        else
            assert_int_equal(json_integer_value(json_object_get(r.json, "limit_bytes")), CAP);
        tt_resp_release(&r);
        free(body);
    }
}

static void test_args_and_headers(void **state)
{
    struct httpd *d = *state;
    const char *hdrs[] = {"X-Test: hello", NULL};
    struct tt_resp r;
    tt_http("GET",
            url(d, "/2.0/products?q%5Bsku_eq%5D=A%201&q[status_in][]=Paid&q[status_in][]=Draft"
                   "&page=2"),
            hdrs, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "path")), "/2.0/products");
    assert_string_equal(json_string_value(json_object_get(r.json, "x_test")), "hello");
    assert_string_equal(json_string_value(json_object_get(r.json, "peer")), "127.0.0.1");
    assert_string_equal(json_string_value(json_object_get(r.json, "first_q")), "Paid");
    json_t *args = json_object_get(r.json, "args");
    assert_int_equal(json_array_size(args), 4);
    assert_string_equal(json_string_value(json_array_get(json_array_get(args, 0), 0)),
                        "q[sku_eq]");
    assert_string_equal(json_string_value(json_array_get(json_array_get(args, 0), 1)), "A 1");
    assert_string_equal(json_string_value(json_array_get(json_array_get(args, 2), 1)), "Draft");
    tt_resp_release(&r);
}

static void test_drop_gives_no_answer(void **state)
{
    struct httpd *d = *state;
    struct tt_resp r;
    tt_http("POST", url(d, "/drop"), NULL, "{}", &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rc, TH_EUNKNOWN);
    tt_resp_release(&r);
    tt_http("GET", url(d, "/drop"), NULL, NULL, &r);
    assert_int_equal(r.rc, TH_ETEMP);
    tt_resp_release(&r);
}

static void test_bad_listen(void **state)
{
    static const char *bad[] = {"nonsense", "127.0.0.1:99999", "1.2.3:80", ":", NULL};
    for (int i = 0; bad[i]; i++) {
        struct httpd *d = NULL;
        struct httpd_config cfg = {.listen = bad[i], .handler = echo};
        struct th_err err;
        assert_int_equal(httpd_open(&d, &cfg, &err), TH_EINVAL);
        assert_non_null(strstr(err.msg, bad[i][0] == ':' ? "listen" : bad[i]));
    }
    /* A port already in use is its own error, naming the address and the
     * port, whose advice is about ports, not disks. */
    struct httpd *a = *state, *b = NULL;
    char addr[64], port[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", httpd_port(a));
    snprintf(port, sizeof port, "port %u is already in use", httpd_port(a));
    struct httpd_config cfg = {.listen = addr, .handler = echo};
    struct th_err err;
    assert_int_equal(httpd_open(&b, &cfg, &err), TH_ELISTEN);
    assert_non_null(strstr(err.msg, addr));
    assert_non_null(strstr(err.msg, port));
    assert_non_null(strstr(th_err_todo(TH_ELISTEN), "--listen"));
    assert_null(strstr(th_err_todo(TH_ELISTEN), "free space"));
    /* an address this machine does not have */
    cfg.listen = "192.0.2.1:8080";
    assert_int_equal(httpd_open(&b, &cfg, &err), TH_ELISTEN);
    assert_non_null(strstr(err.msg, "no network interface"));
}

static void test_thread_pool_mode(void **state)
{
    struct httpd *d;
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .threads = 2, .handler = echo};
    struct th_err err;
    assert_int_equal(httpd_open(&d, &cfg, &err), 0);
    for (int i = 0; i < 20; i++) {
        struct tt_resp r;
        tt_http("GET", url(d, "/x"), NULL, NULL, &r);
        assert_int_equal(r.status, 200);
        tt_resp_release(&r);
    }
    httpd_close(d);
}

/* A client that sends half a request and waits (slowloris) is cut off
 * after conn_timeout_s, in both threading modes: libmicrohttpd would
 * otherwise hold the connection for its default. The read below allows
 * far longer than the timeout, so a connection left open fails the test. */
static void test_half_sent_request_closed(void **state)
{
    (void)state;
    unsigned modes[] = {0, 2};
    for (size_t m = 0; m < 2; m++) {
        struct httpd *d;
        struct httpd_config cfg = {.listen = "127.0.0.1:0", .threads = modes[m],
                                   .conn_timeout_s = 1, .handler = echo};
        struct th_err err;
        assert_int_equal(httpd_open(&d, &cfg, &err), 0);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(httpd_port(d))};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        const char half[] = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n";
        assert_int_equal(send(fd, half, sizeof half - 1, 0), (ssize_t)(sizeof half - 1));
        struct timeval tv = {.tv_sec = 20};
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
        char buf[256];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            fail_msg("threads=%u: a half-sent request was still open after 20 s", modes[m]);
        /* closed (0), reset (-1), or an error answer before closing */
        close(fd);
        httpd_close(d);
    }
}

/* ---------------------------------------------------------------------- */
/* Answering later */

static int ctx_freed;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;

static void ctx_free(void *p)
{
    pthread_mutex_lock(&ctx_lock);
    ctx_freed++;
    pthread_mutex_unlock(&ctx_lock);
    free(p);
}

/* What a suspended request remembers between its two handler calls. */
struct later {
    const struct httpd_req *req;
    int calls;
    long delay_ms;
};

static void *resume_later(void *p)
{
    struct later *l = p;
    tt_sleep_ms(l->delay_ms);
    httpd_req_resume(l->req);
    return NULL;
}

/* /late?ms=N answers from a second call, resumed by another thread after N
 * ms (N = 0: resumed before the first call has even returned); the answer
 * says how many calls the handler had and that the args survived. */
static void later(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct later *l = httpd_req_ctx(req);
    if (!l) {
        l = xcalloc(1, sizeof *l);
        l->req = req;
        const char *ms = httpd_req_arg(req, "ms");
        l->delay_ms = ms ? strtol(ms, NULL, 10) : 0;
        httpd_req_set_ctx(req, l, ctx_free);
        if (httpd_req_suspend(req) == 0) {
            l->calls = 1;
            if (l->delay_ms == 0) {
                httpd_req_resume(req);
            } else {
                pthread_t t;
                assert_int_equal(pthread_create(&t, NULL, resume_later, l), 0);
                pthread_detach(t);
            }
            httpd_resp_text(resp, 500, "ignored: the request is suspended");
            return;
        }
    }
    l->calls++;
    size_t len;
    httpd_req_body(req, &len);
    char out[128];
    snprintf(out, sizeof out, "{\"calls\":%d,\"ms\":\"%s\",\"len\":%zu}", l->calls,
             httpd_req_arg(req, "ms") ? httpd_req_arg(req, "ms") : "", len);
    httpd_resp_set(resp, 200, "application/json", out, strlen(out));
}

struct late_client {
    struct httpd *d;
    char path[64];
    long status;
    int calls;
    char ms[16];
};

static void *late_client_run(void *p)
{
    struct late_client *c = p;
    struct tt_resp r;
    char u[128]; /* url() has one static buffer for all threads */
    snprintf(u, sizeof u, "http://127.0.0.1:%u%s", httpd_port(c->d), c->path);
    tt_http("POST", u, NULL, "{\"x\":1}", &r);
    c->status = r.status;
    c->calls = (int)json_integer_value(json_object_get(r.json, "calls"));
    const char *ms = json_string_value(json_object_get(r.json, "ms"));
    snprintf(c->ms, sizeof c->ms, "%s", ms ? ms : "?");
    tt_resp_release(&r);
    return NULL;
}

static void test_suspend_and_resume(void **state)
{
    struct httpd *d;
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .threads = 2, .handler = later};
    struct th_err err;
    assert_int_equal(httpd_open(&d, &cfg, &err), 0);
    ctx_freed = 0;
    /* Many at once on two threads: a suspended request holds no thread, so
     * 16 requests each suspended for 200 ms take about 200 ms, not 1.6 s. */
    enum { N = 16 };
    struct late_client c[N];
    pthread_t t[N];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        c[i] = (struct late_client){.d = d};
        snprintf(c[i].path, sizeof c[i].path, "/late?ms=%d", i % 4 == 0 ? 0 : 200);
        assert_int_equal(pthread_create(&t[i], NULL, late_client_run, &c[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    for (int i = 0; i < N; i++) {
        if (c[i].status != 200 || c[i].calls != 2)
            fail_msg("%s: want 200 after 2 calls, got %ld after %d", c[i].path, c[i].status,
                     c[i].calls);
        /* the query arguments are the same in the second call */
        if (strcmp(c[i].path + strlen("/late?ms="), c[i].ms) != 0)
            fail_msg("%s: the second call saw ms=%s", c[i].path, c[i].ms);
    }
    if (ms > 1200) fail_msg("16 suspended requests on 2 threads took %ld ms", ms);
    httpd_close(d);
    assert_int_equal(ctx_freed, N);
}

/* A server with a thread per connection cannot suspend: the handler is told
 * so and answers at once. */
static void test_suspend_refused_per_connection(void **state)
{
    struct httpd *d;
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .threads = 0, .handler = later};
    struct th_err err;
    assert_int_equal(httpd_open(&d, &cfg, &err), 0);
    ctx_freed = 0;
    struct tt_resp r;
    tt_http("GET", url(d, "/late?ms=5"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "calls")), 1);
    tt_resp_release(&r);
    httpd_close(d);
    assert_int_equal(ctx_freed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_gives_no_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_listen, setup, teardown),
        cmocka_unit_test(test_thread_pool_mode),
        cmocka_unit_test(test_half_sent_request_closed),
        cmocka_unit_test(test_suspend_and_resume),
        cmocka_unit_test(test_suspend_refused_per_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
