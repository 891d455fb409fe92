/*
 * stock — the stock poller (see stock.h; the rules in docs/STOCK.md).
 *
 * Design notes.
 *  - Per SKU, the row keeps what Qoyod showed when last read (qoyod_qty).
 *    A new read q gives the change q - qoyod_qty; tarheel's own movements
 *    settled before the read (invoices, opening balances; own) explain part
 *    of it; the rest is somebody else's (a purchase bill, a count, a
 *    transfer) and is what the store must learn. A SKU with an own movement
 *    still pending (its document may or may not exist yet), or settled after
 *    the read started (the read may not show it), is left for a later round
 *    and the cursor is held at it.
 *  - The first read of a SKU only records Qoyod's count: there is no earlier
 *    value to compare with, and a store and a Qoyod that disagree before the
 *    sync was turned on are the merchant's to align (docs/STOCK.md).
 *  - A row is saved only after its push succeeded (or was not needed), and
 *    the cursor never passes a product whose row was not saved, so a round
 *    that stops on a failure loses nothing: the next one lists it again.
 *  - Calls: the cursor lists only products Qoyod updated, 100 a page; the
 *    pushes go out in the platform's bulk call as soon as a batch is full.
 *    A catalogue of N products with C changed costs about C/100 + C/batch
 *    calls, not N/100 (bench/stock).
 */
#include "worker/stock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"
#include "worker/catalogue.h"
#include "worker/fields.h"
#include "worker/limit.h"

static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

/* Waits for the Qoyod account's stock budget before each request. */
struct pace {
    struct limit *limit;
    uint64_t account;
};

static void pace_wait(void *arg)
{
    struct pace *p = arg;
    for (;;) {
        int64_t wait = limit_call(p->limit, p->account, clock_ms());
        if (wait <= 0) return;
        sleep_ms(wait > 1000 ? 1000 : wait);
    }
}

/* One connection's round. */
struct run {
    struct store *s;
    struct httpc *hc;
    const struct store_conn *c;
    const struct platform_ops *p;
    struct platform_conn pc;
    struct qoyod *q;
    struct stock_stats *st;
    int64_t gap_ms; /* between store calls; 0 = none */
    int64_t last_call_ms;
    /* rows waiting to be saved, and pushes waiting to be sent (each push
     * names its row by index) */
    struct store_stock *rows;
    size_t nrows, cap;
    struct platform_stock push[STORE_STOCK_MAX_BATCH];
    size_t push_row[STORE_STOCK_MAX_BATCH];
    int64_t updated[STORE_STOCK_MAX_BATCH * 2]; /* each row's product updated_ms */
    size_t npush;
    int64_t hold_ms; /* lowest updated_ms of a product not saved; INT64_MAX none */
    int failed;      /* a remote call failed: stop the round */
};

static void hold(struct run *r, int64_t updated_ms)
{
    if (updated_ms < r->hold_ms) r->hold_ms = updated_ms ? updated_ms : 1;
}

/* Saves the rows waiting (none of them has a push in flight). */
static int save_rows(struct run *r, struct th_err *err)
{
    size_t done = 0;
    while (done < r->nrows) {
        size_t n = r->nrows - done;
        if (n > STORE_STOCK_MAX_BATCH) n = STORE_STOCK_MAX_BATCH;
        int rc = store_stock_save(r->s, r->c->id, r->rows + done, n, err);
        if (rc) return rc;
        done += n;
    }
    r->nrows = 0;
    return 0;
}

/* Sends the pushes waiting, a batch a call; applies the outcome to their
 * rows (a failed batch's rows are dropped, and held), then saves. */
