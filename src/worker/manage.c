/*
 * manage — requests made by hand (see manage.h).
 *
 * Both the CLI (`orders transfer`, `orders retry --failed`, `settings`) and
 * the REST API (/api/v1/orders/transfer, /orders/retry, PATCH .../settings)
 * come here, so a rule changed in one place changes for both.
 */
#include "worker/manage.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xmalloc.h"

/* ---------------------------------------------------------------------- */
/* Queuing by hand                                                          */

static int queue_one(struct store *s, int64_t conn_id, int64_t order_id, const char *who,
                     struct th_err *err)
{
    int rc = store_job_enqueue(s, conn_id, order_id, err);
    if (rc) return rc;
    /* The job is queued whatever happens to the note; a failed note is
     * still a store failure the caller must hear about. */
    return store_order_note(s, conn_id, order_id, "queued by hand", who ? who : "", err);
}

int manage_transfer(struct store *s, int64_t conn_id, const int64_t *order_ids, size_t n,
                    const char *who, size_t *queued, struct th_err *err)
{
    if (queued) *queued = 0;
    if (n == 0) return th_err_set(err, TH_EINVAL, "no order ids given: name at least one order");
    if (n > MANAGE_MAX_ORDERS)
        return th_err_set(err, TH_ELIMIT,
                          "%zu orders in one request; at most %d (split the list into smaller "
                          "requests)",
                          n, MANAGE_MAX_ORDERS);
    for (size_t i = 0; i < n; i++)
        if (order_ids[i] <= 0)
            return th_err_set(err, TH_EINVAL,
                              "order id %lld is not a platform order id (ids are "
                              "positive integers)",
                              (long long)order_ids[i]);
    struct store_conn c = {0};
    int rc = store_conn_get(s, conn_id, &c, err);
    store_conn_release(&c);
    if (rc) return rc;
    /* In batches, each one transaction with its history notes: a range of
     * a thousand orders costs four commits, not two thousand. */
    for (size_t i = 0; i < n; i += STORE_MAX_ENQUEUE) {
        size_t k = n - i < STORE_MAX_ENQUEUE ? n - i : STORE_MAX_ENQUEUE;
        rc = store_job_enqueue_many(s, conn_id, order_ids + i, k, "queued by hand",
                                    who ? who : "", err);
        if (rc) return rc;
        if (queued) *queued += k;
    }
    return 0;
}

struct failed_list {
    size_t n, cap;
    int64_t (*ids)[2]; /* conn_id, order_id */
};

static void collect_failed(void *arg, const struct store_order *o)
{
    struct failed_list *l = arg;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->ids = xrealloc(l->ids, l->cap * sizeof *l->ids);
    }
    l->ids[l->n][0] = o->conn_id;
    l->ids[l->n][1] = o->order_id;
    l->n++;
}

int manage_retry_failed(struct store *s, int64_t conn_id, const char *who,
                        void (*fn)(void *arg, int64_t conn_id, int64_t order_id), void *arg,
                        size_t *queued, struct th_err *err)
{
    return manage_retry_failed_in(s, 0, conn_id, who, fn, arg, queued, err);
}

