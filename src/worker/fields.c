/*
 * fields — the field sync (see fields.h; the policy in docs/FIELDS.md).
 *
 * Design notes.
 *  - Each side's value is kept as that side shows it (a name; money as
 *    halalas), so "changed" is a comparison with the side's own last value
 *    and never depends on a conversion: after tarheel writes a value, the
 *    value the side answers with becomes its last value, and the next pass
 *    finds nothing to do (no ping-pong, even when a side normalises what it
 *    was sent).
 *  - Prices: a store shows its price with or without VAT (the adapter's
 *    price_vat_inclusive). tarheel writes the store's figure to Qoyod with
 *    is_selling_price_inclusive set to match, so no conversion is needed
 *    that way; Qoyod's price is read in the store's form (converted at
 *    FIELDS_VAT_BP only when Qoyod's flag differs).
 *  - What is read: Qoyod's products updated since its cursor
 *    (q[updated_at_gteq]), the store's since its cursor where the platform
 *    can list newest first (Zid), else the whole catalogue (Salla: no
 *    filter or sort on products, XXX product webhooks could tell which);
 *    both catalogues whole at the first pass and once a day. A SKU found on
 *    one side only is completed from the last synced row (the other side is
 *    unchanged, or its cursor would have listed it), or at first sight by a
 *    lookup by SKU (Qoyod, Salla; Zid has none: the daily full scan pairs
 *    it). A lookup that finds nothing is remembered (mapping kind
 *    "fields_unmatched") and not made again before the next full scan.
 *  - Order per SKU: decide every field, write the store (one call for the
 *    fields it takes), write Qoyod (one call), record the conflicts, save
 *    the rows. A failed write stops the store's pass before anything of
 *    that SKU is saved and the cursors stay, so the next pass decides again.
 *    XXX a crash between recording a conflict and saving the rows records
 *    it a second time.
 */
#include "worker/fields.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/jv.h"
#include "core/log.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"
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

void fields_money_text(int64_t halalas, char *out)
{
    snprintf(out, STORE_FIELD_VALUE_MAX, "%lld", (long long)halalas);
}

static int64_t money_of(const char *text)
{
    return strtoll(text, NULL, 10);
}

/* Qoyod's selling price in the store's form (with or without VAT). */
static int64_t qoyod_price(const struct qoyod_product_fields *q, int store_inclusive)
{
    int64_t v = q->selling_price;
    if (q->price_inclusive == store_inclusive) return v;
    int64_t out = v;
    int rc = store_inclusive ? money_muldiv(v, 10000 + FIELDS_VAT_BP, 10000, &out)
                             : money_muldiv(v, 10000, 10000 + FIELDS_VAT_BP, &out);
    return rc ? v : out;
}

static void store_value(int field, const struct platform_product *p, char *out)
{
    if (field == STORE_FIELD_NAME)
        snprintf(out, STORE_FIELD_VALUE_MAX, "%s", p->name);
    else
        fields_money_text(field == STORE_FIELD_PRICE ? p->price : p->cost, out);
}

static void qoyod_value(int field, const struct qoyod_product_fields *q, int inclusive, char *out)
{
    if (field == STORE_FIELD_NAME)
        snprintf(out, STORE_FIELD_VALUE_MAX, "%s", q->name_ar);
    else
        fields_money_text(field == STORE_FIELD_PRICE ? qoyod_price(q, inclusive) : q->buying_price,
                          out);
}

/* ---------------------------------------------------------------------- */
/* One connection's pass                                                    */

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

/* A SKU as this pass sees it. */
struct item {
    char sku[STORE_MAX_SKU];
    struct platform_product sp; /* has_s: read this pass */
    struct qoyod_product_fields qp;
    int has_s, has_q;
};

struct run {
    struct store *s;
    struct httpc *hc;
    const struct store_conn *c;
    const struct platform_ops *p;
    struct platform_conn pc;
    struct qoyod *q;
    struct fields_stats *st;
    int64_t now;
    int64_t gap_ms, last_call_ms;
    int failed;
    int full; /* this pass reads both catalogues whole */
    struct platform_product *sv; /* the store's products read */
    size_t ns, caps;
    struct qoyod_product_fields *qv; /* Qoyod's */
    size_t nq, capq;
    int64_t store_newest, qoyod_newest; /* cursors: unix s, unix ms */
};

static void store_wait(struct run *r)
{
    if (r->gap_ms && r->last_call_ms) sleep_ms(r->last_call_ms + r->gap_ms - clock_ms());
    r->last_call_ms = clock_ms();
    r->st->store_calls++;
}

static void remote_failed(struct run *r, const char *what, const struct th_err *e)
{
    log_warn("fields_remote_failed", "conn=%lld what=\"%s\" code=%s msg=\"%s\"",
             (long long)r->c->id, what, th_err_name(e->code), e->msg);
    r->failed = 1;
}

