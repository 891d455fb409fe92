/*
 * Tests of the emulator framework (sim/sim.c) through HTTP, with a tiny
 * key-value emulator defined here, so the framework's behaviour is pinned
 * down independently of the Qoyod, Salla and Zid emulators.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/xmalloc.h"
#include "th_test.h"

/* ---------------------------------------------------------------------- */
/* A key-value emulator: PUT/POST /kv/<key> stores the body's "v"; GET reads
 * it; POST /_sim/kv/send fires a webhook to the URL in the body. */

struct kv {
    struct sim *s;
    json_t *data;
};

static void *kv_create(struct sim *s)
{
    struct kv *kv = xcalloc(1, sizeof *kv);
    kv->s = s;
    kv->data = json_object();
    return kv;
}

static void kv_destroy(void *st)
{
    struct kv *kv = st;
    json_decref(kv->data);
    free(kv);
}

static void kv_reset(void *st)
{
    struct kv *kv = st;
    json_object_clear(kv->data);
}

static void kv_handle(void *st, const struct sim_req *req, struct httpd_resp *resp)
{
    struct kv *kv = st;
    if (strncmp(req->path, "/kv/", 4) != 0) {
        sim_json(resp, 404, json_pack("{s:s}", "error", "no route"));
        return;
    }
    const char *key = req->path + 4;
    if (strcmp(req->method, "GET") == 0) {
        json_t *v = json_object_get(kv->data, key);
        if (v) sim_json(resp, 200, json_pack("{s:O}", "v", v));
        else sim_json(resp, 404, json_pack("{s:s}", "error", "missing"));
        return;
    }
    if (req->body_invalid || !json_object_get(req->body, "v")) {
        sim_json(resp, 400, json_pack("{s:s}", "error", "body must be {\"v\":...}"));
        return;
    }
    json_object_set(kv->data, key, json_object_get(req->body, "v"));
    sim_json(resp, 201, json_pack("{s:s}", "stored", key));
}

static int kv_control(void *st, const char *sub, const struct sim_req *req,
                      struct httpd_resp *resp)
{
    struct kv *kv = st;
    if (strcmp(sub, "kv/send") != 0) return TH_ENOTFOUND;
    const char *url = jv_get_str(req->body, "url");
    const char *event = jv_get_str(req->body, "event");
    int64_t retry_ms = 20, attempts = 3;
    if (jv_get_id(req->body, "retry_ms", &retry_ms, NULL) != 0) retry_ms = 20;
    if (jv_get_id(req->body, "attempts", &attempts, NULL) != 0) attempts = 3;
    char *body = xasprintf("{\"event\":\"%s\",\"n\":%lld}", event ? event : "x",
                           (long long)json_integer_value(json_object_get(req->body, "n")));
    struct sim_webhook w = {.url = url,
                            .event = event ? event : "x",
                            .body = body,
                            .sign_header = "X-Sig",
                            .sign_key = "secret",
                            .max_attempts = (int)attempts,
                            .retry_delay_ms = retry_ms,
                            .timeout_ms = 2000};
    sim_webhook_send(kv->s, &w);
    free(body);
    sim_json(resp, 202, json_pack("{s:b}", "queued", 1));
    return 0;
}

static json_t *kv_save(void *st)
{
    return json_deep_copy(((struct kv *)st)->data);
}

static int kv_load(void *st, const json_t *saved, struct th_err *err)
{
    struct kv *kv = st;
    json_object_update(kv->data, (json_t *)saved);
    return 0;
}

static const struct sim_ops kv_ops = {.name = "kv",
                                      .create = kv_create,
                                      .destroy = kv_destroy,
                                      .reset = kv_reset,
                                      .handle = kv_handle,
                                      .control = kv_control,
                                      .save = kv_save,
                                      .load = kv_load};

static int setup(void **state)
{
    *state = tt_sim_start(&kv_ops, NULL);
    return 0;
}

static int teardown(void **state)
{
    tt_sim_stop(*state);
    return 0;
}

static void put(struct sim *s, const char *key, const char *json, long want_status, int want_rc)
{
    struct tt_resp r;
    tt_http("POST", tt_url(s, "/kv/%s", key), NULL, json, &r);
    assert_int_equal(r.status, want_status);
    assert_int_equal(r.rc, want_rc);
    tt_resp_release(&r);
}

/* ---------------------------------------------------------------------- */

