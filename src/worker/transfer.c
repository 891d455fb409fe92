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
 *  - Money: qoyod/plan.c decides the invoice's lines (docs/MONEY.md) so
 *    that Qoyod's own per-line arithmetic reproduces the store's total to
 *    the halala, with a recorded rounding adjustment where the store's
 *    rounding differs; when it cannot, the order fails with both totals in
 *    the reason before anything is posted.
 */
#include "worker/transfer.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/crash.h"
#include "core/log.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/plan.h"
#include "qoyod/qoyod.h"
#include "worker/catalogue.h"

/* Attempts to deliver an order (store_order.attempts) before one that keeps
 * failing temporarily is declared failed. A rate limit does not use them
 * up (transfer_run). The worker's backoff doubles from 1 s to its 60 s
 * ceiling in 6 failures (63 s), then waits 60 s: 190 attempts are about
 * three hours of an unreachable Qoyod (63 + 184 × 60 s), as long as the
 * old 25 attempts lasted under the old ten-minute ceiling. */
#define TRANSFER_MAX_ATTEMPTS 190

/* ---------------------------------------------------------------------- */
/* Rules                                                                    */

int transfer_triggered(enum model_status trigger, enum model_status st)
{
    if (trigger < MODEL_STATUS_NEW || trigger > MODEL_STATUS_COMPLETED) trigger = MODEL_STATUS_NEW;
    /* Partly returned is a sale that completed (the return is credited). */
    if (st == MODEL_STATUS_PARTIALLY_REFUNDED) st = MODEL_STATUS_COMPLETED;
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
    const char *p = c->ref_prefix && *c->ref_prefix ? c->ref_prefix : NULL;
    if (c->number_by_order && o->number && *o->number)
        snprintf(out, n, "%s%s%s", p ? p : "", p ? "-" : "", o->number);
    else
        snprintf(out, n, "%s%sTH-%s-%lld", p ? p : "", p ? "-" : "",
                 model_platform_name(o->platform), (long long)o->order_id);
}

/* The order's number as its Qoyod texts show it: "P-<number>" with the
 * connection's reference prefix P. */
static void shown_number(const struct store_conn *c, const struct model_order *o, char *out,
                         size_t n)
{
    const char *p = c->ref_prefix && *c->ref_prefix ? c->ref_prefix : NULL;
    snprintf(out, n, "%s%s%.60s", p ? p : "", p ? "-" : "", o->number ? o->number : "");
}

/* Saves the order's row. Within a job the write is fenced by the job's
 * lease (store_order_put_as): a worker that stalled past its lease while
 * another took the order over gets TH_ECONFLICT and writes nothing, so its
 * stale row never lands over the new holder's (the worker then leaves the
 * job to that holder). A transfer run by hand (job_id 0) writes plainly. */
static int save_order(const struct transfer_env *env, const struct store_order *so,
                      struct th_err *err)
{
    if (env->job_id && env->job_owner)
        return store_order_put_as(env->store, so, env->job_id, env->job_owner, err);
    return store_order_put(env->store, so, err);
}