static int read_store(struct run *r, int64_t since_s)
{
    for (int page = 1; page <= FIELDS_MAX_PAGES && !r->failed; page++) {
        struct platform_product_page pg;
        struct th_err e = {0};
        store_wait(r);
        if (r->p->products_page(r->hc, &r->pc, page, since_s, &pg, &e) != 0) {
            remote_failed(r, "list the store's products", &e);
            break;
        }
        r->st->read += pg.n + pg.skipped;
        for (size_t i = 0; i < pg.n; i++) {
            if (!pg.items[i].sku[0]) {
                r->st->no_sku++;
                continue;
            }
            if (pg.items[i].updated_at > r->store_newest) r->store_newest = pg.items[i].updated_at;
            if (r->ns == r->caps)
                r->sv = xrealloc(r->sv, (r->caps = r->caps ? r->caps * 2 : 256) * sizeof *r->sv);
            r->sv[r->ns++] = pg.items[i];
        }
        int more = pg.more && pg.n + pg.skipped > 0;
        platform_product_page_release(&pg);
        if (!more) break;
    }
    return 0;
}

static int read_qoyod(struct run *r, int64_t since_ms)
{
    for (int page = 1; page <= FIELDS_MAX_PAGES && !r->failed; page++) {
        struct qoyod_product_page pg;
        struct th_err e = {0};
        r->st->qoyod_calls++;
        if (qoyod_product_page(r->q, since_ms, page, &pg, &e) != 0) {
            remote_failed(r, "list Qoyod's products", &e);
            break;
        }
        r->st->read += pg.n;
        for (size_t i = 0; i < pg.n; i++) {
            if (pg.items[i].updated_ms > r->qoyod_newest) r->qoyod_newest = pg.items[i].updated_ms;
            if (!pg.items[i].sku[0]) {
                r->st->no_sku++;
                continue;
            }
            if (r->nq == r->capq)
                r->qv = xrealloc(r->qv, (r->capq = r->capq ? r->capq * 2 : 256) * sizeof *r->qv);
            r->qv[r->nq++] = pg.items[i];
        }
        int more = pg.more && pg.n > 0;
        qoyod_product_page_release(&pg);
        if (!more) break;
    }
    return 0;
}

static int cmp_sp(const void *a, const void *b)
{
    return strcmp(((const struct platform_product *)a)->sku,
                  ((const struct platform_product *)b)->sku);
}

static int cmp_qp(const void *a, const void *b)
{
    return strcmp(((const struct qoyod_product_fields *)a)->sku,
                  ((const struct qoyod_product_fields *)b)->sku);
}

/* Merges both sides' products by SKU into *out (new). A SKU two products
 * of one side share is left out (which one is meant cannot be told). */
static size_t merge(struct run *r, struct item **out)
{
    qsort(r->sv, r->ns, sizeof *r->sv, cmp_sp);
    qsort(r->qv, r->nq, sizeof *r->qv, cmp_qp);
    struct item *v = xcalloc(r->ns + r->nq + 1, sizeof *v);
    size_t n = 0, i = 0, k = 0;
    while (i < r->ns || k < r->nq) {
        int c = i >= r->ns ? 1 : k >= r->nq ? -1 : strcmp(r->sv[i].sku, r->qv[k].sku);
        const char *sku = c <= 0 ? r->sv[i].sku : r->qv[k].sku;
        int dup_s = c <= 0 && i + 1 < r->ns && strcmp(r->sv[i + 1].sku, sku) == 0;
        int dup_q = c >= 0 && k + 1 < r->nq && strcmp(r->qv[k + 1].sku, sku) == 0;
        if (dup_s || dup_q) {
            log_warn("fields_sku_shared", "conn=%lld sku=%s side=%s (left alone: give each "
                     "product its own SKU)", (long long)r->c->id, sku, dup_s ? "store" : "qoyod");
            while (i < r->ns && strcmp(r->sv[i].sku, sku) == 0) i++;
            while (k < r->nq && strcmp(r->qv[k].sku, sku) == 0) k++;
            continue;
        }
        struct item *it = &v[n++];
        snprintf(it->sku, sizeof it->sku, "%s", sku);
        if (c <= 0) {
            it->sp = r->sv[i++];
            it->has_s = 1;
        }
        if (c >= 0) {
            it->qp = r->qv[k++];
            it->has_q = 1;
        }
    }
    *out = v;
    return n;
}

/* What to do with one field. */
enum act { A_NONE, A_TO_STORE, A_TO_QOYOD };

/* Remembers that sku was looked up in vain now; returns 1 (skip), or -1
 * when the store could not record it (the pass stops). */
