/*
 * qoyod — the Qoyod API client (the accounting side of the hub).
 *
 * Owns every request tarheel makes to Qoyod (../shared/api/qoyod.md): the
 * API-KEY header, envelopes, Ransack lookups, the "404 with a string body
 * means an empty list" quirk, money on the wire as decimal strings, and the
 * mapping of Qoyod's answers to TH_E* codes. It keeps no state between calls
 * beyond the HTTP connection and never retries on its own: every failure is
 * returned classified (TH_ETEMP, TH_EPERM, TH_EUNKNOWN, TH_EAUTH; TH_ENOTFOUND
 * for a lookup that found nothing) and the worker decides; the one exception
 * is a 429 waited out when the caller set a patience (qoyod_set_patience).
 * It must not log secrets.
 *
 * One struct qoyod is one account (base URL + API key) used by one thread at
 * a time.
 */
#ifndef TH_QOYOD_QOYOD_H
#define TH_QOYOD_QOYOD_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/order.h"
#include "net/httpc.h"

/* Lines per invoice sent to Qoyod; the order model's own limit is the same. */
#define QOYOD_MAX_LINES MODEL_MAX_LINES

struct qoyod;

/* Qoyod's API, where a connection points unless told otherwise. */
#define QOYOD_BASE_DEFAULT "https://api.qoyod.com/2.0"

/* base: "https://api.qoyod.com/2.0" (no trailing slash needed). api_key is
 * copied and only ever sent in the API-KEY header. Returns new. */
struct qoyod *qoyod_new(const char *base, const char *api_key, const struct httpc_config *cfg);
void qoyod_free(struct qoyod *q);

/* HTTP status of the last answer (0 when none), for diagnostics and tests. */
long qoyod_last_status(const struct qoyod *q);
/* Sets a function called before every request (it may sleep: the worker's
 * per-account call budget). */
void qoyod_set_pace(struct qoyod *q, void (*pace)(void *arg), void *arg);
/* Retry-After of the last answer in seconds, -1 when it had none. */
long qoyod_last_retry_after(const struct qoyod *q);

/*
 * Waiting out Qoyod's rate limit, for commands a person waits on (`tarheel
 * connect`, `tarheel catalogue`); the worker never sets it (it pauses the
 * whole account instead, worker/limit.c). With a patience set, a request
 * Qoyod answers 429 is sent again after its Retry-After (1 s when it names
 * none) while the waits add up to at most max_ms; the next 429 fails the
 * call with TH_ERATE, the message naming the wait Qoyod asked for and how
 * long was waited. A 429 means Qoyod did not handle the request (qoyod.md
 * §2.7; [I]: a rate limiter answers before any handler runs), so sending a
 * create again cannot make a second document. One patience may
 * be shared by the clients of one command: max_ms is then the command's
 * total. The client neither sleeps on its own nor prints: sleep_ms (NULL:
 * nanosleep; tests count instead of sleeping) and notify (NULL: silent;
 * the CLI says it is waiting) are the caller's.
 */
struct qoyod_patience {
    long max_ms;    /* total wait allowed */
    long waited_ms; /* waited so far (updated by the clients) */
    void (*sleep_ms)(void *arg, long ms);
    void (*notify)(void *arg, long wait_s, const char *what);
    void *arg;
};
/* Interactive commands wait at most this long in all for Qoyod's rate
 * limit: Qoyod's window is one minute (300 calls, qoyod.md §2.7), so two
 * minutes outlast a window another app or a running `tarheel serve`
 * exhausted, and still end a stuck command in a time a person waits. */
#define QOYOD_PATIENCE_MS (2 * 60 * 1000L)
/* p is borrowed (NULL: a 429 fails at once, as TH_ETEMP). */
void qoyod_set_patience(struct qoyod *q, struct qoyod_patience *p);

struct qoyod_inventory {
    int64_t id;
    char name[128];
    char ar_name[128];
};

/* Lists inventory locations (Qoyod returns all, unpaged). Validates the key:
 * a wrong key is TH_EAUTH with a message saying so. *out is new (free()). */
int qoyod_inventories(struct qoyod *q, struct qoyod_inventory **out, size_t *n,
                      struct th_err *err) TH_MUST_CHECK;

/* Finds an active customer by exact phone (then email when phone is empty
 * or not found). TH_ENOTFOUND when none. */
int qoyod_contact_find(struct qoyod *q, const char *phone, const char *email, int64_t *id,
                       struct th_err *err) TH_MUST_CHECK;
/* Creates a customer from the canonical customer (name required; "Cash
 * customer"/"عميل نقدي" when used for the shared cash contact). */
int qoyod_contact_create(struct qoyod *q, const struct model_customer *c, int64_t *id,
                         struct th_err *err) TH_MUST_CHECK;