static int flush(struct run *r, struct th_err *err)
{
    size_t batch = r->p->stock_batch > 0 ? (size_t)r->p->stock_batch : 1;
    int64_t now = clock_ms();
    for (size_t i = 0; i < r->npush; i++)
        r->push[i].sku = r->rows[r->push_row[i]].sku;
    for (size_t at = 0; at < r->npush && !r->failed; at += batch) {
        size_t n = r->npush - at < batch ? r->npush - at : batch;
        if (r->gap_ms && r->last_call_ms) sleep_ms(r->last_call_ms + r->gap_ms - clock_ms());
        int calls = 0;
        struct th_err e = {0};
        int rc = r->p->stock_push(r->hc, &r->pc, r->push + at, n, &calls, &e);
        r->last_call_ms = clock_ms();
        r->st->store_calls += (size_t)calls;
        if (rc == TH_EUNKNOWN && !r->p->stock_absolute) {
            /* An increment whose answer was lost may have been applied:
             * sending it again could count it twice, so it counts as sent.
             * XXX a lost answer can leave the store off by this change. */
            log_warn("stock_push_unknown", "conn=%lld skus=%zu msg=\"%s\"", (long long)r->c->id, n,
                     e.msg);
            rc = 0;
        }
        if (rc) {
            log_warn("stock_push_failed", "conn=%lld skus=%zu code=%s msg=\"%s\"",
                     (long long)r->c->id, n, th_err_name(e.code), e.msg);
            r->failed = 1;
            for (size_t i = at; i < r->npush; i++) {
                struct store_stock *row = &r->rows[r->push_row[i]];
                hold(r, r->updated[r->push_row[i]]);
                row->sku[0] = '\0'; /* not saved */
            }
            break;
        }
        for (size_t i = at; i < at + n; i++) {
            struct store_stock *row = &r->rows[r->push_row[i]];
            switch (r->push[i].result) {
            case PLATFORM_STOCK_NOT_FOUND:
                r->st->not_found++;
                break;
            case PLATFORM_STOCK_UNTRACKED:
                row->store_untracked = 1;
                r->st->untracked++;
                break;
            default:
                r->st->pushed++;
                if (r->p->stock_absolute) row->pushed_at_ms = now;
                break;
            }
        }
    }
    r->npush = 0;
    /* Drop the rows of a failed batch (sku emptied above). */
    size_t w = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        if (!r->rows[i].sku[0]) continue;
        r->updated[w] = r->updated[i];
        r->rows[w++] = r->rows[i];
    }
    r->nrows = w;
    return save_rows(r, err);
}

/* Decides about one page of products read at read_ms. */
static int page_do(struct run *r, const struct qoyod_stock_page *pg, int64_t read_ms,
                   int64_t *newest, struct th_err *err)
{
    struct store_stock *cur = xcalloc(pg->n ? pg->n : 1, sizeof *cur);
    const struct qoyod_stock_item **it = xcalloc(pg->n ? pg->n : 1, sizeof *it);
    size_t n = 0;
    for (size_t i = 0; i < pg->n; i++) {
        const struct qoyod_stock_item *x = &pg->items[i];
        if (x->updated_ms > *newest) *newest = x->updated_ms;
        if (!x->sku[0] || strlen(x->sku) >= STORE_MAX_SKU) continue; /* nothing to match by */
        int dup = 0;
        for (size_t k = 0; k < n && !dup; k++)
            dup = strcmp(cur[k].sku, x->sku) == 0;
        if (dup) {
            /* Two Qoyod products with one SKU: the first wins (the invoice
             * side refuses such SKUs with a reason, qoyod_product_find_sku). */
            log_warn("stock_sku_shared", "conn=%lld sku=%s product=%lld", (long long)r->c->id,
                     x->sku, (long long)x->product_id);
            continue;
        }
        snprintf(cur[n].sku, sizeof cur[n].sku, "%s", x->sku);
        it[n++] = x;
    }
    r->st->listed += pg->n;
    int rc = store_stock_load(r->s, r->c->id, cur, n, read_ms, err);
    for (size_t i = 0; i < n && !rc && !r->failed; i++) {
        const struct qoyod_stock_item *x = it[i];
        struct store_stock *was = &cur[i];
        if (was->busy) {
            r->st->busy++;
            hold(r, x->updated_ms);
            continue;
        }
        if (r->nrows == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 256;
            r->rows = xrealloc(r->rows, r->cap * sizeof *r->rows);
        }
        size_t at = r->nrows;
        struct store_stock *row = &r->rows[r->nrows++];
        *row = *was;
        row->qoyod_product_id = x->product_id;
        row->read_ms = read_ms;
        row->has_qty = x->tracked;
        row->qoyod_qty = x->tracked ? x->qty : 0;
        r->updated[at] = x->updated_ms;
        if (!x->tracked || !was->has_qty) continue; /* untracked in Qoyod, or a first read */
        int64_t own = r->p->stock_absolute ? was->own - was->own_before_push : was->own;
        int64_t external = x->qty - was->qoyod_qty - own;
        if (external == 0) continue;
        r->st->changed++;
        if (was->store_untracked) {
            r->st->untracked++;
            continue;
        }
        log_info("stock_changed",
                 "conn=%lld sku=%s qoyod_was=%lld qoyod_now=%lld own=%lld "
                 "push=%lld",
                 (long long)r->c->id, x->sku, (long long)was->qoyod_qty, (long long)x->qty,
                 (long long)own, (long long)external);
        r->push[r->npush] = (struct platform_stock){
            .sku = row->sku, .delta = external, .quantity = x->qty < 0 ? 0 : x->qty};
        r->push_row[r->npush++] = at;
        if (r->npush >= (size_t)r->p->stock_batch) rc = flush(r, err);
    }
    /* Save now when nothing is waiting to be pushed, so rows do not pile
     * up over a long scan. */
    if (!rc && !r->npush && r->nrows >= 256) rc = save_rows(r, err);
    free(cur);
    free(it);
    return rc;
}

