/*
 * zid — the Zid adapter (see zid.h).
 *
 * Money. An order's amounts come from two places (zid.md §4.3):
 *   products[]        net_price (VAT-exclusive unit price), quantity,
 *                     tax_percentage (a fraction: 0.15), tax_amount (the
 *                     line's VAT), gross_price (VAT-inclusive unit price);
 *   payment.invoice[] coded lines, discounts negative, amounts pre-VAT:
 *     shipping                          → shipping
 *     shipping_discount                 → lowers shipping (the rest, if any,
 *                                         becomes order discount)
 *     cash_on_delivery                  → cod_fee (the emulator's code: no
 *                                         capture shows one, open question 7)
 *     coupon, products_discount,
 *     loyalty_redemption, discounts     → order_discount
 *     vat                               → tax
 *     total                             → total (else the order's order_total)
 *     sub_totals_*, taxable_amount and unknown codes are not booked.
 * Zid computes VAT once, on the order's taxable amount; the canonical order
 * keeps that figure as its tax and the order total as Zid states it, so a
 * mapping that does not add up is caught by model_order_check (in the
 * worker, after the order's status is recorded) with both totals named.
 * The one adjustment made here is the halalas lost rounding Zid's
 * many-decimal net prices (see map_order), within rounding's reach.
 *
 * Every amount is parsed from Zid's text ("223.56000086523000") to halalas,
 * half away from zero. Currencies with three decimals (KWD, BHD, OMR, ...)
 * cannot be held in halalas exactly: such orders are refused (TH_EMONEY).
 */
#include "platform/zid.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"

/* Zid tokens live a year; the answer's expires_in says so, this is only
 * for an answer without it (zid.md §2.2: the SDK falls back to the same). */
#define ZID_DEFAULT_TTL_S 31536000

/* ---------------------------------------------------------------------- */
/* Mappings                                                                 */

enum model_status zid_status_map(const char *code)
{
    static const struct {
        const char *code;
        enum model_status st;
    } map[] = {
        {"new", MODEL_STATUS_NEW},
        /* Being prepared is not yet "Ready" (the seeds: the ready trigger
         * waits for the status Ready): for triggers it counts as new. */
        {"preparing", MODEL_STATUS_NEW},
        {"ready", MODEL_STATUS_READY},
        {"indelivery", MODEL_STATUS_IN_TRANSIT}, /* inDelivery in conditions (X2) */
        {"delivered", MODEL_STATUS_COMPLETED},
        {"cancelled", MODEL_STATUS_CANCELLED},
        {"canceled", MODEL_STATUS_CANCELLED},    /* the list filter's spelling (X1) */
        {"reversed", MODEL_STATUS_REFUNDED},
        /* A partial return is a sale plus credit notes for what came back
         * (the order's credit notes, read by order_fetch). */
        {"partially_reversed", MODEL_STATUS_PARTIALLY_REFUNDED},
    };
    for (size_t i = 0; code && i < sizeof map / sizeof map[0]; i++)
        if (strcasecmp(map[i].code, code) == 0) return map[i].st;
    return MODEL_STATUS_OTHER;
}

enum model_item_kind zid_kind_map(const char *product_class)
{
    if (!product_class || !*product_class) return MODEL_ITEM_PRODUCT;
    /* Vouchers are codes sold, not goods shipped (zid.md §5.2 counts them
     * apart: voucher_products_count). Other classes are not documented:
     * reported by the worker, not guessed. */
    if (strcasecmp(product_class, "voucher") == 0) return MODEL_ITEM_SERVICE;
    return MODEL_ITEM_UNKNOWN;
}

int zid_phone_normalize(const char *mobile, char *out, size_t n)
{
    /* Marketplace orders mask customer data ("***00", zid.md §1.1): the
     * digits left are not a number anyone can be found by. */
    if (!mobile || strchr(mobile, '*')) {
        if (n) out[0] = '\0';
        return -1;
    }
    return model_phone_normalize(mobile, out, n);
}

/* ---------------------------------------------------------------------- */
/* Webhooks                                                                 */

static int peek_store(const char *body, size_t len, int64_t *store_id, struct th_err *err)
{
    json_t *root = jv_parse(body, len, JV_MAX_DEPTH, err);
    if (!root) return err ? err->code : TH_EPARSE;
    int rc = jv_get_id(root, "store_id", store_id, err);
    json_decref(root);
    if (rc == TH_ENOTFOUND)
        return th_err_set(err, TH_ENOTFOUND, "the Zid webhook has no \"store_id\"");
    return rc;
}

/*
 * Zid signs nothing (zid.md §3.4): a subscription created with username and
 * password makes every delivery carry `Authorization: Basic
 * base64(user:pass)`, and that is compared with the store's secret
 * ("user:pass") encoded the same way. The per-store URL token is the HTTP
 * layer's check. A NULL strategy means "basic", the only one Zid has.
 */
