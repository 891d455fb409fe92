/*
 * transfer — the order state machine and delivery to Qoyod (see transfer.h
 * for the diagram).
 *
 * Design notes.
 *  - Exactly once: the invoice's `reference` is a pure function of the
 *    order (transfer_reference). Before creating, any attempt after the first
 *    looks the reference up; a create whose answer was lost (TH_EUNKNOWN) or
 *    that Qoyod refuses as a duplicate (TH_ECONFLICT) is settled by the same
 *    lookup. The payment uses "PAY-" + the invoice reference the same way.
 *  - The order is re-fetched from the platform on every run: webhooks are
 *    hints (late, duplicated, out of order); the platform's answer is truth.
 *  - Money: the invoice lines are built so that Qoyod's own arithmetic
 *    (qoyod.md §4.8: line_total = round2((q × price − discount) × (1 + t)))
 *    reproduces the store's total. It is computed here before sending; when
 *    it cannot match to the halala the order fails with both totals in the
 *    reason, and nothing is posted.
 *  - Order-level discounts (coupons) are spread over the item lines in
 *    proportion to their net value; the remainder halalas go to the first
 *    lines, in order. XXX: rounding adjustments belong to issue 6.
 */
#include "worker/transfer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"

/* Attempts (claims of the job) before a transfer that keeps failing
 * temporarily is declared failed: with the worker's backoff capped at 10
 * minutes this is roughly three hours of an unreachable service. */
#define TRANSFER_MAX_ATTEMPTS 25

/* ---------------------------------------------------------------------- */
/* Rules                                                                    */

int transfer_triggered(enum model_status trigger, enum model_status st)
{
    if (trigger < MODEL_STATUS_NEW || trigger > MODEL_STATUS_COMPLETED) trigger = MODEL_STATUS_NEW;
    return st >= trigger && st <= MODEL_STATUS_COMPLETED;
}

int transfer_edge_ok(enum store_xfer from, enum store_xfer to)
{
    static const unsigned char edges[5][5] = {
        /* to:        NOT  ING  ED   FAIL SKIP */
        /* NOT  */ {1, 1, 0, 1, 1},
        /* ING  */ {0, 1, 1, 1, 0},
        /* ED   */ {0, 0, 1, 0, 0},
        /* FAIL */ {0, 1, 0, 1, 1},
        /* SKIP */ {0, 1, 0, 0, 1},
    };
    if ((unsigned)from > 4 || (unsigned)to > 4) return 0;
    return edges[from][to];
}

void transfer_reference(const struct store_conn *c, const struct model_order *o, char *out,
                        size_t n)
{
    if (c->number_by_order && o->number && *o->number)
        snprintf(out, n, "%s", o->number);
    else
        snprintf(out, n, "TH-%s-%lld", model_platform_name(o->platform), (long long)o->order_id);
}

/* The one place a transfer state changes: refuses edges not in the diagram. */
static int set_state(struct store *st, struct store_order *so, enum store_xfer to, int code,
                     const char *reason, struct th_err *err)
{
    if (!transfer_edge_ok(so->xfer, to))
        TH_BUG("transfer edge %d -> %d for order %lld", so->xfer, to, (long long)so->order_id);
    so->xfer = to;
    so->reason_code = code;
    free(so->reason);
    so->reason = reason ? xstrdup(reason) : NULL;
    if (to == STORE_XFER_TRANSFERRED) so->transferred_at = time(NULL);
    int rc = store_order_put(st, so, err);
    if (rc) return rc;
    static const char *const names[] = {"not transferred", "transferring", "transferred",
                                        "failed", "skipped"};
    return store_order_note(st, so->conn_id, so->order_id, names[to], reason ? reason : "", err);
}

/* ---------------------------------------------------------------------- */
/* Qoyod side                                                               */

