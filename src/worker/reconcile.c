/*
 * reconcile — the store's orders against Qoyod's documents (see
 * reconcile.h; the rules in words: docs/MONEY.md).
 *
 * Design notes.
 *  - The store is the truth for orders: every order created in the range is
 *    listed through the adapter (orders_page by creation date) and fetched
 *    (order_fetch), so an order tarheel never heard of is found too.
 *  - tarheel's invoices are recognised by what tarheel writes: the
 *    description "<platform> order <number>" or a reference
 *    "TH-<platform>-<id>". An invoice matches an order by its reference
 *    (the one recorded when it was sent, else transfer_reference) or by
 *    that description, so an invoice typed by hand for an order that
 *    tarheel also sent shows up as a duplicate.
 *  - Several stores on one Qoyod account: every store but one has a
 *    reference prefix P (store_conn.ref_prefix), its references "P-…" and
 *    its descriptions "<platform> order P-…". A store with a prefix owns
 *    only those; the store without one owns the rest of its platform's,
 *    less those carrying another store's prefix. So no store counts
 *    another's invoice as its own, or as one with no order.
 *  - Invoices are listed by issue date over the range (tarheel dates an
 *    invoice on the order's Riyadh day); credit notes from the range's
 *    first day to today, since a return can come weeks later.
 *  - Which orders must have an invoice: every order tarheel says it
 *    transferred, and every order at the connection's trigger status that
 *    the automatic rules would send (not cancelled first, not created before
 *    the connection). Such an order that tarheel failed is listed apart
 *    (RECONCILE_FAILED, with tarheel's reason): tarheel already says why it
 *    is not in Qoyod, so it is not counted as a difference.
 *  - What must be credited: the whole invoice for a cancelled or fully
 *    returned order, the store's refund amounts for listed returns.
 */
#include "worker/reconcile.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/money.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"
#include "worker/pull.h"
#include "worker/transfer.h"

/* One order of the range as reconciliation sees it. */
struct rorder {
    int64_t id;
    char number[64];
    char ref[160];
    char desc[200];
    int64_t total;
    int64_t credit_due; /* what should be credited, halalas; -1: the invoice's total */
    int expected;
    struct store_order so; /* tarheel's record (zeroed when unknown) */
    int known;
};

static void add_item(struct reconcile_report *r, enum reconcile_kind k, const struct rorder *o,
                     const struct qoyod_doc *inv, int64_t store_amount, int64_t qoyod_amount,
                     const char *fmt, ...) TH_PRINTF(7, 8);
static void add_item(struct reconcile_report *r, enum reconcile_kind k, const struct rorder *o,
                     const struct qoyod_doc *inv, int64_t store_amount, int64_t qoyod_amount,
                     const char *fmt, ...)
{
    r->items = xrealloc(r->items, (r->n + 1) * sizeof *r->items);
    struct reconcile_item *it = &r->items[r->n++];
    memset(it, 0, sizeof *it);
    it->kind = k;
    if (o) {
        it->order_id = o->id;
        snprintf(it->number, sizeof it->number, "%s", o->number);
        snprintf(it->reference, sizeof it->reference, "%.127s", o->ref);
    }
    if (inv) {
        it->invoice_id = inv->id;
        snprintf(it->reference, sizeof it->reference, "%s", inv->reference);
    }
    it->store_amount = store_amount;
    it->qoyod_amount = qoyod_amount;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->detail, sizeof it->detail, fmt, ap);
    va_end(ap);
    if (k != RECONCILE_FAILED) r->differences++;
}