static int unmatched(struct run *r, const char *sku)
{
    struct th_err e = {0};
    if (store_map_put(r->s, r->c->id, "fields_unmatched", sku, r->now, &e) != 0) {
        log_warn("fields_store_failed", "conn=%lld msg=\"%s\"", (long long)r->c->id, e.msg);
        r->failed = 1;
        return -1;
    }
    return 1;
}

/* Completes a side the pass did not read: from the rows (it did not change)
 * or, at first sight, by a lookup. Returns 0 (ready), 1 (skip: on one side
 * only, or cannot be looked up), or -1 (a remote failure). */
static int complete(struct run *r, struct item *it, struct store_field_state *rows)
{
    int known = rows[0].known && rows[1].known && rows[2].known;
    int inclusive = r->p->price_vat_inclusive;
    if (!it->has_s && known && rows[0].store_ref[0]) {
        struct platform_product *p = &it->sp;
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", rows[0].store_ref);
        snprintf(p->sku, sizeof p->sku, "%s", it->sku);
        snprintf(p->name, sizeof p->name, "%.255s", rows[STORE_FIELD_NAME].store_value);
        p->price = money_of(rows[STORE_FIELD_PRICE].store_value);
        p->cost = money_of(rows[STORE_FIELD_COST].store_value);
        it->has_s = 2; /* from the rows */
    }
    if (!it->has_q && known && rows[0].qoyod_id > 0) {
        struct qoyod_product_fields *q = &it->qp;
        memset(q, 0, sizeof *q);
        q->product_id = rows[0].qoyod_id;
        snprintf(q->sku, sizeof q->sku, "%s", it->sku);
        snprintf(q->name_ar, sizeof q->name_ar, "%.255s", rows[STORE_FIELD_NAME].qoyod_value);
        q->selling_price = money_of(rows[STORE_FIELD_PRICE].qoyod_value);
        q->price_inclusive = inclusive;
        q->buying_price = money_of(rows[STORE_FIELD_COST].qoyod_value);
        it->has_q = 2;
    }
    struct th_err e = {0};
    /* A SKU looked up in vain lately (on one side only) is not looked up
     * again until the daily full scan: Salla lists every product each pass. */
    int64_t missed = 0;
    if (!r->full && (!it->has_s || !it->has_q) &&
        store_map_get(r->s, r->c->id, "fields_unmatched", it->sku, &missed, NULL) == 0 &&
        r->now - missed < FIELDS_FULL_SCAN_S * 1000LL) {
        r->st->unmatched++;
        return 1;
    }
    if (!it->has_s) {
        if (!r->p->product_get) return 1;
        store_wait(r);
        int rc = r->p->product_get(r->hc, &r->pc, it->sku, &it->sp, &e);
        if (rc == TH_ENOTFOUND || rc == TH_ECONFIG) {
            r->st->unmatched++;
            return unmatched(r, it->sku);
        }
        if (rc) {
            remote_failed(r, "read a store product by SKU", &e);
            return -1;
        }
        it->has_s = 1;
    }
    if (!it->has_q) {
        r->st->qoyod_calls++;
        int rc = qoyod_product_get_sku(r->q, it->sku, &it->qp, &e);
        if (rc == TH_ENOTFOUND || rc == TH_ECONFLICT) {
            r->st->unmatched++;
            return unmatched(r, it->sku);
        }
        if (rc) {
            remote_failed(r, "read a Qoyod product by SKU", &e);
            return -1;
        }
        it->has_q = 1;
    }
    return 0;
}