/* Finds a product by exact SKU (q[sku_eq], verified in the answer: Qoyod is
 * not trusted to have filtered). TH_ENOTFOUND when none; TH_ECONFLICT when
 * several products share the SKU (the merchant must fix that). */
int qoyod_product_find_sku(struct qoyod *q, const char *sku, int64_t *id,
                           struct th_err *err) TH_MUST_CHECK;

struct qoyod_product_spec {
    const char *sku;
    const char *name_ar;
    const char *name_en;
    const char *type;          /* "Product" | "Service" | "Expense" | "RawMaterial" | "Recipe" */
    int track_quantity;
    int64_t selling_price;     /* halalas, tax-exclusive */
    int64_t buying_price;      /* halalas */
    int64_t unit_type_id;      /* 0 = 6 (piece) */
    int64_t category_id;       /* 0 = 1 (General) */
    int64_t tax_id;            /* 0 = 1 (15 % VAT) */
    int64_t sales_account_id;  /* 0 = let Qoyod default */
    int64_t expense_account_id;
};
int qoyod_product_create(struct qoyod *q, const struct qoyod_product_spec *p, int64_t *id,
                         struct th_err *err) TH_MUST_CHECK;

struct qoyod_line_spec {
    int64_t product_id;
    const char *description;
    int64_t quantity;          /* whole units */
    int64_t unit_price;        /* halalas, tax-exclusive */
    int64_t discount;          /* halalas off the line (sent as discount_type "amount") */
    int32_t tax_rate_bp;       /* 1500 = 15 % */
};

struct qoyod_invoice_spec {
    int64_t contact_id;
    const char *reference;     /* unique per account; the exactly-once key */
    const char *description;
    const char *issue_date;    /* "YYYY-MM-DD" */
    const char *due_date;      /* NULL = issue_date */
    int approved;              /* 1 "Approved", 0 "Draft" */
    int64_t inventory_id;
    const char *payment_method; /* ZATCA code or NULL */
    size_t nlines;
    const struct qoyod_line_spec *lines;
};

struct qoyod_invoice_info {
    int64_t id;
    char reference[128];
    char status[32];           /* "Draft", "Approved", "Partially Paid", "Paid" */
    int64_t total;             /* halalas */
    int64_t due;               /* halalas */
};

/* Looks an invoice up by its reference (q[reference_eq]). TH_ENOTFOUND when
 * there is none: this is how an unknown outcome is settled. */
int qoyod_invoice_find(struct qoyod *q, const char *reference, struct qoyod_invoice_info *out,
                       struct th_err *err) TH_MUST_CHECK;
/* Creates an invoice. A duplicate reference comes back as TH_ECONFLICT. */
int qoyod_invoice_create(struct qoyod *q, const struct qoyod_invoice_spec *s,
                         struct qoyod_invoice_info *out, struct th_err *err) TH_MUST_CHECK;

/* The JSON body qoyod_invoice_create sends for s, exactly (new text; free()):
 * for the golden tests and for reading what was asked. */
char *qoyod_invoice_body(const struct qoyod_invoice_spec *s);

/* A credit note (sales return) against an invoice (§4.11), always Approved:
 * approving returns stock to the inventory [I]. */
struct qoyod_credit_spec {
    int64_t contact_id;        /* the invoice's customer */
    int64_t invoice_id;        /* the credited invoice, sent as parent_id [I] */
    const char *reference;     /* unique per account; the exactly-once key */
    const char *reason;        /* issuance_reason, free text (may be NULL) */
    const char *issue_date;    /* "YYYY-MM-DD" */
    int64_t inventory_id;
    size_t nlines;
    const struct qoyod_line_spec *lines;
};

struct qoyod_credit_info {
    int64_t id;
    char reference[128];
    char status[32];           /* "Draft", "Unused", "Partially Used", "Used" */
    int64_t total;             /* total_amount, halalas */
    int64_t remaining;         /* remaining_amount, halalas (not yet allocated) */
    int64_t parent_id;         /* the credited invoice; 0 when none */
};

/* Looks a credit note up by its reference (q[reference_eq]); TH_ENOTFOUND
 * when there is none, TH_ECONFLICT when several share it. */
int qoyod_credit_note_find(struct qoyod *q, const char *reference, struct qoyod_credit_info *out,
                           struct th_err *err) TH_MUST_CHECK;
/* Creates a credit note. A duplicate reference comes back as TH_ECONFLICT;
 * a lost answer as TH_EUNKNOWN (look it up before anything else). */
int qoyod_credit_note_create(struct qoyod *q, const struct qoyod_credit_spec *s,
                             struct qoyod_credit_info *out, struct th_err *err) TH_MUST_CHECK;