static int verify(const struct platform_auth *auth, platform_header_fn header, void *arg,
                  const char *body, size_t len, struct th_err *err)
{
    const char *strategy = auth->strategy ? auth->strategy : "basic";
    if (strcasecmp(strategy, "basic") != 0)
        return th_err_set(err, TH_EAUTH, "the webhook strategy '%.40s' does not exist for Zid, "
                          "which signs nothing and sends HTTP Basic credentials: set the "
                          "store's strategy to \"basic\"", strategy);
    if (!auth->secret || !*auth->secret)
        return th_err_set(err, TH_EAUTH, "no webhook credential (user:password) is configured "
                          "for this Zid store");
    const char *got = header(arg, "Authorization");
    if (!got)
        return th_err_set(err, TH_EAUTH, "the Authorization header is missing: the Zid webhook "
                          "must be created with the store's username and password");
    while (*got == ' ') got++;
    if (strncasecmp(got, "Basic ", 6) != 0)
        return th_err_set(err, TH_EAUTH, "the Authorization header is not HTTP Basic");
    got += 6;
    while (*got == ' ') got++;
    size_t glen = strlen(got);
    while (glen && (got[glen - 1] == ' ' || got[glen - 1] == '\t')) glen--;

    size_t slen = strlen(auth->secret);
    char *want = xmalloc(4 * ((slen + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)want, (const unsigned char *)auth->secret, (int)slen);
    char *have = xstrndup(got, glen);
    int ok = platform_secure_eq(have, want);
    free(want);
    free(have);
    if (!ok)
        return th_err_set(err, TH_EAUTH, "the Basic credentials do not match the store's webhook "
                          "username and password");
    return 0;
}

static void sha256_hex(const void *data, size_t len, char *out, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    size_t o = 0;
    for (unsigned i = 0; i < mdlen && o + 3 <= n; i++, o += 2) snprintf(out + o, 3, "%02x", md[i]);
}

/* order_status.code as text (an object's code, or a bare string or number:
 * the SDK types the code str | int). Writes "" when absent. */
static void status_code(const json_t *d, char *out, size_t n)
{
    json_t *st = json_object_get(d, "order_status");
    if (json_is_object(st) ? !jv_get_text(st, "code", out, n) : !jv_get_text(d, "order_status",
                                                                              out, n))
        out[0] = '\0';
}

static int parse_event(const char *body, size_t len, struct platform_event *out,
                       struct th_err *err)
{
    memset(out, 0, sizeof *out);
    json_t *root = jv_parse(body, len, JV_MAX_DEPTH, err);
    if (!root) return err ? err->code : TH_EPARSE;
    int rc = 0;
    if (!json_is_object(root)) {
        rc = th_err_set(err, TH_EPARSE, "the Zid webhook is not a JSON object");
        goto done;
    }
    if ((rc = jv_get_id(root, "store_id", &out->store_id, err)) != 0) {
        if (rc == TH_ENOTFOUND) rc = th_err_set(err, TH_EPARSE, "the Zid webhook has no store_id");
        goto done;
    }
    const char *app_ev = jv_get_str(root, "event_name");
    if (app_ev) {
        /* Partner-dashboard app events are flat and named (§3.7); they
         * carry no id, so the body's digest is the dedupe key. */
        if (strlen(app_ev) >= sizeof out->name) {
            rc = th_err_set(err, TH_EPARSE, "the Zid app event name is too long");
            goto done;
        }
        snprintf(out->name, sizeof out->name, "%s", app_ev);
        sha256_hex(body, len, out->dedupe_key, sizeof out->dedupe_key);
        out->kind = strcmp(app_ev, "app.market.application.uninstall") == 0
                        ? PLATFORM_EV_UNINSTALL
                        : PLATFORM_EV_OTHER;
        goto done;
    }
    /* Order events are the bare order; their name is in the URL tarheel
     * registered, which the HTTP layer knows (§3.5). */
    if ((rc = jv_get_id(root, "id", &out->order_id, err)) != 0) {
        rc = th_err_set(err, TH_EPARSE, "the Zid webhook is neither an order (no integer \"id\") "
                        "nor an app event (no \"event_name\")");
        goto done;
    }
    out->kind = PLATFORM_EV_ORDER;
    snprintf(out->name, sizeof out->name, "order");
    /* Zid sends no delivery id (§3.3). A redelivery repeats the order's
     * state; a real change moves its status, payment status or updated_at.
     * The key is a digest of exactly those, so an order.create and an
     * order.status.update about the same state are one event too. */
    char code[64], pay[64], upd[64];
    status_code(root, code, sizeof code);
    if (!jv_get_text(root, "payment_status", pay, sizeof pay)) pay[0] = '\0';
    if (!jv_get_text(root, "updated_at", upd, sizeof upd)) upd[0] = '\0';
    char *key = xasprintf("%lld\n%lld\n%s\n%s\n%s", (long long)out->store_id,
                          (long long)out->order_id, code, pay, upd);
    sha256_hex(key, strlen(key), out->dedupe_key, sizeof out->dedupe_key);
    free(key);
done:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Orders                                                                   */

/* "2026-01-21 09:10:11" (UTC, zid.md §1.1; an ISO "T" is accepted too) →
 * unix time, 0 when absent or unreadable. */
static time_t utc_time(const char *s)
{
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%d%*c%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) < 3)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

/* Text of v as a new string in *out (NULL when absent or empty): a string,
 * an integer, or a localised {"ar","en"} object (Arabic first, as the
 * merchant's invoices are Arabic). Longer than the model keeps →
 * TH_ETOOBIG naming `what`. */
static int text_of(const json_t *v, const char *what, char **out, struct th_err *err)
{
    char num[32];
    const char *s = NULL;
    *out = NULL;
    if (json_is_object(v)) {
        s = jv_get_str(v, "ar");
        if (!s || !*s) s = jv_get_str(v, "en");
    } else if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        s = num;
    }
    return model_text(s, what, out, err);
}

static int text_at(const json_t *o, const char *key, const char *what, char **out,
                   struct th_err *err)
{
    return text_of(json_is_object(o) ? json_object_get(o, key) : NULL, what, out, err);
}

/* Money member `key` of o in halalas. Absent → TH_ENOTFOUND; malformed →
 * TH_EPARSE / TH_EMONEY with `what` and the field named. */
static int money_at(const json_t *o, const char *key, const char *what, int64_t *out,
                    struct th_err *err)
{
    int rc = jv_get_money(o, key, out, err);
    if (rc && rc != TH_ENOTFOUND && err) {
        char m[TH_ERR_MSG_MAX];
        snprintf(m, sizeof m, "%s", err->msg);
        th_err_set(err, rc, "%s: %s", what, m);
    }
    return rc;
}

/* Currencies whose minor unit is a thousandth (ISO 4217 exponent 3). */
static int three_decimals(const char *cur)
{
    static const char *const list[] = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"};
    for (size_t i = 0; cur && i < sizeof list / sizeof list[0]; i++)
        if (strcasecmp(list[i], cur) == 0) return 1;
    return 0;
}

static int map_customer(const json_t *d, struct model_order *o, struct th_err *err)
{
    int rc;
    /* The shipping address's city and country ({"id","name"} objects in
     * the captures; a plain name is taken as well), even for a guest. */
    json_t *addr = jv_path(d, "shipping.address");
    json_t *city = json_object_get(addr, "city"), *country = json_object_get(addr, "country");
    if ((rc = json_is_object(city) ? text_at(city, "name", "the city", &o->customer.city, err)
                                   : text_of(city, "the city", &o->customer.city, err)) != 0)
        return rc;
    if ((rc = json_is_object(country)
                  ? text_at(country, "name", "the country", &o->customer.country, err)
                  : text_of(country, "the country", &o->customer.country, err)) != 0)
        return rc;
    json_t *c = json_object_get(d, "customer");
    if (!json_is_object(c)) return 0; /* a guest checkout without details */
    /* REST ids are integers, webhook ids strings ("2083543", X6). */
    if (jv_get_id(c, "id", &o->customer.platform_id, NULL) != 0) o->customer.platform_id = 0;
    if ((rc = text_at(c, "name", "the customer's name", &o->customer.name, err)) != 0) return rc;
    if ((rc = text_at(c, "email", "the customer's e-mail", &o->customer.email, err)) != 0)
        return rc;
    if (o->customer.email && strchr(o->customer.email, '*')) { /* masked ("t***@.") */
        free(o->customer.email);
        o->customer.email = NULL;
    }
    char raw[64], phone[64];
    if (!jv_get_text(c, "mobile", raw, sizeof raw) && !jv_get_text(c, "phone", raw, sizeof raw))
        raw[0] = '\0';
    if (zid_phone_normalize(raw, phone, sizeof phone) == 0) o->customer.phone = xstrdup(phone);
    return 0;
}

static int map_line(const json_t *it, size_t idx, const char *number, struct model_line *l,
                    struct th_err *err)
{
    int rc;
    char what[96];
    snprintf(what, sizeof what, "item %zu's name", idx + 1);
    if ((rc = text_at(it, "name", what, &l->name, err)) != 0) return rc;
    if (!l->name) l->name = xstrdup("?");
    /* An empty SKU stays empty: the worker fails the order with a reason
     * the merchant can act on (give the product a SKU). */
    if ((rc = text_at(it, "sku", "an item's SKU", &l->sku, err)) != 0) return rc;
    if (!l->sku) l->sku = xstrdup("");
    if ((rc = text_at(it, "product_class", "an item's product class", &l->platform_type, err)) !=
        0)
        return rc;
    l->kind = zid_kind_map(l->platform_type);
    if (!l->platform_type) l->platform_type = xstrdup("");
    /* Zid product ids are UUIDs ("de410a62-31e5-..."), kept as text for
     * product_stock; the numeric id stays 0. */
    l->platform_product_id = 0;
    if ((rc = text_at(it, "id", "an item's product id", &l->platform_product_key, err)) != 0)
        return rc;

    if ((rc = jv_get_dec(it, "quantity", 0, &l->quantity, err)) != 0)
        return th_err_set(err, TH_EPARSE, "Zid order %s: item '%s' has no usable quantity",
                          number, l->name);
    int taxable = 1;
    if (jv_get_bool(it, "is_taxable", &taxable, NULL) != 0) taxable = 1;
    int64_t bp = 0;
    rc = jv_get_dec(it, "tax_percentage", 4, &bp, err); /* 0.15 → 1500 */
    if (rc && rc != TH_ENOTFOUND)
        return th_err_set(err, TH_EPARSE, "Zid order %s: item '%s' has an unreadable "
                          "tax_percentage", number, l->name);
    if (bp < 0 || bp > 10000)
        return th_err_set(err, TH_EPARSE, "Zid order %s: item '%s' has tax_percentage out of "
                          "range", number, l->name);
    l->tax_rate_bp = taxable ? (int32_t)bp : 0;