/* The one place a transfer state changes: refuses edges not in the diagram. */
static int set_state(const struct transfer_env *env, struct store_order *so, enum store_xfer to, int code,
                     const char *reason, struct th_err *err)
{
    if (!transfer_edge_ok(so->xfer, to))
        TH_BUG("transfer edge %d -> %d for order %lld", so->xfer, to, (long long)so->order_id);
    so->xfer = to;
    so->reason_code = code;
    free(so->reason);
    so->reason = reason ? xstrdup(reason) : NULL;
    if (to == STORE_XFER_TRANSFERRED) so->transferred_at = time(NULL);
    int rc = save_order(env, so, err);
    if (rc) return rc;
    static const char *const names[] = {"not transferred", "transferring", "transferred",
                                        "failed", "skipped"};
    return store_order_note(env->store, so->conn_id, so->order_id, names[to], reason ? reason : "", err);
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

/*
 * Across processes (a store shared by several `tarheel serve`, store_shared)
 * the locks of this file hold only inside one process, so the same work is
 * also serialised by a named lease in the store: cluster_lock waits for it
 * (a holder that died loses it after its job's lease, at most
 * CLUSTER_LEASE_MS). The owner names this
 * host, process and thread. Returns 0 when held (or the store is not
 * shared), else TH_ETEMP or a store error: the caller gives up and its job
 * runs again later, rather than risk doing the work twice.
 */
#define CLUSTER_LEASE_MS 60000

static void cluster_owner(char *out, size_t n)
{
    char host[64] = "host";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    snprintf(out, n, "%s-%d-%lx", host, (int)getpid(), (unsigned long)pthread_self());
}

static int cluster_lock(const struct transfer_env *env, const char *name, struct th_err *err)
{
    struct store *st = env->store;
    if (!store_shared(st)) return 0;
    /* As long as the job's own lease (a dead holder stalls the key no longer
     * than its job), at most CLUSTER_LEASE_MS. */
    int64_t ttl = env->lease_ms > 0 && env->lease_ms < CLUSTER_LEASE_MS ? env->lease_ms
                                                                          : CLUSTER_LEASE_MS;
    char owner[128];
    cluster_owner(owner, sizeof owner);
    for (int waited_ms = 0;; waited_ms += 50) {
        int held = 0;
        int rc = store_lease_take(st, name, owner, ttl, &held, err);
        if (rc) return rc;
        if (held) return 0;
        if (waited_ms > ttl + 5000)
            return th_err_set(err, TH_ETEMP, "another tarheel process holds %s for too long; "
                                             "retrying later", name);
        struct timespec d = {0, 50 * 1000000L};
        nanosleep(&d, NULL);
    }
}

static void cluster_unlock(struct store *st, const char *name)
{
    if (!store_shared(st)) return;
    char owner[128];
    cluster_owner(owner, sizeof owner);
    struct th_err err = {0};
    if (store_lease_drop(st, name, owner, &err) != 0)
        log_warn("lease_drop_failed", "lease=%s msg=\"%s\" (it expires by itself)", name, err.msg);
}
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

static int contact_for(const struct transfer_env *env, struct qoyod *q, const struct store_conn *c,
                       const struct model_order *o, int64_t *id, struct th_err *err)
{
    char key[32];
    int per_customer = c->customer_per_invoice && o->customer.platform_id;
    if (per_customer) snprintf(key, sizeof key, "%lld", (long long)o->customer.platform_id);
    else snprintf(key, sizeof key, "cash");
    /* Known already: no lock needed (the common case). */
    int known = store_map_get(env->store, c->id, "contact", key, id, err);
    if (known != TH_ENOTFOUND) return known;
    pthread_mutex_t *mu = map_lock(c->id, "contact", key);
    pthread_mutex_lock(mu);
    char lease[96];
    snprintf(lease, sizeof lease, "map:%lld:contact:%s", (long long)c->id, key);
    int rc = cluster_lock(env, lease, err);
    if (!rc) {
        rc = contact_for_locked(env->store, q, c, o, key, per_customer, id, err);
        cluster_unlock(env->store, lease);
    }
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

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether sku is a line tarheel may book opening stock for, or correct. */
static int stock_sku(const struct model_line *l)
{
    return l->kind == MODEL_ITEM_PRODUCT && l->sku && *l->sku && strlen(l->sku) < STORE_MAX_SKU &&
           l->quantity > 0;
}

/*
 * Books the opening balance of a product tarheel just created (seeds 001,
 * 002: "the first order transferred is reflected as an inventory count with
 * an opening balance") so that, once every order the store took is invoiced,
 * Qoyod holds what the store holds (docs/STOCK.md):
 *
 *   count = the store's quantity at the read (read_ms, tarheel's clock)
 *         + the units of every order of the SKU tarheel knows (stock_lines,
 *           noted when each order is fetched) that the store took before
 *           the read; this order is one of them.
 *
 * Those orders are marked "counted"; an order placed before the read that
 * tarheel learns of only later gets a correction before its invoice
 * (opening_fix). The read's time is kept as the mapping "opening_read" (it
 * also says "tarheel booked this product's opening").
 *
 * The marker mapping "opening" is written before the product is created (id
 * 0: "being created") and again with the product's id after, and the
 * "product" mapping only once the balance is booked, so a retry after a
 * crash anywhere in between finds the marker and books it again: an
 * absolute count, computed afresh from a new read and the orders known then
 * (no invoice of the product can exist before the "product" mapping). The
 * crash rehearsal (job.claimed) found the gap when the marker was written
 * only after the create.
 *
 * For the stock poller the count is tarheel's own doing, by what it changes:
 * count - Qoyod's quantity before it (fresh: 0, the product was just
 * created; a booking again reads it), so booking again after the poller
 * matched the first count is not pushed back as -count.
 */
static int book_opening(struct pctx *x, const char *sku, int64_t pid, int fresh,
                        int64_t store_qty, int64_t read_ms, int64_t cost, int64_t price,
                        struct th_err *err)
{
    struct store *st = x->env->store;
    int64_t inv = x->c->inventory_id ? x->c->inventory_id : 1;
    char date[32];
    riyadh_date(x->o->created_at, date);
    /* This order was fetched before the read: the store took it before,
     * whatever the two clocks say. */
    int64_t mine = ordered_units(x->o, sku);
    int64_t before = read_ms;
    if ((int64_t)x->o->created_at * 1000 >= before) before = (int64_t)x->o->created_at * 1000 + 1;
    /* A SKU too long to keep (none seen in practice) counts this order only. */
    int kept = strlen(sku) < STORE_MAX_SKU;
    int64_t known = mine;
    int rc = kept ? store_stock_lines_note(st, x->c->id, x->o->order_id, x->o->created_at, &sku,
                                           &mine, 1, err)
                  : 0;
    if (!rc && kept) rc = store_stock_lines_open(st, x->c->id, sku, before, &known, err);
    if (rc) return rc;
    int64_t qty = store_qty + known;
    int64_t was = 0;
    if (!fresh && (rc = qoyod_product_stock(x->q, inv, pid, &was, err)) != 0) return rc;
    int64_t delta = qty - was;
    char ref[STORE_MAX_SKU + 8];
    snprintf(ref, sizeof ref, "OPEN-%s", sku);
    int own = x->c->stock_sync && kept;
    rc = own ? store_stock_own_begin(st, x->c->id, ref, &sku, &delta, 1, x->o->created_at, err)
             : 0;
    if (rc) return rc;
    int64_t sales = 0, cogs = 0, opening = 0;
    catalogue_accounts(st, x->c->id, &sales, &cogs, &opening);
    rc = qoyod_stock_count(x->q, inv, pid, qty, cost > 0 ? cost : price, date, opening, cogs,
                           err);
    if (own) {
        struct th_err e2;
        int done = rc == 0 || (rc != TH_EUNKNOWN && rc != TH_ETOOBIG);
        if (done && store_stock_own_settle(st, x->c->id, ref, rc == 0, &e2) != 0)
            log_warn("stock_own_settle_failed", "conn=%lld ref=%s msg=\"%s\"",
                     (long long)x->c->id, ref, e2.msg);
    }
    if (rc) return rc;
    log_info("opening_booked",
             "conn=%lld order=%lld sku=%s product=%lld count=%lld store=%lld orders=%lld",
             (long long)x->c->id, (long long)x->o->order_id, sku, (long long)pid, (long long)qty,
             (long long)store_qty, (long long)known);
    char note[STORE_MAX_SKU + 96];
    snprintf(note, sizeof note, "%s: %lld (the store's %lld + %lld in orders not yet invoiced)",
             sku, (long long)qty, (long long)store_qty, (long long)known);
    rc = store_order_note(st, x->c->id, x->o->order_id, "opening stock booked", note, err);
    if (!rc && kept) rc = store_map_put(st, x->c->id, "opening_rate", sku, cost > 0 ? cost : price,
                                        err);
    if (!rc && kept) rc = store_map_put(st, x->c->id, "opening_read", sku, read_ms, err);
    if (!rc) th_crash_point("opening.booked");
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
    /* When the store's quantity was read (docs/STOCK.md: the orders the
     * store took before it are added to the opening). */
    int64_t read_ms = wall_ms();
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
        if (rc == TH_EAUTH) x->env->platform_refused = 1;
        if (rc) return rc;
        /* The stock poller leaves alone what the store does not count. */
        if (!tracked && strlen(sku) < STORE_MAX_SKU &&
            (rc = store_stock_untracked(st, c->id, sku, 1, err)) != 0)
            return rc;
    }

    int64_t pending = 0;
    int had_pending = store_map_get(st, c->id, "opening", sku, &pending, err) == 0;
    rc = qoyod_product_find_sku(x->q, sku, id, err);
    if (rc == 0 && had_pending && (pending == *id || pending == 0) && tracked) {
        /* Created by an earlier attempt that stopped before its opening
         * balance was booked (pending 0: it stopped before it learnt the
         * new product's id). */
        rc = book_opening(x, sku, *id, 0, store_qty, read_ms, cost, price, err);
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
        int64_t sales = 0, cogs = 0, opening = 0;
        catalogue_accounts(st, c->id, &sales, &cogs, &opening);
        struct qoyod_product_spec spec = {.sku = sku,
                                          .sales_account_id = sales,
                                          .expense_account_id = cogs,
                                          .name_ar = name,
                                          .name_en = name,
                                          .type = type,
                                          .track_quantity = tracked && kind == MODEL_ITEM_PRODUCT,
                                          .selling_price = price,
                                          .buying_price = cost};
        if (spec.track_quantity && !had_pending &&
            (rc = store_map_put(st, c->id, "opening", sku, 0, err)) != 0)
            return rc;
        rc = qoyod_product_create(x->q, &spec, id, err);
        if (rc == 0 && spec.track_quantity) {
            rc = store_map_put(st, c->id, "opening", sku, *id, err);
            if (rc == 0) rc = book_opening(x, sku, *id, 1, store_qty, read_ms, cost, price, err);
        }
    }
    if (rc) return rc;
    return store_map_put(st, c->id, "product", sku, *id, err);
}

static int product_for(struct pctx *x, const struct model_line *l, const char *sku,
                       const char *name, enum model_item_kind kind, int64_t price, int64_t *id,
                       struct th_err *err)
{
    /* Known already: no lock needed (the common case). */
    int known = store_map_get(x->env->store, x->c->id, "product", sku, id, err);
    if (known != TH_ENOTFOUND) return known;
    pthread_mutex_t *mu = map_lock(x->c->id, "product", sku);
    pthread_mutex_lock(mu);
    char lease[200];
    snprintf(lease, sizeof lease, "map:%lld:product:%.160s", (long long)x->c->id, sku);
    int rc = cluster_lock(x->env, lease, err);
    if (!rc) {
        rc = product_for_locked(x, l, sku, name, kind, price, id, err);
        cluster_unlock(x->env->store, lease);
    }
    pthread_mutex_unlock(mu);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Corrections of an opening balance                                        */

/*
 * An order of a product whose opening tarheel booked, placed before that
 * opening's read but not counted in it (tarheel learnt of the order later:
 * its webhook or job came after, or it is an old order sent by hand), was
 * already out of the store's count at the read; its invoice would take its
 * units out of Qoyod a second time. So before the invoice its units are
 * added back: a correction, an inventory count of Qoyod's quantity now plus
 * the order's units (§4.5 counts are absolute: there is no "add").
 *
 * A count undoes any other movement of the product between the read of
 * Qoyod's quantity and the count, so corrections and the invoices and credit
 * notes of the same SKUs are serialised by a stock lock per SKU (mutexes in
 * one process, and a lease "stock-fix:<conn>:<sku>" in the store when it is
 * shared). Invoices and credit notes take it for TRANSFER_OPENING_LOCK_MS
 * after an opening (when late orders come: a burst at go-live, a lost
 * webhook caught up by the poller), and always when their order was placed
 * before the opening (it may need a correction).
 * XXX what stays racy: a correction more than TRANSFER_OPENING_LOCK_MS
 * after the opening (an old order sent by hand) against an invoice of the
 * same SKU sent at that moment by another process; and anything done to the
 * product in Qoyod by hand or by another program between the read and the
 * count.
 *
 * Exactly once: the line is marked FIXING with Qoyod's count read and the
 * count sent before it is sent (the mapping "opening_fix" names the order
 * fixing each SKU), then COUNTED. Adjustments cannot be looked up (§4.5), so
 * a lost answer is settled by reading the quantity again, still under the
 * lock: the count sent means applied, the count read means not. After a
 * crash, whoever takes the SKU's lock next settles it the same way, before
 * anything else moves the product. A quantity that is neither (someone
 * else moved it meanwhile) is taken as applied, noted on the order and
 * logged for review: counting again could add the units twice.
 */
#define TRANSFER_OPENING_LOCK_MS (7LL * 24 * 3600 * 1000)
#define STOCK_LOCKS 64
static pthread_mutex_t stock_locks[STOCK_LOCKS];
static pthread_once_t stock_once = PTHREAD_ONCE_INIT;

static void stock_locks_init(void)
{
    for (int i = 0; i < STOCK_LOCKS; i++) pthread_mutex_init(&stock_locks[i], NULL);
}

static unsigned stock_bucket(int64_t conn, const char *sku)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)conn;
    for (const char *p = sku; *p; p++) h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    return (unsigned)(h % STOCK_LOCKS);
}

/* The SKUs of one document under the stock lock, and what is held. */
struct stock_hold {
    size_t n;
    struct {
        const char *sku;   /* borrowed from the order */
        int64_t read_ms;   /* the opening's read */
        int64_t units;     /* the order's units */
        int leased;
    } v[STORE_STOCK_MAX_BATCH];
    unsigned char held[STOCK_LOCKS];
    const struct transfer_env *env;
    int64_t conn;
};

