/*
 * bench/stock — the stock poller's remote calls on a large catalogue, in
 * one run: N products in Qoyod (default 100 000) whose counts tarheel
 * already knows, P % of them (default 1 %) changed in Qoyod since the last
 * round, then one round of worker/stock against the Qoyod emulator and the
 * Salla emulator, then the same against the Zid emulator.
 *
 * The minimum for C changed SKUs is what any client needs to learn and
 * write them: ceil(C / 100) Qoyod pages (Qoyod's largest page) plus
 * ceil(C / batch) store calls (Salla's bulk quantities, 100 a call [I];
 * Zid's bulk PATCH, 50 a call). The last line is
 *     stock_calls_ratio = calls made / minimum
 * for the worse of the two platforms (target <= 1.5).
 *
 * Conditions (docs/BENCHMARKS.md): the cursor's two-minute overlap is off
 * (every product here changed within a second, so with it the round would
 * re-read the whole seeded catalogue, which in service is a round earlier);
 * pacing is off (the emulators' rate limits are off). The Salla store does
 * not hold the catalogue (its bulk call takes SKUs it does not know without
 * complaint [I]); the Zid store holds the changed products, checked after.
 *
 * usage: bench_stock [N_PRODUCTS] [PERCENT_CHANGED]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "platform/salla.h"
#include "platform/zid.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "store/store.h"
#include "th_test.h"
#include "worker/stock.h"

#define BASE_QTY 50

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_stock: %s: %s\n", what, msg ? msg : "");
    exit(1);
}

static void sku_of(int i, char *out, size_t n)
{
    snprintf(out, n, "B-%06d", i);
}

struct result {
    size_t changed, pushed, qoyod_calls, store_calls, minimum;
    double seconds;
};

static struct result run(int zid, int n, int changed_every)
{
    struct result res = {0};
    int64_t start = now_ms();
    char dir[] = "/tmp/th_bench_stockXXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp", "failed");
    char *url = xasprintf("sqlite:%s/b.db", dir);
    struct store *st;
    struct th_err err;
    if (store_open(&st, url, &err) != 0) die("store", err.msg);
    free(url);
    struct sim *q =
        tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", "bench", "rate-limit", "0", NULL});
    struct sim *shop =
        zid ? tt_sim_start(&zid_sim_ops, (const char *[]){"rate-limit", "0", NULL})
            : tt_sim_start(&salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
    const char *qh[] = {"API-KEY: bench", "Content-Type: application/json", NULL};

    /* N tracked products in Qoyod, BASE_QTY each at inventory 1. */
    char sku[32];
    for (int at = 0; at < n; at += 1000) {
        json_t *list = json_array();
        for (int i = at; i < at + 1000 && i < n; i++) {
            sku_of(i, sku, sizeof sku);
            json_array_append_new(list, json_pack("{s:s,s:[{s:i,s:s}]}", "sku", sku, "inventories",
                                                  "id", 1, "stock", "50.0"));
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

    struct store_conn c = {0};
    c.status = xstrdup("active");
    c.qoyod_base = xasprintf("%s/2.0", sim_base_url(q));
    c.qoyod_api_key = xstrdup("bench");
    c.inventory_id = 1;
    c.webhook_secret = xstrdup("unused");
    c.stock_sync = 1;
    struct tt_resp r;
    if (zid) {
        tt_http("POST", tt_url(shop, "/_sim/zid/install"), NULL, "{\"store_id\":251073}", &r);
        c.platform = MODEL_PLATFORM_ZID;
        c.store_id = 251073;
        c.access_token = xstrdup(json_string_value(json_object_get(r.json, "authorization")));
        c.manager_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
        c.api_base = xasprintf("%s/v1", sim_base_url(shop));
    } else {
        tt_http("POST", tt_url(shop, "/_sim/salla/install"), NULL, "{\"store_id\":4242}", &r);
        c.platform = MODEL_PLATFORM_SALLA;
        c.store_id = 4242;
        c.access_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
        c.api_base = xasprintf("%s/admin/v2", sim_base_url(shop));
    }
    tt_resp_release(&r);
    if (store_conn_put(st, &c, &err) != 0) die("connection", err.msg);

    /* The changed products exist in the Zid store. */
    char *auth = xasprintf("Authorization: Bearer %s", c.access_token);
    char *acc = xasprintf("Access-Token: %s", c.manager_token ? c.manager_token : "");
    const char *zh[] = {
        auth, acc, "Store-Id: 251073", "Role: Manager", "Content-Type: application/json", NULL};
    if (zid) {
        for (int i = 0; i < n; i += changed_every) {
            sku_of(i, sku, sizeof sku);
            char *b =
                xasprintf("{\"name\":{\"ar\":\"%s\",\"en\":\"%s\"},\"price\":10,\"sku\":\"%s\","
                          "\"quantity\":%d}",
                          sku, sku, sku, BASE_QTY);
            tt_http("POST", tt_url(shop, "/v1/products/"), zh, b, &r);
            free(b);
            if (r.status != 201) die("seeding Zid", r.body);
            tt_resp_release(&r);
        }
    }

    fprintf(stderr, "bench_stock: %s: seeded, %.1f s\n", zid ? "zid" : "salla",
            (double)(now_ms() - start) / 1000);
    /* tarheel already knows every count (an earlier round read them). */
    struct store_stock *rows = xcalloc(STORE_STOCK_MAX_BATCH, sizeof *rows);
    int64_t t = now_ms();
    for (int at = 0; at < n; at += STORE_STOCK_MAX_BATCH) {
        int k = 0;
        for (int i = at; i < at + STORE_STOCK_MAX_BATCH && i < n; i++, k++) {
            memset(&rows[k], 0, sizeof rows[k]);
            sku_of(i, rows[k].sku, sizeof rows[k].sku);
            rows[k].qoyod_product_id = i + 1;
            rows[k].qoyod_qty = BASE_QTY;
            rows[k].has_qty = 1;
            rows[k].read_ms = t;
        }
        if (store_stock_save(st, c.id, rows, (size_t)k, &err) != 0) die("seeding rows", err.msg);
    }
    free(rows);
    /* The cursor: the next whole second; the changes come after it. */
    int64_t cursor = (now_ms() / 1000 + 1) * 1000;
    if (store_map_put(st, c.id, "stock", "cursor", cursor, &err) != 0 ||
        store_map_put(st, c.id, "stock", "full_at", cursor, &err) != 0)
        die("cursor", err.msg);
    while (now_ms() < cursor + 20)
        tt_sleep_ms(20);

    fprintf(stderr, "bench_stock: rows saved, %.1f s\n", (double)(now_ms() - start) / 1000);
    /* Purchases: every changed_every-th product gains 7. */
    for (int i = 0; i < n; i += changed_every) {
        char *b = xasprintf("{\"product_id\":%d,\"stock\":%d}", i + 1, BASE_QTY + 7);
        tt_http("POST", tt_url(q, "/_sim/qoyod/stock"), qh, b, &r);
        free(b);
        if (r.status != 200) die("changing Qoyod", r.body);
        tt_resp_release(&r);
        res.changed++;
    }

    fprintf(stderr, "bench_stock: changed, %.1f s\n", (double)(now_ms() - start) / 1000);
    struct stock_config cfg = {.force = 1, .platform_rpm = -1, .qoyod_rpm = -1, .overlap_s = -1};
    struct stock_stats ss;
    struct httpc *hc = httpc_new(NULL);
    double t0 = (double)now_ms();
    if (stock_round(st, hc, &cfg, &ss, &err) != 0) die("round", err.msg);
    res.seconds = ((double)now_ms() - t0) / 1000.0;
    res.pushed = ss.pushed;
    res.qoyod_calls = ss.qoyod_calls;
    res.store_calls = ss.store_calls;
    size_t batch = zid ? ZID_STOCK_BATCH : SALLA_STOCK_BATCH;
    res.minimum = (res.changed + 99) / 100 + (res.changed + batch - 1) / batch;
    if (ss.changed != res.changed || ss.pushed != res.changed)
        printf("ERROR: %zu changed in Qoyod, %zu seen changed, %zu pushed\n", res.changed,
               ss.changed, ss.pushed);

    if (zid) { /* the first changed product now shows BASE_QTY + 7 in Zid */
        tt_http("GET", tt_url(shop, "/v1/products/?page_size=50"), zh, NULL, &r);
        long qty = -1;
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(r.json, "results"), i, p)
        {
            const char *s = json_string_value(json_object_get(p, "sku"));
            if (s && strcmp(s, "B-000000") == 0)
                qty = (long)json_integer_value(json_object_get(p, "quantity"));
        }
        if (qty != BASE_QTY + 7)
            printf("ERROR: Zid shows %ld for B-000000, want %d\n", qty, BASE_QTY + 7);
        tt_resp_release(&r);
    }
    free(auth);
    free(acc);
    httpc_free(hc);
    store_conn_release(&c);
    tt_sim_stop(shop);
    tt_sim_stop(q);
    store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_stock: could not remove %s\n", dir);
    return res;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 100000;
    int pct = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 1;
    if (n < 100 || n > 1000000 || pct < 1 || pct > 100) {
        fprintf(stderr, "usage: bench_stock [N_PRODUCTS 100..1000000] [PERCENT_CHANGED 1..100]\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    int every = 100 / pct;
    double worst = 0;
    for (int zid = 0; zid < 2; zid++) {
        struct result r = run(zid, n, every);
        double ratio = (double)(r.qoyod_calls + r.store_calls) / (double)r.minimum;
        printf("platform=%s products=%d changed=%zu pushed=%zu qoyod_calls=%zu store_calls=%zu "
               "minimum=%zu ratio=%.3f round_s=%.2f\n",
               zid ? "zid" : "salla", n, r.changed, r.pushed, r.qoyod_calls, r.store_calls,
               r.minimum, ratio, r.seconds);
        if (ratio > worst) worst = ratio;
    }
    printf("stock_calls_ratio=%.3f\n", worst);
    return 0;
}
