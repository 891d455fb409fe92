/*
 * plan — the money model: the exact lines of the Qoyod invoice for a
 * canonical order, and of the credit note for a return (docs/MONEY.md).
 *
 * Owns the arithmetic that decides what Qoyod is asked to post: how
 * order-level discounts (coupons, loyalty) are spread over the lines, the
 * service lines that carry shipping and cash-on-delivery fees, Qoyod's own
 * per-line arithmetic, and the smallest rounding adjustment that makes
 * Qoyod's total equal the store's to the halala. It is pure: no I/O, no
 * store, no product ids (the caller maps each line's SKU to a Qoyod
 * product). It never returns a plan whose total differs from its target:
 * when the difference is more than rounding can explain it fails with both
 * totals and the difference.
 */
#ifndef TH_QOYOD_PLAN_H
#define TH_QOYOD_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/order.h"

/* SKUs of the Qoyod Service products tarheel creates once per store for
 * the lines that are not items. */
#define PLAN_SKU_SHIPPING "SHIPPING"
#define PLAN_SKU_COD "COD"
#define PLAN_SKU_ROUNDING "ROUNDING"

enum plan_line_kind {
    PLAN_ITEM = 0,     /* an order line */
    PLAN_SHIPPING = 1, /* the shipping fee (a Service) */
    PLAN_COD = 2,      /* the cash-on-delivery fee (a Service) */
    PLAN_ROUNDING = 3, /* the rounding difference (a Service at 0 % VAT) */
};

struct plan_line {
    enum plan_line_kind kind;
    size_t src;                  /* PLAN_ITEM: index of the order line */
    const char *sku;             /* borrowed from the order, or a PLAN_SKU_* */
    const char *name;            /* borrowed from the order, or a fixed text */
    enum model_item_kind item_kind;
    int64_t quantity;            /* whole units */
    int64_t unit_price;          /* halalas, tax-exclusive */
    int64_t discount;            /* halalas off the line (an amount), tax-exclusive */
    int32_t tax_rate_bp;         /* 1500 = 15 % */
    int64_t total;               /* Qoyod's line total, VAT included */
};

struct plan {
    size_t n;
    struct plan_line *l;         /* owned: plan_release */
    int64_t target;              /* the store's figure the plan must reach */
    int64_t total;               /* Σ line totals; equals target on success */
    /* The adjustment made, in halalas: > 0 a rounding line was added, < 0
     * line `adjusted` took that much more discount (adjust_discount
     * halalas of it, before VAT), 0 none. */
    int64_t rounding;
    size_t adjusted;
    int64_t adjust_discount;
};

/* Qoyod's line total (qoyod.md §4.8): round2((q × price − discount) ×
 * (1 + bp/10000)), half away from zero. INT64_MIN when it overflows. */
int64_t plan_line_total(int64_t quantity, int64_t unit_price, int64_t discount, int32_t bp);

/*
 * The invoice of order o: its item lines (order-level discounts spread over
 * them in proportion to their value, largest remainders taking the odd
 * halalas), then shipping and cash on delivery as service lines, then, when
 * Qoyod's per-line arithmetic lands off the store's total by no more than
 * rounding explains (model_order_rounding_tolerance), the smallest
 * adjustment that closes the gap. The
 * order must have passed model_order_check. Returns 0 with *out filled
 * (release it), or TH_EMONEY with err stating both totals and the
 * difference (nothing should be posted).
 */
int plan_invoice(const struct model_order *o, struct plan *out, struct th_err *err) TH_MUST_CHECK;

/*
 * The credit note for a return against invoice plan inv. qty (NULL: every
 * unit of every item) gives the units returned per order line (index as
 * in the order, nlines entries); each credited item line keeps its unit
 * price and VAT rate and takes its discount in proportion to the units
 * returned. fees: also credit the shipping, cash-on-delivery and rounding
 * lines. target: what the store refunded, VAT included (0: what the lines
 * come to); reached like an invoice's total, or TH_EMONEY with both
 * figures. TH_EINVAL when a quantity is more than was invoiced or nothing
 * is returned.
 */
int plan_credit(const struct plan *inv, const int64_t *qty, size_t nlines, int fees,
                int64_t target, struct plan *out, struct th_err *err) TH_MUST_CHECK;

/* Frees the lines. */
void plan_release(struct plan *p);

#endif