static int cmp_sku(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

static void stock_unhold(struct stock_hold *h)
{
    if (!h->env) return;
    for (size_t i = 0; i < h->n; i++) {
        if (!h->v[i].leased) continue;
        char lease[200];
        snprintf(lease, sizeof lease, "stock-fix:%lld:%.160s", (long long)h->conn, h->v[i].sku);
        cluster_unlock(h->env->store, lease);
        h->v[i].leased = 0;
    }
    for (int i = STOCK_LOCKS - 1; i >= 0; i--)
        if (h->held[i]) {
            pthread_mutex_unlock(&stock_locks[i]);
            h->held[i] = 0;
        }
    h->env = NULL;
}

/*
 * Takes the stock lock of every SKU of the order (skus, n; duplicates
 * allowed) whose opening tarheel booked, when it is recent or the order was
 * placed before it. Mutex buckets in ascending order, then leases in SKU
 * order, so two documents never wait for each other.
 */
static int stock_hold(struct transfer_env *env, const struct store_conn *c,
                      const struct model_order *o, struct stock_hold *h, struct th_err *err)
{
    memset(h, 0, sizeof *h);
    const char *skus[STORE_STOCK_MAX_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < o->nlines && n < STORE_STOCK_MAX_BATCH; i++)
        if (stock_sku(&o->lines[i])) skus[n++] = o->lines[i].sku;
    if (!n) return 0;
    qsort(skus, n, sizeof *skus, cmp_sku);
    int64_t now = wall_ms();
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(skus[i], skus[i - 1]) == 0) continue;
        int64_t read_ms = 0;
        int rc = store_map_get(env->store, c->id, "opening_read", skus[i], &read_ms, err);
        if (rc == TH_ENOTFOUND) continue;
        if (rc) return rc;
        if (now - read_ms > TRANSFER_OPENING_LOCK_MS && (int64_t)o->created_at * 1000 >= read_ms)
            continue;
        h->v[h->n].sku = skus[i];
        h->v[h->n].read_ms = read_ms;
        h->v[h->n].units = ordered_units(o, skus[i]);
        h->n++;
    }
    if (!h->n) return 0;
    pthread_once(&stock_once, stock_locks_init);
    h->env = env;
    h->conn = c->id;
    for (size_t i = 0; i < h->n; i++) h->held[stock_bucket(c->id, h->v[i].sku)] = 1;
    for (int i = 0; i < STOCK_LOCKS; i++)
        if (h->held[i]) pthread_mutex_lock(&stock_locks[i]);
    for (size_t i = 0; i < h->n; i++) {
        char lease[200];
        snprintf(lease, sizeof lease, "stock-fix:%lld:%.160s", (long long)c->id, h->v[i].sku);
        int rc = cluster_lock(env, lease, err);
        if (rc) {
            stock_unhold(h);
            return rc;
        }
        h->v[i].leased = store_shared(env->store);
    }
    return 0;
}

/* The reference of a correction's own stock movement. */
static void fix_ref(int64_t order_id, const char *sku, char *out, size_t n)
{
    snprintf(out, n, "FIX-%lld-%.160s", (long long)order_id, sku);
}

/* Records a correction's outcome: the line COUNTED (applied) or NONE, its
 * own stock movement settled the same way, "opening_fix" cleared. */
static int fix_done(struct transfer_env *env, const struct store_conn *c,
                    struct store_stock_line *l, int applied, struct th_err *err)
{
    char ref[200];
    fix_ref(l->order_id, l->sku, ref, sizeof ref);
    int rc = 0;
    if (c->stock_sync && (rc = store_stock_own_settle(env->store, c->id, ref, applied, err)) != 0)
        return rc;
    l->mark = applied ? STORE_OPEN_COUNTED : STORE_OPEN_NONE;
    if ((rc = store_stock_line_put(env->store, c->id, l, err)) != 0) return rc;
    return store_map_put(env->store, c->id, "opening_fix", l->sku, 0, err);
}

/* Settles a correction left FIXING (l) by reading Qoyod's quantity now
 * (under the SKU's lock): l->mark becomes COUNTED (applied, or unknown) or
 * NONE (not applied), saved, and "opening_fix" cleared. */
static int fix_settle(struct transfer_env *env, struct qoyod *q, const struct store_conn *c,
                      int64_t pid, struct store_stock_line *l, struct th_err *err)
{
    int64_t now_qty = 0;
    int rc = qoyod_product_stock(q, c->inventory_id ? c->inventory_id : 1, pid, &now_qty, err);
    if (rc) return rc;
    int applied = now_qty != l->fix_from || l->fix_from == l->fix_to;
    if (now_qty != l->fix_to && now_qty != l->fix_from) {
        char note[STORE_MAX_SKU + 200];
        snprintf(note, sizeof note,
                 "%s: the correction to %lld may or may not have been booked (Qoyod shows %lld, "
                 "was %lld before it); taken as booked: check this product's count in Qoyod",
                 l->sku, (long long)l->fix_to, (long long)now_qty, (long long)l->fix_from);
        log_warn("opening_fix_unknown", "conn=%lld order=%lld sku=%s from=%lld to=%lld now=%lld",
                 (long long)c->id, (long long)l->order_id, l->sku, (long long)l->fix_from,
                 (long long)l->fix_to, (long long)now_qty);
        if ((rc = store_order_note(env->store, c->id, l->order_id, "stock check needed", note,
                                   err)) != 0)
            return rc;
    }
    if ((rc = fix_done(env, c, l, applied, err)) != 0) return rc;
    if (!applied || now_qty != l->fix_to) return 0;
    char note[STORE_MAX_SKU + 96];
    snprintf(note, sizeof note, "%s: +%lld, %lld -> %lld (its outcome read back from Qoyod)",
             l->sku, (long long)l->units, (long long)l->fix_from, (long long)l->fix_to);
    return store_order_note(env->store, c->id, l->order_id, "opening stock corrected", note, err);
}

/* Settles the corrections a crash left unsettled on the SKUs held, then
 * (correct 1) books the corrections the order needs (see above). */
static int opening_fix(struct transfer_env *env, struct qoyod *q, const struct store_conn *c,
                       const struct model_order *o, const char *ref,
                       const struct stock_hold *h, int correct, struct th_err *err)
{
    struct store *st = env->store;
    int rc = 0;
    for (size_t i = 0; i < h->n && rc == 0; i++) {
        const char *sku = h->v[i].sku;
        int64_t pid = 0;
        if ((rc = store_map_get(st, c->id, "product", sku, &pid, err)) != 0) break;
        /* A correction a crash left unsettled, this order's or another's. */
        int64_t fixing = 0;
        rc = store_map_get(st, c->id, "opening_fix", sku, &fixing, err);
        if (rc == TH_ENOTFOUND) rc = 0, fixing = 0;
        if (rc) break;
        if (fixing) {
            struct store_stock_line l;
            rc = store_stock_line_get(st, c->id, fixing, sku, &l, err);
            if (rc == 0 && l.mark == STORE_OPEN_FIXING) rc = fix_settle(env, q, c, pid, &l, err);
            else if (rc == 0 || rc == TH_ENOTFOUND)
                rc = store_map_put(st, c->id, "opening_fix", sku, 0, err);
            if (rc) break;
        }
        int64_t created_ms = (int64_t)o->created_at * 1000;
        if (!correct || created_ms >= h->v[i].read_ms) continue; /* placed after the read */
        struct store_stock_line l;
        rc = store_stock_line_get(st, c->id, o->order_id, sku, &l, err);
        if (rc == TH_ENOTFOUND) rc = 0, l.mark = STORE_OPEN_NONE;
        if (rc) break;
        if (l.mark != STORE_OPEN_NONE) continue; /* counted, or corrected */
        int64_t was = 0;
        int64_t inv = c->inventory_id ? c->inventory_id : 1;
        if ((rc = qoyod_product_stock(q, inv, pid, &was, err)) != 0) break;
        l = (struct store_stock_line){.order_id = o->order_id,
                                      .units = h->v[i].units,
                                      .created_ms = created_ms,
                                      .mark = STORE_OPEN_FIXING,
                                      .fix_from = was,
                                      .fix_to = was + h->v[i].units};
        snprintf(l.sku, sizeof l.sku, "%s", sku);
        char own_ref[200];
        fix_ref(o->order_id, sku, own_ref, sizeof own_ref);
        if ((rc = store_stock_line_put(st, c->id, &l, err)) != 0 ||
            (rc = store_map_put(st, c->id, "opening_fix", sku, o->order_id, err)) != 0)
            break;
        if (c->stock_sync && (rc = store_stock_own_begin(st, c->id, own_ref, &sku,
                                                         &h->v[i].units, 1, o->created_at,
                                                         err)) != 0)
            break;
        int64_t sales = 0, cogs = 0, opening = 0, rate = 0;
        catalogue_accounts(st, c->id, &sales, &cogs, &opening);
        /* Valued as the opening was. */
        if (store_map_get(st, c->id, "opening_rate", sku, &rate, err) != 0) {
            rate = 0;
            for (size_t k = 0; k < o->nlines && !rate; k++)
                if (o->lines[k].sku && !strcmp(o->lines[k].sku, sku)) rate = o->lines[k].unit_price;
        }
        char date[32], desc[200];
        riyadh_date(o->created_at, date);
        snprintf(desc, sizeof desc, "Opening balance correction (tarheel): %.120s placed before "
                 "the first transfer", ref);
        rc = qoyod_stock_count_as(q, inv, pid, l.fix_to, rate, date, opening, cogs, desc, err);
        if (rc == 0) {
            th_crash_point("opening.fixed");
            if ((rc = fix_done(env, c, &l, 1, err)) != 0) break;
        } else if (rc == TH_EUNKNOWN || rc == TH_ETOOBIG) {
            /* The answer was lost: what Qoyod shows now (nothing else
             * moves the SKU while it is held) says whether it was booked. */
            struct th_err e2 = {0};
            rc = fix_settle(env, q, c, pid, &l, &e2);
            if (rc) {
                *err = e2;
                break;
            }
            if (l.mark != STORE_OPEN_COUNTED) {
                rc = th_err_set(err, TH_ETEMP, "the stock correction of %s was lost before "
                                "Qoyod booked it; will retry", sku);
                break;
            }
        } else {
            struct th_err e2 = {0};
            l.mark = STORE_OPEN_NONE;
            if (c->stock_sync && store_stock_own_settle(st, c->id, own_ref, 0, &e2) != 0)
                log_warn("stock_own_settle_failed", "conn=%lld ref=%s msg=\"%s\"",
                         (long long)c->id, own_ref, e2.msg);
            if (store_stock_line_put(st, c->id, &l, &e2) != 0 ||
                store_map_put(st, c->id, "opening_fix", sku, 0, &e2) != 0)
                log_warn("opening_fix_unmark_failed", "conn=%lld order=%lld sku=%s msg=\"%s\"",
                         (long long)c->id, (long long)o->order_id, sku, e2.msg);
            break;
        }
        log_info("opening_fixed", "conn=%lld order=%lld sku=%s product=%lld from=%lld to=%lld",
                 (long long)c->id, (long long)o->order_id, sku, (long long)pid,
                 (long long)l.fix_from, (long long)l.fix_to);
        char note[STORE_MAX_SKU + 96];
        snprintf(note, sizeof note, "%s: +%lld (placed before the opening balance's read), %lld "
                 "-> %lld", sku, (long long)l.units, (long long)l.fix_from, (long long)l.fix_to);
        rc = store_order_note(st, c->id, o->order_id, "opening stock corrected", note, err);
    }
    return rc;
}

