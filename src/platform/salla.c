/*
 * salla — the Salla adapter (see salla.h).
 *
 * Discounts: Salla lists every discount in amounts.discounts[] (order level)
 * and repeats the part attributed to an item in that item's
 * amounts.total_discount (the order.created example shows the same 5.00 in
 * both). The canonical order keeps item discounts on their lines and only
 * the unattributed remainder as order_discount, so nothing is counted twice.
 * A discount's discounted_shipping (a free-shipping coupon) lowers the
 * shipping fee instead.
 */
#include "platform/salla.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"

/* ---------------------------------------------------------------------- */
/* Mappings                                                                 */

enum model_status salla_status_map(const char *slug)
{
    static const struct {
        const char *slug;
        enum model_status st;
    } map[] = {
        {"under_review", MODEL_STATUS_NEW},      {"in_progress", MODEL_STATUS_READY},
        {"delivering", MODEL_STATUS_IN_TRANSIT}, {"shipped", MODEL_STATUS_IN_TRANSIT},
        {"completed", MODEL_STATUS_COMPLETED},   {"delivered", MODEL_STATUS_COMPLETED},
        {"canceled", MODEL_STATUS_CANCELLED},    {"restored", MODEL_STATUS_REFUNDED},
    };
    for (size_t i = 0; slug && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].slug, slug) == 0) return map[i].st;
    return MODEL_STATUS_OTHER;
}

enum model_item_kind salla_kind_map(const char *type)
{
    static const struct {
        const char *type;
        enum model_item_kind kind;
    } map[] = {
        {"product", MODEL_ITEM_PRODUCT},  {"food", MODEL_ITEM_PRODUCT},
        {"service", MODEL_ITEM_SERVICE},  {"digital", MODEL_ITEM_SERVICE},
        {"codes", MODEL_ITEM_SERVICE},    {"booking", MODEL_ITEM_SERVICE},
        {"donating", MODEL_ITEM_SERVICE}, {"group_products", MODEL_ITEM_BUNDLE},
    };
    for (size_t i = 0; type && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].type, type) == 0) return map[i].kind;
    return MODEL_ITEM_UNKNOWN;
}

/* ---------------------------------------------------------------------- */
/* Webhooks                                                                 */

static int peek_store(const char *body, size_t len, int64_t *store_id, struct th_err *err)
{
    json_t *root = jv_parse(body, len, JV_MAX_DEPTH, err);
    if (!root) return err ? err->code : TH_EPARSE;
    int rc = jv_get_id(root, "merchant", store_id, err);
    json_decref(root);
    if (rc == TH_ENOTFOUND)
        return th_err_set(err, TH_ENOTFOUND, "the webhook has no \"merchant\" (store id)");
    return rc;
}

int platform_secure_eq(const char *a, const char *b)
{
    if (!a || !b) return 0;
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++) diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

/* Lower-case hex of md[0..mdlen) into out (n bytes, always terminated; as
 * many whole bytes as fit). A table, not snprintf("%02x") per byte: that was
 * about 1 us per digest, and every delivery takes two. */
static void hex_of(const unsigned char *md, unsigned mdlen, char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t o = 0;
    for (unsigned i = 0; i < mdlen && o + 3 <= n; i++, o += 2) {
        out[o] = digits[md[i] >> 4];
        out[o + 1] = digits[md[i] & 15];
    }
    if (n) out[o] = '\0';
}

static int verify(const struct platform_auth *auth, platform_header_fn header, void *arg,
                  const char *body, size_t len, struct th_err *err)
{
    if (!auth->secret || !*auth->secret)
        return th_err_set(err, TH_EAUTH, "no webhook secret is configured for this store: "
                          "set it with `tarheel connect salla --webhook-secret`");
    if (auth->strategy && strcasecmp(auth->strategy, "token") == 0) {
        const char *got = header(arg, "Authorization");
        if (got && strncasecmp(got, "Bearer ", 7) == 0) got += 7; /* tolerated [I] */
        if (!platform_secure_eq(got, auth->secret))
            return th_err_set(err, TH_EAUTH, "the Authorization header does not match the "
                              "store's webhook secret (token strategy)");
        return 0;
    }
    /* Signature strategy (Salla's default): hex HMAC-SHA256 of the raw body. */
    const char *got = header(arg, "X-Salla-Signature");
    if (!got)
        return th_err_set(err, TH_EAUTH, "the X-Salla-Signature header is missing");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), auth->secret, (int)strlen(auth->secret), (const unsigned char *)body, len,
         md, &mdlen);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    hex_of(md, mdlen, hex, sizeof hex);
    char lower[2 * EVP_MAX_MD_SIZE + 1];
    size_t n = strlen(got);
    if (n >= sizeof lower) n = sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)((got[i] >= 'A' && got[i] <= 'F') ? got[i] + 32 : got[i]);
    lower[n] = '\0';
    if (!platform_secure_eq(lower, hex))
        return th_err_set(err, TH_EAUTH, "the X-Salla-Signature does not match the body: check "
                          "the store's webhook secret");
    return 0;
}

static void sha256_hex(const char *body, size_t len, char *out, size_t n)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(body, len, md, &mdlen, EVP_sha256(), NULL);
    hex_of(md, mdlen, out, n);
}