/* The JSON body qoyod_credit_note_create sends (new text; free()). */
char *qoyod_credit_note_body(const struct qoyod_credit_spec *s);
/* Allocates amount of a credit note to an invoice's due amount
 * (POST /invoices/{id}/allocations, source_type CreditNote). */
int qoyod_invoice_allocate(struct qoyod *q, int64_t invoice_id, int64_t credit_note_id,
                           int64_t amount, const char *date, struct th_err *err) TH_MUST_CHECK;

/* An invoice or credit note as a list shows it (reconciliation). */
struct qoyod_doc {
    int64_t id;
    char reference[128];
    char description[160];     /* invoices: tarheel writes "<platform> order <number>" */
    char status[32];
    char date[11];             /* issue_date */
    int64_t total;             /* halalas: total (invoices), total_amount (credit notes) */
    int64_t parent_id;         /* credit notes: the credited invoice, 0 when none */
};
/* Pages a reconciliation list stops after (of 100 documents each). */
#define QOYOD_MAX_LIST_PAGES 500
/* Every invoice / credit note issued from `from` to `to` (YYYY-MM-DD, both
 * included), by id. *out is new (free()). TH_ELIMIT past
 * QOYOD_MAX_LIST_PAGES pages. */
int qoyod_invoices_list(struct qoyod *q, const char *from, const char *to, struct qoyod_doc **out,
                        size_t *n, struct th_err *err) TH_MUST_CHECK;
int qoyod_credit_notes_list(struct qoyod *q, const char *from, const char *to,
                            struct qoyod_doc **out, size_t *n, struct th_err *err) TH_MUST_CHECK;

/* Finds a payment (receipt) by reference among the invoice payments
 * (q[reference_eq]). TH_ENOTFOUND when none; *id set otherwise. */
int qoyod_payment_find(struct qoyod *q, const char *reference, int64_t *id,
                       struct th_err *err) TH_MUST_CHECK;
/* Pays an invoice: POST /invoice_payments. */
int qoyod_payment_create(struct qoyod *q, int64_t invoice_id, int64_t account_id,
                         int64_t amount, const char *date, const char *reference,
                         int64_t *id, struct th_err *err) TH_MUST_CHECK;

/*
 * Sets a product's stock at an inventory location to `quantity` (an
 * inventory count: POST /inventory_adjustments, actual_quantity is absolute),
 * valued at unit_value halalas each. Used once per product, when tarheel
 * creates it in Qoyod, to book the opening balance. Not idempotent in
 * effect only if stock moved in between; repeating the same count is
 * harmless.
 */
int qoyod_stock_set(struct qoyod *q, int64_t inventory_id, int64_t product_id, int64_t quantity,
                    int64_t unit_value, const char *date, struct th_err *err) TH_MUST_CHECK;
/* The same with the accounts named: increase_account takes an increase (the
 * opening-balance account), decrease_account a decrease; 0 = 18 / 12. */
int qoyod_stock_count(struct qoyod *q, int64_t inventory_id, int64_t product_id, int64_t quantity,
                      int64_t unit_value, const char *date, int64_t increase_account,
                      int64_t decrease_account, struct th_err *err) TH_MUST_CHECK;
/* The same with the count's description (NULL: "Stock count (tarheel)"):
 * tarheel's corrections of an opening balance say what they are. */
int qoyod_stock_count_as(struct qoyod *q, int64_t inventory_id, int64_t product_id,
                         int64_t quantity, int64_t unit_value, const char *date,
                         int64_t increase_account, int64_t decrease_account,
                         const char *description, struct th_err *err) TH_MUST_CHECK;
/* One product's stock at an inventory location, in whole units (GET
 * /products/<id>, inventories[].stock, §4.2; cut toward zero; 0 when the
 * product is not listed there). */
int qoyod_product_stock(struct qoyod *q, int64_t inventory_id, int64_t product_id,
                        int64_t *qty, struct th_err *err) TH_MUST_CHECK;


/* ---- chart of accounts and categories (worker/catalogue.c) ---- */

struct qoyod_account {
    int64_t id;
    char code[32];
    char name_en[160];
    char name_ar[160];
    char type[32];             /* in lists the root class: Asset, Liability, Equity, Revenue, Expense */
};

/* Every account (Qoyod does not page them, §4.1). *out is new (free()). */
int qoyod_accounts(struct qoyod *q, struct qoyod_account **out, size_t *n,
                   struct th_err *err) TH_MUST_CHECK;

struct qoyod_account_spec {
    const char *name_en, *name_ar;
    const char *type;          /* the create enum (§4.1): "Sale", "DirectCost", "Equity", ... */
    const char *parent_kind;   /* seed 003's hierarchy: main account ("Revenue") */
    const char *branch_kind;   /* branch account ("Sales") */
};
/* Creates an account; no code is sent (seed 003: generated when omitted).
 * A name already taken comes back as TH_EPERM naming it. */