    snprintf(what, sizeof what, "Zid order %s, item '%.40s'", number, l->name);
    rc = money_at(it, "net_price", what, &l->unit_price, err);
    if (rc == TH_ENOTFOUND) {
        /* Without net_price, the VAT-inclusive price less its VAT. */
        int64_t gross = 0;
        rc = money_at(it, "gross_price", what, &gross, err);
        if (rc == TH_ENOTFOUND) rc = money_at(it, "price", what, &gross, err);
        if (rc == TH_ENOTFOUND)
            return th_err_set(err, TH_EPARSE, "%s has no net_price, gross_price or price", what);
        if (rc == 0 && money_muldiv(gross, 10000, 10000 + l->tax_rate_bp, &l->unit_price) != 0)
            return th_err_set(err, TH_EMONEY, "%s: price out of range", what);
    }
    if (rc) return rc;
    rc = money_at(it, "tax_amount", what, &l->tax, err);
    if (rc == TH_ENOTFOUND) {
        l->tax = 0;
        rc = 0;
    }
    return rc;
}

/* Books payment.invoice[] lines into the order (see the table at the top). */
static int map_invoice(const json_t *d, struct model_order *o, int *have_vat, int *have_total,
                       int64_t *taxable, struct th_err *err)
{
    json_t *inv = jv_path(d, "payment.invoice"), *line;
    size_t i;
    int64_t ship_disc = 0;
    json_array_foreach(inv, i, line) {
        const char *code = jv_get_str(line, "code");
        if (!code) continue;
        char what[96];
        snprintf(what, sizeof what, "Zid order %s, invoice line '%.40s'", o->number, code);
        int64_t v = 0;
        int rc = money_at(line, "value", what, &v, err);
        if (rc == TH_ENOTFOUND) continue;
        if (rc) return rc;
        int64_t off = v < 0 ? -v : v; /* discounts are written negative */
        if (!strcmp(code, "shipping")) {
            o->shipping += v;
        } else if (!strcmp(code, "shipping_discount")) {
            ship_disc += off;
        } else if (!strcmp(code, "cash_on_delivery")) {
            o->cod_fee += v;
        } else if (!strcmp(code, "coupon") || !strcmp(code, "products_discount") ||
                   !strcmp(code, "loyalty_redemption") || !strcmp(code, "discounts")) {
            o->order_discount += off;
        } else if (!strcmp(code, "vat")) {
            o->tax = v;
            *have_vat = 1;
        } else if (!strcmp(code, "total")) {
            o->total = v;
            *have_total = 1;
        } else if (!strcmp(code, "taxable_amount")) {
            *taxable = v;
        }
    }
    int64_t on_ship = ship_disc < o->shipping ? ship_disc : o->shipping;
    if (on_ship < 0) on_ship = 0;
    o->shipping -= on_ship;
    o->order_discount += ship_disc - on_ship;
    return 0;
}

/*
 * Zid's credit notes of the order (GET .../orders/{id}/credit-notes,
 * zid.md §4.5), which order_fetch attaches to the order as
 * "credit_notes": one return each. The note's fields are documented
 * (invoice_number, issue_reason, order_total, items[]); the items' shape
 * is not [I]: an item names its line by order_product_id, else sku, else
 * the product id, and carries the quantity returned.
 */
static int map_returns(const json_t *d, const json_t *products, struct model_order *o,
                       struct th_err *err)
{
    json_t *notes = json_object_get(d, "credit_notes"), *cn;
    size_t k;
    json_array_foreach(notes, k, cn) {
        /* The note's number is its identity (a return is credited once per
         * key), so it is never cut short: an over-long one fails the order. */
        char *key = NULL, *why = NULL;
        char what[128];
        int rc;
        snprintf(what, sizeof what, "Zid order %s, credit note %zu number", o->number, k + 1);
        if ((rc = text_at(cn, "invoice_number", what, &key, err)) != 0 ||
            (!key && (rc = text_at(cn, "id", what, &key, err)) != 0))
            return rc;
        if (!key)
            return th_err_set(err, TH_EPARSE, "Zid order %s: credit note %zu has no number",
                              o->number, k + 1);
        snprintf(what, sizeof what, "Zid order %s, credit note %s reason", o->number, key);
        if ((rc = text_at(cn, "issue_reason", what, &why, err)) != 0) {
            free(key);
            return rc;
        }
        struct model_refund *r = model_order_add_refund(o);
        if (!r) {
            free(key);
            free(why);
            return th_err_set(err, TH_ELIMIT, "Zid order %s has too many credit notes",
                              o->number);
        }
        r->key = key;
        r->reason = why;
        snprintf(what, sizeof what, "Zid order %s, credit note %s", o->number, r->key);
        rc = money_at(cn, "order_total", what, &r->amount, err);
        if (rc == TH_ENOTFOUND) r->amount = 0, rc = 0;
        if (rc) return rc;
        if (r->amount < 0) r->amount = -r->amount; /* a credit may be written negative */
        json_t *items = json_object_get(cn, "items"), *it;
        size_t j;
        json_array_foreach(items, j, it) {
            int64_t q = 0, opid = 0;
            if (jv_get_dec(it, "quantity", 0, &q, NULL) != 0 || q <= 0)
                return th_err_set(err, TH_EPARSE, "%s: item %zu has no quantity", what, j + 1);
            int have_opid = jv_get_id(it, "order_product_id", &opid, NULL) == 0;
            const char *sku = jv_get_str(it, "sku"), *pid = jv_get_str(it, "id");
            size_t hit = o->nlines;
            for (size_t i = 0; i < o->nlines && hit == o->nlines; i++) {
                int64_t lo = 0;
                if (have_opid) {
                    if (jv_get_id(json_array_get(products, i), "order_product_id", &lo, NULL) ==
                            0 &&
                        lo == opid)
                        hit = i;
                } else if (sku && o->lines[i].sku && !strcmp(sku, o->lines[i].sku)) {
                    hit = i;
                } else if (pid && o->lines[i].platform_product_key &&
                           !strcmp(pid, o->lines[i].platform_product_key)) {
                    hit = i;
                }
            }
            if (hit == o->nlines)
                return th_err_set(err, TH_EPARSE, "%s: item %zu matches no item of the order",
                                  what, j + 1);
            r->qty[hit] += q;
        }
    }
    return 0;
}