static int parse_event(const char *body, size_t len, struct platform_event *out,
                       struct th_err *err)
{
    memset(out, 0, sizeof *out);
    json_t *root = jv_parse(body, len, JV_MAX_DEPTH, err);
    if (!root) return err ? err->code : TH_EPARSE;
    int rc = 0;
    const char *ev = jv_get_str(root, "event");
    if (!ev || strlen(ev) >= sizeof out->name) {
        rc = th_err_set(err, TH_EPARSE, "the webhook has no \"event\" name");
        goto done;
    }
    snprintf(out->name, sizeof out->name, "%s", ev);
    if ((rc = jv_get_id(root, "merchant", &out->store_id, err)) != 0) {
        if (rc == TH_ENOTFOUND) rc = th_err_set(err, TH_EPARSE, "the webhook has no \"merchant\"");
        goto done;
    }
    /* No delivery id exists (salla.md §3.1): a redelivery carries the same
     * bytes, so the body's digest is the dedupe key. */
    sha256_hex(body, len, out->dedupe_key, sizeof out->dedupe_key);
    json_t *data = json_object_get(root, "data");
    if (strncmp(ev, "order.", 6) == 0) {
        out->kind = PLATFORM_EV_ORDER;
        json_t *nested = json_object_get(data, "order"); /* order.status.updated shape */
        rc = jv_get_id(json_is_object(nested) ? nested : data, "id", &out->order_id, err);
        if (rc) {
            rc = th_err_set(err, TH_EPARSE, "order event '%s' has no order id", ev);
            goto done;
        }
    } else if (strcmp(ev, "app.store.authorize") == 0) {
        out->kind = PLATFORM_EV_AUTHORIZE;
        const char *at = jv_get_str(data, "access_token"), *rt = jv_get_str(data, "refresh_token");
        if (!at || strlen(at) >= sizeof out->access_token || (rt && strlen(rt) >=
                                                               sizeof out->refresh_token)) {
            rc = th_err_set(err, TH_EPARSE, "app.store.authorize without a usable access_token");
            goto done;
        }
        snprintf(out->access_token, sizeof out->access_token, "%s", at);
        snprintf(out->refresh_token, sizeof out->refresh_token, "%s", rt ? rt : "");
        /* Here `expires` is an absolute unix time (salla.md §2.4). */
        int64_t exp = 0;
        if (jv_get_id(data, "expires", &exp, NULL) == 0)
            out->expires_at = exp > 1000000000 ? exp : (int64_t)time(NULL) + exp;
    } else if (strcmp(ev, "app.uninstalled") == 0) {
        out->kind = PLATFORM_EV_UNINSTALL;
    }
done:
    json_decref(root);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Orders                                                                   */

/* "2022-06-26 12:21:45.000000" in Asia/Riyadh (UTC+3, no DST) → unix UTC. */
static time_t riyadh_time(const json_t *dateobj)
{
    const char *s = json_is_string(dateobj) ? json_string_value(dateobj)
                                            : jv_get_str(dateobj, "date");
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) < 3)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm) - 3 * 3600;
}

/* Text member `key` of o (a string, or an integer such as a numeric
 * reference) into *out through model_text: NULL when absent or empty,
 * TH_ETOOBIG naming `what` when too long (never cut short). */
static int text_at(const json_t *o, const char *key, const char *what, char **out,
                   struct th_err *err)
{
    char num[32];
    const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
    const char *s = NULL;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        s = num;
    }
    return model_text(s, what, out, err);
}

/* Money member `key` of o ({"amount":..} object, number or string); absent
 * counts as 0. */
static int money_at(const json_t *o, const char *key, int64_t *out, struct th_err *err)
{
    *out = 0;
    int rc = jv_get_money(o, key, out, err);
    return rc == TH_ENOTFOUND ? 0 : rc;
}

/* Tax object {"percent": "15.00", "amount": {"amount": 22.5}} → bp, halalas. */
static int tax_at(const json_t *o, int32_t *bp, int64_t *amount, struct th_err *err)
{
    json_t *tax = json_object_get(o, "tax");
    int64_t pct = 0;
    int rc = jv_get_dec(tax, "percent", 2, &pct, err);
    if (rc && rc != TH_ENOTFOUND) return rc;
    if (pct < 0 || pct > 10000) return th_err_set(err, TH_EPARSE, "tax percent out of range");
    *bp = (int32_t)pct;
    return money_at(tax, "amount", amount, err);
}

static void phone_of(const json_t *cust, char *out, size_t n)
{
    char num[64] = "", code[16] = "";
    jv_get_text(cust, "mobile", num, sizeof num);
    jv_get_text(cust, "mobile_code", code, sizeof code);
    if (!num[0]) {
        out[0] = '\0';
    } else if (num[0] == '+' || !code[0]) {
        snprintf(out, n, "%s", num);
    } else {
        snprintf(out, n, "%s%s", code, num);
    }
}

