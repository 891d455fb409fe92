/* Tests for src/net/httpd.c: body cap, query arguments, headers, drop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* A port already in use is an I/O error that names the address. */
    struct httpd *a = *state, *b = NULL;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", httpd_port(a));
    struct httpd_config cfg = {.listen = addr, .handler = echo};
    struct th_err err;
    assert_int_equal(httpd_open(&b, &cfg, &err), TH_EIO);
    assert_non_null(strstr(err.msg, addr));
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_body_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_gives_no_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_listen, setup, teardown),
        cmocka_unit_test(test_thread_pool_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
