/* order — the canonical order model (see order.h). */
#include "model/order.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/money.h"
#include "core/xmalloc.h"

struct model_order *model_order_new(void)
{
    return xcalloc(1, sizeof(struct model_order));
}

static void customer_release(struct model_customer *c)
{
    free(c->name);
    free(c->email);
    free(c->phone);
    free(c->city);
    free(c->country);
}

void model_order_free(struct model_order *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->nlines; i++) {
        free(o->lines[i].sku);
        free(o->lines[i].name);
        free(o->lines[i].platform_type);
        free(o->lines[i].platform_product_key);
    }
    free(o->lines);
    for (size_t i = 0; i < o->nrefunds; i++) {
        free(o->refunds[i].key);
        free(o->refunds[i].reason);
        free(o->refunds[i].qty);
    }
    free(o->refunds);
    customer_release(&o->customer);
    free(o->number);
    free(o->status_raw);
    free(o->payment_method);
    free(o->currency);
    free(o);
}

struct model_line *model_order_add_line(struct model_order *o)
{
    if (o->nlines >= MODEL_MAX_LINES) return NULL;
    o->lines = xrealloc(o->lines, (o->nlines + 1) * sizeof *o->lines);
    struct model_line *l = &o->lines[o->nlines++];
    memset(l, 0, sizeof *l);
    return l;
}

struct model_refund *model_order_add_refund(struct model_order *o)
{
    if (o->nrefunds >= MODEL_MAX_LINES) return NULL;
    o->refunds = xrealloc(o->refunds, (o->nrefunds + 1) * sizeof *o->refunds);
    struct model_refund *r = &o->refunds[o->nrefunds++];
    memset(r, 0, sizeof *r);
    r->qty = xcalloc(o->nlines ? o->nlines : 1, sizeof *r->qty);
    return r;
}

int64_t model_order_lines_net(const struct model_order *o)
{
    int64_t sum = 0;
    for (size_t i = 0; i < o->nlines; i++)
        sum += o->lines[i].quantity * o->lines[i].unit_price - o->lines[i].discount;
    return sum;
}

int64_t model_order_rounding_tolerance(const struct model_order *o)
{
    int64_t t = 0;
    for (size_t i = 0; i < o->nlines; i++) {
        int64_t q = o->lines[i].quantity > 0 ? o->lines[i].quantity : 0;
        if (q > 1000000) q = 1000000;
        t += q * (10000 + o->lines[i].tax_rate_bp) / 20000 + 1;
    }
    return t + (o->shipping > 0) + (o->cod_fee > 0);
}

int model_order_check(const struct model_order *o, struct th_err *err)
{
    char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX], d[MONEY_FMT_MAX];
    if (o->nlines == 0)
        return th_err_set(err, TH_EPARSE, "order %s has no items", o->number ? o->number : "?");
    for (size_t i = 0; i < o->nlines; i++) {
        const struct model_line *l = &o->lines[i];
        const char *name = l->name ? l->name : "?";
        /* Bound every factor so the sums below cannot overflow int64. */
        if (l->quantity <= 0 || l->quantity > 1000000)
            return th_err_set(err, TH_EPARSE, "item '%s' has quantity %lld", name,
                              (long long)l->quantity);
        if (l->unit_price < 0 || l->unit_price > INT64_C(1000000000000) || l->discount < 0 ||
            l->tax < 0)
            return th_err_set(err, TH_EMONEY, "item '%s' has a negative or huge amount", name);
        if (l->discount > l->quantity * l->unit_price)
            return th_err_set(err, TH_EMONEY, "item '%s': discount %s exceeds its price %s", name,
                              money_format(l->discount, a, sizeof a),
                              money_format(l->quantity * l->unit_price, b, sizeof b));
        if (l->tax_rate_bp < 0 || l->tax_rate_bp > 10000)
            return th_err_set(err, TH_EPARSE, "item '%s' has tax rate %d.%02d %%", name,
                              l->tax_rate_bp / 100, l->tax_rate_bp % 100);
    }
    if (o->shipping < 0 || o->cod_fee < 0 || o->order_discount < 0 || o->tax < 0 || o->total < 0)
        return th_err_set(err, TH_EMONEY, "order %s has a negative amount",
                          o->number ? o->number : "?");
    int64_t net = model_order_lines_net(o);
    if (o->order_discount > net + o->shipping + o->cod_fee)
        return th_err_set(err, TH_EMONEY, "order %s: discount %s exceeds the order's value %s",
                          o->number ? o->number : "?", money_format(o->order_discount, a, sizeof a),
                          money_format(net + o->shipping + o->cod_fee, b, sizeof b));
    int64_t want = net + o->shipping + o->cod_fee - o->order_discount + o->tax;
    if (want != o->total)
        return th_err_set(err, TH_EMONEY,
                          "order %s: items, fees, discounts and VAT add up to %s but the store's "
                          "total is %s (difference %s)",
                          o->number ? o->number : "?", money_format(want, a, sizeof a),
                          money_format(o->total, b, sizeof b),
                          money_format(o->total - want, d, sizeof d));
    return 0;
}