static void test_health_and_unknown_control(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    tt_http("GET", tt_url(s, "/_sim/health"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "emulator")), "kv");
    tt_resp_release(&r);
    tt_http("POST", tt_url(s, "/_sim/nope"), NULL, "{}", &r);
    assert_int_equal(r.status, 404);
    tt_resp_release(&r);
}

static void test_request_log_and_reset(void **state)
{
    struct sim *s = *state;
    put(s, "a", "{\"v\":1}", 201, 0);
    put(s, "b", "{\"v\":2}", 201, 0);
    assert_int_equal(tt_count_requests(s, "POST", "/kv/*", 201), 2);
    assert_int_equal(tt_count_requests(s, "GET", "/kv/*", -2), 0);
    /* control calls are not logged */
    assert_int_equal(tt_count_requests(s, NULL, "/_sim/*", -2), 0);

    struct tt_resp r;
    tt_http("POST", tt_url(s, "/_sim/reset"), NULL, "", &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    assert_int_equal(tt_count_requests(s, NULL, NULL, -2), 0);
    tt_http("GET", tt_url(s, "/kv/a"), NULL, NULL, &r);
    assert_int_equal(r.status, 404); /* state reset too */
    tt_resp_release(&r);
}

static void test_fault_validation(void **state)
{
    struct sim *s = *state;
    static const struct {
        const char *body;
        long status;
    } cases[] = {
        {"{\"match\":\"* /kv/*\",\"mode\":\"error\"}", 201},
        {"{\"faults\":[{\"match\":\"* /kv/*\",\"mode\":\"reset\",\"count\":1}]}", 201},
        {"{\"match\":\"* /kv/*\"}", 400},                                   /* no mode */
        {"{\"match\":\"* /kv/*\",\"mode\":\"explode\"}", 400},              /* unknown mode */
        {"{\"match\":\"* /kv/*\",\"mode\":\"latency\"}", 400},              /* no latency_ms */
        {"{\"match\":\"* /kv/*\",\"mode\":\"error\",\"probability\":2}", 400},
        {"[1,2]", 400},
        {"not json", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tt_resp r;
        tt_http("POST", tt_url(s, "/_sim/faults"), NULL, cases[i].body, &r);
        if (r.status != cases[i].status)
            fail_msg("case %zu (%s): want %ld got %ld: %s", i, cases[i].body, cases[i].status,
                     r.status, r.body);
        tt_resp_release(&r);
    }
    struct tt_resp r;
    tt_http("GET", tt_url(s, "/_sim/faults"), NULL, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "faults")), 2);
    tt_resp_release(&r);
    tt_http("DELETE", tt_url(s, "/_sim/faults"), NULL, NULL, &r);
    tt_resp_release(&r);
    tt_http("GET", tt_url(s, "/_sim/faults"), NULL, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "faults")), 0);
    tt_resp_release(&r);
}

/* Each incoming fault mode, seen from the client (httpc) and from the state. */
static void test_incoming_faults(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;

    tt_faults(s, "{\"match\":\"POST /kv/err\",\"mode\":\"error\",\"status\":503,\"count\":1}");
    put(s, "err", "{\"v\":1}", 503, TH_ETEMP);
    put(s, "err", "{\"v\":1}", 201, 0); /* count exhausted */

    tt_faults(s, "{\"match\":\"POST /kv/rl\",\"mode\":\"rate_limit\",\"retry_after\":7,\"count\":1}");
    tt_http("POST", tt_url(s, "/kv/rl"), NULL, "{\"v\":1}", &r);
    assert_int_equal(r.status, 429);
    assert_int_equal(r.rc, TH_ETEMP);
    assert_int_equal(r.retry_after_s, 7);
    tt_resp_release(&r);

    /* reset: dropped before processing, so nothing is stored */
    tt_faults(s, "{\"match\":\"POST /kv/rs\",\"mode\":\"reset\",\"count\":1}");
    put(s, "rs", "{\"v\":1}", 0, TH_EUNKNOWN);
    tt_http("GET", tt_url(s, "/kv/rs"), NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    tt_resp_release(&r);

    /* commit_then_drop: stored, but the answer is lost */
    tt_faults(s, "{\"match\":\"POST /kv/cd\",\"mode\":\"commit_then_drop\",\"count\":1}");
    put(s, "cd", "{\"v\":5}", 0, TH_EUNKNOWN);
    tt_http("GET", tt_url(s, "/kv/cd"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "v")), 5);
    tt_resp_release(&r);
    assert_int_equal(tt_count_requests(s, "POST", "/kv/cd", 201), 1); /* logged as applied */

    /* reset on a GET is a temporary failure (safe to retry) */
    tt_faults(s, "{\"match\":\"GET /kv/cd\",\"mode\":\"reset\",\"count\":1}");
    tt_http("GET", tt_url(s, "/kv/cd"), NULL, NULL, &r);
    assert_int_equal(r.rc, TH_ETEMP);
    tt_resp_release(&r);

    /* latency delays but succeeds */
    tt_faults(s, "{\"match\":\"GET /kv/cd\",\"mode\":\"latency\",\"latency_ms\":150,\"count\":1}");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    tt_http("GET", tt_url(s, "/kv/cd"), NULL, NULL, &r);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_int_equal(r.status, 200);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    if (ms < 150) fail_msg("latency fault: call took %ld ms, want >= 150", ms);
    tt_resp_release(&r);

    /* latency past the client's timeout: a write's outcome is unknown */
    tt_faults(s, "{\"match\":\"POST /kv/slow\",\"mode\":\"latency\",\"latency_ms\":400,\"count\":1}");
    tt_http_timeout("POST", tt_url(s, "/kv/slow"), NULL, "{\"v\":9}", 100, &r);
    assert_int_equal(r.rc, TH_EUNKNOWN);
    tt_resp_release(&r);
}