static void riyadh_date(time_t t, char out[32])
{
    if (!t) t = time(NULL);
    t += 3 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 32, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static const char *qoyod_type(enum model_item_kind k)
{
    switch (k) {
    case MODEL_ITEM_PRODUCT: return "Product";
    case MODEL_ITEM_SERVICE: return "Service";
    case MODEL_ITEM_BUNDLE: return "Recipe";
    default: return NULL;
    }
}

/*
 * Finding-or-creating a Qoyod contact or product, and booking a product's
 * opening stock, must not run twice at once for the same store and key:
 * two first orders of a new customer would make two contacts, and two of a
 * new product two opening balances. One process serialises them with these
 * hashed locks (a collision only makes two keys wait for each other);
 * across processes (PostgreSQL, issue 9) Qoyod's own uniqueness (SKU,
 * reference) and the lookups are the backstop.
 */
#define MAP_LOCKS 64
static pthread_mutex_t map_locks[MAP_LOCKS];
static pthread_once_t map_once = PTHREAD_ONCE_INIT;

static void map_locks_init(void)
{
    for (int i = 0; i < MAP_LOCKS; i++) pthread_mutex_init(&map_locks[i], NULL);
}

static pthread_mutex_t *map_lock(int64_t conn, const char *kind, const char *key)
{
    pthread_once(&map_once, map_locks_init);
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)conn;
    for (const char *p = kind; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return &map_locks[h % MAP_LOCKS];
}

static int contact_for_locked(struct store *st, struct qoyod *q, const struct store_conn *c,
                              const struct model_order *o, const char *key, int per_customer,
                              int64_t *id, struct th_err *err)
{
    int rc = store_map_get(st, c->id, "contact", key, id, err);
    if (rc != TH_ENOTFOUND) return rc;
    struct model_customer cash = {.name = "عميل نقدي - Cash customer"};
    const struct model_customer *who = per_customer ? &o->customer : &cash;
    /* One form for the phone (+9665...), and the local 05... form that
     * contacts typed by hand in Qoyod often have. */
    char e164[32] = "", local[32] = "";
    if (per_customer && who->phone && model_phone_normalize(who->phone, e164, sizeof e164) == 0)
        model_phone_local_sa(e164, local, sizeof local);
    rc = TH_ENOTFOUND;
    if (e164[0]) rc = qoyod_contact_find(q, e164, NULL, id, err);
    if (rc == TH_ENOTFOUND && per_customer && (local[0] || (who->email && *who->email)))
        rc = qoyod_contact_find(q, local[0] ? local : NULL, who->email, id, err);
    if (rc == TH_ENOTFOUND) {
        struct model_customer named = *who;
        if (!named.name || !*named.name) named.name = "Customer";
        if (e164[0]) named.phone = e164;
        rc = qoyod_contact_create(q, &named, id, err);
    }
    if (rc) return rc;
    return store_map_put(st, c->id, "contact", key, *id, err);
}

static int contact_for(struct store *st, struct qoyod *q, const struct store_conn *c,
                       const struct model_order *o, int64_t *id, struct th_err *err)
{
    char key[32];
    int per_customer = c->customer_per_invoice && o->customer.platform_id;
    if (per_customer) snprintf(key, sizeof key, "%lld", (long long)o->customer.platform_id);
    else snprintf(key, sizeof key, "cash");
    pthread_mutex_t *mu = map_lock(c->id, "contact", key);
    pthread_mutex_lock(mu);
    int rc = contact_for_locked(st, q, c, o, key, per_customer, id, err);
    pthread_mutex_unlock(mu);
    return rc;
}

/* What product_for needs besides the line. */
struct pctx {
    struct transfer_env *env;
    struct qoyod *q;
    const struct store_conn *c;
    const struct model_order *o;
};

/* Units of sku in the order (several lines may share a SKU). */
static int64_t ordered_units(const struct model_order *o, const char *sku)
{
    int64_t n = 0;
    for (size_t i = 0; i < o->nlines; i++)
        if (o->lines[i].sku && strcmp(o->lines[i].sku, sku) == 0) n += o->lines[i].quantity;
    return n;
}

/*
 * Books the opening balance of a product tarheel just created (seeds 001,
 * 002: "the first order transferred is reflected as an inventory count with
 * an opening balance"): the store's quantity now, plus what this order took,
 * so that after the invoice Qoyod holds what the store holds. The marker
 * mapping "opening" is written before booking and the "product" mapping
 * after, so a retry after a crash in between books it again (an absolute
 * count, so repeating it is harmless).
 */
static int book_opening(struct pctx *x, const char *sku, int64_t pid, int64_t store_qty,
                        int64_t cost, int64_t price, struct th_err *err)
{
    char date[32];
    riyadh_date(x->o->created_at, date);
    int64_t qty = store_qty + ordered_units(x->o, sku);
    /* For the stock poller, this count is tarheel's own doing (the product
     * is new in Qoyod: from 0 to qty), so it is never pushed back to the
     * store (docs/STOCK.md). */
    char ref[STORE_MAX_SKU + 8];
    snprintf(ref, sizeof ref, "OPEN-%s", sku);
    int own = x->c->stock_sync && strlen(sku) < STORE_MAX_SKU;
    int rc = own ? store_stock_own_begin(x->env->store, x->c->id, ref, &sku, &qty, 1,
                                         x->o->created_at, err)
                 : 0;
    if (rc) return rc;
    rc = qoyod_stock_set(x->q, x->c->inventory_id ? x->c->inventory_id : 1, pid, qty,
                         cost > 0 ? cost : price, date, err);
    if (own) {
        struct th_err e2;
        int done = rc == 0 || (rc != TH_EUNKNOWN && rc != TH_ETOOBIG);
        if (done && store_stock_own_settle(x->env->store, x->c->id, ref, rc == 0, &e2) != 0)
            log_warn("stock_own_settle_failed", "conn=%lld ref=%s msg=\"%s\"",
                     (long long)x->c->id, ref, e2.msg);
    }
    if (rc == 0)
        rc = store_order_note(x->env->store, x->c->id, x->o->order_id, "opening stock booked", sku,
                              err);
    return rc;
}

static int product_for_locked(struct pctx *x, const struct model_line *l, const char *sku,
                              const char *name, enum model_item_kind kind, int64_t price,
                              int64_t *id, struct th_err *err)
{
    struct store *st = x->env->store;
    const struct store_conn *c = x->c;
    int rc = store_map_get(st, c->id, "product", sku, id, err);
    if (rc != TH_ENOTFOUND) return rc;

    /* Tracked in the store? And how many are there now? (lines only) */
    int64_t store_qty = 0, cost = 0;
    int tracked = kind == MODEL_ITEM_PRODUCT;
    const struct platform_ops *p = platform_by_id(c->platform);
    if (tracked && l && (l->platform_product_id || l->platform_product_key) && p &&
        p->product_stock) {
        struct platform_conn pc = {.store_id = c->store_id,
                                   .api_base = c->api_base,
                                   .access_token = c->access_token,
                                   .manager_token = c->manager_token};
        rc = p->product_stock(x->env->platform_http, &pc, l, &store_qty,
                              &tracked, &cost, err);
        if (rc == TH_ENOTFOUND) { /* deleted in the store: count only this order */
            store_qty = 0;
            tracked = 1;
            rc = 0;
        }
        if (rc) return rc;
        /* The stock poller leaves alone what the store does not count. */
        if (!tracked && strlen(sku) < STORE_MAX_SKU &&
            (rc = store_stock_untracked(st, c->id, sku, 1, err)) != 0)
            return rc;
    }

    int64_t pending = 0;
    int had_pending = store_map_get(st, c->id, "opening", sku, &pending, err) == 0;
    rc = qoyod_product_find_sku(x->q, sku, id, err);
    if (rc == 0 && had_pending && pending == *id && tracked) {
        /* Created by an earlier attempt that stopped before its opening
         * balance was booked. */
        rc = book_opening(x, sku, *id, store_qty, cost, price, err);
    } else if (rc == TH_ENOTFOUND) {
        const char *type = qoyod_type(kind);
        if (!type)
            return th_err_set(err, TH_EPERM,
                              "item '%s' (SKU %s) has the product type '%s', which tarheel does "
                              "not know how to create in Qoyod: create the product in Qoyod with "
                              "this SKU, then retry",
                              name, sku,
                              l && l->platform_type && *l->platform_type ? l->platform_type
                                                                         : "none");
        struct qoyod_product_spec spec = {.sku = sku,
                                          .name_ar = name,
                                          .name_en = name,
                                          .type = type,
                                          .track_quantity = tracked && kind == MODEL_ITEM_PRODUCT,
                                          .selling_price = price,
                                          .buying_price = cost};
        rc = qoyod_product_create(x->q, &spec, id, err);
        if (rc == 0 && spec.track_quantity) {
            rc = store_map_put(st, c->id, "opening", sku, *id, err);
            if (rc == 0) rc = book_opening(x, sku, *id, store_qty, cost, price, err);
        }
    }
    if (rc) return rc;
    return store_map_put(st, c->id, "product", sku, *id, err);
}

static int product_for(struct pctx *x, const struct model_line *l, const char *sku,
                       const char *name, enum model_item_kind kind, int64_t price, int64_t *id,
                       struct th_err *err)
{
    pthread_mutex_t *mu = map_lock(x->c->id, "product", sku);
    pthread_mutex_lock(mu);
    int rc = product_for_locked(x, l, sku, name, kind, price, id, err);
    pthread_mutex_unlock(mu);
    return rc;
}

/* Spreads `total` over n weights (largest first gets the remainder). */
static void spread(int64_t total, const int64_t *w, int64_t *out, size_t n)
{
    int64_t sum = 0, given = 0;
    for (size_t i = 0; i < n; i++) sum += w[i];
    for (size_t i = 0; i < n; i++) {
        int64_t share = 0;
        if (sum > 0 && money_muldiv(total, w[i], sum, &share) != 0) share = 0;
        if (share > w[i]) share = w[i];
        if (share > total - given) share = total - given;
        out[i] = share;
        given += share;
    }
    for (size_t i = 0; i < n && given != total; i++) {
        int64_t room = w[i] - out[i], d = total - given;
        if (d > 0 && room > 0) {
            int64_t add = d < room ? d : room;
            out[i] += add;
            given += add;
        } else if (d < 0 && out[i] > 0) {
            int64_t sub = -d < out[i] ? -d : out[i];
            out[i] -= sub;
            given -= sub;
        }
    }
}

/* Qoyod's line total: round2((q × price − discount) × (1 + bp/10000)). */
static int64_t qoyod_line_total(const struct qoyod_line_spec *l)
{
    int64_t net = l->quantity * l->unit_price - l->discount, v = 0;
    if (money_muldiv(net, 10000 + l->tax_rate_bp, 10000, &v) != 0) return INT64_MIN;
    return v;
}

struct lines {
    size_t n;
    struct qoyod_line_spec *l;
    char **desc;
};

static void lines_release(struct lines *ls)
{
    for (size_t i = 0; i < ls->n; i++) free(ls->desc[i]);
    free(ls->desc);
    free(ls->l);
}

static int fee_line(struct pctx *x, struct lines *ls, const char *sku, const char *name,
                    int64_t amount, int32_t bp, struct th_err *err)
{
    if (amount <= 0) return 0;
    int64_t pid;
    int rc = product_for(x, NULL, sku, name, MODEL_ITEM_SERVICE, amount, &pid, err);
    if (rc) return rc;
    struct qoyod_line_spec *l = &ls->l[ls->n];
    ls->desc[ls->n] = xstrdup(name);
    *l = (struct qoyod_line_spec){.product_id = pid,
                                  .description = ls->desc[ls->n],
                                  .quantity = 1,
                                  .unit_price = amount,
                                  .tax_rate_bp = bp};
    ls->n++;
    return 0;
}

static int build_lines(struct pctx *x, struct lines *ls, struct th_err *err)
{
    const struct model_order *o = x->o;
    ls->l = xcalloc(o->nlines + 2, sizeof *ls->l);
    ls->desc = xcalloc(o->nlines + 2, sizeof *ls->desc);
    int64_t *w = xcalloc(o->nlines, sizeof *w), *share = xcalloc(o->nlines, sizeof *share);
    for (size_t i = 0; i < o->nlines; i++)
        w[i] = o->lines[i].quantity * o->lines[i].unit_price - o->lines[i].discount;
    spread(o->order_discount, w, share, o->nlines);
    int rc = 0;
    for (size_t i = 0; i < o->nlines && rc == 0; i++) {
        const struct model_line *ml = &o->lines[i];
        int64_t pid;
        rc = product_for(x, ml, ml->sku, ml->name, ml->kind, ml->unit_price, &pid, err);
        if (rc) break;
        ls->desc[ls->n] = xstrdup(ml->name);
        ls->l[ls->n] = (struct qoyod_line_spec){.product_id = pid,
                                                .description = ls->desc[ls->n],
                                                .quantity = ml->quantity,
                                                .unit_price = ml->unit_price,
                                                .discount = ml->discount + share[i],
                                                .tax_rate_bp = ml->tax_rate_bp};
        ls->n++;
    }
    free(w);
    free(share);
    if (rc == 0)
        rc = fee_line(x, ls, "SHIPPING", "الشحن - Shipping", o->shipping, o->fees_tax_rate_bp,
                      err);
    if (rc == 0)
        rc = fee_line(x, ls, "COD", "الدفع عند الاستلام - Cash on delivery", o->cod_fee,
                      o->fees_tax_rate_bp, err);
    return rc;
}

/* ---------------------------------------------------------------------- */

/* Waits for the Qoyod account's call budget before each request. */
struct pace {
    struct limit *limit;
    uint64_t account;
};

static void pace_wait(void *arg)
{
    struct pace *p = arg;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = limit_call(p->limit, p->account, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        if (wait <= 0) return;
        if (wait > 1000) wait = 1000;
        struct timespec d = {wait / 1000, (wait % 1000) * 1000000L};
        nanosleep(&d, NULL);
    }
}

/*
 * Own stock movements of an invoice (worker/stock.h): each tracked product
 * line takes its quantity at the invoice's location. Only when the store
 * syncs stock (otherwise nothing would ever read them).
 */
static int own_stock_begin(struct transfer_env *env, const struct store_conn *c,
                           const struct model_order *o, const char *ref, struct th_err *err)
{
    if (!c->stock_sync || o->nlines == 0) return 0;
    const char **skus = xcalloc(o->nlines, sizeof *skus);
    int64_t *deltas = xcalloc(o->nlines, sizeof *deltas);
    size_t n = 0;
    for (size_t i = 0; i < o->nlines && n < STORE_STOCK_MAX_BATCH; i++) {
        const struct model_line *l = &o->lines[i];
        if (l->kind != MODEL_ITEM_PRODUCT || !l->sku || !*l->sku ||
            strlen(l->sku) >= STORE_MAX_SKU || l->quantity <= 0)
            continue;
        skus[n] = l->sku;
        deltas[n++] = -l->quantity;
    }
    int rc = n ? store_stock_own_begin(env->store, c->id, ref, skus, deltas, n, o->created_at,
                                       err)
               : 0;
    free(skus);
    free(deltas);
    return rc;
}

/* Settles them after the create: rc 0 means the invoice exists (applied);
 * a lost answer (TH_EUNKNOWN) leaves them pending until an attempt finds
 * out; anything else means it was not created (dropped). A failure here is
 * only logged: the movements then wait, pending, and hold their SKUs back
 * from the stock poller until a later attempt settles them. */
static void own_stock_settle(struct transfer_env *env, const struct store_conn *c,
                             const char *ref, int rc)
{
    if (!c->stock_sync || rc == TH_EUNKNOWN) return;
    struct th_err e;
    if (store_stock_own_settle(env->store, c->id, ref, rc == 0, &e) != 0)
        log_warn("stock_own_settle_failed", "conn=%lld ref=%s msg=\"%s\"", (long long)c->id,
                 ref, e.msg);
}

struct delivery {
    int64_t invoice_id, payment_id, qoyod_total;
    long last_status;      /* Qoyod's last HTTP status (429: rate limited) */
    long retry_after_s;    /* and its Retry-After, -1 when none */
};

static int deliver(struct transfer_env *env, const struct store_conn *c,
                   const struct model_order *o, const struct store_order *so, struct delivery *out,
                   struct th_err *err)
{
    struct qoyod *q = qoyod_new(c->qoyod_base, c->qoyod_api_key, &env->qoyod_cfg);
    struct pace pace = {env->limit, limit_account_key(c->qoyod_base, c->qoyod_api_key)};
    if (env->limit) qoyod_set_pace(q, pace_wait, &pace);
    struct lines ls = {0};
    char ref[160];
    transfer_reference(c, o, ref, sizeof ref);
    int look_first = so->attempts > 1;
    struct qoyod_invoice_info inv = {0};
    int64_t contact = 0;
    int rc = 0;

    /* An earlier attempt may already have created the invoice. */
    if (look_first) {
        rc = qoyod_invoice_find(q, ref, &inv, err);
        if (rc == 0) own_stock_settle(env, c, ref, 0);
        if (rc == 0) goto pay;
        if (rc != TH_ENOTFOUND) goto out;
    }
    if ((rc = contact_for(env->store, q, c, o, &contact, err)) != 0) goto out;
    struct pctx px = {.env = env, .q = q, .c = c, .o = o};
    if ((rc = build_lines(&px, &ls, err)) != 0) goto out;

    int64_t expect = 0;
    for (size_t i = 0; i < ls.n; i++) expect += qoyod_line_total(&ls.l[i]);
    if (expect != o->total) {
        char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX], d[MONEY_FMT_MAX];
        rc = th_err_set(err, TH_EMONEY,
                        "Qoyod's line arithmetic gives %s but the store's total is %s "
                        "(difference %s): nothing was posted",
                        money_format(expect, a, sizeof a), money_format(o->total, b, sizeof b),
                        money_format(o->total - expect, d, sizeof d));
        goto out;
    }

    /* The stock this invoice takes in Qoyod, recorded before it is sent:
     * the store already took it, so the stock poller must not push it
     * back (docs/STOCK.md). */
    if ((rc = own_stock_begin(env, c, o, ref, err)) != 0) goto out;

    char date[32], desc[160];
    riyadh_date(o->created_at, date);
    snprintf(desc, sizeof desc, "%s order %s", model_platform_name(o->platform),
             o->number ? o->number : "");
    struct qoyod_invoice_spec spec = {.contact_id = contact,
                                      .reference = ref,
                                      .description = desc,
                                      .issue_date = date,
                                      .approved = 1,
                                      .inventory_id = c->inventory_id ? c->inventory_id : 1,
                                      .payment_method = o->payment_method &&
                                                                strcmp(o->payment_method, "cod") == 0
                                                            ? "10"
                                                            : "48",
                                      .nlines = ls.n,
                                      .lines = ls.l};
    int looked_up_failed = 0; /* whether the invoice exists is still unknown */
    rc = qoyod_invoice_create(q, &spec, &inv, err);
    /* An answer too large to read means the create may have happened. */
    if (rc == TH_ETOOBIG) rc = TH_EUNKNOWN;
    if (rc == TH_EUNKNOWN || rc == TH_ECONFLICT) {
        /* The answer was lost, or Qoyod says the reference exists: settle
         * by looking it up. Not found after a lost answer means it was not
         * created; retry later (the next attempt looks first again). */
        struct th_err e2;
        int was = rc;
        rc = qoyod_invoice_find(q, ref, &inv, &e2);
        if (rc == TH_ENOTFOUND)
            rc = was == TH_EUNKNOWN ? th_err_set(err, TH_ETEMP, "%s; the invoice was not created, "
                                                 "will retry", err->msg)
                                    : th_err_set(err, TH_EPERM, "%s", err->msg);
        else if (rc)
            *err = e2, looked_up_failed = 1;
        else
            log_info("transfer_invoice_recovered", "conn=%lld order=%lld ref=%s cause=%s",
                     (long long)c->id, (long long)o->order_id, ref, th_err_name(was));
    }
    own_stock_settle(env, c, ref, looked_up_failed ? TH_EUNKNOWN : rc);
    if (rc) goto out;

pay:
    out->invoice_id = inv.id;
    out->qoyod_total = inv.total;
    if (c->financial_invoice && inv.due > 0) {
        char pref[200], date2[32];
        snprintf(pref, sizeof pref, "PAY-%s", ref);
        riyadh_date(o->created_at, date2);
        rc = TH_ENOTFOUND;
        if (look_first) rc = qoyod_payment_find(q, pref, &out->payment_id, err);
        if (rc == TH_ENOTFOUND) {
            int64_t account = c->payment_account_id ? c->payment_account_id : 8;
            rc = qoyod_payment_create(q, inv.id, account, inv.due, date2, pref, &out->payment_id,
                                      err);
            if (rc == TH_ETOOBIG) rc = TH_EUNKNOWN;
            if (rc == TH_EUNKNOWN || rc == TH_ECONFLICT) {
                struct th_err e2;
                int was = rc;
                rc = qoyod_payment_find(q, pref, &out->payment_id, &e2);
                if (rc == TH_ENOTFOUND)
                    rc = th_err_set(err, was == TH_EUNKNOWN ? TH_ETEMP : TH_EPERM, "%s", err->msg);
                else if (rc)
                    *err = e2;
            }
        }
    }
out:
    out->last_status = qoyod_last_status(q);
    out->retry_after_s = qoyod_last_retry_after(q);
    lines_release(&ls);
    qoyod_free(q);
    return rc;
}

