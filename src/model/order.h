/*
 * order — the canonical order: what every platform adapter produces and the
 * Qoyod side consumes (the hub of hub-and-spoke).
 *
 * Owns the plain-C shape of an order, its lines and its customer, with money
 * as int64 halalas and tax rates in basis points (1500 = 15 %). It knows no
 * platform and no JSON: adapters (platform/salla_*.c, zid_*.c) fill it,
 * qoyod/ reads it. model_order_check() states the arithmetic every order
 * must satisfy before anything is posted, so a wrong mapping fails loudly
 * instead of posting a silently different total.
 */
#ifndef TH_MODEL_ORDER_H
#define TH_MODEL_ORDER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"

/* An order with more lines than this is refused (TH_ELIMIT): the largest
 * orders seen on the platforms have a few dozen lines; 500 bounds memory and
 * the Qoyod request size. */
#define MODEL_MAX_LINES 500
/* Longest text field kept (names, SKUs, emails), in bytes. Longer input is
 * refused by the adapter with TH_ETOOBIG rather than truncated silently. */
#define MODEL_MAX_TEXT 1024

/* Platforms, persisted: never renumber. */
enum model_platform {
    MODEL_PLATFORM_SALLA = 1, /* salla.sa */
    MODEL_PLATFORM_ZID = 2,   /* zid.sa */
};

/*
 * Where an order is in the store's own lifecycle, reduced to what tarheel
 * acts on. Persisted: never renumber. The merchant's transfer trigger is one
 * of NEW, READY, IN_TRANSIT, COMPLETED; each adapter documents which of its
 * statuses map to which.
 */
enum model_status {
    MODEL_STATUS_OTHER = 0,      /* a status tarheel does not act on (e.g. awaiting payment) */
    MODEL_STATUS_NEW = 1,        /* received, not yet prepared */
    MODEL_STATUS_READY = 2,      /* prepared / in progress */
    MODEL_STATUS_IN_TRANSIT = 3, /* shipped, out for delivery */
    MODEL_STATUS_COMPLETED = 4,  /* delivered / completed */
    MODEL_STATUS_CANCELLED = 5,  /* cancelled (after transfer: a credit note) */
    MODEL_STATUS_REFUNDED = 6,   /* returned / restored (after transfer: a credit note) */
    MODEL_STATUS_PARTIALLY_REFUNDED = 7, /* part returned: a sale (transferred as completed),
                                          * then a credit note per return the store lists */
};

/* What kind of thing a line sells; decides the Qoyod product `type`. */
enum model_item_kind {
    MODEL_ITEM_UNKNOWN = 0, /* the platform's type is not one we map: reported, not guessed */
    MODEL_ITEM_PRODUCT = 1, /* physical goods: Qoyod "Product", stock tracked */
    MODEL_ITEM_SERVICE = 2, /* service, digital product, booking: Qoyod "Service" */
    MODEL_ITEM_BUNDLE = 3,  /* group of products: Qoyod "Recipe" */
};

struct model_line {
    char *sku;              /* NULL or "" when the platform has none (the order fails) */
    char *name;             /* as shown to the customer */
    char *platform_type;    /* the platform's own product type text, for reasons */
    enum model_item_kind kind;
    int64_t platform_product_id;
    char *platform_product_key; /* the same as text when it is not a number (Zid's UUIDs) */
    int64_t quantity;       /* whole units */
    int64_t unit_price;     /* halalas, tax-exclusive, options included */
    int64_t discount;       /* halalas off this line (tax-exclusive), >= 0 */
    int32_t tax_rate_bp;    /* 1500 = 15 %; 0 for zero-rated or exempt */
    int64_t tax;            /* halalas of VAT on this line as the platform computed it */
};

/*
 * A return the store recorded against the order (Zid's credit notes): one
 * Qoyod credit note per key, whatever else happens to the order.
 */
struct model_refund {
    char *key;              /* the platform's stable id for the return ("CN-0001") */
    char *reason;           /* the platform's reason text, or NULL */
    int64_t amount;         /* refunded, VAT included, halalas; 0 when the store does not say */
    int64_t *qty;           /* units returned, per order line (the order's nlines entries) */
};

struct model_customer {
    int64_t platform_id;    /* 0 for a guest */
    char *name;
    char *email;
    char *phone;            /* E.164 when the platform gives a country code: "+966501234567" */
    char *city;
    char *country;
};