/* Keeps r->rows from growing past what updated[] can index. */
static int room(struct run *r, struct th_err *err)
{
    if (r->nrows + QOYOD_STOCK_PER_PAGE <= STORE_STOCK_MAX_BATCH * 2 - QOYOD_STOCK_PER_PAGE)
        return 0;
    return flush(r, err);
}

/* Reads pages from `page` on (since_ms 0: a full scan by id) until the end,
 * max pages, or a failure. *next_page is the page to continue with (0 when
 * the listing ended). */
static int scan(struct run *r, int64_t inventory, int64_t since_ms, int page, int max,
                int64_t *newest, int *next_page, struct th_err *err)
{
    int rc = 0;
    *next_page = page;
    for (int k = 0; k < max && !r->failed; k++, page++) {
        if ((rc = room(r, err)) != 0 || r->failed) break;
        struct qoyod_stock_page pg;
        struct th_err e = {0};
        int64_t read_ms = clock_ms();
        r->st->qoyod_calls++;
        if (qoyod_stock_page(r->q, inventory, since_ms, page, &pg, &e) != 0) {
            log_warn("stock_read_failed", "conn=%lld page=%d code=%s msg=\"%s\"",
                     (long long)r->c->id, page, th_err_name(e.code), e.msg);
            r->failed = 1;
            break;
        }
        rc = page_do(r, &pg, read_ms, newest, err);
        int more = pg.more && pg.n > 0;
        qoyod_stock_page_release(&pg);
        if (rc) break;
        *next_page = page + 1;
        if (!more) {
            *next_page = 0;
            break;
        }
    }
    if (!rc) rc = flush(r, err);
    return rc;
}

static int conn_round_held(struct store *s, struct httpc *hc, const struct store_conn *c,
                           const struct stock_config *cfg, struct limit *lim,
                           struct stock_stats *st, struct th_err *err);

/* Several processes sharing the store (store_shared): one store's round
 * runs in one of them at a time, under the lease "stock:<conn id>" taken
 * before the store's due time is read (so a round that just finished
 * elsewhere is seen) and dropped after; a holder that died loses it after
 * STOCK_LEASE_MS. */
#define STOCK_LEASE_MS (10 * 60 * 1000)

static int conn_round(struct store *s, struct httpc *hc, const struct store_conn *c,
                      const struct stock_config *cfg, struct limit *lim, struct stock_stats *st,
                      struct th_err *err)
{
    if (!store_shared(s)) return conn_round_held(s, hc, c, cfg, lim, st, err);
    char name[48], owner[128], host[64] = "host";
    snprintf(name, sizeof name, "stock:%lld", (long long)c->id);
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    snprintf(owner, sizeof owner, "stock-%s-%d", host, (int)getpid());
    int held = 0;
    int rc = store_lease_take(s, name, owner, STOCK_LEASE_MS, &held, err);
    if (rc || !held) return rc;
    rc = conn_round_held(s, hc, c, cfg, lim, st, err);
    struct th_err e2;
    if (store_lease_drop(s, name, owner, &e2) != 0)
        log_warn("lease_drop_failed", "lease=%s msg=\"%s\" (it expires by itself)", name, e2.msg);
    return rc;
}

static int conn_round_held(struct store *s, struct httpc *hc, const struct store_conn *c,
                           const struct stock_config *cfg, struct limit *lim,
                           struct stock_stats *st, struct th_err *err)
{
    const struct platform_ops *p = platform_by_id(c->platform);
    if (!p || !p->stock_push || p->stock_batch <= 0 || p->stock_batch > STORE_STOCK_MAX_BATCH)
        return 0;
    int64_t now = cfg->now_ms ? cfg->now_ms : clock_ms();
    int64_t polled = 0,
            interval = c->stock_interval_s > 0 ? c->stock_interval_s : STORE_STOCK_INTERVAL_DEFAULT;
    int rc = store_map_get(s, c->id, "stock", "polled_at", &polled, err);
    if (rc && rc != TH_ENOTFOUND) return rc;
    if (!cfg->force && polled && now < polled + interval * 1000) return 0;
    st->stores++;