int qoyod_account_create(struct qoyod *q, const struct qoyod_account_spec *s, int64_t *id,
                         struct th_err *err) TH_MUST_CHECK;

struct qoyod_category {
    int64_t id;
    char name[256];
    int64_t parent_id;         /* 0: none */
};

/* Every product category (not paged, §4.3). *out is new (free()). */
int qoyod_categories(struct qoyod *q, struct qoyod_category **out, size_t *n,
                     struct th_err *err) TH_MUST_CHECK;
/* Creates a product category (parent_id 0: none). */
int qoyod_category_create(struct qoyod *q, const char *name, int64_t parent_id, int64_t *id,
                          struct th_err *err) TH_MUST_CHECK;

/* ---- stock reads (the stock poller) ---- */

/* Products a stock page asks for: Qoyod's largest page (§2.6). */
#define QOYOD_STOCK_PER_PAGE 100

struct qoyod_stock_item {
    int64_t product_id;
    char sku[128];             /* "" when the product has none (or a longer one) */
    int tracked;               /* track_quantity: only tracked products carry stock */
    int64_t qty;               /* whole units at the inventory asked for (toward zero) */
    int64_t updated_ms;        /* the product's updated_at, unix ms; 0 when absent */
};

struct qoyod_stock_page {
    struct qoyod_stock_item *items; /* new; qoyod_stock_page_release */
    size_t n;
    int more;                  /* 1: ask for page + 1 */
};
void qoyod_stock_page_release(struct qoyod_stock_page *p);

/*
 * One page (1-based, QOYOD_STOCK_PER_PAGE products) of the account's
 * products with their stock at inventory_id. since_ms > 0 asks only for
 * products updated at or after that instant (q[updated_at_gteq], §2.9),
 * oldest update first (q[s]=updated_at asc, ties by id), so a cursor can
 * follow; since_ms == 0 lists every product by id (a full scan). An empty
 * page is n == 0 (Qoyod's 404 with a string body). Errors as every call.
 */
int qoyod_stock_page(struct qoyod *q, int64_t inventory_id, int64_t since_ms, int page,
                     struct qoyod_stock_page *out, struct th_err *err) TH_MUST_CHECK;

/* ---- product fields (the field sync, worker/fields.c) ---- */

/* A product's fields the field sync keeps in step with the store. */
struct qoyod_product_fields {
    int64_t product_id;
    char sku[128];             /* "" when none (or longer) */
    char name_ar[256], name_en[256];
    int64_t selling_price;     /* halalas */
    int price_inclusive;       /* is_selling_price_inclusive */
    int64_t buying_price;      /* halalas; 0 when none */
    int64_t updated_ms;        /* updated_at, unix ms; 0 when absent */
};

struct qoyod_product_page {
    struct qoyod_product_fields *items; /* new; qoyod_product_page_release */
    size_t n;
    int more;
};
void qoyod_product_page_release(struct qoyod_product_page *p);

/* One page (1-based, QOYOD_STOCK_PER_PAGE) of the account's products:
 * since_ms > 0 only those updated at or after it, oldest update first (as
 * qoyod_stock_page); 0 every product by id. */
int qoyod_product_page(struct qoyod *q, int64_t since_ms, int page,
                       struct qoyod_product_page *out, struct th_err *err) TH_MUST_CHECK;
/* The product with this SKU (q[sku_eq], checked): TH_ENOTFOUND when none,
 * TH_ECONFLICT when several share it. */
int qoyod_product_get_sku(struct qoyod *q, const char *sku, struct qoyod_product_fields *out,
                          struct th_err *err) TH_MUST_CHECK;

enum {
    QOYOD_FIELD_NAME = 1,      /* name_ar (and name_en when it equalled name_ar) */
    QOYOD_FIELD_PRICE = 2,     /* selling_price and is_selling_price_inclusive */
    QOYOD_FIELD_COST = 4,      /* buying_price */
};
/*
 * PUT /products/{id} with only the fields of mask (§4.2: {"product": {only
 * changed fields}}). A new name replaces name_ar, and name_en too when it
 * was the same as name_ar (tarheel creates products so). *out (may be NULL)
 * is the product as Qoyod answers it. A write whose answer was lost is
 * TH_EUNKNOWN (writing the same values again is harmless).
 */
int qoyod_product_update(struct qoyod *q, const struct qoyod_product_fields *was,
                         const struct qoyod_product_fields *want, unsigned mask,
                         struct qoyod_product_fields *out, struct th_err *err) TH_MUST_CHECK;

/* Parses a Qoyod timestamp ("2024-02-02T02:22:04.000+03:00", "…Z", a bare
 * date in Riyadh time) into unix ms. Returns 0 or -1. */
int qoyod_time_parse(const char *text, int64_t *ms);

#endif