/* The same seed gives the same sequence of probabilistic fault hits. */
static int hits_for_seed(uint64_t seed)
{
    struct sim_config cfg = {.listen = "127.0.0.1:0", .seed = seed};
    struct sim *s;
    struct th_err err;
    assert_int_equal(sim_open(&s, &kv_ops, &cfg, &err), 0);
    tt_faults(s, "{\"match\":\"POST /kv/*\",\"mode\":\"error\",\"status\":500,\"probability\":0.5}");
    int pattern = 0;
    for (int i = 0; i < 16; i++) {
        struct tt_resp r;
        tt_http("POST", tt_url(s, "/kv/p"), NULL, "{\"v\":1}", &r);
        if (r.status == 500) pattern |= 1 << i;
        tt_resp_release(&r);
    }
    sim_close(s);
    return pattern;
}

static void test_seed_determinism(void **state)
{
    int a = hits_for_seed(7), b = hits_for_seed(7), c = hits_for_seed(8);
    assert_int_equal(a, b);
    assert_int_not_equal(a, 0);      /* p=0.5 over 16 draws */
    assert_int_not_equal(a, 0xffff);
    assert_int_not_equal(a, c);      /* another seed, another pattern */
}

static void test_state_file_round_trip(void **state)
{
    char path[] = "/tmp/th_sim_stateXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    struct sim_config cfg = {.listen = "127.0.0.1:0", .state_file = path};
    struct sim *s;
    struct th_err err;
    assert_int_equal(sim_open(&s, &kv_ops, &cfg, &err), 0);
    put(s, "persist", "{\"v\":\"yes\"}", 201, 0);
    sim_close(s);

    assert_int_equal(sim_open(&s, &kv_ops, &cfg, &err), 0);
    struct tt_resp r;
    tt_http("GET", tt_url(s, "/kv/persist"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "v")), "yes");
    tt_resp_release(&r);
    sim_close(s);

    /* A corrupt state file is refused with a clear error. */
    FILE *f = fopen(path, "w");
    fputs("{broken", f);
    fclose(f);
    assert_int_equal(sim_open(&s, &kv_ops, &cfg, &err), TH_EPARSE);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
}

static void send_hook(struct sim *s, const char *url, const char *event, int n, int attempts)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"url\":\"%s\",\"event\":\"%s\",\"n\":%d,\"attempts\":%d,\"retry_ms\":20}", url,
             event, n, attempts);
    struct tt_resp r;
    tt_http("POST", tt_url(s, "/_sim/kv/send"), NULL, body, &r);
    assert_int_equal(r.status, 202);
    tt_resp_release(&r);
}

static int sig_ok(const struct tt_received *x)
{
    char hex[65];
    sim_hmac_sha256_hex("secret", x->body, x->body_len, hex);
    return x->headers[0] && strcmp(x->headers[0], hex) == 0;
}