static int map_order(const json_t *d, int64_t store_id, struct model_order *o, struct th_err *err)
{
    int rc;
    o->platform = MODEL_PLATFORM_SALLA;
    o->store_id = store_id;
    if ((rc = jv_get_id(d, "id", &o->order_id, err)) != 0)
        return th_err_set(err, TH_EPARSE, "the Salla order has no id");
    char what[96];
    snprintf(what, sizeof what, "Salla order %lld: reference_id", (long long)o->order_id);
    if ((rc = text_at(d, "reference_id", what, &o->number, err)) != 0) return rc;
    if (!o->number) o->number = xasprintf("%lld", (long long)o->order_id);
    /* From here on, `what` names the order by its number and the field. */
#define WHAT(field) (snprintf(what, sizeof what, "Salla order %s: %s", o->number, (field)), what)

    json_t *st = json_object_get(d, "status");
    const char *slug = json_is_object(st) ? jv_get_str(st, "slug") : NULL;
    o->status = salla_status_map(slug);
    if ((rc = model_text(slug ? slug : json_is_string(st) ? json_string_value(st) : NULL,
                         WHAT("status"), &o->status_raw, err)) != 0)
        return rc;
    if (!o->status_raw) o->status_raw = xstrdup("");
    o->created_at = riyadh_time(json_object_get(d, "date"));
    o->updated_at = riyadh_time(json_object_get(d, "updated_at"));
    if (!o->updated_at) o->updated_at = o->created_at;
    if ((rc = text_at(d, "payment_method", WHAT("payment_method"), &o->payment_method, err)) ||
        (rc = text_at(d, "currency", WHAT("currency"), &o->currency, err)))
        return rc;
    if (!o->currency) o->currency = xstrdup("SAR");

    json_t *c = json_object_get(d, "customer");
    if (json_is_object(c)) {
        if (jv_get_id(c, "id", &o->customer.platform_id, NULL) != 0) o->customer.platform_id = 0;
        const char *first = jv_get_str(c, "first_name"), *last = jv_get_str(c, "last_name");
        const char *name = jv_get_str(c, "name");
        if (first || last) {
            char *full = xasprintf("%s%s%s", first ? first : "", first && last ? " " : "",
                                   last ? last : "");
            rc = model_text(full, WHAT("customer name"), &o->customer.name, err);
            free(full);
        } else {
            rc = model_text(name, WHAT("customer name"), &o->customer.name, err);
        }
        if (rc || (rc = text_at(c, "email", WHAT("customer email"), &o->customer.email, err)))
            return rc;
        char phone[96], one[32];
        phone_of(c, phone, sizeof phone);
        /* One form whatever Salla sent: "+966" + number, "966" + number
         * (salla.md §6), or the whole number in one string. A country code
         * joined to the number is international even without its '+'. */
        if (phone[0] && model_phone_normalize(phone, one, sizeof one) == 0)
            snprintf(phone, sizeof phone, "%s%s", one[0] != '+' && strlen(one) > 10 ? "+" : "",
                     one);
        o->customer.phone = phone[0] ? xstrdup(phone) : NULL;
        if ((rc = text_at(c, "city", WHAT("customer city"), &o->customer.city, err)) ||
            (rc = text_at(c, "country", WHAT("customer country"), &o->customer.country, err)))
            return rc;
    }

    json_t *items = json_object_get(d, "items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        return th_err_set(err, TH_EPARSE, "Salla order %s has no items", o->number);
    if (json_array_size(items) > MODEL_MAX_LINES)
        return th_err_set(err, TH_ELIMIT, "Salla order %s has %zu items; at most %d are "
                          "supported", o->number, json_array_size(items), MODEL_MAX_LINES);
    int64_t item_discounts = 0;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        struct model_line *l = model_order_add_line(o);
        char field[48];
        snprintf(field, sizeof field, "item %zu name", i + 1);
        if ((rc = text_at(it, "name", WHAT(field), &l->name, err)) != 0) return rc;
        if (!l->name) l->name = xstrdup("?");
        snprintf(field, sizeof field, "item %zu SKU", i + 1);
        if ((rc = text_at(it, "sku", WHAT(field), &l->sku, err)) != 0) return rc;
        if ((rc = jv_get_dec(it, "quantity", 0, &l->quantity, err)) != 0)
            return th_err_set(err, TH_EPARSE, "item '%s' has no quantity", l->name);
        json_t *am = json_object_get(it, "amounts");
        if ((rc = jv_get_money(am, "price_without_tax", &l->unit_price, err)) != 0)
            return th_err_set(err, TH_EPARSE, "item '%s' has no price_without_tax", l->name);
        if ((rc = money_at(am, "total_discount", &l->discount, err)) != 0) return rc;
        if ((rc = tax_at(am, &l->tax_rate_bp, &l->tax, err)) != 0) return rc;
        item_discounts += l->discount;
        json_t *prod = json_object_get(it, "product");
        const char *type = jv_get_str(prod, "type");
        if (!type) type = jv_get_str(it, "product_type");
        snprintf(field, sizeof field, "item %zu product type", i + 1);
        if ((rc = model_text(type, WHAT(field), &l->platform_type, err)) != 0) return rc;
        if (!l->platform_type) l->platform_type = xstrdup("");
        l->kind = salla_kind_map(type);
        if (jv_get_id(prod, "id", &l->platform_product_id, NULL) != 0)
            if (jv_get_id(it, "product_id", &l->platform_product_id, NULL) != 0)
                l->platform_product_id = 0;
    }

#undef WHAT
    json_t *am = json_object_get(d, "amounts");
    if ((rc = money_at(am, "shipping_cost", &o->shipping, err)) != 0) return rc;
    if ((rc = money_at(am, "cash_on_delivery", &o->cod_fee, err)) != 0) return rc;
    if ((rc = tax_at(am, &o->fees_tax_rate_bp, &o->tax, err)) != 0) return rc;
    int64_t discounts = 0, ship_disc = 0;
    json_t *dl = json_object_get(am, "discounts"), *disc;
    json_array_foreach(dl, i, disc) {
        int64_t v = 0, sh = 0;
        if ((rc = money_at(disc, "discount", &v, err)) != 0) return rc;
        if ((rc = money_at(disc, "discounted_shipping", &sh, err)) != 0) return rc;
        discounts += v;
        ship_disc += sh;
    }
    /* A free-shipping coupon: discounted_shipping is the part of the
     * discount that went to shipping [I] (salla.md shows the field, never
     * non-zero); it lowers the shipping line rather than the items. */
    if (ship_disc > o->shipping) ship_disc = o->shipping;
    if (ship_disc > discounts) ship_disc = discounts;
    o->shipping -= ship_disc;
    discounts -= ship_disc;
    o->order_discount = discounts > item_discounts ? discounts - item_discounts : 0;
    json_t *total = json_object_get(am, "total");
    if (!total) total = json_object_get(d, "total");
    if (!total || jv_to_dec(json_is_object(total) ? json_object_get(total, "amount") : total, 2,
                            &o->total, err) != 0)
        return th_err_set(err, TH_EPARSE, "Salla order %s has no total", o->number);
    return 0;
}