struct lines {
    size_t n;
    struct qoyod_line_spec *l;
};

static void lines_release(struct lines *ls)
{
    free(ls->l);
    memset(ls, 0, sizeof *ls);
}

void transfer_plan_lines(const struct plan *pl, const int64_t *pids, struct qoyod_line_spec *out)
{
    for (size_t i = 0; i < pl->n; i++) {
        const struct plan_line *p = &pl->l[i];
        out[i] = (struct qoyod_line_spec){.product_id = pids[i],
                                          .description = p->name ? p->name : "",
                                          .quantity = p->quantity,
                                          .unit_price = p->unit_price,
                                          .discount = p->discount,
                                          .tax_rate_bp = p->tax_rate_bp};
    }
}

/* Turns a plan (qoyod/plan.c: the money) into Qoyod lines: each line's SKU
 * becomes a Qoyod product (stored mapping, lookup, or created: items with
 * the platform's kind, shipping, COD and rounding as Services). */
static int build_lines(struct pctx *x, const struct plan *pl, struct lines *ls,
                       struct th_err *err)
{
    const struct model_order *o = x->o;
    int64_t *pids = xcalloc(pl->n ? pl->n : 1, sizeof *pids);
    int rc = 0;
    for (size_t i = 0; i < pl->n && rc == 0; i++) {
        const struct plan_line *p = &pl->l[i];
        const struct model_line *ml = p->kind == PLAN_ITEM ? &o->lines[p->src] : NULL;
        rc = product_for(x, ml, p->sku, p->name, p->item_kind, p->unit_price, &pids[i], err);
    }
    if (rc == 0) {
        ls->l = xcalloc(pl->n ? pl->n : 1, sizeof *ls->l);
        ls->n = pl->n;
        transfer_plan_lines(pl, pids, ls->l);
    }
    free(pids);
    return rc;
}

void transfer_invoice_spec(const struct store_conn *c, const struct model_order *o,
                           int64_t contact_id, const struct qoyod_line_spec *lines, size_t n,
                           struct transfer_texts *t, struct qoyod_invoice_spec *out)
{
    transfer_reference(c, o, t->ref, sizeof t->ref);
    riyadh_date(o->created_at, t->date);
    char num[80];
    shown_number(c, o, num, sizeof num);
    snprintf(t->desc, sizeof t->desc, "%s order %s", model_platform_name(o->platform), num);
    *out = (struct qoyod_invoice_spec){
        .contact_id = contact_id,
        .reference = t->ref,
        .description = t->desc,
        .issue_date = t->date,
        .approved = 1,
        .inventory_id = c->inventory_id ? c->inventory_id : 1,
        .payment_method =
            o->payment_method && strcmp(o->payment_method, "cod") == 0 ? "10" : "48",
        .nlines = n,
        .lines = lines};
}

/* ---------------------------------------------------------------------- */

/* Waits for the Qoyod account's call budget before each request. */
struct pace {
    struct transfer_env *env;
    int64_t conn;
    uint64_t account;
};

/* Renews the running job's lease when a third of it has passed. A lease
 * another worker took over is only logged: the worker's fenced done/retry
 * then leaves the job to its new holder. */
static void lease_renew(struct transfer_env *env)
{
    if (!env->job_id || !env->job_owner || env->lease_ms <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now - env->renewed_ms < env->lease_ms / 3) return;
    struct th_err err = {0};
    int rc = store_job_renew(env->store, env->job_id, env->job_owner, env->lease_ms, &err);
    if (rc != 0) {
        if (rc == TH_ECONFLICT) env->lease_lost = 1;
        log_warn("lease_renew_failed", "job=%lld worker=%s code=%s msg=\"%s\"",
                 (long long)env->job_id, env->job_owner, th_err_name(err.code), err.msg);
        return;
    }
    env->renewed_ms = now;
}

static void pace_wait(void *arg)
{
    struct pace *p = arg;
    lease_renew(p->env);
    if (!p->env->limit) return;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = limit_call_for(p->env->limit, p->conn, p->account,
                                      (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        if (wait <= 0) return;
        if (wait > 1000) wait = 1000;
        struct timespec d = {wait / 1000, (wait % 1000) * 1000000L};
        nanosleep(&d, NULL);
        /* A wait for the budget can outlast the lease (helper-21 saw a 5 s
         * lease expire here, another worker finish the order, and this one
         * then write its stale row over it): renew while waiting too. The
         * order's writes are fenced by the lease as well (save_order). */
        lease_renew(p->env);
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
                   const struct model_order *o, const struct plan *pl,
                   const struct store_order *so, struct delivery *out, struct th_err *err)
{
    struct qoyod *q = qoyod_new(c->qoyod_base, c->qoyod_api_key, &env->qoyod_cfg);
    struct pace pace = {env, c->id, limit_account_key(c->qoyod_base, c->qoyod_api_key)};
    if (env->limit || env->job_id) qoyod_set_pace(q, pace_wait, &pace);
    struct lines ls = {0};
    /* The reference recorded when the order was first sent (transfer_run),
     * so a settings change between attempts cannot make the lookup miss an
     * invoice an earlier attempt created. */
    char ref[160];
    if (so->qoyod_reference && *so->qoyod_reference)
        snprintf(ref, sizeof ref, "%s", so->qoyod_reference);
    else
        transfer_reference(c, o, ref, sizeof ref);
    int look_first = so->attempts > 1;
    struct qoyod_invoice_info inv = {0};
    int64_t contact = 0;
    struct stock_hold hold = {0};
    int rc = 0;

    /* An earlier attempt may already have created the invoice. */
    if (look_first) {
        rc = qoyod_invoice_find(q, ref, &inv, err);
        if (rc == 0) own_stock_settle(env, c, ref, 0);
        if (rc == 0) goto pay;
        if (rc != TH_ENOTFOUND) goto out;
    }
    if ((rc = contact_for(env, q, c, o, &contact, err)) != 0) goto out;
    struct pctx px = {.env = env, .q = q, .c = c, .o = o};
    if ((rc = build_lines(&px, pl, &ls, err)) != 0) goto out;

    /* Orders placed before a product's opening but not counted in it get
     * their units back first, under the SKUs' stock lock, held until the
     * invoice is settled (opening_fix). */
    if ((rc = stock_hold(env, c, o, &hold, err)) != 0) goto out;
    if ((rc = opening_fix(env, q, c, o, ref, &hold, 1, err)) != 0) goto out;

    /* The stock this invoice takes in Qoyod, recorded before it is sent:
     * the store already took it, so the stock poller must not push it
     * back (docs/STOCK.md). */
    if ((rc = own_stock_begin(env, c, o, ref, err)) != 0) goto out;

    struct transfer_texts tx;
    struct qoyod_invoice_spec spec;
    transfer_invoice_spec(c, o, contact, ls.l, ls.n, &tx, &spec);
    snprintf(tx.ref, sizeof tx.ref, "%s", ref);
    spec.reference = tx.ref;
    int looked_up_failed = 0; /* whether the invoice exists is still unknown */
    th_crash_point("invoice.sending");
    rc = qoyod_invoice_create(q, &spec, &inv, err);
    if (rc == 0) th_crash_point("invoice.answered");
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
    stock_unhold(&hold);
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
            if (rc == 0) th_crash_point("payment.answered");
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
    stock_unhold(&hold);
    out->last_status = qoyod_last_status(q);
    out->retry_after_s = qoyod_last_retry_after(q);
    lines_release(&ls);
    qoyod_free(q);
    return rc;
}

/* ---------------------------------------------------------------------- */

/* ---------------------------------------------------------------------- */
/* Credit notes                                                             */

/*
 * After transfer (state TRANSFERRED: exactly one invoice) an order can be
 * cancelled, returned in full, or returned in part. Each becomes a Qoyod
 * credit note referencing the invoice, exactly once:
 *
 *   key       when                                   reference
 *   <return>  each return the store lists (Zid)      CN-<invoice ref>-<return key>
 *   full      cancelled/refunded, nothing credited   CN-<invoice ref>
 *   rest      cancelled/refunded after returns       CN-<invoice ref>
 *
 * The reference is a pure function of the order, so it is the exactly-once
 * key: every credit note is looked up by its reference before it is
 * created, and a create whose answer was lost is settled by the same
 * lookup. Issued notes are recorded as mappings ("credit", reference →
 * Qoyod id) and their sum in store_order.credited; what remains to credit
 * is recomputed each run from the order and those mappings.
 *
 * Credit state (store_order.credit), all set in credit_step():
 *
 *   NONE --(reversal seen)--> PENDING --(every note exists)--> DONE
 *   PENDING --(refused)--> FAILED --(next event / by hand)--> PENDING
 *   DONE --(a further return)--> PENDING
 *   NONE|DONE --(total changed after transfer, no reversal)--> REVIEW
 */

#define CREDIT_KEY_FULL "full"
#define CREDIT_KEY_REST "rest"

static int credited_has(const struct transfer_credited *d, const char *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->keys[i], key)) return 1;
    return 0;
}