/* Decides, writes and saves one SKU. rows: its three fields, loaded. */
static int sku_do(struct run *r, struct item *it, struct store_field_state *rows,
                  struct th_err *err)
{
    int c = complete(r, it, rows);
    if (c != 0) return 0;
    r->st->compared++;
    int inclusive = r->p->price_vat_inclusive;
    char sv[STORE_NFIELDS][STORE_FIELD_VALUE_MAX], qv[STORE_NFIELDS][STORE_FIELD_VALUE_MAX];
    enum act act[STORE_NFIELDS];
    int conflict[STORE_NFIELDS] = {0};
    unsigned to_store = 0, to_qoyod = 0;
    for (int f = 0; f < STORE_NFIELDS; f++) {
        struct store_field_state *w = &rows[f];
        store_value(f, &it->sp, sv[f]);
        qoyod_value(f, &it->qp, inclusive, qv[f]);
        int src = store_field_source(r->c, f);
        int differ = strcmp(sv[f], qv[f]) != 0;
        act[f] = A_NONE;
        if (f == STORE_FIELD_NAME && (!sv[f][0] || !qv[f][0]))
            differ = 0; /* an empty name is never written over a real one */
        if (!w->known) {
            /* First sight: the source of truth's value is the baseline. */
            r->st->first++;
            if (differ) act[f] = src == STORE_SRC_STORE ? A_TO_QOYOD : A_TO_STORE;
        } else {
            int s_changed = strcmp(sv[f], w->store_value) != 0;
            int q_changed = strcmp(qv[f], w->qoyod_value) != 0;
            if (s_changed && q_changed && !differ) {
                r->st->same++;
            } else if (s_changed && q_changed) {
                conflict[f] = 1;
                act[f] = src == STORE_SRC_STORE ? A_TO_QOYOD : A_TO_STORE;
            } else if (s_changed && differ) {
                act[f] = A_TO_QOYOD;
            } else if (q_changed && differ) {
                act[f] = A_TO_STORE;
            }
        }
        if (act[f] == A_TO_STORE)
            to_store |= f == STORE_FIELD_NAME    ? PLATFORM_FIELD_NAME
                        : f == STORE_FIELD_PRICE ? PLATFORM_FIELD_PRICE
                                                 : PLATFORM_FIELD_COST;
        if (act[f] == A_TO_QOYOD)
            to_qoyod |= f == STORE_FIELD_NAME    ? QOYOD_FIELD_NAME
                        : f == STORE_FIELD_PRICE ? QOYOD_FIELD_PRICE
                                                 : QOYOD_FIELD_COST;
    }
    struct th_err e = {0};
    /* What each side holds after the writes. */
    struct platform_product s_after = it->sp;
    struct qoyod_product_fields q_after = it->qp;
    if (to_store) {
        struct platform_product want = it->sp;
        if (to_store & PLATFORM_FIELD_NAME) snprintf(want.name, sizeof want.name, "%.255s", qv[0]);
        if (to_store & PLATFORM_FIELD_PRICE) want.price = money_of(qv[1]);
        if (to_store & PLATFORM_FIELD_COST) want.cost = money_of(qv[2]);
        store_wait(r);
        if (r->p->product_put(r->hc, &r->pc, &want, to_store, &s_after, &e) != 0) {
            remote_failed(r, "write a product to the store", &e);
            return 0;
        }
        snprintf(s_after.id, sizeof s_after.id, "%s", it->sp.id);
    }
    if (to_qoyod) {
        if (it->has_q == 2 && (to_qoyod & QOYOD_FIELD_NAME)) {
            /* Known from the rows only: read it, for the names' rule. */
            r->st->qoyod_calls++;
            if (qoyod_product_get_sku(r->q, it->sku, &it->qp, &e) != 0) {
                remote_failed(r, "read a Qoyod product by SKU", &e);
                return 0;
            }
        }
        struct qoyod_product_fields want = it->qp;
        if (to_qoyod & QOYOD_FIELD_NAME) snprintf(want.name_ar, sizeof want.name_ar, "%.255s", sv[0]);
        if (to_qoyod & QOYOD_FIELD_PRICE) {
            want.selling_price = money_of(sv[1]);
            want.price_inclusive = inclusive;
        }
        if (to_qoyod & QOYOD_FIELD_COST) want.buying_price = money_of(sv[2]);
        r->st->qoyod_calls++;
        if (qoyod_product_update(r->q, &it->qp, &want, to_qoyod, &q_after, &e) != 0) {
            remote_failed(r, "write a product to Qoyod", &e);
            return 0;
        }
        if (q_after.product_id <= 0) q_after.product_id = it->qp.product_id;
    }
    int rc = 0;
    for (int f = 0; f < STORE_NFIELDS && !rc; f++) {
        struct store_field_state *w = &rows[f];
        if (act[f] == A_TO_STORE) r->st->to_store++;
        if (act[f] == A_TO_QOYOD) r->st->to_qoyod++;
        if (act[f] != A_NONE)
            log_info("field_synced", "conn=%lld sku=%s field=%s to=%s%s", (long long)r->c->id,
                     it->sku, store_field_name(f), act[f] == A_TO_STORE ? "store" : "qoyod",
                     conflict[f] ? " conflict=1" : w->known ? "" : " first=1");
        if (conflict[f]) {
            struct store_conflict k = {.conn_id = r->c->id,
                                       .field = f,
                                       .winner = store_field_source(r->c, f)};
            snprintf(k.sku, sizeof k.sku, "%s", it->sku);
            snprintf(k.store_value, sizeof k.store_value, "%s", sv[f]);
            snprintf(k.qoyod_value, sizeof k.qoyod_value, "%s", qv[f]);
            snprintf(k.last_store, sizeof k.last_store, "%s", w->store_value);
            snprintf(k.last_qoyod, sizeof k.last_qoyod, "%s", w->qoyod_value);
            rc = store_conflict_add(r->s, &k, err);
            if (rc) break;
            r->st->conflicts++;
            log_warn("field_conflict",
                     "conn=%lld sku=%s field=%s store=\"%s\" qoyod=\"%s\" winner=%s conflict=%lld",
                     (long long)r->c->id, it->sku, store_field_name(f), sv[f], qv[f],
                     store_src_name(k.winner), (long long)k.id);
        }
        store_value(f, &s_after, w->store_value);
        qoyod_value(f, &q_after, inclusive, w->qoyod_value);
        snprintf(w->store_ref, sizeof w->store_ref, "%s", s_after.id[0] ? s_after.id : it->sp.id);
        w->qoyod_id = q_after.product_id;
        w->synced_ms = r->now;
    }
    return rc;
}