static int order_map(const char *json, size_t len, int64_t store_id, struct model_order **out,
                     struct th_err *err)
{
    json_t *root = jv_parse(json, len, JV_MAX_DEPTH, err);
    if (!root) return err ? err->code : TH_EPARSE;
    /* API answers wrap the order in {"status","success","data"}; order
     * webhooks put it in data, or in data.order for order.status.updated. */
    const json_t *d = root;
    json_t *data = json_object_get(root, "data");
    if (json_is_object(data)) d = data;
    json_t *nested = json_object_get(d, "order");
    if (json_is_object(nested) && !json_object_get(d, "items")) d = nested;
    struct model_order *o = model_order_new();
    int rc = map_order(d, store_id, o, err);
    json_decref(root);
    if (rc) {
        model_order_free(o);
        return rc;
    }
    *out = o;
    return 0;
}

static int order_fetch(struct httpc *hc, const struct platform_conn *c, int64_t order_id,
                       struct model_order **out, struct th_err *err)
{
    char url[1024];
    snprintf(url, sizeof url, "%s/orders/%lld", c->api_base, (long long)order_id);
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    if (rc == 0) {
        rc = order_map(r.body.data, r.body.len, c->store_id, out, err);
    } else if (r.status == 404) {
        rc = th_err_set(err, TH_ENOTFOUND, "Salla has no order %lld in store %lld (deleted?)",
                        (long long)order_id, (long long)c->store_id);
    } else if (rc == TH_EAUTH) {
        th_err_set(err, TH_EAUTH, "Salla refused the store's access token (HTTP %ld): the "
                   "token expired or the app was uninstalled", r.status);
    }
    httpc_resp_release(&r);
    return rc;
}

/* GET /products/{id}: `quantity` for a simple product, `skus[].stock_quantity`
 * of the variant whose sku matches; `unlimited_quantity` means untracked. */
static int product_stock(struct httpc *hc, const struct platform_conn *c,
                         const struct model_line *line, int64_t *qty, int *tracked,
                         int64_t *cost, struct th_err *err)
{
    int64_t product_id = line->platform_product_id;
    const char *sku = line->sku;
    char url[1024];
    snprintf(url, sizeof url, "%s/products/%lld", c->api_base, (long long)product_id);
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    if (rc) {
        if (r.status == 404)
            rc = th_err_set(err, TH_ENOTFOUND, "Salla has no product %lld", (long long)product_id);
        httpc_resp_release(&r);
        return rc;
    }
    json_t *root = jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, err);
    httpc_resp_release(&r);
    if (!root) return err ? err->code : TH_EPARSE;
    json_t *d = json_object_get(root, "data");
    if (!json_is_object(d)) d = root;
    int unlimited = 0;
    if (jv_get_bool(d, "unlimited_quantity", &unlimited, NULL) != 0) unlimited = 0;
    *tracked = !unlimited;
    *qty = 0;
    *cost = 0;
    if (jv_get_money(d, "cost_price", cost, NULL) != 0) *cost = 0;
    rc = 0;
    json_t *skus = json_object_get(d, "skus"), *v;
    size_t i;
    int matched = 0;
    json_array_foreach(skus, i, v) {
        const char *s = jv_get_str(v, "sku");
        if (sku && s && strcmp(s, sku) == 0) {
            int un = 0;
            if (jv_get_bool(v, "unlimited_quantity", &un, NULL) == 0 && un) *tracked = 0;
            rc = jv_get_dec(v, "stock_quantity", 0, qty, err);
            int64_t vc = 0;
            if (jv_get_money(v, "cost_price", &vc, NULL) == 0 && vc > 0) *cost = vc;
            matched = 1;
            break;
        }
    }
    if (!matched) rc = jv_get_dec(d, "quantity", 0, qty, err);
    if (rc == TH_ENOTFOUND) {
        *qty = 0;
        rc = 0;
    }
    json_decref(root);
    return rc;
}

/* POSTs a form to the token endpoint and reads the token answer (§2.2).
 * `what` names the grant in messages. */