void transfer_credited_add(struct transfer_credited *d, const struct transfer_credit *cn)
{
    d->keys = xrealloc(d->keys, (d->n + 1) * sizeof *d->keys);
    d->keys[d->n++] = xstrdup(cn->key);
    if (!strcmp(cn->key, CREDIT_KEY_FULL) || !strcmp(cn->key, CREDIT_KEY_REST)) d->full = 1;
    if (cn->nlines > d->nlines) {
        d->qty = xrealloc(d->qty, cn->nlines * sizeof *d->qty);
        for (size_t i = d->nlines; i < cn->nlines; i++) d->qty[i] = 0;
        d->nlines = cn->nlines;
    }
    for (size_t i = 0; i < cn->nlines; i++) d->qty[i] += cn->qty[i];
    d->total += cn->plan.total;
}

void transfer_credited_release(struct transfer_credited *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->keys[i]);
    free(d->keys);
    free(d->qty);
    memset(d, 0, sizeof *d);
}

void transfer_credit_plan_release(struct transfer_credit_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        plan_release(&p->notes[i].plan);
        free(p->notes[i].qty);
    }
    free(p->notes);
    memset(p, 0, sizeof *p);
}

static struct transfer_credit *credit_add(struct transfer_credit_plan *p, const char *key,
                                          const char *reason, size_t nlines)
{
    p->notes = xrealloc(p->notes, (p->n + 1) * sizeof *p->notes);
    struct transfer_credit *cn = &p->notes[p->n++];
    memset(cn, 0, sizeof *cn);
    snprintf(cn->key, sizeof cn->key, "%s", key);
    snprintf(cn->reason, sizeof cn->reason, "%s", reason ? reason : "");
    cn->nlines = nlines;
    cn->qty = xcalloc(nlines ? nlines : 1, sizeof *cn->qty);
    return cn;
}

int transfer_credit_needed(const struct model_order *o)
{
    return o->status == MODEL_STATUS_CANCELLED || o->status == MODEL_STATUS_REFUNDED ||
           o->nrefunds > 0;
}

int transfer_credits(const struct model_order *o, const struct plan *inv, int64_t invoiced,
                     const struct transfer_credited *done, struct transfer_credit_plan *out,
                     struct th_err *err)
{
    memset(out, 0, sizeof *out);
    char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];
    if (inv->total != invoiced)
        return th_err_set(err, TH_ECONFLICT,
                          "order %s changed after its invoice: its lines now come to %s but the "
                          "invoice in Qoyod is %s; credit it by hand in Qoyod",
                          o->number ? o->number : "?", money_format(inv->total, a, sizeof a),
                          money_format(invoiced, b, sizeof b));
    if (done->full) return 0;
    size_t nl = o->nlines;
    int64_t *credited = xcalloc(nl ? nl : 1, sizeof *credited);
    for (size_t i = 0; i < nl && i < done->nlines; i++) credited[i] = done->qty[i];
    int64_t credited_total = done->total;
    int rc = 0;
    for (size_t k = 0; k < o->nrefunds && rc == 0; k++) {
        const struct model_refund *r = &o->refunds[k];
        if (!r->key || !*r->key || credited_has(done, r->key)) continue;
        struct transfer_credit *cn = credit_add(out, r->key, r->reason, nl);
        for (size_t i = 0; i < nl; i++) cn->qty[i] = r->qty[i];
        for (size_t i = 0; i < nl; i++)
            if (credited[i] + r->qty[i] > o->lines[i].quantity)
                rc = th_err_set(err, TH_EMONEY,
                                "return %s of order %s: item '%s' would be credited %lld times "
                                "but was sold %lld times",
                                r->key, o->number ? o->number : "?",
                                o->lines[i].name ? o->lines[i].name : "?",
                                (long long)(credited[i] + r->qty[i]),
                                (long long)o->lines[i].quantity);
        if (rc == 0) rc = plan_credit(inv, r->qty, nl, 0, r->amount, &cn->plan, err);
        if (rc == 0 && credited_total + cn->plan.total > invoiced)
            rc = th_err_set(err, TH_EMONEY,
                            "return %s of order %s: credit notes would come to %s, more than "
                            "the invoice's %s",
                            r->key, o->number ? o->number : "?",
                            money_format(credited_total + cn->plan.total, a, sizeof a),
                            money_format(invoiced, b, sizeof b));
        if (rc) break;
        for (size_t i = 0; i < nl; i++) credited[i] += r->qty[i];
        credited_total += cn->plan.total;
    }
    int whole = o->status == MODEL_STATUS_CANCELLED || o->status == MODEL_STATUS_REFUNDED;
    if (rc == 0 && whole) {
        const char *why = o->status == MODEL_STATUS_CANCELLED ? "cancelled in the store"
                                                              : "returned in full in the store";
        if (credited_total == 0) {
            struct transfer_credit *cn = credit_add(out, CREDIT_KEY_FULL, why, nl);
            for (size_t i = 0; i < nl; i++) cn->qty[i] = o->lines[i].quantity;
            rc = plan_credit(inv, NULL, nl, 1, 0, &cn->plan, err);
        } else if (credited_total < invoiced) {
            struct transfer_credit *cn = credit_add(out, CREDIT_KEY_REST, why, nl);
            for (size_t i = 0; i < nl; i++) cn->qty[i] = o->lines[i].quantity - credited[i];
            rc = plan_credit(inv, cn->qty, nl, 1, invoiced - credited_total, &cn->plan, err);
        }
    }
    free(credited);
    if (rc) transfer_credit_plan_release(out);
    return rc;
}

void transfer_credit_reference(const char *invoice_ref, const char *key, char *out, size_t n)
{
    if (!strcmp(key, CREDIT_KEY_FULL) || !strcmp(key, CREDIT_KEY_REST))
        snprintf(out, n, "CN-%s", invoice_ref);
    else
        snprintf(out, n, "CN-%s-%s", invoice_ref, key);
}

void transfer_credit_spec(const struct store_conn *c, const struct model_order *o,
                          const char *invoice_ref, int64_t invoice_id, int64_t contact_id,
                          const struct transfer_credit *cn, const struct qoyod_line_spec *lines,
                          size_t n, struct transfer_texts *t, struct qoyod_credit_spec *out)
{
    transfer_credit_reference(invoice_ref, cn->key, t->ref, sizeof t->ref);
    /* Dated the day the store last changed the order (the return), in
     * Riyadh. */
    riyadh_date(o->updated_at ? o->updated_at : o->created_at, t->date);
    char num[80];
    shown_number(c, o, num, sizeof num);
    snprintf(t->desc, sizeof t->desc, "%s order %.50s: %.90s", model_platform_name(o->platform),
             num, cn->reason[0] ? cn->reason : "returned");
    *out = (struct qoyod_credit_spec){.contact_id = contact_id,
                                      .invoice_id = invoice_id,
                                      .reference = t->ref,
                                      .reason = t->desc,
                                      .issue_date = t->date,
                                      .inventory_id = c->inventory_id ? c->inventory_id : 1,
                                      .nlines = n,
                                      .lines = lines};
}