/* ---------------------------------------------------------------------- */

/* ---------------------------------------------------------------------- */
/* Platform tokens                                                          */

/* One lock per store for token refreshes, hashed: a collision only makes
 * two stores' refreshes wait for each other. Refresh tokens are single use
 * (Salla revokes the whole chain on reuse), so two refreshes of one store
 * must never run at once. Across processes (PostgreSQL, issue 9) this needs
 * a lease in the database as well. */
#define REFRESH_LOCKS 64
static pthread_mutex_t refresh_locks[REFRESH_LOCKS];
static pthread_once_t refresh_once = PTHREAD_ONCE_INIT;

static void refresh_locks_init(void)
{
    for (int i = 0; i < REFRESH_LOCKS; i++) pthread_mutex_init(&refresh_locks[i], NULL);
}

static void conn_swap(struct store_conn *a, struct store_conn *b)
{
    struct store_conn t = *a;
    *a = *b;
    *b = t;
}

/*
 * Makes sure c carries a usable access token: when it expires within the
 * margin (or force is set, after the platform refused it) the tokens are
 * refreshed under the store's lock and both new tokens are persisted before
 * anything uses them. Returns 0 (c up to date); TH_EAUTH when the grant is
 * gone, after marking the connection "needs_reinstall" (no call is made for
 * it until the merchant reinstalls); or another code to retry later.
 */