    int64_t cursor = 0, full_at = 0, full_page = 0, full_start = 0;
    if ((rc = store_map_get(s, c->id, "stock", "cursor", &cursor, err)) == TH_ENOTFOUND) rc = 0;
    if (!rc && (rc = store_map_get(s, c->id, "stock", "full_at", &full_at, err)) == TH_ENOTFOUND)
        rc = 0;
    if (!rc &&
        (rc = store_map_get(s, c->id, "stock", "full_page", &full_page, err)) == TH_ENOTFOUND)
        rc = 0;
    if (!rc &&
        (rc = store_map_get(s, c->id, "stock", "full_start", &full_start, err)) == TH_ENOTFOUND)
        rc = 0;
    if (rc) return rc;

    struct run r = {.s = s, .hc = hc, .c = c, .p = p, .st = st, .hold_ms = INT64_MAX};
    r.pc = (struct platform_conn){.store_id = c->store_id,
                                  .api_base = c->api_base,
                                  .access_token = c->access_token,
                                  .manager_token = c->manager_token};
    int rpm = cfg->platform_rpm ? cfg->platform_rpm : p->stock_rpm;
    r.gap_ms = rpm > 0 ? 60000 / rpm : 0;
    r.q = qoyod_new(c->qoyod_base ? c->qoyod_base : QOYOD_BASE_DEFAULT, c->qoyod_api_key,
                    &cfg->qoyod_http);
    struct pace pace = {lim, limit_account_key(c->qoyod_base ? c->qoyod_base : "",
                                               c->qoyod_api_key ? c->qoyod_api_key : "")};
    if (lim) qoyod_set_pace(r.q, pace_wait, &pace);
    int64_t inv = c->inventory_id > 0 ? c->inventory_id : 1;

    /* 1. What Qoyod updated since the cursor. The first round has no
     * cursor: it starts one now, and the full scan below reads the
     * baselines. */
    int64_t newest = cursor, next = 0;
    if (cursor > 0) {
        int overlap = cfg->overlap_s ? (cfg->overlap_s > 0 ? cfg->overlap_s : 0) : STOCK_OVERLAP_S;
        int64_t since = cursor - (int64_t)overlap * 1000;
        int np = 0;
        rc = scan(&r, inv, since > 0 ? since : 1, 1, STOCK_MAX_PAGES, &newest, &np, err);
        next = newest;
        if (r.hold_ms != INT64_MAX && r.hold_ms < next) next = r.hold_ms;
        if (next > now) next = now; /* a Qoyod clock ahead of ours must not skip changes */
    } else {
        next = now;
    }
    if (!rc && next != cursor) rc = store_map_put(s, c->id, "stock", "cursor", next, err);

    /* 2. A few pages of the full scan, when one is due or under way. */
    if (!rc && !r.failed && (full_page > 0 || now - full_at >= STOCK_FULL_SCAN_S * 1000)) {
        if (full_page <= 0) {
            full_page = 1;
            full_start = now;
        }
        int64_t ignore = 0;
        int np = 0;
        r.hold_ms = INT64_MAX;
        rc = scan(&r, inv, 0, (int)full_page, STOCK_FULL_PAGES, &ignore, &np, err);
        if (!rc && !r.failed) {
            if (np == 0) {
                rc = store_map_put(s, c->id, "stock", "full_at", full_start, err);
                if (!rc) rc = store_map_put(s, c->id, "stock", "full_page", 0, err);
            } else {
                rc = store_map_put(s, c->id, "stock", "full_page", np, err);
                if (!rc) rc = store_map_put(s, c->id, "stock", "full_start", full_start, err);
            }
        }
    }
    if (r.failed) st->failed++;
    if (!rc) rc = store_map_put(s, c->id, "stock", "polled_at", now, err);
    qoyod_free(r.q);
    free(r.rows);
    return rc;
}

struct conns {
    struct store_conn *v;
    size_t n, cap;
};