/* Own stock movements of a credit note: each returned product unit comes
 * back at the invoice's location (see own_stock_begin). */
static int own_credit_stock_begin(struct transfer_env *env, const struct store_conn *c,
                                  const struct model_order *o, const struct transfer_credit *cn,
                                  const char *ref, struct th_err *err)
{
    if (!c->stock_sync) return 0;
    const char **skus = xcalloc(cn->plan.n + 1, sizeof *skus);
    int64_t *deltas = xcalloc(cn->plan.n + 1, sizeof *deltas);
    size_t n = 0;
    for (size_t i = 0; i < cn->plan.n && n < STORE_STOCK_MAX_BATCH; i++) {
        const struct plan_line *l = &cn->plan.l[i];
        if (l->kind != PLAN_ITEM || l->item_kind != MODEL_ITEM_PRODUCT || !l->sku || !*l->sku ||
            strlen(l->sku) >= STORE_MAX_SKU)
            continue;
        skus[n] = l->sku;
        deltas[n++] = l->quantity;
    }
    int rc = n ? store_stock_own_begin(env->store, c->id, ref, skus, deltas, n,
                                       o->updated_at ? o->updated_at : o->created_at, err)
               : 0;
    free(skus);
    free(deltas);
    return rc;
}

/* Creates (or finds) one credit note in Qoyod and allocates it to the
 * invoice's open amount. *info is the note. */
static int credit_deliver(struct transfer_env *env, struct qoyod *q, const struct store_conn *c,
                          const struct model_order *o, const struct store_order *so,
                          const struct transfer_credit *cn, struct qoyod_credit_info *info,
                          struct th_err *err)
{
    char ref[200];
    transfer_credit_reference(so->qoyod_reference, cn->key, ref, sizeof ref);
    /* Always look first: credit notes are few, and a note created by an
     * attempt whose outcome was lost must never be made twice. */
    int rc = qoyod_credit_note_find(q, ref, info, err);
    if (rc == 0) own_stock_settle(env, c, ref, 0);
    if (rc == 0) return 0;
    if (rc != TH_ENOTFOUND) return rc;
    int64_t contact = 0;
    if ((rc = contact_for(env, q, c, o, &contact, err)) != 0) return rc;
    struct pctx px = {.env = env, .q = q, .c = c, .o = o};
    struct lines ls = {0};
    if ((rc = build_lines(&px, &cn->plan, &ls, err)) != 0) return rc;
    struct transfer_texts tx;
    struct qoyod_credit_spec spec;
    transfer_credit_spec(c, o, so->qoyod_reference, so->qoyod_invoice_id, contact, cn, ls.l, ls.n,
                         &tx, &spec);
    /* The returned goods come back to Qoyod's stock: not while a
     * correction of the same SKU reads and counts it (opening_fix). */
    struct stock_hold hold;
    if ((rc = stock_hold(env, c, o, &hold, err)) != 0 ||
        (rc = opening_fix(env, q, c, o, so->qoyod_reference, &hold, 0, err)) != 0) {
        stock_unhold(&hold);
        lines_release(&ls);
        return rc;
    }
    /* An approved credit note returns its goods to Qoyod's stock [I]; the
     * store restocked them when it cancelled or took the return, so the
     * stock poller must not push them again (docs/STOCK.md). */
    if ((rc = own_credit_stock_begin(env, c, o, cn, ref, err)) != 0) {
        stock_unhold(&hold);
        lines_release(&ls);
        return rc;
    }
    rc = qoyod_credit_note_create(q, &spec, info, err);
    lines_release(&ls);
    if (rc == TH_ETOOBIG) rc = TH_EUNKNOWN;
    int unknown = 0;
    if (rc == TH_EUNKNOWN || rc == TH_ECONFLICT) {
        struct th_err e2;
        int was = rc;
        rc = qoyod_credit_note_find(q, ref, info, &e2);
        if (rc == TH_ENOTFOUND)
            rc = th_err_set(err, was == TH_EUNKNOWN ? TH_ETEMP : TH_EPERM, "%s", err->msg);
        else if (rc)
            *err = e2, unknown = 1;
    }
    own_stock_settle(env, c, ref, unknown ? TH_EUNKNOWN : rc);
    stock_unhold(&hold);
    if (rc) return rc;
    if (info->total != cn->plan.total) {
        char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];
        return th_err_set(err, TH_EMONEY,
                          "Qoyod's credit note %s is %s but tarheel asked for %s: check it in "
                          "Qoyod",
                          ref, money_format(info->total, a, sizeof a),
                          money_format(cn->plan.total, b, sizeof b));
    }
    return 0;
}

/* Allocates what is left of a credit note to the invoice's open amount
 * (an unpaid invoice: financial invoice off). A paid invoice keeps the note
 * Unused: the money goes back to the customer, which the merchant books. */
static int credit_allocate(struct qoyod *q, const struct store_order *so,
                           const struct qoyod_credit_info *info, const char *date,
                           struct th_err *err)
{
    struct qoyod_invoice_info inv;
    int rc = qoyod_invoice_find(q, so->qoyod_reference, &inv, err);
    if (rc) return rc;
    int64_t amount = info->remaining < inv.due ? info->remaining : inv.due;
    if (amount <= 0) return 0;
    return qoyod_invoice_allocate(q, inv.id, info->id, amount, date, err);
}

static void credit_note(struct store *st, const struct store_order *so, const char *what,
                        const char *fmt, ...) TH_PRINTF(4, 5);
static void credit_note(struct store *st, const struct store_order *so, const char *what,
                        const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    struct th_err e;
    if (store_order_note(st, so->conn_id, so->order_id, what, detail, &e) != 0)
        log_error("order_note_lost", "conn=%lld order=%lld msg=\"%s\"", (long long)so->conn_id,
                  (long long)so->order_id, e.msg);
}

/* Sets the credit state (and reason), saving the order. */
static int credit_state(const struct transfer_env *env, struct store_order *so,
                        enum store_credit to, int code, const char *reason, struct th_err *err)
{
    so->credit = to;
    if (reason || to == STORE_CREDIT_DONE) {
        free(so->reason);
        so->reason = reason ? xstrdup(reason) : NULL;
        so->reason_code = code;
    }
    return save_order(env, so, err);
}

/*
 * The part of transfer_run for an order already transferred: credit notes
 * for its reversals, or a flag for review when it changed otherwise.
 */
