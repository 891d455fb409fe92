/*
 * bench/orders — the cost of one page of GET /api/v1/orders (the dashboard's
 * order list) at any depth of a large store, in one run.
 *
 * N orders (default 200 000) of two connections, a few to a second (as a
 * pull of old orders stores them), in an SQLite store. Then pages of 50,
 * oldest first and newest first, read with store_order_page as the API reads
 * them (one row more than the page, a cursor after the last row):
 *     all                  every order, oldest first
 *     failed_of_one_store  one connection's failed orders, newest first
 * each from its first page and from the middle and the end (cursor given);
 * and a search by part of the order number.
 * and, for scale, one whole listing (store_order_list: what the API read
 * for every page before it paged in the store).
 *
 * Each figure is the median of REPS reads. The last line is
 *     orders_page_ratio = the worst of (a deep page's median / the first
 *                         page's median of the same listing)
 * (target <= 3: a page costs about the same at any depth), and the line
 * before it how many first pages one whole listing costs.
 *
 * The database lives in /dev/shm when there is one: the bench measures the
 * reads, and filling it through 200 000 fsyncs would take minutes.
 *
 * usage: bench_orders [N_ORDERS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "store/store.h"

#define PAGE 50
#define REPS 41

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_orders: %s: %s\n", what, msg ? msg : "");
    exit(1);
}

struct last {
    int n;
    struct store_order_key k;
};

static void take(void *arg, const struct store_order *o)
{
    struct last *l = arg;
    l->n++;
    l->k = (struct store_order_key){o->created_at, o->order_id, o->conn_id};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of REPS reads of the page q; *got: the rows of the last. */
static double page_s(struct store *st, const struct store_order_query *q, int *got)
{
    double t[REPS];
    for (int i = 0; i < REPS; i++) {
        struct last l = {0};
        struct th_err err = {0};
        double t0 = now_s();
        if (store_order_page(st, q, take, &l, &err) != 0) die("page", err.msg);
        t[i] = now_s() - t0;
        *got = l.n;
    }
    qsort(t, REPS, sizeof t[0], cmp_double);
    return t[REPS / 2];
}

/* The key of the row at position `at` of the whole listing (oldest first). */
struct nth {
    long at, i;
    struct store_order_key k;
};

static void nth_row(void *arg, const struct store_order *o)
{
    struct nth *n = arg;
    if (n->i++ == n->at) n->k = (struct store_order_key){o->created_at, o->order_id, o->conn_id};
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
    if (n < 10000) die("usage", "bench_orders [N_ORDERS >= 10000]");
    char dir[64];
    snprintf(dir, sizeof dir, "%s/th_bench_ordersXXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
    if (!mkdtemp(dir)) die("mkdtemp", dir);
    char *url = xasprintf("sqlite:%s/b.db", dir);
    struct store *st;
    struct th_err err = {0};
    if (store_open(&st, url, &err) != 0) die("store", err.msg);
    free(url);

    int64_t conns[2];
    for (int c = 0; c < 2; c++) {
        struct store_conn sc = {.platform = MODEL_PLATFORM_SALLA,
                                .store_id = 880001 + c,
                                .access_token = "t",
                                .webhook_secret = "s",
                                .webhook_strategy = "signature",
                                .api_base = "http://127.0.0.1:1",
                                .status = "active",
                                .qoyod_base = "http://127.0.0.1:1/2.0",
                                .qoyod_api_key = "k",
                                .inventory_id = 1,
                                .trigger = MODEL_STATUS_NEW};
        if (store_conn_put(st, &sc, &err) != 0) die("connection", err.msg);
        conns[c] = sc.id;
    }
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%ld", 41000000 + i);
        struct store_order o = {.conn_id = conns[i % 2],
                                .order_id = 3155000000 + i,
                                .number = num,
                                .status = MODEL_STATUS_COMPLETED,
                                .xfer = i % 50 == 7 ? STORE_XFER_FAILED : STORE_XFER_TRANSFERRED,
                                .total = 11500,
                                .tax = 1500,
                                .created_at = 1700000000 + i / 4,
                                .updated_at = 1700000000 + i / 4};
        if (store_order_put(st, &o, &err) != 0) die("order", err.msg);
    }
    fprintf(stderr, "bench_orders: %ld orders stored in %.1f s\n", n, now_s() - t0);

    printf("orders=%ld page=%d\n", n, PAGE);
    /* every order oldest first, then one store's failed orders (2 % of its
     * orders) newest first: the first page, and pages from the middle and
     * the end of the same listing */
    double worst = 0, first_all = 0;
    for (int f = 0; f < 2; f++) {
        struct store_order_query base = {.xfer = -1, .limit = PAGE + 1};
        if (f) base = (struct store_order_query){
                   .xfer = STORE_XFER_FAILED, .conn_id = conns[1], .newest = 1, .limit = PAGE + 1};
        const char *what = f ? "failed_of_one_store" : "all";
        int64_t rows = 0;
        struct nth cnt = {.at = -1};
        if (store_order_list(st, base.conn_id, base.xfer, nth_row, &cnt, &err) != 0)
            die("list", err.msg);
        rows = cnt.i;
        int got = 0;
        double first = page_s(st, &base, &got);
        if (got != PAGE + 1) die("first page", what);
        if (!f) first_all = first;
        printf("%s (%lld orders): first_ms=%.3f", what, (long long)rows, first * 1e3);
        long at[2] = {rows / 2, rows - PAGE - 1};
        const char *name[2] = {"middle", "end"};
        for (int i = 0; i < 2; i++) {
            /* the key before the page, in the listing's direction */
            struct nth k = {.at = f ? rows - 1 - at[i] : at[i]};
            if (store_order_list(st, base.conn_id, base.xfer, nth_row, &k, &err) != 0)
                die("list", err.msg);
            struct store_order_query q = base;
            q.has_after = 1;
            q.after = k.k;
            double t = page_s(st, &q, &got);
            if (got != (i ? PAGE : PAGE + 1)) die("deep page", name[i]);
            printf(" %s_ms=%.3f", name[i], t * 1e3);
            if (t / first > worst) worst = t / first;
        }
        printf("\n");
    }
    char text[24];
    snprintf(text, sizeof text, "%ld", 41000000 + n / 3);
    text[6] = '\0'; /* a prefix shared by 100 numbers a third of the way in */
    struct store_order_query q = {.xfer = -1, .text = text, .limit = PAGE + 1};
    int got = 0;
    double t = page_s(st, &q, &got);
    printf("search_ms=%.3f (\"%s\", rows %d: a search reads the store up to its page's end, "
           "here a third of it)\n",
           t * 1e3, text, got);
    double first = first_all;

    struct last all = {0};
    t0 = now_s();
    if (store_order_list(st, 0, -1, take, &all, &err) != 0) die("list", err.msg);
    double full = now_s() - t0;
    if (all.n != n) die("list", "count");
    printf("whole_listing_ms=%.1f (what each page cost before; = %.0f first pages)\n", full * 1e3,
           full / first);
    printf("orders_page_ratio=%.2f\n", worst);

    store_close(st);
    char *cmd = xasprintf("rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_orders: could not remove %s\n", dir);
    free(cmd);
    return 0;
}