static int ensure_token(struct transfer_env *env, struct store_conn *c, int force,
                        struct th_err *err)
{
    const struct platform_ops *p = platform_by_id(c->platform);
    int64_t now = (int64_t)time(NULL);
    if (!force && (!c->token_expires_at || c->token_expires_at - now > TRANSFER_REFRESH_MARGIN_S))
        return 0;
    if (!p || !p->token_refresh || !c->refresh_token || !*c->refresh_token)
        return force ? th_err_set(err, TH_EAUTH,
                                  "the store's access token was refused and there is no refresh "
                                  "token: reinstall the tarheel app in the store")
                     : 0;
    pthread_once(&refresh_once, refresh_locks_init);
    pthread_mutex_t *mu = &refresh_locks[(uint64_t)c->id % REFRESH_LOCKS];
    pthread_mutex_lock(mu);
    /* Another worker may have refreshed while this one waited. */
    struct store_conn fresh = {0};
    int rc = store_conn_get(env->store, c->id, &fresh, err);
    if (rc) goto out;
    if (strcmp(fresh.access_token ? fresh.access_token : "",
               c->access_token ? c->access_token : "") != 0 ||
        (fresh.status && strcmp(fresh.status, "active") != 0)) {
        conn_swap(c, &fresh);
        if (c->status && strcmp(c->status, "active") != 0)
            rc = th_err_set(err, TH_EAUTH, "the store's connection is %s: reinstall the tarheel "
                                           "app in the store", c->status);
        goto out;
    }
    struct platform_tokens t;
    rc = p->token_refresh(env->platform_http, env->apps[c->platform & 3], c->refresh_token, &t,
                          err);
    if (rc == 0) {
        free(c->access_token);
        free(c->refresh_token);
        c->access_token = xstrdup(t.access_token);
        c->refresh_token = xstrdup(t.refresh_token);
        if (t.manager_token[0]) {
            free(c->manager_token);
            c->manager_token = xstrdup(t.manager_token);
        }
        c->token_expires_at = t.expires_at;
        rc = store_conn_put_tokens(env->store, c, err);
        if (!rc)
            log_info("token_refreshed", "conn=%lld store=%lld expires_at=%lld", (long long)c->id,
                     (long long)c->store_id, (long long)t.expires_at);
    } else if (rc == TH_EAUTH) {
        struct th_err e2;
        free(c->status);
        c->status = xstrdup("needs_reinstall");
        if (store_conn_put_tokens(env->store, c, &e2) != 0)
            log_error("token_status_lost", "conn=%lld msg=\"%s\"", (long long)c->id, e2.msg);
        log_error("token_revoked", "conn=%lld store=%lld msg=\"%s\"", (long long)c->id,
                  (long long)c->store_id, err->msg);
    } else {
        log_warn("token_refresh_failed", "conn=%lld code=%s msg=\"%s\"", (long long)c->id,
                 th_err_name(rc), err->msg);
    }
out:
    store_conn_release(&fresh);
    pthread_mutex_unlock(mu);
    return rc;
}