static int map_order(const json_t *d, int64_t store_id, struct model_order *o, struct th_err *err)
{
    int rc;
    o->platform = MODEL_PLATFORM_ZID;
    if (!store_id && jv_get_id(d, "store_id", &store_id, NULL) != 0) store_id = 0;
    o->store_id = store_id;
    if (jv_get_id(d, "id", &o->order_id, err) != 0)
        return th_err_set(err, TH_EPARSE, "the Zid order has no integer id");
    if ((rc = text_at(d, "invoice_number", "the invoice number", &o->number, err)) != 0)
        return rc;
    if (!o->number) o->number = xasprintf("%lld", (long long)o->order_id);

    if ((rc = text_at(d, "currency_code", "the currency", &o->currency, err)) != 0) return rc;
    if (!o->currency &&
        (rc = text_at(jv_path(d, "currency.order_currency"), "code", "the currency",
                      &o->currency, err)) != 0)
        return rc;
    if (!o->currency) o->currency = xstrdup("SAR");
    if (three_decimals(o->currency))
        return th_err_set(err, TH_EMONEY, "Zid order %s is in %s, whose amounts have three "
                          "decimals: tarheel keeps money in hundredths and cannot transfer it "
                          "exactly", o->number, o->currency);

    char code[64];
    status_code(d, code, sizeof code);
    o->status = zid_status_map(code);
    o->status_raw = xstrdup(code);
    o->created_at = utc_time(jv_get_str(d, "created_at"));
    o->updated_at = utc_time(jv_get_str(d, "updated_at"));
    if (!o->updated_at) o->updated_at = o->created_at;

    /* The worker knows cash on delivery as "cod" (Salla's slug). */
    const char *pm = jv_get_str(jv_path(d, "payment.method"), "code");
    if (pm && *pm &&
        (rc = model_text(strcmp(pm, "zid_cod") == 0 ? "cod" : pm, "the payment method",
                         &o->payment_method, err)) != 0)
        return rc;

    if ((rc = map_customer(d, o, err)) != 0) return rc;

    json_t *items = json_object_get(d, "products");
    if (!json_is_array(items) || json_array_size(items) == 0)
        return th_err_set(err, TH_EPARSE, "Zid order %s has no products", o->number);
    if (json_array_size(items) > MODEL_MAX_LINES)
        return th_err_set(err, TH_ELIMIT, "Zid order %s has %zu products; at most %d are "
                          "supported", o->number, json_array_size(items), MODEL_MAX_LINES);
    size_t i;
    json_t *it;
    int64_t line_tax = 0;
    int32_t max_bp = 0;
    json_array_foreach(items, i, it) {
        struct model_line *l = model_order_add_line(o);
        if ((rc = map_line(it, i, o->number, l, err)) != 0) return rc;
        line_tax += l->tax;
        if (l->tax_rate_bp > max_bp) max_bp = l->tax_rate_bp;
    }

    int have_vat = 0, have_total = 0;
    int64_t taxable = 0;
    if ((rc = map_invoice(d, o, &have_vat, &have_total, &taxable, err)) != 0) return rc;
    if (!have_vat) o->tax = line_tax;
    if (!have_total) {
        char what[64];
        snprintf(what, sizeof what, "Zid order %s", o->number);
        rc = money_at(d, "order_total", what, &o->total, err);
        if (rc == TH_ENOTFOUND)
            return th_err_set(err, TH_EPARSE, "Zid order %s has no total (no \"total\" invoice "
                              "line, no order_total)", o->number);
        if (rc) return rc;
    }
    /* Fees carry the order's VAT rate (one rate in Saudi Arabia; zero-rated
     * lines aside). With no taxed line, the rate is read off the invoice. */
    o->fees_tax_rate_bp = max_bp;
    if (!max_bp && o->tax > 0 && taxable > 0) {
        int64_t bp = 0;
        if (money_muldiv(o->tax, 10000, taxable, &bp) == 0 && bp > 0 && bp <= 10000)
            o->fees_tax_rate_bp = (int32_t)bp;
    }
    /* Zid's net prices carry more decimals than halalas (a 9.99 gross is
     * net_price 8.68695652173913): each becomes a halala amount, which can
     * leave the order a few halalas off its own total. Within what that
     * rounding explains (model_order_rounding_tolerance) the residue is
     * VAT's; beyond it the figures are left as Zid gave them and
     * model_order_check fails the order with both totals. */
    int64_t gap = o->total - (model_order_lines_net(o) + o->shipping + o->cod_fee -
                              o->order_discount + o->tax);
    int64_t tol = model_order_rounding_tolerance(o);
    if (gap != 0 && gap <= tol && -gap <= tol && o->tax + gap >= 0) o->tax += gap;
    return map_returns(d, items, o, err);
}

static int map_root(json_t *root, int64_t store_id, struct model_order **out,
                    struct th_err *err);

static int order_map(const char *json, size_t len, int64_t store_id, struct model_order **out,
                     struct th_err *err)
{
    json_t *root = jv_parse(json, len, JV_MAX_DEPTH, err);
    if (!root) return err ? err->code : TH_EPARSE;
    int rc = map_root(root, store_id, out, err);
    json_decref(root);
    return rc;
}

/* The order object of an answer: .../view answers {"status":"object",
 * "order":{...},"message":{...}}; webhooks and list pages give the bare
 * order. Borrowed from root. */
static json_t *order_obj(json_t *root)
{
    json_t *env = json_object_get(root, "order");
    return json_is_object(env) ? env : root;
}