const char *reconcile_kind_name(enum reconcile_kind k)
{
    static const char *const names[] = {"no_invoice", "no_order", "duplicate",
                                        "amount",     "credit",   "failed"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

void reconcile_report_release(struct reconcile_report *r)
{
    if (!r) return;
    free(r->items);
    memset(r, 0, sizeof *r);
}

static void riyadh_today(char out[11])
{
    time_t t = time(NULL) + 3 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* The reference prefixes of the other stores on the connection's Qoyod
 * account ("" entries left out). */
struct siblings {
    const struct store_conn *c;
    size_t n;
    char (*prefix)[STORE_REF_PREFIX_MAX + 1];
};

static int same_text(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

static void add_sibling(void *arg, const struct store_conn *o)
{
    struct siblings *sb = arg;
    if (o->id == sb->c->id || !o->ref_prefix || !*o->ref_prefix) return;
    if (!same_text(o->qoyod_base, sb->c->qoyod_base) ||
        !same_text(o->qoyod_api_key, sb->c->qoyod_api_key))
        return;
    sb->prefix = xrealloc(sb->prefix, (sb->n + 1) * sizeof *sb->prefix);
    snprintf(sb->prefix[sb->n++], sizeof *sb->prefix, "%s", o->ref_prefix);
}

/* Does text s start with "<head>P-" (head may be "")? */
static int starts_prefixed(const char *s, const char *head, const char *p)
{
    size_t h = strlen(head), l = strlen(p);
    return !strncmp(s, head, h) && !strncmp(s + h, p, l) && s[h + l] == '-';
}

/* Is this one of tarheel's invoices for this connection? */
static int ours(const struct qoyod_doc *d, const struct store_conn *c, const struct siblings *sb)
{
    const char *platform = model_platform_name(c->platform);
    char p1[48], p2[48];
    snprintf(p1, sizeof p1, "%s order ", platform);
    if (c->ref_prefix && *c->ref_prefix)
        return starts_prefixed(d->reference, "", c->ref_prefix) ||
               starts_prefixed(d->description, p1, c->ref_prefix);
    for (size_t i = 0; i < sb->n; i++)
        if (starts_prefixed(d->reference, "", sb->prefix[i]) ||
            starts_prefixed(d->description, p1, sb->prefix[i]))
            return 0;
    snprintf(p2, sizeof p2, "TH-%s-", platform);
    return !strncmp(d->description, p1, strlen(p1)) || !strncmp(d->reference, p2, strlen(p2));
}

static int matches(const struct qoyod_doc *d, const struct rorder *o)
{
    return !strcmp(d->reference, o->ref) || !strcmp(d->description, o->desc);
}

/* Attempts of one platform call after temporary failures (doubling from
 * half a second), and waits of a 429's Retry-After (each at most
 * PULL_MAX_WAIT_S), before the reconciliation gives up: a read-only run can
 * simply be run again. */
#define RECONCILE_MAX_TRIES 5
#define RECONCILE_MAX_RATE_WAITS 10

/* Whether to call again after rc, sleeping first; counts tries and waits. */
static int again(const struct reconcile_env *env, int rc, int *tries, int *waits)
{
    if (rc != TH_ETEMP && rc != TH_EUNKNOWN && rc != TH_ERATE) return 0;
    long status = 0, after = -1, ms;
    httpc_last_answer(env->platform_http, &status, &after);
    if (status == 429) {
        if (++*waits > RECONCILE_MAX_RATE_WAITS) return 0;
        long sec = after > 0 ? after : 1;
        ms = (sec > PULL_MAX_WAIT_S ? PULL_MAX_WAIT_S : sec) * 1000;
    } else {
        if (++*tries >= RECONCILE_MAX_TRIES) return 0;
        ms = 500L << (*tries - 1);
    }
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 1;
}

/* Lists and fetches every order of the range. */
static int read_orders(const struct reconcile_env *env, const struct store_conn *c,
                       const struct platform_ops *p, const struct pull_range *range,
                       struct rorder **out, size_t *n, struct th_err *err)
{
    struct platform_conn pc = {.store_id = c->store_id,
                               .api_base = c->api_base,
                               .access_token = c->access_token,
                               .manager_token = c->manager_token};
    size_t cap = 0;
    struct rorder *v = NULL;
    *n = 0;
    int rc = 0;
    for (int page = 1; rc == 0; page++) {
        struct platform_query q = {.from = range->from, .to = range->to, .page = page};
        struct platform_page pg = {0};
        int tries = 0, waits = 0;
        do
            rc = p->orders_page(env->platform_http, &pc, &q, &pg, err);
        while (again(env, rc, &tries, &waits));
        if (rc) break;
        for (size_t i = 0; i < pg.n && rc == 0; i++) {
            const struct platform_order_ref *ref = &pg.orders[i];
            if (ref->created_at && (ref->created_at < range->from || ref->created_at > range->to))
                continue;
            int dup = 0;
            for (size_t j = 0; j < *n && !dup; j++) dup = v[j].id == ref->id;
            if (dup) continue;
            if (*n >= RECONCILE_MAX_ORDERS) {
                rc = th_err_set(err, TH_ELIMIT, "more than %d orders in the range: reconcile a "
                                "shorter range", RECONCILE_MAX_ORDERS);
                break;
            }
            struct model_order *o = NULL;
            tries = waits = 0;
            do
                rc = p->order_fetch(env->platform_http, &pc, ref->id, &o, err);
            while (again(env, rc, &tries, &waits));
            if (rc) break;
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                v = xrealloc(v, cap * sizeof *v);
            }
            struct rorder *r = &v[(*n)++];
            memset(r, 0, sizeof *r);
            r->id = o->order_id;
            snprintf(r->number, sizeof r->number, "%s", o->number ? o->number : "");
            struct transfer_texts tx;
            struct qoyod_invoice_spec spec;
            transfer_invoice_spec(c, o, 0, NULL, 0, &tx, &spec);
            snprintf(r->desc, sizeof r->desc, "%s", tx.desc);
            r->total = o->total;
            struct th_err e;
            r->known = store_order_get(env->store, c->id, o->order_id, &r->so, &e) == 0;
            if (!r->known) memset(&r->so, 0, sizeof r->so);
            /* The reference it was sent with, whatever the settings now. */
            snprintf(r->ref, sizeof r->ref, "%s",
                     r->known && r->so.qoyod_reference && *r->so.qoyod_reference
                         ? r->so.qoyod_reference
                         : tx.ref);
            int transferred = r->known && r->so.xfer == STORE_XFER_TRANSFERRED;
            int reversed = o->status == MODEL_STATUS_CANCELLED || o->status == MODEL_STATUS_REFUNDED;
            int automatic = transfer_triggered(c->trigger, o->status) &&
                            !(c->connected_at && o->created_at && o->created_at < c->connected_at);
            r->expected = transferred || (!reversed && automatic);
            if (reversed) {
                r->credit_due = -1;
            } else {
                for (size_t k = 0; k < o->nrefunds; k++) r->credit_due += o->refunds[k].amount;
            }
            model_order_free(o);
        }
        int more = pg.more;
        platform_page_release(&pg);
        if (!more) break;
    }
    if (rc) {
        for (size_t i = 0; i < *n; i++) store_order_release(&v[i].so);
        free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

int reconcile_run(const struct reconcile_env *env, int64_t conn_id, const char *from,
                  const char *to, struct reconcile_report *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    struct pull_range range;
    int rc = pull_range_parse(from, to, &range, err);
    if (rc) return rc;
    if ((range.to - range.from) / 86400 + 1 > RECONCILE_MAX_DAYS)
        return th_err_set(err, TH_ELIMIT, "a reconciliation covers at most %d days",
                          RECONCILE_MAX_DAYS);
    struct store_conn c = {0};
    if ((rc = store_conn_get(env->store, conn_id, &c, err)) != 0) return rc;
    const struct platform_ops *p = platform_by_id(c.platform);
    if (!p || !p->orders_page) {
        store_conn_release(&c);
        return th_err_set(err, TH_ECONFIG, "the store's platform cannot list its orders");
    }
    out->conn_id = conn_id;
    snprintf(out->from, sizeof out->from, "%s", from);
    snprintf(out->to, sizeof out->to, "%s", to);

    struct rorder *orders = NULL;
    size_t norders = 0;
    struct qoyod_doc *invs = NULL, *cns = NULL;
    size_t ninv = 0, ncn = 0;
    char today[11];
    riyadh_today(today);
    struct qoyod *q = qoyod_new(c.qoyod_base, c.qoyod_api_key, &env->qoyod_cfg);
    rc = read_orders(env, &c, p, &range, &orders, &norders, err);
    if (rc == 0) rc = qoyod_invoices_list(q, from, to, &invs, &ninv, err);
    if (rc == 0)
        rc = qoyod_credit_notes_list(q, from, strcmp(today, from) > 0 ? today : from, &cns, &ncn,
                                     err);
    qoyod_free(q);
    struct siblings sb = {.c = &c};
    if (rc == 0) rc = store_conn_list(env->store, add_sibling, &sb, err);
    if (rc) goto out;

    const char *pname = model_platform_name(c.platform);
    char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX], d[MONEY_FMT_MAX];
    char *used = xcalloc(ninv ? ninv : 1, 1);
    out->orders = norders;
    for (size_t i = 0; i < ninv; i++)
        if (ours(&invs[i], &c, &sb)) {
            out->invoices++;
            out->invoiced_total += invs[i].total;
        }
    for (size_t i = 0; i < norders; i++) {
        struct rorder *o = &orders[i];
        size_t hits = 0, first = 0;
        for (size_t k = 0; k < ninv; k++)
            if (matches(&invs[k], o)) {
                if (!hits) first = k;
                hits++;
                used[k] = 1;
            }
        if (o->expected) {
            out->expected++;
            out->store_total += o->total;
        }
        if (hits == 0) {
            if (!o->expected) continue;
            if (o->known && o->so.xfer == STORE_XFER_FAILED)
                add_item(out, RECONCILE_FAILED, o, NULL, o->total, 0,
                         "failed in tarheel, not in Qoyod: %s",
                         o->so.reason ? o->so.reason : "(no reason recorded)");
            else if (o->known && o->so.xfer == STORE_XFER_TRANSFERRED)
                add_item(out, RECONCILE_NO_INVOICE, o, NULL, o->total, 0,
                         "tarheel recorded invoice %s (Qoyod id %lld) but Qoyod has none for "
                         "this order",
                         o->so.qoyod_reference ? o->so.qoyod_reference : "?",
                         (long long)o->so.qoyod_invoice_id);
            else
                add_item(out, RECONCILE_NO_INVOICE, o, NULL, o->total, 0,
                         "the order is at its transfer status but Qoyod has no invoice for it "
                         "(tarheel: %s)",
                         o->known ? store_xfer_name(o->so.xfer) : "never heard of it");
            continue;
        }
        if (hits > 1) {
            int64_t sum = 0;
            for (size_t k = 0; k < ninv; k++)
                if (matches(&invs[k], o)) sum += invs[k].total;
            add_item(out, RECONCILE_DUPLICATE, o, &invs[first], o->total, sum,
                     "%zu invoices in Qoyod for this order (by reference %s or description "
                     "\"%s\"): keep one, credit the others",
                     hits, o->ref, o->desc);
        }
        const struct qoyod_doc *inv = &invs[first];
        if (inv->total != o->total)
            add_item(out, RECONCILE_AMOUNT, o, inv, o->total, inv->total,
                     "invoice %s is %s but the order's total is %s (difference %s)",
                     inv->reference, money_format(inv->total, a, sizeof a),
                     money_format(o->total, b, sizeof b),
                     money_format(o->total - inv->total, d, sizeof d));
        /* Credit notes against this invoice. */
        char cref[200];
        snprintf(cref, sizeof cref, "CN-%s", inv->reference);
        int64_t credited = 0;
        size_t notes = 0;
        for (size_t k = 0; k < ncn; k++) {
            const struct qoyod_doc *cn = &cns[k];
            size_t l = strlen(cref);
            if (cn->parent_id == inv->id ||
                (!strncmp(cn->reference, cref, l) && (!cn->reference[l] || cn->reference[l] == '-'))) {
                credited += cn->total;
                notes++;
            }
        }
        int64_t due = o->credit_due < 0 ? inv->total : o->credit_due;
        out->credit_notes += notes;
        out->credited_total += credited;
        out->store_credits += due;
        if (credited != due)
            add_item(out, RECONCILE_CREDIT, o, inv, due, credited,
                     "%s should be credited and %zu credit note%s against invoice %s come to %s",
                     money_format(due, a, sizeof a), notes, notes == 1 ? "" : "s", inv->reference,
                     money_format(credited, b, sizeof b));
    }
    for (size_t k = 0; k < ninv; k++)
        if (!used[k] && ours(&invs[k], &c, &sb))
            add_item(out, RECONCILE_NO_ORDER, NULL, &invs[k], 0, invs[k].total,
                     "invoice %s (\"%s\", issued %s) matches no %s order created in the range",
                     invs[k].reference, invs[k].description, invs[k].date, pname);
    free(used);
out:
    free(sb.prefix);
    for (size_t i = 0; i < norders; i++) store_order_release(&orders[i].so);
    free(orders);
    free(invs);
    free(cns);
    store_conn_release(&c);
    if (rc) reconcile_report_release(out);
    return rc;
}

static json_t *jmoney(int64_t halalas)
{
    char d[MONEY_FMT_MAX];
    return json_pack("{s:I,s:s}", "halalas", (json_int_t)halalas, "decimal",
                     money_format(halalas, d, sizeof d));
}

char *reconcile_json(const struct reconcile_report *r)
{
    json_t *items = json_array();
    for (size_t i = 0; i < r->n; i++) {
        const struct reconcile_item *it = &r->items[i];
        json_array_append_new(
            items,
            json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:s}", "kind", reconcile_kind_name(it->kind),
                      "order_id", it->order_id ? json_integer(it->order_id) : json_null(),
                      "number", it->number[0] ? json_string(it->number) : json_null(),
                      "reference", it->reference[0] ? json_string(it->reference) : json_null(),
                      "invoice_id", it->invoice_id ? json_integer(it->invoice_id) : json_null(),
                      "store_amount", jmoney(it->store_amount), "qoyod_amount",
                      jmoney(it->qoyod_amount), "detail", it->detail));
    }
    json_t *j = json_pack(
        "{s:I,s:s,s:s,s:I,s:I,s:I,s:I,s:{s:o,s:o,s:o,s:o},s:I,s:o}", "connection",
        (json_int_t)r->conn_id, "from", r->from, "to", r->to, "orders", (json_int_t)r->orders,
        "expected_invoices", (json_int_t)r->expected, "invoices", (json_int_t)r->invoices,
        "credit_notes", (json_int_t)r->credit_notes, "totals", "store", jmoney(r->store_total),
        "invoiced", jmoney(r->invoiced_total), "store_credits", jmoney(r->store_credits),
        "credited", jmoney(r->credited_total), "differences", (json_int_t)r->differences,
        "items", items);
    char *t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return t;
}