static void test_webhook_signed_and_retried(void **state)
{
    struct sim *s = *state;
    const char *names[] = {"X-Sig", NULL};
    struct tt_receiver *rc = tt_receiver_start(500, 0, names);
    send_hook(s, tt_receiver_url(rc), "order.created", 1, 3);
    assert_int_equal(tt_receiver_wait(rc, 1, 3000), 1);
    tt_receiver_set(rc, 200, 0);
    assert_int_equal(tt_webhooks_drain(s, 3000), 0);
    assert_int_equal(tt_receiver_count(rc), 2); /* one failure, one success */
    struct tt_received x;
    assert_int_equal(tt_receiver_get(rc, 1, &x), 0);
    assert_true(sig_ok(&x));
    tt_received_release(&x);

    /* gives up after max attempts */
    tt_receiver_set(rc, 500, 0);
    send_hook(s, tt_receiver_url(rc), "order.updated", 2, 3);
    assert_int_equal(tt_webhooks_drain(s, 3000), 0);
    assert_int_equal(tt_receiver_count(rc), 5);
    struct tt_resp r;
    tt_http("GET", tt_url(s, "/_sim/webhooks"), NULL, NULL, &r);
    json_t *d = json_array_get(json_object_get(r.json, "deliveries"), 1);
    assert_string_equal(json_string_value(json_object_get(d, "result")), "failed");
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 3);
    tt_resp_release(&r);
    tt_receiver_stop(rc);
}

static void test_webhook_faults(void **state)
{
    struct sim *s = *state;
    const char *names[] = {"X-Sig", NULL};
    struct tt_receiver *rc = tt_receiver_start(200, 0, names);
    const char *url = tt_receiver_url(rc);

    /* duplicate: same body twice */
    tt_faults(s, "{\"match\":\"webhook dup.*\",\"mode\":\"duplicate\",\"count\":1}");
    send_hook(s, url, "dup.one", 1, 1);
    assert_int_equal(tt_webhooks_drain(s, 3000), 0);
    assert_int_equal(tt_receiver_count(rc), 2);
    struct tt_received a, b;
    tt_receiver_get(rc, 0, &a);
    tt_receiver_get(rc, 1, &b);
    assert_string_equal(a.body, b.body);
    tt_received_release(&a);
    tt_received_release(&b);

    /* bad_signature: delivered, but the signature does not verify */
    tt_faults(s, "{\"match\":\"webhook bad.*\",\"mode\":\"bad_signature\",\"count\":1}");
    send_hook(s, url, "bad.one", 2, 1);
    assert_int_equal(tt_webhooks_drain(s, 3000), 0);
    tt_receiver_get(rc, 2, &a);
    assert_false(sig_ok(&a));
    tt_received_release(&a);

    /* lose: never delivered */
    tt_faults(s, "{\"match\":\"webhook lost.*\",\"mode\":\"lose\",\"count\":1}");
    send_hook(s, url, "lost.one", 3, 1);
    assert_int_equal(tt_webhooks_drain(s, 3000), 0);
    assert_int_equal(tt_receiver_count(rc), 3);

    /* out_of_order: the first is held until the second went out */
    tt_faults(s, "{\"match\":\"webhook ooo.first\",\"mode\":\"out_of_order\",\"count\":1}");
    send_hook(s, url, "ooo.first", 4, 1);
    send_hook(s, url, "ooo.second", 5, 1);
    assert_int_equal(tt_webhooks_drain(s, 5000), 0);
    assert_int_equal(tt_receiver_count(rc), 5);
    tt_receiver_get(rc, 3, &a);
    tt_receiver_get(rc, 4, &b);
    assert_non_null(strstr(a.body, "ooo.second"));
    assert_non_null(strstr(b.body, "ooo.first"));
    tt_received_release(&a);
    tt_received_release(&b);

    /* slow_receiver: the first attempt times out although the receiver got
     * it, so it is delivered again */
    tt_receiver_set(rc, 200, 150);
    tt_faults(s, "{\"match\":\"webhook slow.*\",\"mode\":\"slow_receiver\",\"latency_ms\":50,"
                 "\"count\":1}");
    send_hook(s, url, "slow.one", 6, 2);
    assert_int_equal(tt_webhooks_drain(s, 5000), 0);
    assert_int_equal(tt_receiver_count(rc), 7);
    tt_receiver_stop(rc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health_and_unknown_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_log_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incoming_faults, setup, teardown),
        cmocka_unit_test(test_seed_determinism),
        cmocka_unit_test(test_state_file_round_trip),
        cmocka_unit_test_setup_teardown(test_webhook_signed_and_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_faults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