static int credit_step(struct transfer_env *env, const struct store_conn *c,
                       const struct model_order *o, struct store_order *so,
                       struct transfer_result *res, struct th_err *err)
{
    struct store *st = env->store;
    char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];
    if (!transfer_credit_needed(o)) {
        if (so->qoyod_total && o->total != so->qoyod_total && so->credit != STORE_CREDIT_REVIEW) {
            /* Edited after transfer: policy in docs/MONEY.md. */
            char why[400];
            snprintf(why, sizeof why,
                     "changed in the store after transfer: the order's total is now %s but its "
                     "Qoyod invoice %s is %s; no document was changed: review it in Qoyod (a "
                     "credit note and a new invoice by hand, if the change stands)",
                     money_format(o->total, a, sizeof a), so->qoyod_reference,
                     money_format(so->qoyod_total, b, sizeof b));
            credit_note(st, so, "changed after transfer", "needs review: %s → %s", b, a);
            return credit_state(env, so, STORE_CREDIT_REVIEW, TH_ECONFLICT, why, err);
        }
        return save_order(env, so, err);
    }

    struct plan inv = {0};
    struct transfer_credited done = {0};
    struct transfer_credit_plan cp = {0};
    struct th_err e = {0};
    int rc = plan_invoice(o, &inv, &e);
    if (rc == 0) {
        /* What is credited already: the notes recorded as mappings. */
        char ref[200];
        int64_t id;
        transfer_credit_reference(so->qoyod_reference, CREDIT_KEY_FULL, ref, sizeof ref);
        struct transfer_credit whole = {.nlines = 0};
        if (store_map_get(st, c->id, "credit", ref, &id, err) == 0) {
            snprintf(whole.key, sizeof whole.key, CREDIT_KEY_FULL);
            transfer_credited_add(&done, &whole);
        }
        for (size_t k = 0; k < o->nrefunds; k++) {
            if (!o->refunds[k].key) continue;
            transfer_credit_reference(so->qoyod_reference, o->refunds[k].key, ref, sizeof ref);
            if (store_map_get(st, c->id, "credit", ref, &id, err) != 0) continue;
            struct transfer_credit one = {.nlines = o->nlines, .qty = o->refunds[k].qty};
            snprintf(one.key, sizeof one.key, "%s", o->refunds[k].key);
            transfer_credited_add(&done, &one);
        }
        done.total = so->credited; /* the sum as Qoyod has the notes */
        rc = transfer_credits(o, &inv, so->qoyod_total, &done, &cp, &e);
    }
    if (rc) {
        enum store_credit to = rc == TH_ECONFLICT ? STORE_CREDIT_REVIEW : STORE_CREDIT_FAILED;
        if (so->credit != to || !so->reason || strcmp(so->reason, e.msg) != 0)
            credit_note(st, so, to == STORE_CREDIT_REVIEW ? "changed after transfer"
                                                          : "credit note failed",
                        "%s", e.msg);
        rc = credit_state(env, so, to, rc, e.msg, err);
        goto out;
    }
    if (cp.n == 0) {
        if (so->credit != STORE_CREDIT_DONE && done.n)
            rc = credit_state(env, so, STORE_CREDIT_DONE, 0, NULL, err);
        else
            rc = save_order(env, so, err);
        goto out;
    }
    if (so->credit != STORE_CREDIT_PENDING) {
        for (size_t k = 0; k < cp.n; k++)
            credit_note(st, so, "credit note due", "%s: %s SAR (%s)", cp.notes[k].key,
                        money_format(cp.notes[k].plan.total, a, sizeof a), cp.notes[k].reason);
        if ((rc = credit_state(env, so, STORE_CREDIT_PENDING, 0, NULL, err)) != 0) goto out;
    }
    struct qoyod *q = qoyod_new(c->qoyod_base, c->qoyod_api_key, &env->qoyod_cfg);
    struct pace pace = {env, c->id, limit_account_key(c->qoyod_base, c->qoyod_api_key)};
    if (env->limit || env->job_id) qoyod_set_pace(q, pace_wait, &pace);
    int drc = 0;
    for (size_t k = 0; k < cp.n && drc == 0; k++) {
        struct transfer_credit *cn = &cp.notes[k];
        struct qoyod_credit_info info;
        char ref[200], date[32];
        transfer_credit_reference(so->qoyod_reference, cn->key, ref, sizeof ref);
        drc = credit_deliver(env, q, c, o, so, cn, &info, &e);
        if (drc == 0 && !c->financial_invoice) {
            riyadh_date(o->updated_at ? o->updated_at : o->created_at, date);
            drc = credit_allocate(q, so, &info, date, &e);
        }
        if (drc) break;
        if ((rc = store_map_put(st, c->id, "credit", ref, info.id, err)) != 0) break;
        so->credited += info.total;
        credit_note(st, so, "credit note issued", "%s: %s SAR against invoice %s (Qoyod id %lld)",
                    ref, money_format(info.total, a, sizeof a), so->qoyod_reference,
                    (long long)info.id);
        log_info("credit_note_done", "conn=%lld order=%lld ref=%s id=%lld total=%lld",
                 (long long)c->id, (long long)o->order_id, ref, (long long)info.id,
                 (long long)info.total);
        if ((rc = save_order(env, so, err)) != 0) break;
    }
    long status = qoyod_last_status(q), after = qoyod_last_retry_after(q);
    qoyod_free(q);
    if (rc) goto out;
    if (drc == 0) {
        rc = credit_state(env, so, STORE_CREDIT_DONE, 0, NULL, err);
    } else if (drc == TH_ETEMP || drc == TH_EUNKNOWN || drc == TH_ERATE) {
        res->verdict = TRANSFER_RETRY;
        if (status == 429) {
            res->cause = TRANSFER_CAUSE_RATE;
            res->retry_after_ms = (after > 0 ? after : 1) * 1000;
            res->pause_account_ms = res->retry_after_ms;
        }
        rc = credit_state(env, so, STORE_CREDIT_PENDING, drc, e.msg, err);
        log_warn("credit_note_retry", "conn=%lld order=%lld code=%s", (long long)c->id,
                 (long long)o->order_id, th_err_name(drc));
    } else {
        credit_note(st, so, "credit note failed", "%s", e.msg);
        rc = credit_state(env, so, STORE_CREDIT_FAILED, drc, e.msg, err);
        log_warn("credit_note_failed", "conn=%lld order=%lld code=%s", (long long)c->id,
                 (long long)o->order_id, th_err_name(drc));
    }
out:
    transfer_credit_plan_release(&cp);
    transfer_credited_release(&done);
    plan_release(&inv);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Platform tokens                                                          */

/* One lock per store for token refreshes, hashed: a collision only makes
 * two stores' refreshes wait for each other. Refresh tokens are single use
 * (Salla revokes the whole chain on reuse), so two refreshes of one store
 * must never run at once; across processes a lease in the store
 * ("refresh:<conn>", cluster_lock) serialises them as well. */
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

/* transfer_token_ensure: see transfer.h. */
int transfer_token_ensure(struct transfer_env *env, struct store_conn *c, int force,
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
    char lease[48];
    snprintf(lease, sizeof lease, "refresh:%lld", (long long)c->id);
    struct store_conn fresh = {0};
    int rc = cluster_lock(env, lease, err);
    if (rc) {
        pthread_mutex_unlock(mu);
        return rc;
    }
    /* Another worker (here or in another process) may have refreshed while
     * this one waited. */
    rc = store_conn_get(env->store, c->id, &fresh, err);
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
        th_crash_point("token.refreshed");
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
    cluster_unlock(env->store, lease);
    pthread_mutex_unlock(mu);
    return rc;
}

/* Records why an order waits on its connection, keeping its state. */
static int hold_order(const struct transfer_env *env, struct store_order *so, int code,
                      const char *why, struct th_err *err)
{
    if (so->reason && !strcmp(so->reason, why)) return 0;
    free(so->reason);
    so->reason = xstrdup(why);
    so->reason_code = code;
    return save_order(env, so, err);
}

/* The currency of the Qoyod accounts tarheel writes to. Qoyod's API names
 * no account currency (qoyod.md): Qoyod keeps Saudi books, in riyals. */
#define TRANSFER_BOOK_CURRENCY "SAR"

/* An order in another currency is refused, never converted (docs/MONEY.md):
 * the rate the store used is not the books' rate, and a converted invoice
 * would not say what the customer paid. */