static int token_post(struct httpc *hc, const struct platform_app *app, const char *body,
                      const char *what, struct platform_tokens *out, struct th_err *err)
{
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
                          "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "POST", app->token_url, hdrs, body, strlen(body), &r, err);
    json_t *j = r.body.len ? jv_parse(r.body.data, r.body.len, 8, NULL) : NULL;
    const char *oerr = j ? jv_get_str(j, "error") : NULL;
    if (rc == 0) {
        const char *at = jv_get_str(j, "access_token"), *rt = jv_get_str(j, "refresh_token");
        int64_t ttl = 0;
        if (!at || !rt || strlen(at) >= sizeof out->access_token ||
            strlen(rt) >= sizeof out->refresh_token) {
            rc = th_err_set(err, TH_EUNKNOWN, "Salla's token answer has no usable access_token "
                                              "and refresh_token");
        } else {
            snprintf(out->access_token, sizeof out->access_token, "%s", at);
            snprintf(out->refresh_token, sizeof out->refresh_token, "%s", rt);
            /* expires_in is a duration; `expires` too on some answers (§2.2 [X]) */
            if (jv_get_id(j, "expires_in", &ttl, NULL) != 0 &&
                jv_get_id(j, "expires", &ttl, NULL) != 0)
                ttl = 14 * 24 * 3600;
            out->expires_at = (int64_t)time(NULL) + ttl;
        }
    } else if (oerr && (!strcmp(oerr, "invalid_grant") || !strcmp(oerr, "invalid_request"))) {
        rc = th_err_set(err, TH_EAUTH,
                        "Salla refused the %s (%s): the app was uninstalled or the grant was "
                        "already used; reinstall the tarheel app from the Salla app store",
                        what, oerr);
    } else if (oerr && !strcmp(oerr, "invalid_client")) {
        rc = th_err_set(err, TH_ECONFIG, "Salla refused the app's client id or secret "
                                         "(invalid_client): check --salla-client-id and "
                                         "--salla-client-secret");
    }
    json_decref(j);
    httpc_resp_release(&r);
    return rc;
}

static int app_ready(const struct platform_app *app, struct th_err *err)
{
    if (!app || !app->client_id || !app->client_secret || !app->token_url)
        return th_err_set(err, TH_ECONFIG,
                          "the Salla app's client id and secret are not configured "
                          "(--salla-client-id ID --salla-client-secret S, or SALLA_CLIENT_ID and "
                          "SALLA_CLIENT_SECRET)");
    return 0;
}

/* POST {token_url} grant_type=refresh_token (salla.md §2.3): refresh tokens
 * are single use and a reuse revokes the whole chain, so the caller
 * serialises refreshes per store and persists the new pair first. */
static int token_refresh(struct httpc *hc, const struct platform_app *app,
                         const char *refresh_token, struct platform_tokens *out,
                         struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (app_ready(app, err)) return TH_ECONFIG;
    if (!refresh_token || !*refresh_token)
        return th_err_set(err, TH_EAUTH, "Salla gave no refresh token for this store: reinstall "
                                         "the tarheel app from the Salla app store");
    char *rt_enc = httpc_escape(refresh_token), *id_enc = httpc_escape(app->client_id);
    char *sec_enc = httpc_escape(app->client_secret);
    char *body = xasprintf("grant_type=refresh_token&refresh_token=%s&client_id=%s&"
                           "client_secret=%s", rt_enc, id_enc, sec_enc);
    int rc = token_post(hc, app, body, "store's refresh token", out, err);
    free(rt_enc);
    free(id_enc);
    free(sec_enc);
    free(body);
    return rc;
}

/* Custom mode (§2.1): the authorization code for tokens. */
static int oauth_exchange(struct httpc *hc, const struct platform_app *app, const char *code,
                          struct platform_tokens *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (app_ready(app, err)) return TH_ECONFIG;
    char *c_enc = httpc_escape(code), *id_enc = httpc_escape(app->client_id);
    char *sec_enc = httpc_escape(app->client_secret), *ru_enc = httpc_escape(app->redirect_uri);
    char *body = xasprintf("grant_type=authorization_code&code=%s&client_id=%s&"
                           "client_secret=%s&redirect_uri=%s&scope=offline_access",
                           c_enc, id_enc, sec_enc, ru_enc);
    int rc = token_post(hc, app, body, "authorization code", out, err);
    free(c_enc);
    free(id_enc);
    free(sec_enc);
    free(ru_enc);
    free(body);
    return rc;
}

/* The authorize URL the merchant opens (§2.1). */
static int authorize_url(const struct platform_app *app, const char *state, char *out, size_t n,
                         struct th_err *err)
{
    if (app_ready(app, err)) return TH_ECONFIG;
    if (!app->auth_url || !app->redirect_uri)
        return th_err_set(err, TH_ECONFIG, "the Salla authorize URL and redirect URI are needed");
    char *id_enc = httpc_escape(app->client_id), *ru_enc = httpc_escape(app->redirect_uri);
    char *st_enc = httpc_escape(state);
    int len = snprintf(out, n, "%s?client_id=%s&response_type=code&redirect_uri=%s&"
                       "scope=offline_access&state=%s", app->auth_url, id_enc, ru_enc, st_enc);
    free(id_enc);
    free(ru_enc);
    free(st_enc);
    if (len < 0 || (size_t)len >= n) return th_err_set(err, TH_ETOOBIG, "authorize URL too long");
    return 0;
}