int manage_retry_failed_in(struct store *s, int64_t tenant, int64_t conn_id, const char *who,
                           void (*fn)(void *arg, int64_t conn_id, int64_t order_id), void *arg,
                           size_t *queued, struct th_err *err)
{
    if (queued) *queued = 0;
    int rc;
    if (conn_id) {
        struct store_conn c = {0};
        rc = store_conn_get(s, conn_id, &c, err);
        if (!rc && tenant && c.tenant_id != tenant)
            rc = th_err_set(err, TH_ENOTFOUND, "connection %lld is not connected to tarheel",
                            (long long)conn_id);
        store_conn_release(&c);
        if (rc) return rc;
    }
    /* Collect first, queue after: the list is a snapshot, and an order
     * that fails again while we queue is not picked up twice. */
    struct failed_list l = {0};
    rc = store_order_list_in(s, tenant, conn_id, STORE_XFER_FAILED, collect_failed, &l, err);
    struct th_err e;
    for (size_t i = 0; !rc && i < l.n; i++) {
        int qrc = queue_one(s, l.ids[i][0], l.ids[i][1], who, &e);
        if (qrc) {
            if (!rc) {
                rc = qrc;
                if (err) *err = e;
            }
            continue;
        }
        if (queued) (*queued)++;
        if (fn) fn(arg, l.ids[i][0], l.ids[i][1]);
    }
    free(l.ids);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Settings                                                                 */

enum kind { K_TRIGGER, K_ONOFF, K_ID, K_SECONDS, K_PREFIX, K_SOURCE };

static const struct setting {
    const char *name, *alias;
    enum kind kind;
    size_t off;
    const char *what; /* for K_ID: what the id names */
} settings[] = {
    {"trigger", NULL, K_TRIGGER, offsetof(struct store_conn, trigger), NULL},
    {"customer_per_invoice", NULL, K_ONOFF, offsetof(struct store_conn, customer_per_invoice),
     NULL},
    {"number_by_order", NULL, K_ONOFF, offsetof(struct store_conn, number_by_order), NULL},
    {"financial_invoice", NULL, K_ONOFF, offsetof(struct store_conn, financial_invoice), NULL},
    {"inventory_id", "inventory", K_ID, offsetof(struct store_conn, inventory_id),
     "a Qoyod inventory location id, a positive integer (list them with `tarheel connect "
     "qoyod`)"},
    {"payment_account_id", "payment_account", K_ID, offsetof(struct store_conn, payment_account_id),
     "a Qoyod cash or bank account id, a positive integer"},
    {"stock_sync", NULL, K_ONOFF, offsetof(struct store_conn, stock_sync), NULL},
    {"stock_interval", "stock_interval_s", K_SECONDS, offsetof(struct store_conn, stock_interval_s),
     NULL},
    {"reference_prefix", "ref_prefix", K_PREFIX, offsetof(struct store_conn, ref_prefix), NULL},
    {"fields_sync", "field_sync", K_ONOFF, offsetof(struct store_conn, fields_sync), NULL},
    {"name_source", NULL, K_SOURCE,
     offsetof(struct store_conn, field_source) + STORE_FIELD_NAME * sizeof(int), NULL},
    {"price_source", NULL, K_SOURCE,
     offsetof(struct store_conn, field_source) + STORE_FIELD_PRICE * sizeof(int), NULL},
    {"cost_source", NULL, K_SOURCE,
     offsetof(struct store_conn, field_source) + STORE_FIELD_COST * sizeof(int), NULL},
};
#define NSETTINGS (sizeof settings / sizeof settings[0])

/* a == b with '-' and '_' alike. */
static int name_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y) return 0;
    }
    return *a == *b;
}

static const struct setting *find_setting(const char *name)
{
    for (size_t i = 0; name && i < NSETTINGS; i++)
        if (name_eq(name, settings[i].name) ||
            (settings[i].alias && name_eq(name, settings[i].alias)))
            return &settings[i];
    return NULL;
}

static int parse_onoff(const char *s, int *out)
{
    static const char *const on[] = {"on", "true", "yes", "1"}, *const off[] = {"off", "false",
                                                                                "no", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, on[i]) || !strcasecmp(s, off[i])) {
            *out = !strcasecmp(s, on[i]);
            return 0;
        }
    }
    return -1;
}

/*
 * A reference prefix as typed: "" or "none" for none, else 1 to
 * STORE_REF_PREFIX_MAX letters and digits starting with a letter, kept in
 * capitals (Qoyod may compare references without case). Refused: the
 * starts of tarheel's other references (CN, PAY, TH, OPEN: a prefixed
 * invoice "CN-1001" would read as a credit note), and "S<digits>" or
 * "Z<digits>" other than c's own default, the defaults of other stores.
 */