/* Decides every SKU merged, a batch of rows at a time. */
static int decide_all(struct run *r, struct item *v, size_t n, struct th_err *err)
{
    enum { PER = STORE_FIELDS_MAX_BATCH / STORE_NFIELDS };
    struct store_field_state *rows = xcalloc(PER * STORE_NFIELDS, sizeof *rows);
    int rc = 0;
    for (size_t at = 0; at < n && !rc && !r->failed; at += PER) {
        size_t m = n - at < PER ? n - at : PER;
        for (size_t i = 0; i < m; i++)
            for (int f = 0; f < STORE_NFIELDS; f++) {
                struct store_field_state *w = &rows[i * STORE_NFIELDS + f];
                memset(w, 0, sizeof *w);
                snprintf(w->sku, sizeof w->sku, "%s", v[at + i].sku);
                w->field = f;
            }
        rc = store_fields_load(r->s, r->c->id, rows, m * STORE_NFIELDS, err);
        size_t done = 0;
        for (size_t i = 0; i < m && !rc && !r->failed; i++) {
            struct store_field_state *w = &rows[i * STORE_NFIELDS];
            int64_t before = r->st->compared;
            rc = sku_do(r, &v[at + i], w, err);
            if (!rc && !r->failed && (int64_t)r->st->compared > before) {
                /* Save it now (a later failure must not undo what was written). */
                rc = store_fields_save(r->s, r->c->id, w, STORE_NFIELDS, err);
            }
            done++;
        }
        (void)done;
    }
    free(rows);
    return rc;
}

static int conn_pass_held(struct store *s, struct httpc *hc, const struct store_conn *c,
                          const struct fields_config *cfg, struct limit *lim,
                          struct fields_stats *st, struct th_err *err)
{
    const struct platform_ops *p = platform_by_id(c->platform);
    if (!p || !p->products_page || !p->product_put) return 0;
    int64_t now = cfg->now_ms ? cfg->now_ms : clock_ms();
    int64_t polled = 0, qcur = 0, scur = 0, full_at = 0;
    int rc = store_map_get(s, c->id, "fields", "polled_at", &polled, err);
    if (rc == TH_ENOTFOUND) rc = 0;
    if (rc) return rc;
    if (!cfg->force && !cfg->conn_id && polled && now < polled + FIELDS_INTERVAL_S * 1000LL)
        return 0;
    if ((rc = store_map_get(s, c->id, "fields", "qoyod_cursor", &qcur, err)) == TH_ENOTFOUND)
        rc = 0;
    if (!rc && (rc = store_map_get(s, c->id, "fields", "store_cursor", &scur, err)) == TH_ENOTFOUND)
        rc = 0;
    if (!rc && (rc = store_map_get(s, c->id, "fields", "full_at", &full_at, err)) == TH_ENOTFOUND)
        rc = 0;
    if (rc) return rc;
    st->stores++;
    int full = cfg->full || qcur <= 0 || scur <= 0 || now - full_at >= FIELDS_FULL_SCAN_S * 1000LL;

    struct run r = {.s = s, .hc = hc, .c = c, .p = p, .st = st, .now = now, .full = full};
    r.pc = (struct platform_conn){.store_id = c->store_id,
                                  .api_base = c->api_base,
                                  .access_token = c->access_token,
                                  .manager_token = c->manager_token};
    int rpm = cfg->platform_rpm ? cfg->platform_rpm : p->products_rpm;
    r.gap_ms = rpm > 0 ? 60000 / rpm : 0;
    r.q = qoyod_new(c->qoyod_base ? c->qoyod_base : QOYOD_BASE_DEFAULT, c->qoyod_api_key,
                    &cfg->qoyod_http);
    struct pace pace = {lim, limit_account_key(c->qoyod_base ? c->qoyod_base : "",
                                               c->qoyod_api_key ? c->qoyod_api_key : "")};
    if (lim) qoyod_set_pace(r.q, pace_wait, &pace);