static const char *const platform_names[] = {[MODEL_PLATFORM_SALLA] = "salla",
                                             [MODEL_PLATFORM_ZID] = "zid"};
static const char *const status_names[] = {
    [MODEL_STATUS_OTHER] = "other",         [MODEL_STATUS_NEW] = "new",
    [MODEL_STATUS_READY] = "ready",         [MODEL_STATUS_IN_TRANSIT] = "in_transit",
    [MODEL_STATUS_COMPLETED] = "completed", [MODEL_STATUS_CANCELLED] = "cancelled",
    [MODEL_STATUS_REFUNDED] = "refunded",   [MODEL_STATUS_PARTIALLY_REFUNDED] = "partially_refunded",
};

const char *model_platform_name(enum model_platform p)
{
    if ((size_t)p < sizeof platform_names / sizeof platform_names[0] && platform_names[p])
        return platform_names[p];
    return "unknown";
}

const char *model_status_name(enum model_status s)
{
    if ((size_t)s < sizeof status_names / sizeof status_names[0]) return status_names[s];
    return "unknown";
}

int model_status_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof status_names / sizeof status_names[0]; i++)
        if (strcmp(status_names[i], name) == 0) return (int)i;
    return -1;
}

int model_text(const char *s, const char *what, char **out, struct th_err *err)
{
    *out = NULL;
    if (!s || !*s) return 0;
    size_t n = strlen(s);
    if (n >= MODEL_MAX_TEXT)
        return th_err_set(err, TH_ETOOBIG, "%s is %zu bytes long; at most %d are kept", what, n,
                          MODEL_MAX_TEXT - 1);
    *out = xstrdup(s);
    return 0;
}

int model_phone_normalize(const char *in, char *out, size_t n)
{
    char d[32];
    size_t k = 0;
    int plus = 0;
    for (const char *p = in ? in : ""; *p && k + 1 < sizeof d; p++) {
        if (*p >= '0' && *p <= '9') d[k++] = *p;
        else if (*p == '+' && k == 0) plus = 1;
    }
    d[k] = '\0';
    const char *digits = d;
    if (!plus && !strncmp(digits, "00", 2)) digits += 2, plus = 1;
    size_t len = strlen(digits);
    if (!len) {
        if (n) out[0] = '\0';
        return -1;
    }
    if (!plus && len == 10 && digits[0] == '0' && digits[1] == '5') /* 05XXXXXXXX */
        snprintf(out, n, "+966%s", digits + 1);
    else if (!plus && len == 9 && digits[0] == '5') /* 5XXXXXXXX */
        snprintf(out, n, "+966%s", digits);
    else if (!plus && len == 12 && !strncmp(digits, "9665", 4)) /* 9665XXXXXXXX */
        snprintf(out, n, "+%s", digits);
    else if (plus && len == 13 && !strncmp(digits, "96605", 5)) /* +966 05... */
        snprintf(out, n, "+966%s", digits + 4);
    else
        snprintf(out, n, "%s%s", plus ? "+" : "", digits);
    return 0;
}

void model_phone_local_sa(const char *e164, char *out, size_t n)
{
    if (e164 && strlen(e164) == 13 && !strncmp(e164, "+9665", 5))
        snprintf(out, n, "0%s", e164 + 4);
    else if (n)
        out[0] = '\0';
}