/* GET {userinfo_url} (§2.5): which store the tokens belong to. */
static int whoami(struct httpc *hc, const struct platform_app *app, const char *api_base,
                  const struct platform_tokens *tok, int64_t *store_id, char *name, size_t n,
                  struct th_err *err)
{
    (void)api_base; /* Salla answers on its accounts host */
    const char *access_token = tok->access_token;
    if (!app || !app->userinfo_url)
        return th_err_set(err, TH_ECONFIG, "the Salla user-info URL is not configured");
    char *auth = xasprintf("Authorization: Bearer %s", access_token ? access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", app->userinfo_url, hdrs, NULL, 0, &r, err);
    free(auth);
    if (rc == 0) {
        json_t *j = jv_parse(r.body.data, r.body.len, 16, err);
        json_t *m = jv_path(j, "data.merchant");
        if (!m || jv_get_id(m, "id", store_id, err) != 0) {
            rc = th_err_set(err, TH_EPARSE, "Salla's user info has no data.merchant.id");
        } else {
            const char *nm = jv_get_str(m, "name");
            snprintf(name, n, "%s", nm ? nm : "");
        }
        json_decref(j);
    }
    httpc_resp_release(&r);
    return rc;
}

/* "YYYY-MM-DD" in Riyadh time, for Salla's date filters. */
static void riyadh_day(int64_t t, char out[16])
{
    time_t r = (time_t)t + 3 * 3600;
    struct tm tm;
    gmtime_r(&r, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

/* GET /orders?from_date&to_date&page&per_page=60 (§4.1, §8.2). Salla
 * filters on the creation date only (days, Riyadh time, inclusive [I]), so
 * q->by_updated cannot be honoured: the caller rechecks waiting orders. */
static int orders_page(struct httpc *hc, const struct platform_conn *c,
                       const struct platform_query *q, struct platform_page *out,
                       struct th_err *err)
{
    memset(out, 0, sizeof *out);
    char url[1024], from[16] = "", to[16] = "";
    if (q->from) riyadh_day(q->from, from);
    if (q->to) riyadh_day(q->to, to);
    snprintf(url, sizeof url, "%s/orders?per_page=60&page=%d&sort_by=created_at-asc%s%s%s%s",
             c->api_base, q->page > 0 ? q->page : 1, from[0] ? "&from_date=" : "", from,
             to[0] ? "&to_date=" : "", to);
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    if (rc == TH_EAUTH)
        th_err_set(err, TH_EAUTH, "Salla refused the store's access token (HTTP %ld)", r.status);
    json_t *j = rc == 0 ? jv_parse(r.body.data, r.body.len, 32, err) : NULL;
    if (rc == 0 && !j) rc = TH_EPARSE;
    json_t *data = j ? json_object_get(j, "data") : NULL;
    if (rc == 0 && !json_is_array(data))
        rc = th_err_set(err, TH_EPARSE, "Salla's order list has no data array");
    if (rc == 0) {
        size_t n = json_array_size(data), i;
        json_t *row;
        out->orders = n ? xcalloc(n, sizeof *out->orders) : NULL;
        json_array_foreach(data, i, row) {
            int64_t id = 0;
            if (jv_get_id(row, "id", &id, NULL) != 0) continue;
            struct platform_order_ref *ref = &out->orders[out->n++];
            ref->id = id;
            ref->created_at = riyadh_time(json_object_get(row, "date"));
            ref->updated_at = riyadh_time(json_object_get(row, "updated_at"));
            json_t *st = json_object_get(row, "status");
            const char *slug = json_is_object(st) ? jv_get_str(st, "slug") : NULL;
            ref->status = slug ? (int)salla_status_map(slug) : -1;
        }
        int64_t cur = 0, pages = 0;
        json_t *pg = json_object_get(j, "pagination");
        if (jv_get_id(pg, "currentPage", &cur, NULL) == 0 &&
            jv_get_id(pg, "totalPages", &pages, NULL) == 0)
            out->more = cur < pages;
        else
            out->more = n >= 60;
    }
    json_decref(j);
    httpc_resp_release(&r);
    return rc;
}

/*
 * GET /categories (salla.md §5, D-CAT): `data` holds the categories, each
 * with `id`, `name`, `parent_id` (0 at the top) and its children in `items`
 * [I: the nesting key]; paged like every list (§8.2). Flattened parents
 * first.
 */
struct cats {
    struct platform_category *v;
    size_t n, cap;
};

static void cats_add(struct cats *cs, const json_t *c, const char *parent, int depth)
{
    char id[64], pid[64];
    if (!jv_get_text(c, "id", id, sizeof id) || depth > 8) return;
    const char *name = jv_get_str(c, "name");
    if (!name || !*name) return;
    if (!parent) {
        const char *p = jv_get_text(c, "parent_id", pid, sizeof pid);
        parent = p && strcmp(p, "0") != 0 ? p : "";
    }
    for (size_t i = 0; i < cs->n; i++)
        if (strcmp(cs->v[i].id, id) == 0) return; /* listed twice (nested and flat) */
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? cs->cap * 2 : 32;
        cs->v = xrealloc(cs->v, cs->cap * sizeof *cs->v);
    }
    struct platform_category *d = &cs->v[cs->n++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->parent_id, sizeof d->parent_id, "%s", parent);
    snprintf(d->name, sizeof d->name, "%s", name);
    json_t *kid;
    size_t i;
    json_array_foreach(json_object_get(c, "items"), i, kid) cats_add(cs, kid, id, depth + 1);
}

static int categories_list(struct httpc *hc, const struct platform_conn *c,
                           struct platform_category **out, size_t *n, struct th_err *err)
{
    *out = NULL;
    *n = 0;
    struct cats cs = {0};
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", NULL};
    int rc = 0;
    for (int page = 1; page <= 50 && !rc; page++) {
        char url[1024];
        snprintf(url, sizeof url, "%s/categories?page=%d", c->api_base ? c->api_base : "", page);
        struct httpc_resp r;
        httpc_resp_init(&r);
        rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
        json_t *root = rc ? NULL : jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, err);
        httpc_resp_release(&r);
        if (rc) break;
        if (!root) {
            rc = TH_EPARSE;
            break;
        }
        json_t *cat;
        size_t i;
        json_array_foreach(json_object_get(root, "data"), i, cat) cats_add(&cs, cat, NULL, 0);
        int64_t total = 1;
        if (jv_get_id(json_object_get(root, "pagination"), "totalPages", &total, NULL) != 0)
            total = 1;
        json_decref(root);
        if (page >= total) break;
    }
    free(auth);
    if (rc) {
        free(cs.v);
        return rc;
    }
    *out = cs.v;
    *n = cs.n;
    return 0;
}

/*
 * POST /products/quantities/bulk (salla.md §5.3): each SKU's change as
 * `increment` / `decrement` by SKU, so a sale the store makes meanwhile is
 * never overwritten (an `overwrite` with a count read a moment ago would
 * undo it). Salla queues the request and applies it later; it reports no
 * per-item result, so every item counts as sent (an unknown SKU is
 * ignored by Salla [I]). Note the API's own spelling `identifer`.
 */
static int stock_push(struct httpc *hc, const struct platform_conn *c,
                      struct platform_stock *items, size_t n, int *calls, struct th_err *err)
{
    if (n == 0) return 0;
    if (n > SALLA_STOCK_BATCH)
        return th_err_set(err, TH_ELIMIT, "at most %d SKUs a Salla stock update",
                          SALLA_STOCK_BATCH);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        int64_t d = items[i].delta;
        json_array_append_new(list, json_pack("{s:s,s:s,s:I,s:s}", "identifer_type", "sku",
                                              "identifer", items[i].sku, "quantity",
                                              (json_int_t)(d < 0 ? -d : d), "mode",
                                              d < 0 ? "decrement" : "increment"));
    }
    json_t *body = json_pack("{s:o}", "products", list);
    char *text = jv_dump(body);
    json_decref(body);
    char url[1024];
    snprintf(url, sizeof url, "%s/products/quantities/bulk", c->api_base ? c->api_base : "");
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", "Content-Type: application/json",
                          NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    (*calls)++;
    int rc = httpc_do(hc, "POST", url, hdrs, text, strlen(text), &r, err);
    free(auth);
    free(text);
    httpc_resp_release(&r);
    for (size_t i = 0; i < n; i++) items[i].result = PLATFORM_STOCK_SENT;
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Product fields (the field sync, docs/FIELDS.md)                          */

/* A product object (§5.2) as the field sync sees it. A product with
 * variants (skus[] not empty) is matched by its variants' SKUs, which this
 * reading does not cover: it returns 1 (skipped). `price` is the pre-VAT
 * price [I: §5.2 and the product.price.updated example show price below
 * taxed_price]; `cost_price` is a string or a money object. */
static int product_read(const json_t *d, struct platform_product *out)
{
    memset(out, 0, sizeof *out);
    if (!jv_get_text(d, "id", out->id, sizeof out->id)) return 1;
    if (json_array_size(json_object_get(d, "skus")) > 0) return 1;
    const char *sku = jv_get_str(d, "sku"), *name = jv_get_str(d, "name");
    if (sku && strlen(sku) < sizeof out->sku) snprintf(out->sku, sizeof out->sku, "%s", sku);
    if (name) snprintf(out->name, sizeof out->name, "%s", name);
    if (jv_get_money(d, "price", &out->price, NULL) != 0) out->price = 0;
    if (jv_get_money(d, "cost_price", &out->cost, NULL) != 0) out->cost = 0;
    out->updated_at = riyadh_time(json_object_get(d, "updated_at"));
    return 0;
}

static int products_get(struct httpc *hc, const struct platform_conn *c, const char *url,
                        json_t **root, struct th_err *err)
{
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "GET", url, hdrs, NULL, 0, &r, err);
    free(auth);
    if (rc == TH_EAUTH)
        th_err_set(err, TH_EAUTH, "Salla refused the store's access token (HTTP %ld)", r.status);
    else if (rc && r.status == 404)
        rc = th_err_set(err, TH_ENOTFOUND, "Salla has no such product");
    *root = rc == 0 ? jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, err) : NULL;
    if (rc == 0 && !*root) rc = TH_EPARSE;
    httpc_resp_release(&r);
    return rc;
}