    int64_t overlap = cfg->overlap_s ? (cfg->overlap_s > 0 ? cfg->overlap_s : 0) : FIELDS_OVERLAP_S;
    int64_t qsince = full ? 0 : qcur - overlap * 1000LL;
    int64_t ssince = full ? 0 : scur - overlap;
    /* The cursors move to the newest update read, never past this pass's
     * start (a side's clock ahead of ours must not skip changes). */
    r.qoyod_newest = qcur;
    r.store_newest = scur;
    rc = read_qoyod(&r, qsince > 0 ? qsince : (full ? 0 : 1));
    if (!rc && !r.failed) rc = read_store(&r, ssince > 0 ? ssince : (full ? 0 : 1));
    struct item *v = NULL;
    size_t n = 0;
    if (!rc && !r.failed) {
        n = merge(&r, &v);
        rc = decide_all(&r, v, n, err);
    }
    if (!rc && !r.failed) {
        int64_t nq = r.qoyod_newest > now ? now : r.qoyod_newest;
        int64_t ns = r.store_newest > now / 1000 ? now / 1000 : r.store_newest;
        if (nq <= 0) nq = now;
        if (ns <= 0) ns = now / 1000;
        rc = store_map_put(s, c->id, "fields", "qoyod_cursor", nq, err);
        if (!rc) rc = store_map_put(s, c->id, "fields", "store_cursor", ns, err);
        if (!rc && full) rc = store_map_put(s, c->id, "fields", "full_at", now, err);
    }
    if (r.failed) st->failed++;
    if (!rc) rc = store_map_put(s, c->id, "fields", "polled_at", now, err);
    qoyod_free(r.q);
    free(r.sv);
    free(r.qv);
    free(v);
    return rc;
}

/* Several processes sharing the store: one store's pass runs in one of
 * them at a time, under the lease "fields:<conn id>" (as stock.c). */
#define FIELDS_LEASE_MS (30 * 60 * 1000)

static int conn_pass(struct store *s, struct httpc *hc, const struct store_conn *c,
                     const struct fields_config *cfg, struct limit *lim, struct fields_stats *st,
                     struct th_err *err)
{
    if (!store_shared(s)) return conn_pass_held(s, hc, c, cfg, lim, st, err);
    char name[48], owner[128], host[64] = "host";
    snprintf(name, sizeof name, "fields:%lld", (long long)c->id);
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    snprintf(owner, sizeof owner, "fields-%s-%d", host, (int)getpid());
    int held = 0;
    int rc = store_lease_take(s, name, owner, FIELDS_LEASE_MS, &held, err);
    if (rc || !held) return rc;
    rc = conn_pass_held(s, hc, c, cfg, lim, st, err);
    struct th_err e2;
    if (store_lease_drop(s, name, owner, &e2) != 0)
        log_warn("lease_drop_failed", "lease=%s msg=\"%s\" (it expires by itself)", name, e2.msg);
    return rc;
}

struct conns {
    struct store_conn *v;
    size_t n, cap;
    int64_t only;
};

static void collect(void *arg, const struct store_conn *c)
{
    struct conns *cs = arg;
    if (cs->only ? c->id != cs->only : !c->fields_sync) return;
    if (!c->status || strcmp(c->status, "active") != 0) return;
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
    d->status = xstrdup(c->status);
    d->fields_sync = c->fields_sync;
    memcpy(d->field_source, c->field_source, sizeof d->field_source);
}