/* Records why an order waits on its connection, keeping its state. */
static int hold_order(struct store *st, struct store_order *so, int code, const char *why,
                      struct th_err *err)
{
    if (so->reason && !strcmp(so->reason, why)) return 0;
    free(so->reason);
    so->reason = xstrdup(why);
    so->reason_code = code;
    return store_order_put(st, so, err);
}

static int first_missing_sku(const struct model_order *o, struct th_err *err)
{
    for (size_t i = 0; i < o->nlines; i++)
        if (!o->lines[i].sku || !*o->lines[i].sku)
            return th_err_set(err, TH_EPERM,
                              "item '%s' has no SKU in %s: give the product a SKU in the store "
                              "(it must match the product's SKU in Qoyod), then retry",
                              o->lines[i].name ? o->lines[i].name : "?",
                              o->platform == MODEL_PLATFORM_ZID ? "Zid" : "Salla");
    return 0;
}

int transfer_run(struct transfer_env *env, int64_t conn_id, int64_t order_id, int manual,
                 struct transfer_result *res, struct th_err *err)
{
    memset(res, 0, sizeof *res);
    res->verdict = TRANSFER_DONE;
    struct store_conn c = {0};
    struct store_order so = {0};
    struct model_order *o = NULL;
    struct th_err e = {0};
    int rc = store_conn_get(env->store, conn_id, &c, err);
    if (rc == TH_ENOTFOUND) return 0; /* the connection was removed: drop the job */
    if (rc) return rc;

