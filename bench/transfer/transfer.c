/*
 * bench/transfer — orders through the whole pipeline to the Qoyod emulator,
 * measured in one run: orders per second, and remote calls to Qoyod per order
 * against the minimum (one invoice create, plus one payment when "financial
 * invoice" is on). Customers and products are known after a warm-up order,
 * so the last line, calls_ratio = calls / minimum, shows whether anything
 * beyond the two necessary writes is spent per order (target <= 1.1).
 *
 * Pieces: the real SQLite store (temp file), the real worker threads and
 * transfer state machine, the Qoyod emulator in-process, and a scripted
 * Salla order API (tests/support/tt_salla_stub).
 *
 * usage: bench_transfer [N_ORDERS] [WORKERS] [LATENCY_MS]
 *   LATENCY_MS adds that latency to every Qoyod call (default 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "store/store.h"
#include "th_test.h"
#include "tt_salla_stub.h"
#include "worker/worker.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The highest request sequence number the emulator has logged. */
static long long last_seq(struct sim *q)
{
    struct tt_resp r;
    tt_http("GET", tt_url(q, "/_sim/requests?since=0"), NULL, NULL, &r);
    json_t *a = json_object_get(r.json, "requests");
    long long s = (long long)json_integer_value(
        json_object_get(json_array_get(a, json_array_size(a) - 1), "seq"));
    tt_resp_release(&r);
    return s;
}

static void ingest(struct store *st, int64_t conn, int64_t id)
{
    char key[32];
    snprintf(key, sizeof key, "bench-%lld", (long long)id);
    int dup;
    struct th_err err;
    if (store_event_ingest(st, conn, key, "order.created", id, "{}", 2, &dup, &err) != 0) {
        fprintf(stderr, "bench_transfer: %s\n", err.msg);
        exit(1);
    }
}

static void wait_jobs(struct store *st)
{
    struct th_err err;
    for (;;) {
        int64_t n = 0;
        if (store_job_count(st, &n, &err) != 0) exit(1);
        if (n == 0) return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 500;
    int workers = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 4;
    int latency = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 0;
    if (n <= 0 || n >= TT_SALLA_MAX_ORDERS || workers <= 0 || latency < 0) {
        fprintf(stderr, "usage: bench_transfer [N_ORDERS<4096] [WORKERS] [LATENCY_MS]\n");
        return 2;
    }
    log_set_level(LOG_ERROR);
    char dir[] = "/tmp/th_bench_transferXXXXXX";
    if (!mkdtemp(dir)) return 1;
    char *url = xasprintf("sqlite:%s/b.db", dir);
    struct store *st;
    struct th_err err;
    if (store_open(&st, url, &err) != 0) {
        fprintf(stderr, "bench_transfer: %s\n", err.msg);
        return 1;
    }
    struct sim *q = tt_sim_start(&qoyod_sim_ops,
                                 (const char *[]){"api-key", "bench", "rate-limit", "0", NULL});
    struct tt_salla_stub *salla = xcalloc(1, sizeof *salla);
    tt_salla_stub_start(salla);
    const char *h[] = {"API-KEY: bench", "Content-Type: application/json", NULL};
    struct tt_resp r;
    /* The merchant's product already exists in Qoyod with plenty of stock. */
    tt_http("POST", tt_url(q, "/_sim/qoyod/products?api_key=bench"), h,
            "{\"product\":{\"sku\":\"B-1\",\"name_ar\":\"منتج\",\"name_en\":\"Item\",\"type\":"
            "\"Product\",\"track_quantity\":true,\"selling_price\":\"50.0\",\"inventories\":"
            "[{\"id\":1,\"stock\":\"1000000.0\"}]}}",
            &r);
    if (r.status != 201 && r.status != 200) {
        fprintf(stderr, "bench_transfer: seeding the product failed: %ld %s\n", r.status, r.body);
        return 1;
    }
    tt_resp_release(&r);

    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA,
                           .store_id = 1,
                           .inventory_id = 1,
                           .trigger = MODEL_STATUS_NEW,
                           .customer_per_invoice = 1,
                           .number_by_order = 1,
                           .financial_invoice = 1};
    c.access_token = xstrdup(TT_SALLA_TOKEN);
    c.api_base = xstrdup(salla->base);
    c.status = xstrdup("active");
    c.qoyod_base = xasprintf("%s/2.0", sim_base_url(q));
    c.qoyod_api_key = xstrdup("bench");
    if (store_conn_put(st, &c, &err) != 0) return 1;

    for (int i = 0; i <= n; i++) {
        char num[16];
        snprintf(num, sizeof num, "B%d", i);
        struct tt_order_spec o = {.id = 100000 + i, .number = num, .slug = "under_review",
                                  .sku = "B-1", .qty = 1 + i % 3, .price = 5000, .tax_bp = 1500,
                                  .shipping = 1500, .customer_id = 42, .phone = "500000042"};
        tt_salla_stub_put(salla, &o);
    }

    struct worker *w;
    /* One store on one Qoyod account: the per-store, per-account and call
     * budget limits are lifted so the pipeline itself is measured (the
     * emulator has no rate limit here). */
    struct worker_config wc = {.store = st, .threads = (unsigned)workers, .idle_poll_ms = 2,
                               .backoff_base_ms = 10, .per_store = (int)workers,
                               .per_account = (int)workers, .qoyod_rpm = -1};
    if (worker_start(&w, &wc, &err) != 0) return 1;
    /* Warm-up: the first order creates the customer and the shipping line's
     * service product; those one-time calls are not what we measure. */
    ingest(st, c.id, 100000);
    wait_jobs(st);
    if (latency > 0) {
        char f[160];
        snprintf(f, sizeof f, "{\"match\":\"* /2.0/*\",\"mode\":\"latency\",\"latency_ms\":%d}",
                 latency);
        tt_faults(q, f);
    }
    long long seq0 = last_seq(q);
    double t0 = now_s();
    for (int i = 1; i <= n; i++) ingest(st, c.id, 100000 + i);
    wait_jobs(st);
    double dt = now_s() - t0;
    long long calls = last_seq(q) - seq0;
    worker_stop(w);

    int transferred = 0;
    for (int i = 1; i <= n; i++) {
        struct store_order so;
        if (store_order_get(st, c.id, 100000 + i, &so, &err) == 0) {
            transferred += so.xfer == STORE_XFER_TRANSFERRED;
            store_order_release(&so);
        }
    }
    long long minimum = 2LL * n;
    printf("orders=%d workers=%d qoyod_latency_ms=%d transferred=%d seconds=%.2f\n", n, workers,
           latency, transferred, dt);
    printf("orders_per_s=%.1f qoyod_calls=%lld minimum_calls=%lld calls_per_order=%.2f\n", n / dt,
           calls, minimum, (double)calls / n);
    store_conn_release(&c);
    tt_salla_stub_stop(salla);
    free(salla);
    tt_sim_stop(q);
    store_close(st);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_transfer: could not remove %s\n", dir);
    free(url);
    if (transferred != n) {
        printf("ERROR: %d of %d orders were not transferred\n", n - transferred, n);
        return 1;
    }
    printf("calls_ratio=%.3f\n", (double)calls / (double)minimum);
    return 0;
}