int fields_round(struct store *s, struct httpc *hc, const struct fields_config *cfg,
                 struct fields_stats *st, struct th_err *err)
{
    struct fields_config dflt = {0};
    if (!cfg) cfg = &dflt;
    memset(st, 0, sizeof *st);
    int rpm = cfg->qoyod_rpm ? cfg->qoyod_rpm : FIELDS_QOYOD_RPM;
    struct limit *lim = rpm > 0 ? limit_new(0, 0, rpm) : NULL;
    struct conns cs = {.only = cfg->conn_id};
    int rc = store_conn_list(s, collect, &cs, err);
    if (!rc && cfg->conn_id && cs.n == 0) {
        struct store_conn c;
        rc = store_conn_get(s, cfg->conn_id, &c, err);
        if (!rc) {
            rc = th_err_set(err, TH_ECONFIG, "store %lld is %s: reconnect it first",
                            (long long)cfg->conn_id, c.status ? c.status : "not active");
            store_conn_release(&c);
        }
    }
    for (size_t i = 0; i < cs.n && !rc; i++)
        rc = conn_pass(s, hc, &cs.v[i], cfg, lim, st, err);
    for (size_t i = 0; i < cs.n; i++)
        store_conn_release(&cs.v[i]);
    free(cs.v);
    limit_free(lim);
    if (!rc && (st->to_store || st->to_qoyod || st->conflicts || st->failed))
        log_info("fields_round",
                 "stores=%zu read=%zu compared=%zu to_store=%zu to_qoyod=%zu conflicts=%zu "
                 "qoyod_calls=%zu store_calls=%zu failed=%zu",
                 st->stores, st->read, st->compared, st->to_store, st->to_qoyod, st->conflicts,
                 st->qoyod_calls, st->store_calls, st->failed);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Review                                                                   */

int fields_conflict_resolve(struct store *s, struct httpc *hc, int64_t id, int keep,
                            const struct httpc_config *qoyod_http, struct th_err *err)
{
    struct store_conflict k;
    int rc = store_conflict_get(s, id, &k, err);
    if (rc) return rc;
    if (k.resolved_ms)
        return th_err_set(err, TH_ECONFLICT, "conflict %lld was resolved already (%s)",
                          (long long)id, k.resolution);
    if (keep != STORE_SRC_STORE && keep != STORE_SRC_QOYOD)
        return store_conflict_resolve(s, id, "reviewed", err);
    /* Keep the value the conflict recorded for that side: write it to the
     * other side (which the policy may have overwritten meanwhile). */
    struct store_conn c;
    if ((rc = store_conn_get(s, k.conn_id, &c, err)) != 0) return rc;
    const struct platform_ops *p = platform_by_id(c.platform);
    struct store_field_state rows[STORE_NFIELDS];
    for (int f = 0; f < STORE_NFIELDS; f++) {
        memset(&rows[f], 0, sizeof rows[f]);
        snprintf(rows[f].sku, sizeof rows[f].sku, "%s", k.sku);
        rows[f].field = f;
    }
    if (!p || !p->product_put) rc = th_err_set(err, TH_ECONFIG, "the store cannot be written");
    if (!rc) rc = store_fields_load(s, k.conn_id, rows, STORE_NFIELDS, err);
    struct store_field_state *w = &rows[k.field];
    if (!rc && (!w->known || !w->store_ref[0] || w->qoyod_id <= 0))
        rc = th_err_set(err, TH_ENOTFOUND, "SKU %s of conflict %lld is no longer synced", k.sku,
                        (long long)id);
    const char *value = keep == STORE_SRC_STORE ? k.store_value : k.qoyod_value;
    struct th_err e = {0};
    if (!rc) {
        struct qoyod *q = qoyod_new(c.qoyod_base ? c.qoyod_base : QOYOD_BASE_DEFAULT,
                                    c.qoyod_api_key, qoyod_http);
        struct qoyod_product_fields was;
        rc = qoyod_product_get_sku(q, k.sku, &was, &e);
        /* Both sides: the policy wrote the winner over one of them. */
        if (!rc) {
            struct qoyod_product_fields want = was, got;
            unsigned mask = k.field == STORE_FIELD_NAME    ? QOYOD_FIELD_NAME
                            : k.field == STORE_FIELD_PRICE ? QOYOD_FIELD_PRICE
                                                           : QOYOD_FIELD_COST;
            if (k.field == STORE_FIELD_NAME)
                snprintf(want.name_ar, sizeof want.name_ar, "%.255s", value);
            if (k.field == STORE_FIELD_PRICE) {
                want.selling_price = money_of(value);
                want.price_inclusive = p->price_vat_inclusive;
            }
            if (k.field == STORE_FIELD_COST) want.buying_price = money_of(value);
            rc = qoyod_product_update(q, &was, &want, mask, &got, &e);
            if (!rc) qoyod_value(k.field, &got, p->price_vat_inclusive, w->qoyod_value);
        }
        if (!rc) {
            struct platform_product want = {0}, got;
            snprintf(want.id, sizeof want.id, "%s", w->store_ref);
            snprintf(want.sku, sizeof want.sku, "%s", k.sku);
            unsigned mask = k.field == STORE_FIELD_NAME    ? PLATFORM_FIELD_NAME
                            : k.field == STORE_FIELD_PRICE ? PLATFORM_FIELD_PRICE
                                                           : PLATFORM_FIELD_COST;
            if (k.field == STORE_FIELD_NAME) snprintf(want.name, sizeof want.name, "%.255s", value);
            if (k.field == STORE_FIELD_PRICE) want.price = money_of(value);
            if (k.field == STORE_FIELD_COST) want.cost = money_of(value);
            struct platform_conn pc = {.store_id = c.store_id,
                                       .api_base = c.api_base,
                                       .access_token = c.access_token,
                                       .manager_token = c.manager_token};
            rc = p->product_put(hc, &pc, &want, mask, &got, &e);
            if (!rc) store_value(k.field, &got, w->store_value);
        }
        qoyod_free(q);
        if (rc && err) *err = e;
    }
    if (!rc) {
        w->synced_ms = clock_ms();
        rc = store_fields_save(s, k.conn_id, w, 1, err);
    }
    if (!rc)
        rc = store_conflict_resolve(s, id, keep == STORE_SRC_STORE ? "kept store" : "kept qoyod",
                                    err);
    if (!rc)
        log_info("field_conflict_resolved", "conflict=%lld conn=%lld sku=%s field=%s kept=%s",
                 (long long)id, (long long)k.conn_id, k.sku, store_field_name(k.field),
                 store_src_name(keep));
    store_conn_release(&c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* The review list as JSON                                                  */

static json_t *iso_ms(int64_t ms)
{
    if (ms <= 0) return json_null();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[40];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static json_t *value_json(int field, const char *v)
{
    if (field == STORE_FIELD_NAME) return json_string(v);
    return json_integer((json_int_t)money_of(v));
}

static json_t *conflict_obj(const struct store_conflict *k, const struct store_conn *c)
{
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(k->id));
    json_object_set_new(j, "connection", json_integer(k->conn_id));
    json_object_set_new(j, "platform", c ? json_string(model_platform_name(c->platform)) : json_null());
    json_object_set_new(j, "store_id", c ? json_integer(c->store_id) : json_null());
    json_object_set_new(j, "sku", json_string(k->sku));
    json_object_set_new(j, "field", json_string(store_field_name(k->field)));
    json_object_set_new(j, "unit", json_string(k->field == STORE_FIELD_NAME ? "text" : "halalas"));
    json_object_set_new(j, "store_value", value_json(k->field, k->store_value));
    json_object_set_new(j, "qoyod_value", value_json(k->field, k->qoyod_value));
    json_object_set_new(j, "last_store_value", value_json(k->field, k->last_store));
    json_object_set_new(j, "last_qoyod_value", value_json(k->field, k->last_qoyod));
    json_object_set_new(j, "winner", json_string(store_src_name(k->winner)));
    json_object_set_new(j, "at", iso_ms(k->at_ms));
    json_object_set_new(j, "resolved", json_boolean(k->resolved_ms > 0));
    json_object_set_new(j, "resolved_at", iso_ms(k->resolved_ms));
    json_object_set_new(j, "resolution",
                        k->resolution[0] ? json_string(k->resolution) : json_null());
    return j;
}

struct jlist {
    struct store *s;
    json_t *arr;
    int (*allow)(void *arg, int64_t conn_id);
    void *arg;
    size_t limit;           /* 0: all */
    struct store_conn conn; /* the last connection read (conflicts come grouped) */
    int have;
};

static void jlist_add(void *arg, const struct store_conflict *k)
{
    struct jlist *l = arg;
    if (l->allow && !l->allow(l->arg, k->conn_id)) return;
    if (l->limit && json_array_size(l->arr) >= l->limit) return;
    if (!l->have || l->conn.id != k->conn_id) {
        if (l->have) store_conn_release(&l->conn);
        struct th_err e;
        l->have = store_conn_get(l->s, k->conn_id, &l->conn, &e) == 0;
    }
    json_array_append_new(l->arr, conflict_obj(k, l->have ? &l->conn : NULL));
}

int fields_conflicts_json(struct store *s, int64_t conn_id, int open_only, int limit,
                          int (*allow)(void *arg, int64_t conn_id), void *arg, char **out,
                          struct th_err *err)
{
    /* With a filter the limit counts what passes it, so the store lists all
     * (a tenant's page is not shortened by other tenants' conflicts). */
    struct jlist l = {.s = s, .arr = json_array(), .allow = allow, .arg = arg,
                      .limit = allow && limit > 0 ? (size_t)limit : 0};
    int rc = store_conflict_list(s, conn_id, open_only, allow ? 0 : limit, jlist_add, &l, err);
    if (l.have) store_conn_release(&l.conn);
    if (rc) {
        json_decref(l.arr);
        return rc;
    }
    json_t *j = json_pack("{s:I,s:o}", "count", (json_int_t)json_array_size(l.arr), "conflicts",
                          l.arr);
    *out = jv_dump(j);
    json_decref(j);
    return 0;
}

int fields_conflict_json(struct store *s, int64_t id, char **out, struct th_err *err)
{
    struct store_conflict k;
    int rc = store_conflict_get(s, id, &k, err);
    if (rc) return rc;
    struct store_conn c;
    struct th_err e;
    int have = store_conn_get(s, k.conn_id, &c, &e) == 0;
    json_t *j = conflict_obj(&k, have ? &c : NULL);
    if (have) store_conn_release(&c);
    *out = jv_dump(j);
    json_decref(j);
    return 0;
}