    rc = store_order_get(env->store, conn_id, order_id, &so, err);
    if (rc == TH_ENOTFOUND) {
        memset(&so, 0, sizeof so);
        so.conn_id = conn_id;
        so.order_id = order_id;
        so.xfer = STORE_XFER_NOT_TRANSFERRED;
        rc = 0;
    }
    if (rc) goto out;
    res->xfer = so.xfer;

    if (c.status && strcmp(c.status, "active") != 0) {
        /* Tokens are being renewed or the store must be reinstalled: keep
         * the job, check again later. */
        res->verdict = TRANSFER_RETRY;
        res->retry_after_ms = 60000;
        goto out;
    }

    const struct platform_ops *p = platform_by_id(c.platform);
    if (!p) TH_BUG("connection %lld has unknown platform %d", (long long)c.id, c.platform);
    int trc = ensure_token(env, &c, 0, &e);
    if (trc) {
        res->verdict = TRANSFER_RETRY;
        res->retry_after_ms = trc == TH_EAUTH ? 60000 : 0;
        if (so.xfer == STORE_XFER_NOT_TRANSFERRED || so.xfer == STORE_XFER_TRANSFERRING)
            rc = hold_order(env->store, &so, trc, e.msg, err);
        goto out;
    }
    struct platform_conn pc = {.store_id = c.store_id,
                               .api_base = c.api_base,
                               .access_token = c.access_token,
                               .manager_token = c.manager_token};
    int frc = p->order_fetch(env->platform_http, &pc, order_id, &o, &e);
    if (frc == TH_EAUTH && c.refresh_token && *c.refresh_token) {
        /* Refused before its expiry (revoked, or refreshed elsewhere):
         * refresh once; the job runs again with the new token. */
        trc = ensure_token(env, &c, 1, &e);
        res->verdict = TRANSFER_RETRY;
        res->retry_after_ms = trc == TH_EAUTH ? 60000 : 0;
        if (trc == TH_EAUTH)
            rc = hold_order(env->store, &so, trc, e.msg, err);
        goto out;
    }
    if (frc == TH_ETEMP || frc == TH_EUNKNOWN || frc == TH_EAUTH || frc == TH_ERATE) {
        log_warn("transfer_fetch_retry", "conn=%lld order=%lld code=%s", (long long)conn_id,
                 (long long)order_id, th_err_name(frc));
        res->verdict = TRANSFER_RETRY;
        goto out;
    }
    if (frc) {
        if (so.xfer != STORE_XFER_TRANSFERRED) {
            so.attempts++;
            rc = set_state(env->store, &so, STORE_XFER_FAILED, frc, e.msg, err);
        }
        res->xfer = so.xfer;
        goto out;
    }