static int prefix_parse(const struct store_conn *c, const char *name, const char *value,
                        char out[STORE_REF_PREFIX_MAX + 1], struct th_err *err)
{
    if (!*value || !strcasecmp(value, "none")) {
        out[0] = '\0';
        return 0;
    }
    size_t n = strlen(value);
    int ok = n <= STORE_REF_PREFIX_MAX && isalpha((unsigned char)value[0]);
    for (size_t i = 0; ok && i < n; i++) {
        ok = isalnum((unsigned char)value[i]) && (unsigned char)value[i] < 128;
        out[i] = (char)toupper((unsigned char)value[i]);
    }
    if (!ok)
        return th_err_set(err, TH_EINVAL,
                          "%s takes 1 to %d letters and digits starting with a letter (the "
                          "invoice reference becomes PREFIX-<order number>), or none, not "
                          "\"%.64s\"",
                          name, STORE_REF_PREFIX_MAX, value);
    out[n] = '\0';
    static const char *const reserved[] = {"CN", "PAY", "TH", "OPEN"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (!strcmp(out, reserved[i]))
            return th_err_set(err, TH_EINVAL,
                              "%s cannot be %s: tarheel's own references start with CN-, PAY-, "
                              "TH- and OPEN-; choose another",
                              name, out);
    if ((out[0] == 'S' || out[0] == 'Z') && out[1] && strspn(out + 1, "0123456789") == n - 1) {
        char mine[32];
        snprintf(mine, sizeof mine, "%c%lld", c->platform == MODEL_PLATFORM_ZID ? 'Z' : 'S',
                 (long long)c->id);
        if (strcmp(out, mine) != 0)
            return th_err_set(err, TH_EINVAL,
                              "%s %s is kept for the store tarheel numbers %s (S or Z and a "
                              "number are the prefixes it gives); choose another",
                              name, out, out + 1);
    }
    return 0;
}

int manage_setting_set(struct store_conn *c, const char *name, const char *value,
                       struct th_err *err)
{
    const struct setting *st = find_setting(name);
    if (!st)
        return th_err_set(err, TH_EINVAL,
                          "%s is not a setting; the settings are trigger, customer_per_invoice, "
                          "number_by_order, financial_invoice, inventory_id, "
                          "payment_account_id, stock_sync, stock_interval, reference_prefix, "
                          "fields_sync, name_source, price_source and cost_source",
                          name ? name : "(none)");
    if (!value) value = "";
    char *field = (char *)c + st->off;
    switch (st->kind) {
    case K_TRIGGER: {
        int v = model_status_from_name(value);
        if (v < MODEL_STATUS_NEW || v > MODEL_STATUS_COMPLETED)
            return th_err_set(err, TH_EINVAL,
                              "%s must be new, ready, in_transit or completed (the order status "
                              "at which an order is sent to Qoyod), not \"%.64s\"",
                              name, value);
        *(enum model_status *)(void *)field = (enum model_status)v;
        return 0;
    }
    case K_ONOFF: {
        int v;
        if (parse_onoff(value, &v))
            return th_err_set(err, TH_EINVAL, "%s must be on or off (true or false), not \"%.64s\"",
                              name, value);
        *(int *)(void *)field = v;
        return 0;
    }
    case K_ID: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno || v <= 0)
            return th_err_set(err, TH_EINVAL, "%s takes %s, not \"%.64s\"", name, st->what, value);
        *(int64_t *)(void *)field = v;
        return 0;
    }
    case K_SECONDS: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno || v < STORE_STOCK_INTERVAL_MIN ||
            v > STORE_STOCK_INTERVAL_MAX)
            return th_err_set(err, TH_EINVAL,
                              "%s takes seconds between stock polls, %d to %d, not \"%.64s\"",
                              name, STORE_STOCK_INTERVAL_MIN, STORE_STOCK_INTERVAL_MAX, value);
        *(int64_t *)(void *)field = v;
        return 0;
    }
    case K_PREFIX: {
        char v[STORE_REF_PREFIX_MAX + 1];
        int rc = prefix_parse(c, name, value, v, err);
        if (rc) return rc;
        char **f = (char **)(void *)field;
        free(*f);
        *f = xstrdup(v);
        return 0;
    }
    case K_SOURCE: {
        int v = store_src_from_name(value);
        if (v < 0)
            return th_err_set(err, TH_EINVAL,
                              "%s must be store or qoyod (the side whose value wins when both "
                              "changed), not \"%.64s\"",
                              name, value);
        *(int *)(void *)field = v;
        return 0;
    }
    }
    TH_BUG("setting %s has kind %d", st->name, (int)st->kind);
}
