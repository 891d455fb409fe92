/*
 * bench/ingest — durable webhook ingest against a no-op server, measured in
 * one run on the same machine.
 *
 * Two servers run in this process with the same HTTP wrapper and thread
 * count: a no-op one that reads the body and answers 200, and tarheel's
 * intake (signature check, parse, one SQLite transaction with synchronous=
 * FULL holding the raw body, dedupe key and job, then 200). The same client
 * threads post the same number of distinct signed order webhooks to each.
 * Prints requests per second for both and, last, ingest_ratio = intake / no-op
 * (target >= 0.5). It then checks that every accepted event is in the store.
 *
 * usage: bench_ingest [N_REQUESTS] [CLIENT_THREADS]
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "http/server.h"
#include "net/httpc.h"
#include "net/httpd.h"
#include "store/store.h"

#define SECRET "bench-secret"
#define STORE_ID 424242

struct run {
    char url[128];
    int n, threads;
    int next;
    int ok, failed;
    pthread_mutex_t lock;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *client(void *p)
{
    struct run *r = p;
    struct httpc_config cfg = {.connect_timeout_ms = 2000, .timeout_ms = 30000};
    struct httpc *c = httpc_new(&cfg);
    struct httpc_resp resp;
    httpc_resp_init(&resp);
    for (;;) {
        pthread_mutex_lock(&r->lock);
        int i = r->next < r->n ? r->next++ : -1;
        pthread_mutex_unlock(&r->lock);
        if (i < 0) break;
        char body[512];
        int len = snprintf(body, sizeof body,
                           "{\"event\":\"order.created\",\"merchant\":%d,\"created_at\":\"Sun Jun "
                           "26 2022 12:21:48 GMT+0300\",\"data\":{\"id\":%d,\"reference_id\":%d,"
                           "\"status\":{\"slug\":\"under_review\"}}}",
                           STORE_ID, 1000000 + i, 5000 + i);
        unsigned char md[32];
        unsigned int mdlen = 0;
        HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (unsigned char *)body, (size_t)len, md,
             &mdlen);
        char sig[100] = "X-Salla-Signature: ";
        size_t o = strlen(sig);
        for (unsigned k = 0; k < mdlen; k++) o += (size_t)snprintf(sig + o, 3, "%02x", md[k]);
        const char *hdrs[] = {sig, "Content-Type: application/json", NULL};
        struct th_err err;
        int rc = httpc_do(c, "POST", r->url, hdrs, body, (size_t)len, &resp, &err);
        pthread_mutex_lock(&r->lock);
        if (rc == 0) r->ok++;
        else r->failed++;
        pthread_mutex_unlock(&r->lock);
    }
    httpc_resp_release(&resp);
    httpc_free(c);
    return NULL;
}

static double drive(const char *url, int n, int threads, int *ok)
{
    struct run r = {.n = n, .threads = threads};
    snprintf(r.url, sizeof r.url, "%s", url);
    pthread_mutex_init(&r.lock, NULL);
    pthread_t t[256];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, client, &r);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    *ok = r.ok;
    if (r.failed) fprintf(stderr, "bench_ingest: %d requests failed\n", r.failed);
    return r.ok / dt;
}

static void noop(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    httpd_resp_set(resp, 200, "application/json", "{\"ok\":true}", 11);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5000;
    int threads = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 128;
    if (n <= 0 || threads <= 0 || threads > 256) {
        fprintf(stderr, "usage: bench_ingest [N_REQUESTS] [CLIENT_THREADS<=256]\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    char dir[] = "/tmp/th_bench_ingestXXXXXX";
    if (!mkdtemp(dir)) return 1;
    char *db = xasprintf("sqlite:%s/bench.db", dir);
    struct store *st;
    struct th_err err;
    if (store_open(&st, db, &err) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", err.msg);
        return 1;
    }
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA,
                           .store_id = STORE_ID,
                           .trigger = MODEL_STATUS_NEW};
    c.webhook_secret = xstrdup(SECRET);
    c.webhook_strategy = xstrdup("signature");
    c.status = xstrdup("active");
    if (store_conn_put(st, &c, &err) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", err.msg);
        return 1;
    }
    store_conn_release(&c);

    unsigned server_threads = SERVER_THREADS_DEFAULT;
    struct httpd *nd;
    struct httpd_config nc = {.listen = "127.0.0.1:0", .threads = server_threads, .handler = noop};
    struct server *srv;
    struct server_config sc = {.listen = "127.0.0.1:0", .store = st, .threads = server_threads};
    if (httpd_open(&nd, &nc, &err) != 0 || server_open(&srv, &sc, &err) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", err.msg);
        return 1;
    }
    char nurl[128], iurl[128];
    snprintf(nurl, sizeof nurl, "http://127.0.0.1:%u/webhooks/salla", httpd_port(nd));
    snprintf(iurl, sizeof iurl, "http://127.0.0.1:%u/webhooks/salla", server_port(srv));

    int ok_noop = 0, ok_ingest = 0;
    drive(nurl, n / 10 + 1, threads, &ok_noop); /* warm-up */
    double noop_rps = drive(nurl, n, threads, &ok_noop);
    double ingest_rps = drive(iurl, n, threads, &ok_ingest);

    int64_t jobs = 0;
    if (store_job_count(st, &jobs, &err) != 0) jobs = -1;
    server_close(srv);
    httpd_close(nd);
    store_close(st);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_ingest: could not remove %s\n", dir);
    free(db);

    printf("requests=%d client_threads=%d server_threads=%u\n", n, threads, server_threads);
    printf("noop_rps=%.0f ingest_rps=%.0f accepted=%d durable_jobs=%lld\n", noop_rps, ingest_rps,
           ok_ingest, (long long)jobs);
    if (jobs != ok_ingest) {
        printf("ERROR: %d events were acknowledged but %lld jobs are in the store\n", ok_ingest,
               (long long)jobs);
        return 1;
    }
    printf("ingest_ratio=%.2f\n", ingest_rps / noop_rps);
    return 0;
}