    /* Refresh what we know of the order. */
    free(so.number);
    so.number = xstrdup(o->number);
    so.status = o->status;
    so.total = o->total;
    so.tax = o->tax;
    so.created_at = o->created_at;
    so.updated_at = o->updated_at;

    if (so.xfer == STORE_XFER_TRANSFERRED) {
        /* XXX issue 6: cancellations and refunds after transfer become
         * credit notes. Until then the change is recorded. */
        if (o->status == MODEL_STATUS_CANCELLED || o->status == MODEL_STATUS_REFUNDED)
            rc = store_order_note(env->store, conn_id, order_id, "needs credit note",
                                  model_status_name(o->status), err);
        else
            rc = store_order_put(env->store, &so, err);
        goto out;
    }
    if (o->status == MODEL_STATUS_CANCELLED || o->status == MODEL_STATUS_REFUNDED) {
        rc = set_state(env->store, &so, STORE_XFER_SKIPPED, 0,
                       "cancelled in the store before it was transferred", err);
        res->xfer = so.xfer;
        goto out;
    }
    if (!manual && c.connected_at && o->created_at && o->created_at < c.connected_at) {
        /* Orders from before the connection are the merchant's to choose
         * (seeds: old orders are pulled, then transferred on request). */
        if (!so.reason) {
            so.reason = xstrdup("created before the store was connected to tarheel: it is sent "
                                "only by hand (tarheel orders transfer ID)");
            rc = store_order_note(env->store, conn_id, order_id, "held",
                                  "created before the connection date", err);
            if (rc) goto out;
        }
        rc = store_order_put(env->store, &so, err);
        goto out;
    }
    if (!manual && !transfer_triggered(c.trigger, o->status)) {
        rc = store_order_put(env->store, &so, err); /* waits for its trigger status */
        goto out;
    }
    if (manual) {
        free(so.reason);
        so.reason = NULL;
    }