/* GET /products?page&per_page=60 (§5.1). Salla has no updated_at filter or
 * sort on products: every product is listed whatever since says. */
static int products_page(struct httpc *hc, const struct platform_conn *c, int page,
                         int64_t since, struct platform_product_page *out, struct th_err *err)
{
    (void)since;
    memset(out, 0, sizeof *out);
    char url[1024];
    snprintf(url, sizeof url, "%s/products?page=%d&per_page=60", c->api_base ? c->api_base : "",
             page > 0 ? page : 1);
    json_t *root = NULL;
    int rc = products_get(hc, c, url, &root, err);
    if (rc) return rc;
    json_t *data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        json_decref(root);
        return th_err_set(err, TH_EPARSE, "Salla's product list has no data array");
    }
    size_t n = json_array_size(data), i;
    json_t *row;
    out->items = xcalloc(n ? n : 1, sizeof *out->items);
    json_array_foreach(data, i, row) {
        if (product_read(row, &out->items[out->n]) != 0) {
            out->skipped++;
            continue;
        }
        out->n++;
    }
    int64_t cur = 0, pages = 0;
    json_t *pg = json_object_get(root, "pagination");
    if (jv_get_id(pg, "currentPage", &cur, NULL) == 0 &&
        jv_get_id(pg, "totalPages", &pages, NULL) == 0)
        out->more = cur < pages;
    else
        out->more = n >= 60;
    json_decref(root);
    return 0;
}