static int currency_check(const struct model_order *o, struct th_err *err)
{
    if (!o->currency || !*o->currency || strcasecmp(o->currency, TRANSFER_BOOK_CURRENCY) == 0)
        return 0;
    return th_err_set(err, TH_EMONEY,
                      "order %s is in %s but the Qoyod books are in %s: tarheel does not convert "
                      "currencies; record this order in Qoyod by hand, or set the store to sell "
                      "in %s",
                      o->number ? o->number : "?", o->currency, TRANSFER_BOOK_CURRENCY,
                      TRANSFER_BOOK_CURRENCY);
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

/*
 * Records the order's units of each product Qoyod may not have yet (no
 * "product" mapping), so that the product's opening balance, when some
 * order creates it, counts this order too (book_opening). Orders of known
 * products need no line: one placed before an opening and not counted in it
 * is corrected (opening_fix).
 */
static int note_lines(struct transfer_env *env, const struct store_conn *c,
                      const struct model_order *o, struct th_err *err)
{
    const char *skus[STORE_STOCK_MAX_BATCH];
    int64_t units[STORE_STOCK_MAX_BATCH];
    size_t n = 0;
    for (size_t i = 0; i < o->nlines && n < STORE_STOCK_MAX_BATCH; i++) {
        const struct model_line *l = &o->lines[i];
        if (!stock_sku(l)) continue;
        size_t k = 0;
        while (k < n && strcmp(skus[k], l->sku) != 0) k++;
        if (k < n) continue; /* counted with its first line */
        int64_t pid = 0;
        int rc = store_map_get(env->store, c->id, "product", l->sku, &pid, err);
        if (rc == 0) continue;
        if (rc != TH_ENOTFOUND) return rc;
        skus[n] = l->sku;
        units[n++] = ordered_units(o, l->sku);
    }
    return n ? store_stock_lines_note(env->store, c->id, o->order_id, o->created_at, skus, units,
                                      n, err)
             : 0;
}

/* Drops the order's lines once it is invoiced or skipped (only logged when
 * it fails: a stale line of a product Qoyod has is never read again). */
static void forget_lines(struct transfer_env *env, int64_t conn_id, int64_t order_id)
{
    struct th_err e = {0};
    if (store_stock_lines_forget(env->store, conn_id, order_id, &e) != 0)
        log_warn("stock_lines_forget_failed", "conn=%lld order=%lld msg=\"%s\"",
                 (long long)conn_id, (long long)order_id, e.msg);
}

int transfer_run(struct transfer_env *env, int64_t conn_id, int64_t order_id, int manual,
                 struct transfer_result *res, struct th_err *err)
{
    memset(res, 0, sizeof *res);
    res->verdict = TRANSFER_DONE;
    env->lease_lost = 0;
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
        res->cause = TRANSFER_CAUSE_WAIT;
        res->retry_after_ms = 60000;
        goto out;
    }

    const struct platform_ops *p = platform_by_id(c.platform);
    if (!p) TH_BUG("connection %lld has unknown platform %d", (long long)c.id, c.platform);
    int trc = transfer_token_ensure(env, &c, 0, &e);
    if (trc) {
        res->verdict = TRANSFER_RETRY;
        res->cause = trc == TH_EAUTH ? TRANSFER_CAUSE_WAIT : TRANSFER_CAUSE_FAILURE;
        res->retry_after_ms = trc == TH_EAUTH ? 60000 : 0;
        if (so.xfer == STORE_XFER_NOT_TRANSFERRED || so.xfer == STORE_XFER_TRANSFERRING)
            rc = hold_order(env, &so, trc, e.msg, err);
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
        trc = transfer_token_ensure(env, &c, 1, &e);
        res->verdict = TRANSFER_RETRY;
        /* refreshed: at once (the cause is gone; no backoff) */
        res->cause = trc == TH_EAUTH ? TRANSFER_CAUSE_WAIT
                     : trc == 0      ? TRANSFER_CAUSE_AT_ONCE
                                     : TRANSFER_CAUSE_FAILURE;
        res->retry_after_ms = trc == TH_EAUTH ? 60000 : 0;
        if (trc == TH_EAUTH)
            rc = hold_order(env, &so, trc, e.msg, err);
        goto out;
    }
    if (frc == TH_ETEMP || frc == TH_EUNKNOWN || frc == TH_EAUTH || frc == TH_ERATE) {
        log_warn("transfer_fetch_retry", "conn=%lld order=%lld code=%s", (long long)conn_id,
                 (long long)order_id, th_err_name(frc));
        res->verdict = TRANSFER_RETRY;
        /* The store's own rate limit: wait what it said (its Retry-After). */
        long st = 0, after = -1;
        httpc_last_answer(env->platform_http, &st, &after);
        if (frc == TH_ETEMP && st == 429) {
            res->cause = TRANSFER_CAUSE_RATE;
            res->retry_after_ms = (after > 0 ? after : 1) * 1000;
        }
        goto out;
    }
    if (frc) {
        if (so.xfer != STORE_XFER_TRANSFERRED) {
            so.attempts++;
            rc = set_state(env, &so, STORE_XFER_FAILED, frc, e.msg, err);
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
        /* Cancellations and returns become credit notes (credit_step). */
        rc = credit_step(env, &c, o, &so, res, err);
        goto out;
    }
    if (o->status == MODEL_STATUS_CANCELLED || o->status == MODEL_STATUS_REFUNDED) {
        rc = set_state(env, &so, STORE_XFER_SKIPPED, 0,
                       "cancelled in the store before it was transferred", err);
        if (rc == 0) forget_lines(env, conn_id, order_id);
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
        rc = save_order(env, &so, err);
        goto out;
    }
    /* Known before any opening balance of its products is booked. */
    if ((rc = note_lines(env, &c, o, err)) != 0) goto out;
    if (!manual && !transfer_triggered(c.trigger, o->status)) {
        rc = save_order(env, &so, err); /* waits for its trigger status */
        goto out;
    }
    if (manual) {
        free(so.reason);
        so.reason = NULL;
    }

    struct plan pl = {0};
    int vrc = first_missing_sku(o, &e);
    if (!vrc) vrc = currency_check(o, &e);
    if (!vrc) vrc = model_order_check(o, &e);
    if (!vrc) vrc = plan_invoice(o, &pl, &e);
    if (vrc) {
        so.attempts++;
        rc = set_state(env, &so, STORE_XFER_FAILED, vrc, e.msg, err);
        res->xfer = so.xfer;
        goto out;
    }

    so.attempts++;
    /* The reference is fixed before the first remote call and recorded
     * with the TRANSFERRING state: every later attempt looks up and sends
     * this one (deliver), and the order's credit notes follow it. */
    if (!so.qoyod_reference || !*so.qoyod_reference) {
        char ref[160];
        transfer_reference(&c, o, ref, sizeof ref);
        free(so.qoyod_reference);
        so.qoyod_reference = xstrdup(ref);
    }
    if ((rc = set_state(env, &so, STORE_XFER_TRANSFERRING, 0, NULL, err)) != 0) {
        plan_release(&pl);
        goto out;
    }
    struct delivery d = {0};
    env->platform_refused = 0;
    int drc = deliver(env, &c, o, &pl, &so, &d, &e);
    if (drc == 0 && pl.rounding) {
        char note[160], a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];
        money_format(pl.rounding, a, sizeof a);
        if (pl.rounding > 0)
            snprintf(note, sizeof note, "a rounding line of %s SAR makes Qoyod's total %s", a,
                     money_format(pl.total, b, sizeof b));
        else
            snprintf(note, sizeof note, "%s SAR more discount on line %zu makes Qoyod's total %s",
                     money_format(pl.adjust_discount, b, sizeof b), pl.adjusted + 1,
                     money_format(pl.total, a, sizeof a));
        rc = store_order_note(env->store, conn_id, order_id, "rounding adjusted", note, err);
        if (rc) {
            plan_release(&pl);
            goto out;
        }
    }
    plan_release(&pl);
    if (drc == 0) {
        so.qoyod_invoice_id = d.invoice_id;
        so.qoyod_payment_id = d.payment_id;
        so.qoyod_total = d.qoyod_total;
        rc = set_state(env, &so, STORE_XFER_TRANSFERRED, 0, NULL, err);
        if (rc == 0) forget_lines(env, conn_id, order_id);
        if (rc == 0) th_crash_point("order.transferred");
        log_info("transfer_done", "conn=%lld order=%lld invoice=%lld ref=%s attempts=%d",
                 (long long)conn_id, (long long)order_id, (long long)d.invoice_id,
                 so.qoyod_reference, so.attempts);
        /* Partly returned already: its credit notes follow at once. */
        if (rc == 0 && transfer_credit_needed(o)) rc = credit_step(env, &c, o, &so, res, err);
    } else if (drc == TH_ETEMP && d.last_status == 429) {
        /* Rate limited: not the order's fault, so it never fails the order
         * nor uses up its attempts: this try is taken back, except a first
         * one (attempts must stay above 1 once anything may have been sent,
         * so every later try looks before it creates: deliver's look_first).
         * The job waits Retry-After, and the worker pauses every job of this
         * Qoyod account as long, so one busy store cannot start a 429 storm. */
        int64_t wait = (d.retry_after_s > 0 ? d.retry_after_s : 1) * 1000;
        if (so.attempts > 1) so.attempts--;
        free(so.reason);
        so.reason = xstrdup(e.msg);
        so.reason_code = TH_ERATE;
        rc = save_order(env, &so, err);
        res->verdict = TRANSFER_RETRY;
        res->cause = TRANSFER_CAUSE_RATE;
        res->retry_after_ms = wait;
        res->pause_account_ms = wait;
        log_warn("transfer_rate_limited", "conn=%lld order=%lld wait_ms=%lld", (long long)conn_id,
                 (long long)order_id, (long long)wait);
    } else if (drc == TH_EAUTH && env->platform_refused && so.attempts < TRANSFER_MAX_ATTEMPTS) {
        /* The store's token expired (or was rotated) after the order was
         * read: refresh it and run again; only a grant that is gone holds
         * the order (needs reinstall), as at the order's read. The fault
         * matrix found this failing orders for good. */
        struct th_err e2 = {0};
        trc = transfer_token_ensure(env, &c, 1, &e2);
        int gone = trc == TH_EAUTH;
        res->verdict = TRANSFER_RETRY;
        res->cause = gone        ? TRANSFER_CAUSE_WAIT
                     : trc == 0 ? TRANSFER_CAUSE_AT_ONCE
                                : TRANSFER_CAUSE_FAILURE;
        res->retry_after_ms = gone ? 60000 : 0;
        rc = hold_order(env, &so, gone ? TH_EAUTH : drc, gone ? e2.msg : e.msg, err);
        log_warn("transfer_retry", "conn=%lld order=%lld attempt=%d code=%s", (long long)conn_id,
                 (long long)order_id, so.attempts, th_err_name(drc));
    } else if ((drc == TH_ETEMP || drc == TH_EUNKNOWN || drc == TH_ERATE) &&
               so.attempts < TRANSFER_MAX_ATTEMPTS) {
        free(so.reason);
        so.reason = xstrdup(e.msg);
        so.reason_code = drc;
        rc = save_order(env, &so, err);
        res->verdict = TRANSFER_RETRY;
        log_warn("transfer_retry", "conn=%lld order=%lld attempt=%d code=%s", (long long)conn_id,
                 (long long)order_id, so.attempts, th_err_name(drc));
    } else {
        rc = set_state(env, &so, STORE_XFER_FAILED, drc, e.msg, err);
        log_warn("transfer_failed", "conn=%lld order=%lld code=%s", (long long)conn_id,
                 (long long)order_id, th_err_name(drc));
    }
    res->xfer = so.xfer;
out:
    if (res->verdict == TRANSFER_RETRY && env->lease_lost) {
        /* Another worker holds the job now: the retry written for it is
         * fenced (nothing changes); were it not taken, it runs at once. */
        res->cause = TRANSFER_CAUSE_AT_ONCE;
        res->retry_after_ms = 0;
    }
    model_order_free(o);
    store_order_release(&so);
    store_conn_release(&c);
    return rc;
}
