/*
 * bench/fields — the field sync's remote calls on a large catalogue, in one
 * run: N products (default 10 000) in Qoyod and in a Zid store whose
 * fields tarheel already synced (the rows are saved as a pass would have
 * left them), then P % of them (default 1 %) get a new price in Qoyod and
 * another P % a new cost in Zid, then one pass of worker/fields.
 *
 * The minimum for Cq changed in Qoyod and Cs changed in Zid is what any
 * client needs to learn and write them: ceil(Cq / 100) Qoyod pages
 * (Qoyod's largest page) + ceil(Cs / 50) Zid pages (Zid's largest) + Cq
 * writes to Zid + Cs writes to Qoyod (one product a call on both sides).
 * The last line is
 *     fields_calls_ratio = calls made / minimum     (target <= 1.5)
 * and a line with what the same pass costs on Salla, which cannot list by
 * update (every product is read: N / 60 pages).
 *
 * Conditions (docs/BENCHMARKS.md): the cursors' two-minute overlap is off
 * (every product here changed within seconds of the seeding); pacing and
 * the emulators' rate limits are off.
 *
 * usage: bench_fields [N_PRODUCTS] [PERCENT_CHANGED]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/jv.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "sim/zid_sim.h"
#include "store/store.h"
#include "th_test.h"
#include "worker/fields.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_fields: %s: %s\n", what, msg ? msg : "");
    exit(1);
}

static void sku_of(int i, char *out, size_t n)
{
    snprintf(out, n, "F-%06d", i);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    double pct = argc > 2 ? atof(argv[2]) : 1.0;
    if (n < 100 || pct <= 0 || pct > 50) die("usage", "bench_fields [N >= 100] [PERCENT 0-50]");
    int every = (int)(100.0 / pct);
    if (every < 2) every = 2;
    log_set_level(LOG_WARN);
    int64_t start = now_ms();
    char dir[] = "/tmp/th_bench_fieldsXXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", "failed");
    char *url = xasprintf("sqlite:%s/b.db", dir);
    struct store *st;
    struct th_err err;
    if (store_open(&st, url, &err) != 0) die("store", err.msg);
    free(url);
    struct sim *q =
        tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", "bench", "rate-limit", "0", NULL});
    struct sim *shop = tt_sim_start(&zid_sim_ops, (const char *[]){"rate-limit", "0", NULL});
    const char *qh[] = {"API-KEY: bench", "Content-Type: application/json", NULL};

    /* N products in Qoyod: price 100.00 without VAT, cost 40.00. */
    char sku[32];
    for (int at = 0; at < n; at += 1000) {
        json_t *list = json_array();
        for (int i = at; i < at + 1000 && i < n; i++) {
            sku_of(i, sku, sizeof sku);
            json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:s}", "sku", sku, "name_ar",
                                                  sku, "name_en", sku, "selling_price", "100.0",
                                                  "buying_price", "40.0"));
        }
        json_t *env = json_pack("{s:o}", "products", list);
        char *body = json_dumps(env, 0);
        json_decref(env);
        struct tt_resp r;
        tt_http("POST", tt_url(q, "/_sim/qoyod/products"), qh, body, &r);
        free(body);
        if (r.status != 201) die("seeding Qoyod", r.body);
        tt_resp_release(&r);
    }
    /* The same N in Zid: 115.00 with VAT, cost 40.00. */
    struct tt_resp r;
    tt_http("POST", tt_url(shop, "/_sim/zid/install"), NULL, "{\"store_id\":251073}", &r);
    struct store_conn c = {0};
    c.status = xstrdup("active");
    c.qoyod_base = xasprintf("%s/2.0", sim_base_url(q));
    c.qoyod_api_key = xstrdup("bench");
    c.inventory_id = 1;
    c.webhook_secret = xstrdup("unused");
    c.fields_sync = 1;
    c.platform = MODEL_PLATFORM_ZID;
    c.store_id = 251073;
    c.access_token = xstrdup(json_string_value(json_object_get(r.json, "authorization")));
    c.manager_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    c.api_base = xasprintf("%s/v1", sim_base_url(shop));
    tt_resp_release(&r);
    if (store_conn_put(st, &c, &err) != 0) die("connection", err.msg);
    char **zid_id = xcalloc((size_t)n, sizeof *zid_id);
    for (int i = 0; i < n; i++) {
        sku_of(i, sku, sizeof sku);
        char *b = xasprintf("{\"store_id\":251073,\"product\":{\"sku\":\"%s\",\"name\":{\"ar\":"
                            "\"%s\",\"en\":\"%s\"},\"price\":115,\"cost\":40,\"quantity\":1}}",
                            sku, sku, sku);
        tt_http("POST", tt_url(shop, "/_sim/zid/products"), NULL, b, &r);
        free(b);
        if (r.status != 201) die("seeding Zid", r.body);
        zid_id[i] = xstrdup(json_string_value(json_object_get(r.json, "id")));
        tt_resp_release(&r);
    }
    fprintf(stderr, "bench_fields: seeded %d products on both sides, %.1f s\n", n,
            (double)(now_ms() - start) / 1000);

    /* The rows a pass would have left: both sides agree. */
    struct store_field_state *rows = xcalloc(STORE_FIELDS_MAX_BATCH, sizeof *rows);
    int64_t t = now_ms();
    int per = STORE_FIELDS_MAX_BATCH / STORE_NFIELDS;
    for (int at = 0; at < n; at += per) {
        int k = 0;
        for (int i = at; i < at + per && i < n; i++)
            for (int f = 0; f < STORE_NFIELDS; f++, k++) {
                struct store_field_state *w = &rows[k];
                memset(w, 0, sizeof *w);
                sku_of(i, w->sku, sizeof w->sku);
                w->field = f;
                snprintf(w->store_value, sizeof w->store_value, "%s",
                         f == 0 ? w->sku : f == 1 ? "11500" : "4000");
                snprintf(w->qoyod_value, sizeof w->qoyod_value, "%s", w->store_value);
                snprintf(w->store_ref, sizeof w->store_ref, "%s", zid_id[i]);
                w->qoyod_id = i + 1;
                w->synced_ms = t;
            }
        if (store_fields_save(st, c.id, rows, (size_t)k, &err) != 0) die("rows", err.msg);
    }
    free(rows);
    /* Cursors at the next whole second; the changes come after it. */
    int64_t cursor = (now_ms() / 1000 + 1) * 1000;
    if (store_map_put(st, c.id, "fields", "qoyod_cursor", cursor, &err) != 0 ||
        store_map_put(st, c.id, "fields", "store_cursor", cursor / 1000, &err) != 0 ||
        store_map_put(st, c.id, "fields", "full_at", cursor, &err) != 0)
        die("cursor", err.msg);
    while (now_ms() < cursor + 1100)
        tt_sleep_ms(50);

    /* Qoyod: every every-th product a new price; Zid: the one after it a
     * new cost. */
    size_t cq = 0, cs = 0;
    char *auth = xasprintf("Authorization: Bearer %s", c.access_token);
    char *acc = xasprintf("Access-Token: %s", c.manager_token);
    const char *zh[] = {auth, acc, "Store-Id: 251073", "Role: Manager",
                        "Content-Type: application/json", NULL};
    for (int i = 0; i + 1 < n; i += every) {
        char path[64];
        snprintf(path, sizeof path, "/2.0/products/%d", i + 1);
        tt_http("PUT", tt_url(q, "%s", path), qh, "{\"product\":{\"selling_price\":\"120.0\"}}",
                &r);
        if (r.status != 200) die("changing Qoyod", r.body);
        tt_resp_release(&r);
        cq++;
        tt_http("PATCH", tt_url(shop, "/v1/products/%s/", zid_id[i + 1]), zh, "{\"cost\":45}", &r);
        if (r.status != 200) die("changing Zid", r.body);
        tt_resp_release(&r);
        cs++;
    }
    fprintf(stderr, "bench_fields: %zu changed in Qoyod, %zu in Zid, %.1f s\n", cq, cs,
            (double)(now_ms() - start) / 1000);

    struct fields_config cfg = {.platform_rpm = -1, .qoyod_rpm = -1, .overlap_s = -1, .force = 1};
    struct fields_stats fs;
    struct httpc *hc = httpc_new(NULL);
    int64_t t0 = now_ms();
    if (fields_round(st, hc, &cfg, &fs, &err) != 0) die("pass", err.msg);
    double secs = (double)(now_ms() - t0) / 1000;
    size_t calls = fs.qoyod_calls + fs.store_calls;
    size_t minimum = (cq + 99) / 100 + (cs + 49) / 50 + cq + cs;
    if (fs.to_store != cq || fs.to_qoyod != cs || fs.conflicts)
        printf("ERROR: to_store %zu (want %zu), to_qoyod %zu (want %zu), conflicts %zu\n",
               fs.to_store, cq, fs.to_qoyod, cs, fs.conflicts);
    /* Checked on the emulators: a changed Zid product now has Qoyod's price. */
    tt_http("GET", tt_url(shop, "/v1/products/%s/", zid_id[0]), zh, NULL, &r);
    int64_t price = 0;
    if (jv_get_money(r.json, "price", &price, NULL) != 0 || price != 13800)
        printf("ERROR: Zid's first product has price %lld, want 13800 (120.00 + VAT)\n",
               (long long)price);
    tt_resp_release(&r);
    printf("products %d, changed in Qoyod %zu, in Zid %zu\n", n, cq, cs);
    printf("calls: Qoyod %zu, Zid %zu, total %zu, minimum %zu, %.2f s\n", fs.qoyod_calls,
           fs.store_calls, calls, minimum, secs);
    printf("salla_read_pages_per_pass = %d (every product, 60 a page)\n", (n + 59) / 60);
    printf("fields_calls_ratio = %.3f\n", (double)calls / (double)minimum);
    httpc_free(hc);
    free(auth);
    free(acc);
    for (int i = 0; i < n; i++)
        free(zid_id[i]);
    free(zid_id);
    store_conn_release(&c);
    store_close(st);
    tt_sim_stop(shop);
    tt_sim_stop(q);
    char *cmd = xasprintf("rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_fields: could not remove %s\n", dir);
    free(cmd);
    return 0;
}
