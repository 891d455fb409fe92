/*
 * plan — the money model (see plan.h; the rules in words: docs/MONEY.md).
 *
 * Design notes.
 *  - Lines are always sent tax-exclusive (is_inclusive false): every one of
 *    1,084 real Qoyod invoices studied had exclusive lines, and Qoyod's
 *    inclusive arithmetic is not documented (qoyod.md §4.8 [I]). A store
 *    that prices VAT-inclusive has its prices taken to net by the adapter;
 *    what that costs in rounding is closed by the adjustment below.
 *  - Spreading uses the largest-remainder method on exact 128-bit products:
 *    each line first gets floor(D × w / W), the halalas left go one each to
 *    the lines with the largest remainders (earlier line on a tie). The sum
 *    is exactly D and no line gets more than its own value.
 *  - The adjustment. Let diff = target − Σ line totals. The store rounds VAT
 *    per line or per order, and a store pricing VAT-inclusive reports net
 *    unit prices rounded to the halala; Qoyod rounds per line. Within
 *    model_order_rounding_tolerance that is rounding; anything more is a
 *    disagreement that must not be papered over (fail with both totals). diff > 0: a "ROUNDING" service line at 0 % VAT of
 *    diff halalas (Qoyod refuses negative prices, so this only works one
 *    way). diff < 0: the smallest extra amount discount on one line that
 *    lowers Qoyod's total by exactly −diff (searching 1, 2, ... halalas,
 *    first line first): on a zero-rated line that is −diff itself, on a
 *    15 % line often one halala less.
 */
#include "qoyod/plan.h"

#include <stdlib.h>
#include <string.h>

#include "core/money.h"
#include "core/xmalloc.h"

int64_t plan_line_total(int64_t quantity, int64_t unit_price, int64_t discount, int32_t bp)
{
    int64_t gross = 0, v = 0;
    if (money_muldiv(quantity, unit_price, 1, &gross) != 0) return INT64_MIN;
    if (money_muldiv(gross - discount, 10000 + bp, 10000, &v) != 0) return INT64_MIN;
    return v;
}

void plan_release(struct plan *p)
{
    if (!p) return;
    free(p->l);
    memset(p, 0, sizeof *p);
}

/* Spreads total over n weights (largest remainder); returns what could not
 * be placed because it exceeds Σ w (0 normally). */
static int64_t spread(int64_t total, const int64_t *w, int64_t *out, size_t n)
{
    __int128 sum = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = 0;
        if (w[i] > 0) sum += w[i];
    }
    if (total <= 0 || sum == 0) return total > 0 ? total : 0;
    if ((__int128)total >= sum) {
        for (size_t i = 0; i < n; i++) out[i] = w[i] > 0 ? w[i] : 0;
        return (int64_t)((__int128)total - sum);
    }
    __int128 *rem = xcalloc(n, sizeof *rem);
    int64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        __int128 p = (__int128)total * w[i];
        out[i] = (int64_t)(p / sum);
        rem[i] = p % sum;
        given += out[i];
    }
    for (int64_t left = total - given; left > 0; left--) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (w[i] > 0 && out[i] < w[i] && rem[i] >= 0 && (best == n || rem[i] > rem[best]))
                best = i;
        if (best == n) break; /* cannot happen: total < Σ w */
        out[best]++;
        rem[best] = -1; /* one extra halala per line at most */
    }
    free(rem);
    return 0;
}

static struct plan_line *add(struct plan *p, size_t cap)
{
    if (p->n >= cap) return NULL;
    struct plan_line *l = &p->l[p->n++];
    memset(l, 0, sizeof *l);
    return l;
}

static int64_t line_total(const struct plan_line *l)
{
    return plan_line_total(l->quantity, l->unit_price, l->discount, l->tax_rate_bp);
}

/* Sums the lines into p->total; TH_EMONEY on overflow. */
static int sum_lines(struct plan *p, struct th_err *err)
{
    p->total = 0;
    for (size_t i = 0; i < p->n; i++) {
        p->l[i].total = line_total(&p->l[i]);
        if (p->l[i].total == INT64_MIN || p->l[i].total > MONEY_MAX_ABS)
            return th_err_set(err, TH_EMONEY, "line %zu's amount is out of range", i + 1);
        p->total += p->l[i].total;
    }
    return 0;
}

/*
 * Closes the gap between p->total and p->target (see the design notes).
 * what names the document for the message ("the store's total", "the
 * refund"). Needs room for one more line in p->l.
 */
static int adjust(struct plan *p, int64_t limit, const char *what, struct th_err *err)
{
    char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX], d[MONEY_FMT_MAX];
    int64_t diff = p->target - p->total;
    if (diff == 0) return 0;
    if (diff > limit || -diff > limit)
        return th_err_set(err, TH_EMONEY,
                          "Qoyod's line arithmetic gives %s but %s is %s (difference %s, more "
                          "than rounding can explain, at most %lld): nothing was posted",
                          money_format(p->total, a, sizeof a), what,
                          money_format(p->target, b, sizeof b), money_format(diff, d, sizeof d),
                          (long long)limit);
    if (diff > 0) {
        struct plan_line *l = &p->l[p->n++];
        *l = (struct plan_line){.kind = PLAN_ROUNDING,
                                .sku = PLAN_SKU_ROUNDING,
                                .name = "فرق التقريب - Rounding difference",
                                .item_kind = MODEL_ITEM_SERVICE,
                                .quantity = 1,
                                .unit_price = diff,
                                .total = diff};
        p->total += diff;
        p->rounding = diff;
        return 0;
    }
    for (int64_t extra = 1; extra <= 2 * -diff + 2; extra++) {
        for (size_t i = 0; i < p->n; i++) {
            struct plan_line *l = &p->l[i];
            if (l->discount + extra > l->quantity * l->unit_price) continue;
            int64_t t = plan_line_total(l->quantity, l->unit_price, l->discount + extra,
                                        l->tax_rate_bp);
            if (t != l->total + diff) continue;
            l->discount += extra;
            l->total = t;
            p->total += diff;
            p->rounding = diff;
            p->adjusted = i;
            p->adjust_discount = extra;
            return 0;
        }
    }
    return th_err_set(err, TH_EMONEY,
                      "Qoyod's line arithmetic gives %s but %s is %s (difference %s) and no "
                      "discount on one line closes it: nothing was posted",
                      money_format(p->total, a, sizeof a), what,
                      money_format(p->target, b, sizeof b), money_format(diff, d, sizeof d));
}