static int map_root(json_t *root, int64_t store_id, struct model_order **out, struct th_err *err)
{
    const json_t *d = order_obj(root);
    struct model_order *o = model_order_new();
    int rc = json_is_object(d) ? map_order(d, store_id, o, err)
                               : th_err_set(err, TH_EPARSE, "the Zid order is not a JSON object");
    if (rc) {
        model_order_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* GET {api_base}/managers/store/orders/{id}/view with both tokens (§4.3).
 * Arabic names, because the invoices tarheel writes are Arabic. */
static int order_fetch(struct httpc *hc, const struct platform_conn *c, int64_t order_id,
                       struct model_order **out, struct th_err *err)
{
    if (!c->access_token || !*c->access_token || !c->manager_token || !*c->manager_token)
        return th_err_set(err, TH_ECONFIG, "Zid store %lld has no %s token: Zid needs both the "
                          "authorization token and the manager token; reconnect the store",
                          (long long)c->store_id,
                          !c->access_token || !*c->access_token ? "authorization" : "manager");
    if (!c->api_base || !*c->api_base)
        return th_err_set(err, TH_ECONFIG, "Zid store %lld has no API base URL "
                          "(https://api.zid.sa/v1)", (long long)c->store_id);
    char url[1024];
    int n = snprintf(url, sizeof url, "%s/managers/store/orders/%lld/view", c->api_base,
                     (long long)order_id);
    if (n < 0 || (size_t)n >= sizeof url)
        return th_err_set(err, TH_ECONFIG, "the Zid API base URL is too long");
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token);
    char *mgr = xasprintf("X-Manager-Token: %s", c->manager_token);
    const char *hdrs[] = {auth, mgr, "Accept: application/json", "Accept-Language: ar", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    free(mgr);
    json_t *root = NULL;
    if (rc == 0 && !(root = jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, err)))
        rc = err ? err->code : TH_EPARSE;
    if (rc == 0) {
        /* A returned order: its credit notes say what came back (§4.5). */
        char code[64];
        status_code(order_obj(root), code, sizeof code);
        if (!strcasecmp(code, "reversed") || !strcasecmp(code, "partially_reversed")) {
            struct httpc_resp cr;
            httpc_resp_init(&cr);
            n = snprintf(url, sizeof url, "%s/managers/store/orders/%lld/credit-notes",
                         c->api_base, (long long)order_id);
            char *a2 = xasprintf("Authorization: Bearer %s", c->access_token);
            char *m2 = xasprintf("X-Manager-Token: %s", c->manager_token);
            const char *h2[] = {a2, m2, "Accept: application/json", NULL};
            rc = httpc_do(hc, "GET", url, h2, NULL, 0, &cr, err);
            free(a2);
            free(m2);
            json_t *cn = rc == 0 ? jv_parse(cr.body.data, cr.body.len, JV_MAX_DEPTH, err) : NULL;
            if (rc == 0 && !cn) rc = err ? err->code : TH_EPARSE;
            json_t *list = jv_path(cn, "payload.credit_notes");
            if (rc == 0 && json_is_array(list))
                json_object_set(order_obj(root), "credit_notes", list);
            json_decref(cn);
            httpc_resp_release(&cr);
        }
    }
    if (rc == 0) {
        rc = map_root(root, c->store_id, out, err);
    } else if (r.status == 404) {
        rc = th_err_set(err, TH_ENOTFOUND, "Zid has no order %lld in store %lld (deleted, or "
                        "another store's)", (long long)order_id, (long long)c->store_id);
    } else if (r.status == 401) {
        rc = th_err_set(err, TH_EAUTH, "Zid refused the store's tokens (HTTP 401): they expired, "
                        "were replaced by a refresh, or the app was uninstalled");
    }
    json_decref(root);
    httpc_resp_release(&r);
    return rc;
}

/* GET {api_base}/managers/store/orders with date_attribute=updated_at (or
 * created_at), oldest first, 100 a page (zid.md §4.2). No pagination block:
 * a full page means there may be more. */
static int orders_page(struct httpc *hc, const struct platform_conn *c,
                       const struct platform_query *q, struct platform_page *out,
                       struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (!c->access_token || !*c->access_token || !c->manager_token || !*c->manager_token)
        return th_err_set(err, TH_ECONFIG, "Zid store %lld needs both its tokens to list orders; "
                                           "reconnect the store", (long long)c->store_id);
    char from[40] = "", to[40] = "";
    struct tm tm;
    time_t t;
    if (q->from) {
        t = (time_t)q->from;
        gmtime_r(&t, &tm);
        strftime(from, sizeof from, "&date_from=%Y-%m-%d%%20%H:%M:%S", &tm);
    }
    if (q->to) {
        t = (time_t)q->to;
        gmtime_r(&t, &tm);
        strftime(to, sizeof to, "&date_to=%Y-%m-%d%%20%H:%M:%S", &tm);
    }
    char url[1024];
    int n = snprintf(url, sizeof url,
                     "%s/managers/store/orders?page=%d&per_page=100&sort_by=asc&"
                     "date_attribute=%s%s%s",
                     c->api_base ? c->api_base : "", q->page > 0 ? q->page : 1,
                     q->by_updated ? "updated_at" : "created_at", from, to);
    if (n < 0 || (size_t)n >= sizeof url)
        return th_err_set(err, TH_ECONFIG, "the Zid API base URL is too long");
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token);
    char *mgr = xasprintf("X-Manager-Token: %s", c->manager_token);
    const char *hdrs[] = {auth, mgr, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    free(mgr);
    if (r.status == 401)
        rc = th_err_set(err, TH_EAUTH, "Zid refused the store's tokens (HTTP 401)");
    json_t *j = rc == 0 ? jv_parse(r.body.data, r.body.len, 64, err) : NULL;
    if (rc == 0 && !j) rc = TH_EPARSE;
    json_t *list = j ? json_object_get(j, "orders") : NULL;
    if (rc == 0 && !json_is_array(list))
        rc = th_err_set(err, TH_EPARSE, "Zid's order list has no orders array");
    if (rc == 0) {
        size_t cnt = json_array_size(list), i;
        json_t *row;
        out->orders = cnt ? xcalloc(cnt, sizeof *out->orders) : NULL;
        json_array_foreach(list, i, row) {
            int64_t id = 0;
            if (jv_get_id(row, "id", &id, NULL) != 0) continue;
            struct platform_order_ref *ref = &out->orders[out->n++];
            ref->id = id;
            ref->created_at = utc_time(jv_get_str(row, "created_at"));
            ref->updated_at = utc_time(jv_get_str(row, "updated_at"));
            char code[64];
            status_code(row, code, sizeof code);
            ref->status = code[0] ? (int)zid_status_map(code) : -1;
        }
        out->more = cnt >= 100;
    }
    json_decref(j);
    httpc_resp_release(&r);
    return rc;
}

/* GET {api_base}/products/{uuid}/ on the catalog service (zid.md §5): it
 * wants the manager token as Access-Token, Store-Id and Role: Manager. The
 * order line names the variant itself, so its own quantity is the one.
 * `is_infinite` means untracked; `cost` is a number. */
static int product_stock(struct httpc *hc, const struct platform_conn *c,
                         const struct model_line *line, int64_t *qty, int *tracked,
                         int64_t *cost, struct th_err *err)
{
    *qty = 0;
    *cost = 0;
    *tracked = 1;
    if (!line->platform_product_key || !*line->platform_product_key)
        return th_err_set(err, TH_ENOTFOUND, "the order line has no Zid product id");
    char url[1024], store[32];
    int n = snprintf(url, sizeof url, "%s/products/%s/", c->api_base ? c->api_base : "",
                     line->platform_product_key);
    if (n < 0 || (size_t)n >= sizeof url)
        return th_err_set(err, TH_ECONFIG, "the Zid API base URL is too long");
    snprintf(store, sizeof store, "%lld", (long long)c->store_id);
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    char *acc = xasprintf("Access-Token: %s", c->manager_token ? c->manager_token : "");
    char *sid = xasprintf("Store-Id: %s", store);
    const char *hdrs[] = {auth, acc, sid, "Role: Manager", "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    free(acc);
    free(sid);
    if (rc) {
        if (r.status == 404)
            rc = th_err_set(err, TH_ENOTFOUND, "Zid has no product %s",
                            line->platform_product_key);
        httpc_resp_release(&r);
        return rc;
    }
    json_t *d = jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, err);
    httpc_resp_release(&r);
    if (!d) return TH_EPARSE;
    int infinite = 0;
    if (jv_get_bool(d, "is_infinite", &infinite, NULL) != 0) infinite = 0;
    *tracked = !infinite;
    if (!infinite && jv_get_dec(d, "quantity", 0, qty, NULL) != 0) *qty = 0;
    if (jv_get_money(d, "cost", cost, NULL) != 0) *cost = 0;
    json_decref(d);
    return 0;
}

/*
 * GET /v1/managers/store/categories (zid.md §5.1, managers service: Bearer
 * and X-Manager-Token) → {"categories": [...]}. A category's name is text or
 * {"ar","en"} (as on products, §5.2; Arabic kept); children are in
 * `sub_categories` [I: the nesting key, FX not captured]. Flattened parents
 * first.
 */
struct cats {
    struct platform_category *v;
    size_t n, cap;
};

static void cats_add(struct cats *cs, const json_t *c, const char *parent, int depth)
{
    char id[64];
    if (!jv_get_text(c, "id", id, sizeof id) || depth > 8) return;
    json_t *nm = json_object_get(c, "name");
    const char *name = json_is_string(nm) ? json_string_value(nm) : jv_get_str(nm, "ar");
    if (!name || !*name) name = jv_get_str(nm, "en");
    if (!name || !*name) return;
    for (size_t i = 0; i < cs->n; i++)
        if (strcmp(cs->v[i].id, id) == 0) return;
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 32;
        cs->v = xrealloc(cs->v, cs->cap * sizeof *cs->v);
    }
    struct platform_category *d = &cs->v[cs->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->parent_id, sizeof d->parent_id, "%s", parent ? parent : "");
    snprintf(d->name, sizeof d->name, "%s", name);
    json_t *kid;
    size_t i;
    json_array_foreach(json_object_get(c, "sub_categories"), i, kid)
        cats_add(cs, kid, id, depth + 1);
}