/* GET /products/sku/{sku} (§5.1, D-PROD-SKU). */
static int product_get(struct httpc *hc, const struct platform_conn *c, const char *sku,
                       struct platform_product *out, struct th_err *err)
{
    char *esc = httpc_escape(sku);
    char url[1024];
    snprintf(url, sizeof url, "%s/products/sku/%s", c->api_base ? c->api_base : "", esc);
    free(esc);
    json_t *root = NULL;
    int rc = products_get(hc, c, url, &root, err);
    if (rc) {
        if (rc == TH_ENOTFOUND) th_err_set(err, TH_ENOTFOUND, "Salla has no product %s", sku);
        return rc;
    }
    json_t *d = json_object_get(root, "data");
    if (!json_is_object(d)) d = root;
    rc = product_read(d, out) == 0 && strcmp(out->sku, sku) == 0
             ? 0
             : th_err_set(err, TH_ENOTFOUND, "Salla has no simple product %s", sku);
    json_decref(root);
    return rc;
}

/* PUT /products/{id} with only the fields asked (§5.1: a partial update;
 * `name` and `cost_price` are accepted beside `price` [I: D-PROD-UPD lists
 * "quantity, price, sku, …"]); Salla answers 201 with the product. */
static int product_put(struct httpc *hc, const struct platform_conn *c,
                       const struct platform_product *p, unsigned mask,
                       struct platform_product *out, struct th_err *err)
{
    json_t *body = json_object();
    if (mask & PLATFORM_FIELD_NAME) json_object_set_new(body, "name", json_string(p->name));
    if (mask & PLATFORM_FIELD_PRICE) json_object_set_new(body, "price", jv_money_number(p->price));
    if (mask & PLATFORM_FIELD_COST)
        json_object_set_new(body, "cost_price", jv_money_number(p->cost));
    char *text = jv_dump(body);
    json_decref(body);
    char url[1024];
    snprintf(url, sizeof url, "%s/products/%s", c->api_base ? c->api_base : "", p->id);
    char *auth = xasprintf("Authorization: Bearer %s", c->access_token ? c->access_token : "");
    const char *hdrs[] = {auth, "Accept: application/json", "Content-Type: application/json",
                          NULL};
    struct httpc_resp r;
    httpc_resp_init(&r);
    int rc = httpc_do(hc, "PUT", url, hdrs, text, strlen(text), &r, err);
    free(auth);
    free(text);
    if (rc == TH_EAUTH)
        th_err_set(err, TH_EAUTH, "Salla refused the store's access token (HTTP %ld)", r.status);
    else if (rc && r.status == 404)
        rc = th_err_set(err, TH_ENOTFOUND, "Salla has no product %s", p->id);
    if (rc == 0 && out) {
        json_t *root = jv_parse(r.body.data, r.body.len, JV_MAX_DEPTH, NULL);
        json_t *d = json_object_get(root, "data");
        if (!json_is_object(d) || product_read(d, out) != 0) {
            /* An answer without the product: what was asked is what it holds. */
            *out = *p;
        }
        json_decref(root);
    }
    httpc_resp_release(&r);
    return rc;
}

const struct platform_ops salla_platform_ops = {
    .name = "salla",
    .platform = MODEL_PLATFORM_SALLA,
    .oauth_base = "https://accounts.salla.sa",
    .auth_path = "/oauth2/auth",
    .token_path = "/oauth2/token",
    .userinfo_path = "/oauth2/user/info",
    .oauth_base_option = "salla-accounts-url",
    .api_base = "https://api.salla.dev/admin/v2",
    .webhook_strategy = "signature",
    .peek_store = peek_store,
    .verify = verify,
    .parse_event = parse_event,
    .order_map = order_map,
    .order_fetch = order_fetch,
    .token_refresh = token_refresh,
    .oauth_exchange = oauth_exchange,
    .authorize_url = authorize_url,
    .whoami = whoami,
    .orders_page = orders_page,
    .lists_by_updated = 0,
    .product_stock = product_stock,
    .categories_list = categories_list,
    .stock_push = stock_push,
    .stock_absolute = 0,
    .stock_batch = SALLA_STOCK_BATCH,
    /* Plus plans allow 120 calls a minute (§7); the stock push takes half,
     * leaving the rest to order fetches and the catch-up poll. */
    .stock_rpm = 60,
    .products_page = products_page,
    .products_by_updated = 0,
    .product_get = product_get,
    .product_put = product_put,
    .price_vat_inclusive = 0,
    /* The field sync's share of the 120 a minute (§7), beside the stock push. */
    .products_rpm = 30,
};