struct model_order {
    /* ---- identity ---- */
    enum model_platform platform;
    int64_t store_id;       /* the platform's store / merchant id */
    int64_t order_id;       /* the platform's order id */
    char *number;           /* the merchant-visible order number ("reference_id") */
    /* ---- lifecycle ---- */
    enum model_status status;
    char *status_raw;       /* the platform's status slug, for history and reasons */
    time_t created_at;      /* UTC */
    time_t updated_at;      /* UTC */
    /* ---- parties ---- */
    struct model_customer customer;
    char *payment_method;   /* the platform's slug: "cod", "mada", "bank", ... */
    char *currency;         /* ISO 4217, "SAR" */
    /* ---- money (halalas) ---- */
    size_t nlines;
    struct model_line *lines;
    int64_t shipping;       /* shipping fee, tax-exclusive */
    int64_t cod_fee;        /* cash-on-delivery fee, tax-exclusive */
    int32_t fees_tax_rate_bp; /* VAT rate on shipping and COD */
    int64_t order_discount; /* order-level discounts (coupons, loyalty), tax-exclusive */
    int64_t tax;            /* total VAT as the platform reports it */
    int64_t total;          /* what the customer pays, VAT included */
    /* ---- after the sale ---- */
    size_t nrefunds;
    struct model_refund *refunds; /* partial returns, oldest first (order_map fills them) */
};

/* Appends a return whose qty has an entry per line the order has now (so
 * add the lines first) and returns it (borrowed until the next add or the
 * order's free). Returns NULL past MODEL_MAX_LINES returns. */
struct model_refund *model_order_add_refund(struct model_order *o);

/* Returns a zeroed order (new; model_order_free). */
struct model_order *model_order_new(void);
/* Frees the order and every string it owns. NULL is a no-op. */
void model_order_free(struct model_order *o);

/* Appends a zeroed line and returns it (borrowed until the next add or the
 * order's free). Returns NULL past MODEL_MAX_LINES. */
struct model_line *model_order_add_line(struct model_order *o);

/*
 * Checks the order's arithmetic, to the halala:
 *   Σ(quantity × unit_price − discount) + shipping + cod_fee − order_discount + tax == total
 * plus: at least one line, quantities > 0, no negative amounts, discounts not
 * above what they discount. Returns 0, or TH_EMONEY / TH_EPARSE with err
 * stating both figures and the difference (for the merchant's "failed"
 * reason).
 */
int model_order_check(const struct model_order *o, struct th_err *err) TH_MUST_CHECK;

/*
 * How far, in halalas, two honest computations of this order's total may
 * drift apart by rounding alone: a store that prices VAT-inclusive reports
 * net unit prices rounded to the halala (half a halala per unit, with its
 * VAT), and each line and fee is rounded once more (one halala). Σ over the
 * lines of quantity × (1 + VAT) / 2 + 1, plus one per fee. A difference
 * beyond this is a disagreement, not rounding (docs/MONEY.md).
 */
int64_t model_order_rounding_tolerance(const struct model_order *o);

/* Σ(quantity × unit_price − discount) over the lines, in halalas. */
int64_t model_order_lines_net(const struct model_order *o);

/* Stable names for enums (persisted in logs and the API): "salla", "new". */
const char *model_platform_name(enum model_platform p);

/*
 * Phone numbers in one form, so a customer is recognised however a platform
 * or a person wrote the number: digits only after a leading "+", Saudi
 * numbers in E.164 ("+966501234567" from "0501234567", "501234567",
 * "966501234567", "00966 50 123 4567", "+966-50-123-4567"). Other numbers
 * keep their digits ("+" kept when given). Writes into out (size n);
 * returns 0, or -1 (out "") when the text has no digits.
 */
int model_phone_normalize(const char *in, char *out, size_t n);

/* A copy of text s for the model in *out: NULL when s is NULL or empty, a
 * new string otherwise; TH_ETOOBIG naming `what` (for example "Salla order
 * 1042, item 3 SKU") when s is MODEL_MAX_TEXT bytes or longer. Adapters
 * copy every text field through it, so none is ever cut short: a cut SKU
 * could match another product. */
int model_text(const char *s, const char *what, char **out, struct th_err *err) TH_MUST_CHECK;
/* The Saudi local form of a normalised number ("0501234567"), or "" when
 * it is not a Saudi mobile. Qoyod contacts typed by hand often use it. */
void model_phone_local_sa(const char *e164, char *out, size_t n);
const char *model_status_name(enum model_status s);
/* Parses a name back; returns -1 when unknown. */
int model_status_from_name(const char *name);

#endif