static int categories_list(struct httpc *hc, const struct platform_conn *c,
                           struct platform_category **out, size_t *n, struct th_err *err)
{
    *out = NULL;
    *n = 0;
    if (!c->access_token || !c->manager_token)
        return th_err_set(err, TH_ECONFIG, "Zid store %lld needs both its tokens to list its "
                          "categories; reconnect the store", (long long)c->store_id);
    char url[1024];
    snprintf(url, sizeof url, "%s/managers/store/categories", c->api_base ? c->api_base : "");
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token);
    char *mgr = xasprintf("X-Manager-Token: %s", c->manager_token);
    const char *hdrs[] = {auth, mgr, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    free(mgr);
    json_t *root = rc ? NULL : jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, err);
    httpc_resp_release(&r);
    if (rc) return rc;
    if (!root) return TH_EPARSE;
    struct cats cs = {0};
    json_t *cat;
    size_t i;
    json_array_foreach(json_object_get(root, "categories"), i, cat) cats_add(&cs, cat, NULL, 0);
    json_decref(root);
    *out = cs.v;
    *n = cs.n;
    return 0;
}

/*
 * Stock: bulk PATCH /v1/products/ (zid.md §5.3), up to 50 items named by
 * SKU, each with its new count: Zid takes absolute quantities only, so the
 * stock poller sends Qoyod's count (see worker/stock.c for why that does
 * not undo the store's own sales). Zid checks every item before applying
 * any: an unknown SKU makes the whole call 400 with one error object per
 * item, so those items are marked not found and the call is made once more
 * without them. The answer lists the products written: one that is
 * `is_infinite` is not counted by the store (marked untracked, so it is not
 * written again).
 */
static int stock_call(struct httpc *hc, const struct platform_conn *c, struct platform_stock **v,
                      size_t n, int *calls, json_t **ans, long *status, struct th_err *err)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:s,s:I}", "sku", v[i]->sku, "quantity",
                                              (json_int_t)(v[i]->quantity < 0 ? 0
                                                                              : v[i]->quantity)));
    char *text = jv_dump(list);
    json_decref(list);
    char url[1024], store[32];
    snprintf(url, sizeof url, "%s/products/", c->api_base ? c->api_base : "");
    snprintf(store, sizeof store, "%lld", (long long)c->store_id);
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    char *acc = xasprintf("Access-Token: %s", c->manager_token ? c->manager_token : "");
    char *sid = xasprintf("Store-Id: %s", store);
    const char *hdrs[] = {auth, acc, sid, "Role: Manager", "Accept: application/json",
                          "Content-Type: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    (*calls)++;
    int rc = httpc_do(hc, "PATCH", url, hdrs, text, strlen(text), &r, err);
    free(auth);
    free(acc);
    free(sid);
    free(text);
    *status = r.status;
    *ans = r.body.len ? jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, NULL) : NULL;
    httpc_resp_release(&r);
    return rc;
}