static void collect(void *arg, const struct store_conn *c)
{
    struct conns *cs = arg;
    if (!c->stock_sync || !c->status || strcmp(c->status, "active") != 0) return;
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 8;
        cs->v = xrealloc(cs->v, cs->cap * sizeof *cs->v);
    }
    struct store_conn *d = &cs->v[cs->n++];
    memset(d, 0, sizeof *d);
    d->id = c->id;
    d->platform = c->platform;
    d->store_id = c->store_id;
    d->api_base = xstrdup(c->api_base);
    d->access_token = xstrdup(c->access_token);
    d->manager_token = xstrdup(c->manager_token);
    d->qoyod_base = xstrdup(c->qoyod_base);
    d->qoyod_api_key = xstrdup(c->qoyod_api_key);
    d->inventory_id = c->inventory_id;
    d->stock_sync = c->stock_sync;
    d->stock_interval_s = c->stock_interval_s;
}

static int round_with(struct store *s, struct httpc *hc, const struct stock_config *cfg,
                      struct limit *lim, struct stock_stats *st, struct th_err *err)
{
    memset(st, 0, sizeof *st);
    struct conns cs = {0};
    int rc = store_conn_list(s, collect, &cs, err);
    for (size_t i = 0; i < cs.n && !rc; i++)
        rc = conn_round(s, hc, &cs.v[i], cfg, lim, st, err);
    for (size_t i = 0; i < cs.n; i++)
        store_conn_release(&cs.v[i]);
    free(cs.v);
    if (!rc && (st->pushed || st->failed))
        log_info("stock_round",
                 "stores=%zu listed=%zu changed=%zu pushed=%zu not_found=%zu "
                 "busy=%zu qoyod_calls=%zu store_calls=%zu failed=%zu",
                 st->stores, st->listed, st->changed, st->pushed, st->not_found, st->busy,
                 st->qoyod_calls, st->store_calls, st->failed);
    return rc;
}

int stock_round(struct store *s, struct httpc *hc, const struct stock_config *cfg,
                struct stock_stats *st, struct th_err *err)
{
    struct stock_config dflt = {0};
    if (!cfg) cfg = &dflt;
    int rpm = cfg->qoyod_rpm ? cfg->qoyod_rpm : STOCK_QOYOD_RPM;
    struct limit *lim = rpm > 0 ? limit_new(0, 0, rpm) : NULL;
    int rc = round_with(s, hc, cfg, lim, st, err);
    limit_free(lim);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* The thread                                                               */

struct stock_poller {
    struct store *store;
    struct stock_config cfg;
    struct limit *limit; /* kept across rounds: the budget is a minute's */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

static void *poller_main(void *arg)
{
    struct stock_poller *p = arg;
    struct httpc *hc = httpc_new(NULL);
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        pthread_mutex_unlock(&p->mu);
        struct stock_stats st;
        struct th_err err;
        if (round_with(p->store, hc, &p->cfg, p->limit, &st, &err) != 0)
            log_error("stock_store_failed", "code=%s msg=\"%s\"", th_err_name(err.code), err.msg);
        /* Product fields both sides change, each store at FIELDS_INTERVAL_S. */
        struct fields_config fcfg = {.qoyod_http = p->cfg.qoyod_http};
        struct fields_stats fst;
        if (fields_round(p->store, hc, &fcfg, &fst, &err) != 0)
            log_error("fields_store_failed", "code=%s msg=\"%s\"", th_err_name(err.code),
                      err.msg);
        /* Stores connected without the CLI get their catalogue here. */
        if (catalogue_round(p->store, hc, (int64_t)time(NULL), &err) != 0)
            log_error("catalogue_store_failed", "code=%s msg=\"%s\"", th_err_name(err.code),
                      err.msg);
        pthread_mutex_lock(&p->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += STOCK_TICK_MS / 1000;
        until.tv_nsec += (STOCK_TICK_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&p->mu);
    httpc_free(hc);
    return NULL;
}

int stock_poller_start(struct stock_poller **out, struct store *s, const struct stock_config *cfg,
                       struct th_err *err)
{
    struct stock_poller *p = xcalloc(1, sizeof *p);
    p->store = s;
    if (cfg) p->cfg = *cfg;
    p->cfg.now_ms = 0;
    p->cfg.force = 0;
    int rpm = p->cfg.qoyod_rpm ? p->cfg.qoyod_rpm : STOCK_QOYOD_RPM;
    p->limit = rpm > 0 ? limit_new(0, 0, rpm) : NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, poller_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        limit_free(p->limit);
        free(p);
        return th_err_set(err, TH_EINTERNAL, "cannot start the stock poller thread");
    }
    *out = p;
    return 0;
}

void stock_poller_stop(struct stock_poller *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    limit_free(p->limit);
    free(p);
}