    int vrc = first_missing_sku(o, &e);
    if (!vrc) vrc = model_order_check(o, &e);
    if (vrc) {
        so.attempts++;
        rc = set_state(env->store, &so, STORE_XFER_FAILED, vrc, e.msg, err);
        res->xfer = so.xfer;
        goto out;
    }

    so.attempts++;
    if ((rc = set_state(env->store, &so, STORE_XFER_TRANSFERRING, 0, NULL, err)) != 0) goto out;
    struct delivery d = {0};
    int drc = deliver(env, &c, o, &so, &d, &e);
    if (drc == 0) {
        char ref[160];
        transfer_reference(&c, o, ref, sizeof ref);
        so.qoyod_invoice_id = d.invoice_id;
        so.qoyod_payment_id = d.payment_id;
        so.qoyod_total = d.qoyod_total;
        free(so.qoyod_reference);
        so.qoyod_reference = xstrdup(ref);
        rc = set_state(env->store, &so, STORE_XFER_TRANSFERRED, 0, NULL, err);
        log_info("transfer_done", "conn=%lld order=%lld invoice=%lld ref=%s attempts=%d",
                 (long long)conn_id, (long long)order_id, (long long)d.invoice_id, ref,
                 so.attempts);
    } else if (drc == TH_ETEMP && d.last_status == 429) {
        /* Rate limited: not the order's fault, so it never fails the order
         * (attempts still counts, so the next try looks before it creates).
         * The job waits Retry-After, and the worker pauses every job of this
         * Qoyod account as long, so one busy store cannot start a 429 storm. */
        int64_t wait = (d.retry_after_s > 0 ? d.retry_after_s : 1) * 1000;
        free(so.reason);
        so.reason = xstrdup(e.msg);
        so.reason_code = TH_ERATE;
        rc = store_order_put(env->store, &so, err);
        res->verdict = TRANSFER_RETRY;
        res->retry_after_ms = wait;
        res->pause_account_ms = wait;
        log_warn("transfer_rate_limited", "conn=%lld order=%lld wait_ms=%lld", (long long)conn_id,
                 (long long)order_id, (long long)wait);
    } else if ((drc == TH_ETEMP || drc == TH_EUNKNOWN || drc == TH_ERATE) &&
               so.attempts < TRANSFER_MAX_ATTEMPTS) {
        free(so.reason);
        so.reason = xstrdup(e.msg);
        so.reason_code = drc;
        rc = store_order_put(env->store, &so, err);
        res->verdict = TRANSFER_RETRY;
        log_warn("transfer_retry", "conn=%lld order=%lld attempt=%d code=%s", (long long)conn_id,
                 (long long)order_id, so.attempts, th_err_name(drc));
    } else {
        rc = set_state(env->store, &so, STORE_XFER_FAILED, drc, e.msg, err);
        log_warn("transfer_failed", "conn=%lld order=%lld code=%s", (long long)conn_id,
                 (long long)order_id, th_err_name(drc));
    }
    res->xfer = so.xfer;
out:
    model_order_free(o);
    store_order_release(&so);
    store_conn_release(&c);
    return rc;
}