int plan_invoice(const struct model_order *o, struct plan *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = o->nlines + 3;
    out->l = xcalloc(cap, sizeof *out->l);
    out->target = o->total;
    int64_t *w = xcalloc(o->nlines + 2, sizeof *w), *share = xcalloc(o->nlines + 2, sizeof *share);
    for (size_t i = 0; i < o->nlines; i++)
        w[i] = o->lines[i].quantity * o->lines[i].unit_price - o->lines[i].discount;
    /* Order-level discounts go on the items; only what exceeds them (a
     * free-shipping coupon recorded as an order discount) reaches the fees,
     * shipping first. */
    int64_t left = spread(o->order_discount, w, share, o->nlines);
    int64_t fee[2] = {o->shipping, o->cod_fee}, fee_disc[2] = {0, 0};
    left = spread(left, fee, fee_disc, 2);
    int rc = 0;
    if (left > 0)
        rc = th_err_set(err, TH_EMONEY, "the order's discounts exceed its value by %lld halalas",
                        (long long)left);
    for (size_t i = 0; i < o->nlines && rc == 0; i++) {
        const struct model_line *ml = &o->lines[i];
        struct plan_line *l = add(out, cap);
        *l = (struct plan_line){.kind = PLAN_ITEM,
                                .src = i,
                                .sku = ml->sku,
                                .name = ml->name,
                                .item_kind = ml->kind,
                                .quantity = ml->quantity,
                                .unit_price = ml->unit_price,
                                .discount = ml->discount + share[i],
                                .tax_rate_bp = ml->tax_rate_bp};
    }
    static const char *const fee_sku[2] = {PLAN_SKU_SHIPPING, PLAN_SKU_COD};
    static const char *const fee_name[2] = {"الشحن - Shipping",
                                            "الدفع عند الاستلام - Cash on delivery"};
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (fee[k] <= 0) continue;
        struct plan_line *l = add(out, cap);
        *l = (struct plan_line){.kind = k ? PLAN_COD : PLAN_SHIPPING,
                                .sku = fee_sku[k],
                                .name = fee_name[k],
                                .item_kind = MODEL_ITEM_SERVICE,
                                .quantity = 1,
                                .unit_price = fee[k],
                                .discount = fee_disc[k],
                                .tax_rate_bp = o->fees_tax_rate_bp};
    }
    free(w);
    free(share);
    if (rc == 0) rc = sum_lines(out, err);
    if (rc == 0) rc = adjust(out, model_order_rounding_tolerance(o), "the store's total", err);
    if (rc) plan_release(out);
    return rc;
}

int plan_credit(const struct plan *inv, const int64_t *qty, size_t nlines, int fees,
                int64_t target, struct plan *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    size_t cap = inv->n + 1;
    out->l = xcalloc(cap, sizeof *out->l);
    int rc = 0;
    for (size_t i = 0; i < inv->n && rc == 0; i++) {
        const struct plan_line *il = &inv->l[i];
        if (il->kind != PLAN_ITEM) {
            if (fees) *add(out, cap) = *il;
            continue;
        }
        int64_t r = il->quantity;
        if (qty) r = il->src < nlines ? qty[il->src] : 0;
        if (r <= 0) continue;
        if (r > il->quantity) {
            rc = th_err_set(err, TH_EINVAL, "item '%s': %lld returned but %lld invoiced",
                            il->name ? il->name : "?", (long long)r, (long long)il->quantity);
            break;
        }
        struct plan_line *l = add(out, cap);
        *l = *il;
        l->quantity = r;
        if (r != il->quantity && money_muldiv(il->discount, r, il->quantity, &l->discount) != 0)
            rc = th_err_set(err, TH_EMONEY, "item '%s': discount out of range",
                            il->name ? il->name : "?");
    }
    if (rc == 0 && out->n == 0) rc = th_err_set(err, TH_EINVAL, "nothing is returned");
    if (rc == 0) rc = sum_lines(out, err);
    if (rc == 0) {
        out->target = target > 0 ? target : out->total;
        char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];
        if (out->target > inv->total)
            rc = th_err_set(err, TH_EMONEY, "the refund %s is more than the invoice's total %s",
                            money_format(out->target, a, sizeof a),
                            money_format(inv->total, b, sizeof b));
    }
    if (rc == 0) {
        int64_t limit = 0; /* as model_order_rounding_tolerance, for these lines */
        for (size_t i = 0; i < out->n; i++)
            limit += out->l[i].quantity * (10000 + out->l[i].tax_rate_bp) / 20000 + 1;
        rc = adjust(out, limit, "the store's refund", err);
    }
    if (rc) plan_release(out);
    return rc;
}