static int stock_push(struct httpc *hc, const struct platform_conn *c,
                      struct platform_stock *items, size_t n, int *calls, struct th_err *err)
{
    if (n == 0) return 0;
    if (n > ZID_STOCK_BATCH)
        return th_err_set(err, TH_ELIMIT, "at most %d SKUs a Zid stock update", ZID_STOCK_BATCH);
    struct platform_stock *v[ZID_STOCK_BATCH];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        items[i].result = PLATFORM_STOCK_SENT;
        v[m++] = &items[i];
    }
    for (int round = 0; round < 2 && m; round++) {
        json_t *ans = NULL;
        long status = 0;
        int rc = stock_call(hc, c, v, m, calls, &ans, &status, err);
        if (rc == 0) {
            json_t *p;
            size_t i;
            json_array_foreach(ans, i, p) {
                int inf = 0;
                const char *sku = jv_get_str(p, "sku");
                if (!sku || jv_get_bool(p, "is_infinite", &inf, NULL) != 0 || !inf) continue;
                for (size_t k = 0; k < m; k++)
                    if (strcmp(v[k]->sku, sku) == 0) v[k]->result = PLATFORM_STOCK_UNTRACKED;
            }
            json_decref(ans);
            return 0;
        }
        /* 400 with one object per item: drop the unknown SKUs, try again. */
        size_t bad = 0, other = 0;
        if (status == 400 && json_is_array(ans) && json_array_size(ans) == m) {
            for (size_t k = 0; k < m; k++) {
                json_t *e = json_array_get(ans, k);
                if (!json_is_object(e) || json_object_size(e) == 0) continue;
                if (json_object_get(e, "sku") && json_object_size(e) == 1) {
                    v[k]->result = PLATFORM_STOCK_NOT_FOUND;
                    bad++;
                } else {
                    other++;
                }
            }
        }
        json_decref(ans);
        if (!bad || other) return rc;
        size_t w = 0;
        for (size_t k = 0; k < m; k++)
            if (v[k]->result != PLATFORM_STOCK_NOT_FOUND) v[w++] = v[k];
        m = w;
        th_err_clear(err);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Tokens                                                                   */

/*
 * POST {token_url} grant_type=refresh_token (zid.md §2.1 step 5). Zid's
 * answer names the tokens the other way round from what one expects:
 * `access_token` is the store (manager) token sent as X-Manager-Token, and
 * `authorization` (or `Authorization`, X3) is the Bearer. Refresh tokens are
 * single use (the emulator and Passport both revoke the old pair), so the
 * caller persists the new ones before anything uses them.
 */
/* POSTs a form to the token endpoint and reads Zid's token answer; `what`
 * names the grant in messages. Shared by the refresh and the code exchange. */
static int token_call(struct httpc *hc, const struct platform_app *app, const char *body,
                      const char *what, struct platform_tokens *out, struct th_err *err)
{
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                          "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "POST", app->token_url, hdrs, body, strlen(body), &r, err);
    json_t *j = r.body.len ? jv_parse(r.body.data, r.body.len, 8, NULL) : NULL;
    const char *oerr = jv_get_str(j, "error");
    if (rc == 0) {
        const char *mgr = jv_get_str(j, "access_token"), *rt2 = jv_get_str(j, "refresh_token");
        const char *bearer = jv_get_str(j, "authorization");
        if (!bearer) bearer = jv_get_str(j, "Authorization");
        if (!mgr || !*mgr || !bearer || !*bearer || !rt2 || !*rt2 ||
            strlen(mgr) >= sizeof out->manager_token ||
            strlen(bearer) >= sizeof out->access_token ||
            strlen(rt2) >= sizeof out->refresh_token) {
            /* The old grant is spent: unknown, not retryable as is. */
            rc = th_err_set(err, TH_EUNKNOWN, "Zid's token answer has no usable access_token, "
                            "authorization and refresh_token");
        } else {
            snprintf(out->access_token, sizeof out->access_token, "%s", bearer);
            snprintf(out->manager_token, sizeof out->manager_token, "%s", mgr);
            snprintf(out->refresh_token, sizeof out->refresh_token, "%s", rt2);
            int64_t ttl = 0;
            if (jv_get_id(j, "expires_in", &ttl, NULL) != 0 || ttl <= 0) ttl = ZID_DEFAULT_TTL_S;
            out->expires_at = (int64_t)time(NULL) + ttl;
        }
    } else if ((r.status == 400 || r.status == 401) && oerr &&
               (!strcmp(oerr, "invalid_grant") || !strcmp(oerr, "invalid_request"))) {
        const char *why = jv_get_str(j, "error_description");
        if (!why) why = jv_get_str(j, "message");
        rc = th_err_set(err, TH_EAUTH, "Zid refused the %s (%s%s%.120s): it was already used or "
                        "the app was uninstalled; reinstall the tarheel app from the Zid app "
                        "market", what, oerr, why ? ": " : "", why ? why : "");
    } else if ((r.status == 400 || r.status == 401) && oerr && !strcmp(oerr, "invalid_client")) {
        rc = th_err_set(err, TH_ECONFIG, "Zid refused the app's client id or secret "
                        "(invalid_client): check the Zid app's client id and secret");
    }
    json_decref(j);
    httpc_resp_release(&r);
    return rc;
}

static int app_ready(const struct platform_app *app, struct th_err *err)
{
    if (!app || !app->client_id || !app->client_secret || !app->token_url)
        return th_err_set(err, TH_ECONFIG, "the Zid app's client id, client secret and token URL "
                          "are not configured");
    return 0;
}

static int token_refresh(struct httpc *hc, const struct platform_app *app,
                         const char *refresh_token, struct platform_tokens *out,
                         struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (app_ready(app, err)) return TH_ECONFIG;
    if (!refresh_token || !*refresh_token)
        return th_err_set(err, TH_EAUTH, "Zid gave no refresh token for this store: reinstall "
                          "the tarheel app from the Zid app market");
    char *rt = httpc_escape(refresh_token), *id = httpc_escape(app->client_id);
    char *sec = httpc_escape(app->client_secret);
    char *ru = httpc_escape(app->redirect_uri ? app->redirect_uri : "");
    char *body = xasprintf("grant_type=refresh_token&refresh_token=%s&client_id=%s&"
                           "client_secret=%s%s%s", rt, id, sec,
                           app->redirect_uri ? "&redirect_uri=" : "", app->redirect_uri ? ru : "");
    free(rt);
    free(id);
    free(sec);
    free(ru);
    int rc = token_call(hc, app, body, "store's refresh token", out, err);
    free(body);
    return rc;
}

/* The authorization-code flow (zid.md §2.1): the merchant's link, the
 * code for the two tokens, and the profile for the store id. */
static int authorize_url(const struct platform_app *app, const char *state, char *out, size_t n,
                         struct th_err *err)
{
    if (app_ready(app, err)) return TH_ECONFIG;
    if (!app->auth_url || !app->redirect_uri)
        return th_err_set(err, TH_ECONFIG, "the Zid authorize URL and redirect URI are needed");
    char *id = httpc_escape(app->client_id), *ru = httpc_escape(app->redirect_uri);
    char *st = httpc_escape(state);
    int len = snprintf(out, n, "%s?client_id=%s&redirect_uri=%s&response_type=code&state=%s",
                       app->auth_url, id, ru, st);
    free(id);
    free(ru);
    free(st);
    if (len < 0 || (size_t)len >= n) return th_err_set(err, TH_ETOOBIG, "authorize URL too long");
    return 0;
}

static int oauth_exchange(struct httpc *hc, const struct platform_app *app, const char *code,
                          struct platform_tokens *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (app_ready(app, err)) return TH_ECONFIG;
    char *c = httpc_escape(code), *id = httpc_escape(app->client_id);
    char *sec = httpc_escape(app->client_secret);
    char *ru = httpc_escape(app->redirect_uri ? app->redirect_uri : "");
    char *body = xasprintf("grant_type=authorization_code&code=%s&client_id=%s&client_secret=%s&"
                           "redirect_uri=%s", c, id, sec, ru);
    free(c);
    free(id);
    free(sec);
    free(ru);
    int rc = token_call(hc, app, body, "authorization code", out, err);
    free(body);
    return rc;
}

/* GET {api_base}/managers/account/profile (§2.4): user.store.id, title. */
static int whoami(struct httpc *hc, const struct platform_app *app, const char *api_base,
                  const struct platform_tokens *tok, int64_t *store_id, char *name, size_t n,
                  struct th_err *err)
{
    (void)app;
    char *url = xasprintf("%s/managers/account/profile", api_base ? api_base : "");
    char *auth = xasprintf("Authorization: Bearer %s", tok->access_token);
    char *mgr = xasprintf("X-Manager-Token: %s", tok->manager_token);
    const char *hdrs[] = {auth, mgr, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(url);
    free(auth);
    free(mgr);
    if (rc == 0) {
        json_t *j = jv_parse(r.body.data, r.body.len, 16, err);
        json_t *st = jv_path(j, "user.store");
        if (!st || jv_get_id(st, "id", store_id, NULL) != 0) {
            rc = th_err_set(err, TH_EPARSE, "Zid's profile has no user.store.id");
        } else {
            const char *t = jv_get_str(st, "title");
            snprintf(name, n, "%s", t ? t : "");
        }
        json_decref(j);
    }
    httpc_resp_release(&r);
    return rc;
}

/* GET /v1/managers/webhooks/health, then POST .../recover when any is
 * broken. The paths are the emulator's reading of documented operations
 * whose pages were not readable offline (zid.md §3.1, sim/zid.md). */
static int webhooks_health(struct httpc *hc, const struct platform_conn *c, int recover,
                           int *health, struct th_err *err)
{
    *health = 0;
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    char *mgr = xasprintf("X-Manager-Token: %s", c->manager_token ? c->manager_token : "");
    const char *hdrs[] = {auth, mgr, "Accept: application/json",
                          "Content-Type: application/json", NULL};
    char *url = xasprintf("%s/managers/webhooks/health", c->api_base ? c->api_base : "");
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(url);
    if (rc == 0) {
        json_t *j = jv_parse(r.body.data, r.body.len, 16, err);
        int64_t degraded = 0, broken = 0;
        if (jv_get_id(jv_path(j, "data"), "degraded", &degraded, NULL) != 0) degraded = 0;
        if (jv_get_id(jv_path(j, "data"), "broken", &broken, NULL) != 0) broken = 0;
        *health = broken ? 2 : degraded ? 1 : 0;
        json_decref(j);
        if (broken && recover) {
            url = xasprintf("%s/managers/webhooks/recover", c->api_base ? c->api_base : "");
            rc = httpc_do(hc, "POST", url, hdrs, "{}", 2, &r, err);
            free(url);
        }
    }
    free(auth);
    free(mgr);
    httpc_resp_release(&r);
    return rc;
}

/* POST /v1/managers/webhooks for order.create and order.status.update
 * (§3.1), after deleting tarheel's earlier ones (original_id "tarheel"),
 * with Basic credentials; 422 "already exists" counts as done. */
static int webhooks_register(struct httpc *hc, const struct platform_conn *c, const char *url,
                             const char *basic, struct th_err *err)
{
    const char *colon = basic ? strchr(basic, ':') : NULL;
    if (!colon) return th_err_set(err, TH_ECONFIG, "the store's webhook credential is not user:pass");
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    char *mgr = xasprintf("X-Manager-Token: %s", c->manager_token ? c->manager_token : "");
    const char *hdrs[] = {auth, mgr, "Accept: application/json",
                          "Content-Type: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    char *del = xasprintf("%s/managers/webhooks?original_id=tarheel", c->api_base);
    int rc = httpc_do(hc, "DELETE", del, hdrs, NULL, 0, &r, err);
    free(del);
    if (rc && r.status == 404) rc = 0; /* none yet */
    static const char *const events[] = {"order.create", "order.status.update"};
    char *user = xasprintf("%.*s", (int)(colon - basic), basic);
    for (size_t i = 0; !rc && i < 2; i++) {
        json_t *b = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "event", events[i], "target_url", url,
                              "original_id", "tarheel", "subscriber", "tarheel", "username", user,
                              "password", colon + 1);
        char *body = jv_dump(b);
        json_decref(b);
        char *post = xasprintf("%s/managers/webhooks", c->api_base);
        rc = httpc_do(hc, "POST", post, hdrs, body, strlen(body), &r, err);
        if (rc && r.status == 422) rc = 0; /* already subscribed */
        free(post);
        free(body);
    }
    free(user);
    free(auth);
    free(mgr);
    httpc_resp_release(&r);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Product fields (the field sync, docs/FIELDS.md)                          */

/* The catalog service's request (§5: Bearer, Access-Token = the manager
 * token, Store-Id, Role: Manager); body may be NULL. *ans is the parsed
 * answer (NULL when none). */
static int catalog_do(struct httpc *hc, const struct platform_conn *c, const char *method,
                      const char *url, const char *body, json_t **ans, long *status,
                      struct th_err *err)
{
    char store[32];
    snprintf(store, sizeof store, "%lld", (long long)c->store_id);
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    char *acc = xasprintf("Access-Token: %s", c->manager_token ? c->manager_token : "");
    char *sid = xasprintf("Store-Id: %s", store);
    const char *hdrs[] = {auth, acc, sid, "Role: Manager", "Accept: application/json",
                          "Content-Type: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, method, url, hdrs, body, body ? strlen(body) : 0, &r, err);
    free(auth);
    free(acc);
    free(sid);
    if (status) *status = r.status;
    if (rc == TH_EAUTH)
        th_err_set(err, TH_EAUTH, "Zid refused the store's tokens (HTTP %ld)", r.status);
    else if (rc && r.status == 404)
        rc = th_err_set(err, TH_ENOTFOUND, "Zid has no such product");
    *ans = rc == 0 && r.body.len ? jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, err) : NULL;
    if (rc == 0 && r.body.len && !*ans) rc = TH_EPARSE;
    httpc_resp_release(&r);
    return rc;
}

/* A catalog product (§5.2): `name` is {"ar","en"} (either may be missing)
 * or text; the Arabic name is the one kept in step. A parent product (its
 * variants carry the SKUs) returns 1 (skipped). `price` includes VAT when
 * the store's prices do (§4: is_vat_included_in_product_price) [I: taken
 * as the common case; price_vat_inclusive]. */
static int product_read(const json_t *d, struct platform_product *out)
{
    memset(out, 0, sizeof *out);
    if (!jv_get_text(d, "id", out->id, sizeof out->id)) return 1;
    const char *st = jv_get_str(d, "structure");
    if (st && !strcmp(st, "parent")) return 1;
    const char *sku = jv_get_str(d, "sku");
    if (sku && strlen(sku) < sizeof out->sku) snprintf(out->sku, sizeof out->sku, "%s", sku);
    json_t *nm = json_object_get(d, "name");
    const char *name = json_is_string(nm) ? json_string_value(nm) : jv_get_str(nm, "ar");
    if (!name || !*name) name = jv_get_str(nm, "en");
    if (name) snprintf(out->name, sizeof out->name, "%s", name);
    if (jv_get_money(d, "price", &out->price, NULL) != 0) out->price = 0;
    if (jv_get_money(d, "cost", &out->cost, NULL) != 0) out->cost = 0;
    out->updated_at = utc_time(jv_get_str(d, "updated_at"));
    return 0;
}

/* GET /v1/products/?page&page_size=50&ordering=-updated_at (§5.1: ordering
 * by updated_at is documented; the "-" for newest first is Django REST's
 * convention [I]). With since, the listing stops at the first product
 * updated before it. */
static int products_page(struct httpc *hc, const struct platform_conn *c, int page,
                         int64_t since, struct platform_product_page *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    char url[1024];
    snprintf(url, sizeof url, "%s/products/?page=%d&page_size=50&ordering=-updated_at",
             c->api_base ? c->api_base : "", page > 0 ? page : 1);
    json_t *root = NULL;
    long status = 0;
    int rc = catalog_do(hc, c, "GET", url, NULL, &root, &status, err);
    if (rc == TH_ENOTFOUND && page > 1) return 0; /* "Invalid page.": past the end */
    if (rc) return rc;
    json_t *list = json_object_get(root, "results");
    if (!json_is_array(list)) {
        json_decref(root);
        return th_err_set(err, TH_EPARSE, "Zid's product list has no results array");
    }
    size_t n = json_array_size(list), i;
    json_t *row;
    out->items = xcalloc(n ? n : 1, sizeof *out->items);
    int older = 0;
    json_array_foreach(list, i, row) {
        struct platform_product *p = &out->items[out->n];
        if (product_read(row, p) != 0) {
            out->skipped++;
            continue;
        }
        if (since > 0 && p->updated_at && p->updated_at < since) {
            older = 1;
            break;
        }
        out->n++;
    }
    json_t *next = json_object_get(root, "next");
    out->more = !older && json_is_string(next);
    json_decref(root);
    return 0;
}

/* Zid documents no SKU filter on products (§5.2, open question 8). */
static int product_get(struct httpc *hc, const struct platform_conn *c, const char *sku,
                       struct platform_product *out, struct th_err *err)
{
    (void)hc;
    (void)c;
    (void)out;
    return th_err_set(err, TH_ECONFIG, "Zid cannot look product %s up by SKU", sku);
}

/* PATCH /v1/products/{id}/ (§5.1) with the fields asked. Zid replaces the
 * whole `name` object [I], so a new name is sent with the English one the
 * product has now (read first). */
static int product_put(struct httpc *hc, const struct platform_conn *c,
                       const struct platform_product *p, unsigned mask,
                       struct platform_product *out, struct th_err *err)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/products/%s/", c->api_base ? c->api_base : "", p->id);
    json_t *body = json_object();
    int rc = 0;
    if (mask & PLATFORM_FIELD_NAME) {
        json_t *cur = NULL;
        rc = catalog_do(hc, c, "GET", url, NULL, &cur, NULL, err);
        if (rc) {
            json_decref(body);
            return rc;
        }
        json_t *nm = json_object_get(cur, "name");
        json_t *name = json_is_object(nm) ? json_deep_copy(nm) : json_object();
        json_object_set_new(name, "ar", json_string(p->name));
        json_object_set_new(body, "name", name);
        json_decref(cur);
    }
    if (mask & PLATFORM_FIELD_PRICE) json_object_set_new(body, "price", jv_money_number(p->price));
    if (mask & PLATFORM_FIELD_COST) json_object_set_new(body, "cost", jv_money_number(p->cost));
    char *text = jv_dump(body);
    json_decref(body);
    json_t *ans = NULL;
    rc = catalog_do(hc, c, "PATCH", url, text, &ans, NULL, err);
    free(text);
    if (rc == 0 && out && (!ans || product_read(ans, out) != 0)) *out = *p;
    json_decref(ans);
    return rc;
}

const struct platform_ops zid_platform_ops = {
    .name = "zid",
    .platform = MODEL_PLATFORM_ZID,
    .oauth_base = "https://oauth.zid.sa",
    .auth_path = "/oauth/authorize",
    .token_path = "/oauth/token",
    .userinfo_path = NULL, /* the profile is on the API (whoami) */
    .oauth_base_option = "zid-oauth-url",
    .api_base = "https://api.zid.sa/v1",
    .webhook_strategy = "basic",
    .peek_store = peek_store,
    .verify = verify,
    .parse_event = parse_event,
    .order_map = order_map,
    .order_fetch = order_fetch,
    .token_refresh = token_refresh,
    .orders_page = orders_page,
    .authorize_url = authorize_url,
    .oauth_exchange = oauth_exchange,
    .whoami = whoami,
    .webhooks_register = webhooks_register,
    .webhooks_health = webhooks_health,
    .needs_url_token = 1,
    .lists_by_updated = 1,
    .product_stock = product_stock,
    .categories_list = categories_list,
    .stock_push = stock_push,
    .stock_absolute = 1,
    .stock_batch = ZID_STOCK_BATCH,
    /* 60 calls a minute per app and store (zid.md §6), shared with order
     * fetches and the catch-up poll: the stock push takes half. */
    .stock_rpm = 30,
    .products_page = products_page,
    .products_by_updated = 1,
    .product_get = product_get,
    .product_put = product_put,
    .price_vat_inclusive = 1,
    /* The field sync's share of the 60 a minute (§6). */
    .products_rpm = 15,
};
