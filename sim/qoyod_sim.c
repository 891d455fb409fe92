/*
 * qoyod_sim — the Qoyod API v2.0 emulator (see sim/qoyod.md for every route,
 * control endpoint and [I] choice; ../shared/api/qoyod.md is the reference).
 *
 * State: one tenant per API key (--api-key, repeatable; "demo-key" when none),
 * each a jansson document {"counters": {...}, "<collection>": [records]}.
 * Records keep money as int64 halalas, quantities as thousandths and percents
 * at scale 4 (JSON integers, which jansson holds as int64); qy_render turns
 * them into Qoyod's decimal strings only on the way out, so no amount is ever
 * a double. Saving the state is dumping these documents.
 *
 * Request path: strip /2.0 or /api/2.0, check API-KEY (401), take one request
 * from the key's rate bucket (429 + Retry-After), refuse invalid JSON (400),
 * then route by collection. Lists go through qoyod_sim_query (Ransack, paging)
 * and answer 404 with a JSON string when nothing matches, as Qoyod does.
 * Documents (invoices, payments, credit notes, stock movements) live in
 * qoyod_sim_docs.c.
 */
#include "sim/qoyod_sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim_docs.h"
#include "sim/qoyod_sim_int.h"
#include "sim/qoyod_sim_query.h"

#define DEFAULT_KEY "demo-key"

/* ---------------------------------------------------------------------- */
/* Shared helpers (qoyod_sim_int.h)                                         */

json_t *qy_coll(struct qy_tenant *t, const char *coll)
{
    json_t *a = json_object_get(t->d, coll);
    if (!a) {
        a = json_array();
        json_object_set_new(t->d, coll, a);
    }
    return a;
}

json_t *qy_find(struct qy_tenant *t, const char *coll, int64_t id)
{
    size_t i;
    json_t *r, *a = qy_coll(t, coll);
    /* Speed only: records are appended with ids 1, 2, ... and never removed
     * from most collections, so record id usually sits at index id - 1. */
    if (id > 0 && (size_t)id <= json_array_size(a) &&
        json_integer_value(json_object_get(r = json_array_get(a, (size_t)id - 1), "id")) == id)
        return r;
    json_array_foreach(a, i, r)
    {
        if (json_integer_value(json_object_get(r, "id")) == id) return r;
    }
    return NULL;
}

void qy_touch(json_t *rec)
{
    char now[40];
    json_object_set_new(rec, "updated_at", json_string(sim_now_riyadh_iso(now, sizeof now)));
}

json_t *qy_insert(struct qy_tenant *t, const char *coll, json_t *rec)
{
    json_t *counters = json_object_get(t->d, "counters");
    json_int_t id = json_integer_value(json_object_get(counters, coll)) + 1;
    json_object_set_new(counters, coll, json_integer(id));
    json_object_set_new(rec, "id", json_integer(id));
    char now[40];
    sim_now_riyadh_iso(now, sizeof now);
    json_object_set_new(rec, "created_at", json_string(now));
    json_object_set_new(rec, "updated_at", json_string(now));
    json_array_append_new(qy_coll(t, coll), rec);
    return rec;
}

int64_t qy_stock_get(const json_t *product, int64_t inventory_id)
{
    char k[32];
    snprintf(k, sizeof k, "%lld", (long long)inventory_id);
    return (int64_t)json_integer_value(json_object_get(json_object_get(product, "_stock"), k));
}

void qy_stock_set(struct qy *q, json_t *product, int64_t inventory_id, int64_t qty)
{
    char k[32];
    snprintf(k, sizeof k, "%lld", (long long)inventory_id);
    json_t *st = json_object_get(product, "_stock");
    if (!st) {
        st = json_object();
        json_object_set_new(product, "_stock", st);
    }
    json_object_set_new(st, k, json_integer((json_int_t)qty));
    /* [I] §10.5: whether a stock movement bumps updated_at is unknown; we do
     * (so q[updated_at_gteq] polling sees stock changes) unless
     * --stock-bumps-updated-at 0. */
    if (q->stock_bumps) qy_touch(product);
}

int qy_tracked(const json_t *product)
{
    return product && json_is_true(json_object_get(product, "track_quantity"));
}

int qy_in_id(const json_t *o, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_value(v)[0] == '\0'))
        return TH_ENOTFOUND;
    return jv_get_id(o, key, out, NULL) == 0 ? 0 : TH_EPARSE;
}

int qy_in_dec(const json_t *o, const char *key, int scale, int64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_value(v)[0] == '\0'))
        return TH_ENOTFOUND;
    if (json_is_object(v) || json_is_boolean(v)) return TH_EPARSE;
    return jv_get_dec(o, key, scale, out, NULL) == 0 ? 0 : TH_EPARSE;
}

int qy_in_bool(const json_t *o, const char *key, int dflt)
{
    int b;
    return jv_get_bool(o, key, &b, NULL) == 0 ? b : dflt;
}

const char *qy_in_text(const json_t *o, const char *key, char *out, size_t n)
{
    const char *v = jv_get_text(o, key, out, n);
    if (v && v != out) {
        snprintf(out, n, "%s", v);
        v = out;
    }
    return v && *v ? v : NULL;
}

int qy_valid_date(const char *text)
{
    int64_t ms;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(text) != 10 || qyq_parse_time(text, &ms) != 0) return 0;
    int m = (text[5] - '0') * 10 + (text[6] - '0'), d = (text[8] - '0') * 10 + (text[9] - '0');
    return m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1];
}

void qy_err(json_t **errs, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!*errs) *errs = json_object();
    json_t *list = json_object_get(*errs, field);
    if (!list) {
        list = json_array();
        json_object_set_new(*errs, field, list);
    }
    json_array_append_new(list, json_string(msg));
}

void qy_reply_errors(struct httpd_resp *resp, json_t *errs)
{
    sim_json(resp, 422, json_pack("{s:o}", "errors", errs));
}

void qy_reply_not_found(struct httpd_resp *resp)
{
    /* [C] MCP tests: note the double spaces (a blank resource name). */
    sim_json(resp, 404, json_pack("{s:s}", "message", "Invalid  ID. Please provide a valid  ID."));
}

json_t *qy_envelope(const struct sim_req *req, const char *key, struct httpd_resp *resp)
{
    json_t *in = json_object_get(req->body, key);
    if (json_is_object(in)) return in;
    /* [I] Rails' ParameterMissing, answered as a validation error. */
    json_t *errs = NULL;
    qy_err(&errs, key, "param is missing or the value is empty: %s", key);
    qy_reply_errors(resp, errs);
    return NULL;
}

json_t *qy_render(struct qy_tenant *t, const char *coll, const json_t *rec)
{
    json_t *r = json_deep_copy(rec);
    if (strcmp(coll, "products") == 0) {
        json_t *invs = json_array();
        if (qy_tracked(rec)) {
            size_t i;
            json_t *inv;
            json_array_foreach(qy_coll(t, "inventories"), i, inv)
            {
                int64_t id = (int64_t)json_integer_value(json_object_get(inv, "id"));
                json_array_append_new(invs, json_pack("{s:I,s:O,s:O,s:I}", "id", (json_int_t)id,
                                                      "name_en", json_object_get(inv, "name"),
                                                      "name_ar", json_object_get(inv, "ar_name"),
                                                      "stock", (json_int_t)qy_stock_get(rec, id)));
            }
        }
        json_object_set_new(r, "inventories", invs);
    }
    qyq_render_numbers(r);
    return r;
}

/* ---------------------------------------------------------------------- */
/* Seed data (reference §6)                                                 */

static const char *const account_types[] = {
    "FixedAsset",
    "CurrentAsset",
    "Bank",
    "Cash",
    "Inventory",
    "Liability",
    "CurrentLiability",
    "NoncurrentLiability",
    "Depreciation",
    "DirectCost",
    "Expense",
    "Overhead",
    "Equity",
    "OtherIncome",
    "Revenue",
    "Sale",
};
/* [I] §4.1: create type -> root class shown in lists, and a group label. */
static const char *const account_roots[] = {
    "Asset",   "Asset",   "Asset",   "Asset",   "Asset",  "Liability", "Liability", "Liability",
    "Expense", "Expense", "Expense", "Expense", "Equity", "Revenue",   "Revenue",   "Revenue",
};
static const char *const account_groups[] = {
    "Property, plant, and equipment",
    "Current assets",
    "Bank",
    "Petty cash",
    "Inventory",
    "Liabilities",
    "Other Current Liability",
    "Non-current liabilities",
    "Accumulated Depreciation",
    "Cost of sales",
    "Expenses",
    "Overheads",
    "Equity",
    "Other income",
    "Revenue",
    "Sales",
};
#define NACCOUNT_TYPES ((int)(sizeof account_types / sizeof account_types[0]))

static int account_type_index(const char *type)
{
    for (int i = 0; type && i < NACCOUNT_TYPES; i++)
        if (strcmp(account_types[i], type) == 0) return i;
    return -1;
}

static const struct {
    int id;
    const char *code, *name_ar, *name_en, *type;
    int receive;
} seed_accounts[] = {
    {1, "120101", "الأراضي", "Land", "FixedAsset", 0},
    {7, "110101", "النقدية في الخزينة", "Cash on hand", "Cash", 1},
    {8, "110201", "حساب البنك الجاري", "Current bank account", "Bank", 1},
    {9, "1103", "المدينون", "Accounts receivable", "CurrentAsset", 0},
    {10, "1106", "المخزون", "Inventory", "Inventory", 0},
    {12, "5101", "تكلفة المبيعات", "Cost of sales", "DirectCost", 0}, /* [I] 3P default 12 */
    {13, "5201", "الرواتب والرسوم الإدارية", "Salaries and administrative fees", "Expense", 0},
    {14, "2101", "الدائنون", "Accounts payable", "CurrentLiability", 0},
    {15, "3101", "رأس المال المسجل", "Registered capital", "Equity", 0},
    {16, "3402", "الأرباح المبقاة", "Retained earnings", "Equity", 0},
    {17, "4101", "إيرادات المبيعات/ الخدمات", "Sales / services revenue", "Sale", 0},
    {18, "4201", "إيرادات أخرى", "Other revenue", "OtherIncome", 0},
    {19, "2105", "ضريبة القيمة المضافة المستحقة", "VAT payable", "CurrentLiability", 0},
    {44, "3201", "أرصدة افتتاحية", "Opening balances", "Equity", 0},
    {73, "5213", "عمولات بنكية", "Bank charges", "Expense", 0},
};

static json_t *account_record(int64_t id, const char *code, const char *name_en,
                              const char *name_ar, int ti, int receive, const char *desc)
{
    json_t *a = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:n}", "id", (json_int_t)id,
                          "code", code, "name_en", name_en, "name_ar", name_ar, "type",
                          account_roots[ti], "group_type", account_groups[ti], "status", "Active",
                          "account_nature", ti <= 4 || (ti >= 8 && ti <= 11) ? "Debit" : "Credit",
                          "type_of_account", account_types[ti], "parent_type", account_roots[ti],
                          "balance", 0, "deferral_template_id");
    json_object_set_new(a, "description", desc ? json_string(desc) : json_null());
    json_object_set_new(a, "recieve_payments", json_boolean(receive));
    /* The data-model seed's fields (003): accepted, echoed, null unless sent. */
    json_object_set_new(a, "account_kind", json_null());
    json_object_set_new(a, "parent_kind", json_null());
    json_object_set_new(a, "branch_kind", json_null());
    json_object_set_new(a, "created_at", json_string(""));
    json_object_set_new(a, "updated_at", json_string(""));
    return a;
}

static json_t *seed_data(void)
{
    char now[40];
    sim_now_riyadh_iso(now, sizeof now);
    json_t *d = json_object();
    json_t *accounts = json_array();
    int maxid = 0;
    for (size_t i = 0; i < sizeof seed_accounts / sizeof seed_accounts[0]; i++) {
        json_t *a =
            account_record(seed_accounts[i].id, seed_accounts[i].code, seed_accounts[i].name_en,
                           seed_accounts[i].name_ar, account_type_index(seed_accounts[i].type),
                           seed_accounts[i].receive, NULL);
        json_object_set_new(a, "created_at", json_string(now));
        json_object_set_new(a, "updated_at", json_string(now));
        json_array_append_new(accounts, a);
        maxid = seed_accounts[i].id;
    }
    json_object_set_new(d, "accounts", accounts);
    json_object_set_new(
        d, "taxes",
        json_pack("[{s:i,s:s,s:i,s:s,s:s,s:s},{s:i,s:s,s:i,s:s,s:s,s:s},{s:i,s:s,s:i,s:s,s:s,s:s}]",
                  "id", 1, "name", "15% VAT", "percentage", 150000, "type", "additive",
                  "created_at", now, "updated_at", now, "id", 2, "name", "Zero VAT", "percentage",
                  0, "type", "additive", "created_at", now, "updated_at", now, "id", 3, "name",
                  "VAT Exempt", "percentage", 0, "type", "additive", "created_at", now,
                  "updated_at", now));
    json_object_set_new(d, "product_unit_types",
                        json_pack("[{s:i,s:s,s:s,s:i,s:s,s:s},{s:i,s:s,s:s,s:i,s:s,s:s}]", "id", 6,
                                  "unit_name", "قطعة", "unit_representation", "ق", "kind", 1,
                                  "created_at", now, "updated_at", now, "id", 7, "unit_name",
                                  "كرتون", "unit_representation", "ك", "kind", 1, "created_at", now,
                                  "updated_at", now));
    static const char *const inv_fmt = "{s:i,s:s,s:s,s:i,s:b,s:s,s:s,s:{s:i,s:n,s:n,s:n,s:n,s:n}}";
    json_object_set_new(
        d, "inventories",
        json_pack("[o,o]",
                  json_pack(inv_fmt, "id", 1, "name", "Main warehouse", "ar_name",
                            "المستودع الرئيسي", "account_id", 10, "is_default", 1, "created_at",
                            now, "updated_at", now, "address", "id", 1, "shipping_address",
                            "shipping_city", "shipping_state", "shipping_zip", "shipping_country"),
                  json_pack(inv_fmt, "id", 2, "name", "Branch warehouse", "ar_name", "مستودع الفرع",
                            "account_id", 10, "is_default", 0, "created_at", now, "updated_at", now,
                            "address", "id", 2, "shipping_address", "shipping_city",
                            "shipping_state", "shipping_zip", "shipping_country")));
    json_object_set_new(d, "categories",
                        json_pack("[{s:i,s:s,s:n,s:n,s:s,s:s}]", "id", 1, "name", "General",
                                  "description", "parent_id", "created_at", now, "updated_at",
                                  now));
    json_object_set_new(d, "counters",
                        json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "accounts", maxid, "taxes", 3,
                                  "product_unit_types", 7, "inventories", 2, "categories", 1,
                                  "inventory_addresses", 2));
    return d;
}

/* ---------------------------------------------------------------------- */
/* Master data: build or update one record                                  */

/* Applies input `in` to rec (a fresh record when creating, else a scratch
 * copy of the stored one). Errors go to *errs. self_id excludes the record
 * itself from uniqueness checks. */
typedef void (*apply_fn)(struct qy *q, struct qy_tenant *t, json_t *rec, const json_t *in,
                         int creating, json_t **errs);

static void set_text(json_t *rec, const json_t *in, const char *key, const char *from)
{
    const json_t *v = json_object_get(in, from ? from : key);
    if (!v) return;
    char buf[2048];
    const char *s = qy_in_text(in, from ? from : key, buf, sizeof buf);
    json_object_set_new(rec, key, s ? json_string(s) : json_null());
}

static void set_bool(json_t *rec, const json_t *in, const char *key, const char *from)
{
    if (!json_object_get(in, from ? from : key)) return;
    json_object_set_new(rec, key, json_boolean(qy_in_bool(in, from ? from : key, 0)));
}

static int taken(struct qy_tenant *t, const char *coll, const char *key, const char *val,
                 int64_t self_id)
{
    size_t i;
    json_t *r;
    json_array_foreach(qy_coll(t, coll), i, r)
    {
        const char *x = json_string_value(json_object_get(r, key));
        if (x && strcmp(x, val) == 0 && json_integer_value(json_object_get(r, "id")) != self_id)
            return 1;
    }
    return 0;
}

static void ref_field(struct qy_tenant *t, json_t *rec, const json_t *in, const char *key,
                      const char *alias, const char *coll, const char *assoc, int required,
                      json_t **errs)
{
    int64_t v;
    int rc = qy_in_id(in, key, &v);
    if (rc == TH_ENOTFOUND && alias) rc = qy_in_id(in, alias, &v);
    const char *store = strcmp(key, "product_unit_type_id") == 0 ? "unit_type" : key;
    if (rc == TH_ENOTFOUND) {
        if (required && json_is_null(json_object_get(rec, store)))
            qy_err(errs, assoc, "can't be blank");
        return;
    }
    if (rc || !qy_find(t, coll, v)) {
        qy_err(errs, assoc, "must exist");
        return;
    }
    json_object_set_new(rec, store, json_integer((json_int_t)v));
}

static void account_apply(struct qy *q, struct qy_tenant *t, json_t *rec, const json_t *in,
                          int creating, json_t **errs)
{
    char en[512], ar[512], code[64], type[64];
    /* The reference's names, and the data-model seed's (003) as aliases. */
    const char *name_en = qy_in_text(in, "name_en", en, sizeof en);
    if (!name_en) name_en = qy_in_text(in, "en_name", en, sizeof en);
    const char *name_ar = qy_in_text(in, "name_ar", ar, sizeof ar);
    if (!name_ar) name_ar = qy_in_text(in, "ar_name", ar, sizeof ar);
    const char *c = qy_in_text(in, "code", code, sizeof code);
    const char *ty = qy_in_text(in, "type", type, sizeof type);
    if (!ty && account_type_index(qy_in_text(in, "account_kind", type, sizeof type)) >= 0)
        ty = type; /* [I] seed 003's account_kind stands in for type */
    int64_t self = json_integer_value(json_object_get(rec, "id"));
    if (!name_en)
        qy_err(errs, "name_en", "can't be blank");
    else if (taken(t, "accounts", "name_en", name_en, self))
        qy_err(errs, "name_en", "has already been taken");
    if (!name_ar)
        qy_err(errs, "name_ar", "can't be blank");
    else if (taken(t, "accounts", "name_ar", name_ar, self))
        qy_err(errs, "name_ar", "has already been taken");
    if (c && taken(t, "accounts", "code", c, self)) qy_err(errs, "code", "has already been taken");
    int ti = account_type_index(ty);
    if (!ty)
        qy_err(errs, "type", "can't be blank");
    else if (ti < 0)
        qy_err(errs, "type", "is not included in the list");
    const char *flag = json_object_get(in, "recieve_payments")   ? "recieve_payments"
                       : json_object_get(in, "receive_payments") ? "receive_payments"
                                                                 : NULL;
    if (!flag) qy_err(errs, "recieve_payments", "can't be blank");
    if (*errs) return;
    char autocode[32];
    if (!c) {
        /* [I] seed 003: code is generated when omitted: highest code + 1. */
        long long max = 0;
        size_t i;
        json_t *r;
        json_array_foreach(qy_coll(t, "accounts"), i, r)
        {
            long long n = strtoll(json_string_value(json_object_get(r, "code")), NULL, 10);
            if (n > max) max = n;
        }
        snprintf(autocode, sizeof autocode, "%lld", max + 1);
        c = autocode;
    }
    char desc[1024];
    json_t *a = account_record(0, c, name_en, name_ar, ti, qy_in_bool(in, flag, 0),
                               qy_in_text(in, "description", desc, sizeof desc));
    set_text(a, in, "account_kind", NULL);
    set_text(a, in, "parent_kind", NULL);
    set_text(a, in, "branch_kind", NULL);
    json_object_update(rec, a);
    json_decref(a);
}

static const char *const product_types[] = {"Product",     "Service", "Expense",
                                            "RawMaterial", "Recipe",  NULL};

static json_t *product_blank(void)
{
    json_t *p = json_pack(
        "{s:i,s:n,s:n,s:n,s:n,s:n,s:s,s:n,s:n,s:n,s:i,s:i,s:b,s:b,s:b,s:b,"
        "s:b,s:n,s:b,s:n,s:b,s:i,s:i,s:[],s:[],s:[],s:s,s:s,s:{}}",
        "id", 0, "name_ar", "name_en", "description", "sku", "barcode", "type", "Product",
        "category_id", "unit_type", "unit", "buying_price", 0, "selling_price", 0,
        "is_buying_price_inclusive", 0, "is_selling_price_inclusive", 0, "is_sold", 0, "is_bought",
        0, "track_quantity", 0, "tax_id", "is_inclusive", 0, "special_tax_reason_id", "pos_product",
        0, "sales_account_id", 17, "expense_account_id", 12, "inventories", "unit_conversions",
        "ingredients", "created_at", "", "updated_at", "", "_stock");
    return p;
}

static int product_on_documents(struct qy_tenant *t, int64_t pid)
{
    static const char *const colls[] = {"invoices", "credit_notes"};
    for (int c = 0; c < 2; c++) {
        size_t i, j;
        json_t *d, *l;
        json_array_foreach(qy_coll(t, colls[c]), i, d)
        {
            json_array_foreach(json_object_get(d, "line_items"), j, l)
            {
                if (json_integer_value(json_object_get(l, "product_id")) == pid) return 1;
            }
        }
    }
    return 0;
}

static void product_apply(struct qy *q, struct qy_tenant *t, json_t *rec, const json_t *in,
                          int creating, json_t **errs)
{
    char buf[512];
    static const char *const texts[] = {"sku", "name_ar", "name_en"};
    for (int i = 0; i < 3; i++) {
        if (qy_in_text(in, texts[i], buf, sizeof buf))
            set_text(rec, in, texts[i], NULL);
        else if (creating || json_object_get(in, texts[i]))
            qy_err(errs, texts[i], "can't be blank");
    }
    const char *sku = json_string_value(json_object_get(rec, "sku"));
    if (q->unique_sku && sku &&
        taken(t, "products", "sku", sku, json_integer_value(json_object_get(rec, "id"))))
        qy_err(errs, "sku", "has already been taken");
    set_text(rec, in, "description", NULL);
    set_text(rec, in, "barcode", NULL);
    if (creating) {
        /* Type is set at creation only ([C] QB-UPD; seed 003: ignored on update). */
        const char *ty = qy_in_text(in, "type", buf, sizeof buf);
        int ok = !ty;
        for (int i = 0; ty && product_types[i]; i++)
            ok |= strcmp(ty, product_types[i]) == 0;
        if (!ok)
            qy_err(errs, "type", "is not included in the list");
        else if (ty)
            json_object_set_new(rec, "type", json_string(ty));
    }
    int64_t pid = json_integer_value(json_object_get(rec, "id"));
    int locked = !creating && product_on_documents(t, pid);
    if (!locked || creating)
        ref_field(t, rec, in, "product_unit_type_id", "unit_type", "product_unit_types", "unit", 1,
                  errs);
    ref_field(t, rec, in, "category_id", NULL, "categories", "category", 1, errs);
    ref_field(t, rec, in, "tax_id", NULL, "taxes", "tax", 1, errs);
    ref_field(t, rec, in, "sales_account_id", NULL, "accounts", "sales_account", 0, errs);
    ref_field(t, rec, in, "expense_account_id", NULL, "accounts", "expense_account", 0, errs);
    int64_t v;
    if (qy_in_id(in, "special_tax_reason_id", &v) == 0)
        json_object_set_new(rec, "special_tax_reason_id", json_integer((json_int_t)v));
    /* create takes sale_item/purchase_item; records show is_sold/is_bought */
    static const struct {
        const char *flag, *alias, *shown, *price;
    } sides[] = {{"sale_item", "is_sold", "is_sold", "selling_price"},
                 {"purchase_item", "is_bought", "is_bought", "buying_price"}};
    for (int s = 0; s < 2; s++) {
        int rc = qy_in_dec(in, sides[s].price, QYQ_MONEY, &v);
        if (rc == TH_EPARSE || (rc == 0 && v < 0)) {
            qy_err(errs, sides[s].price, "is not a number");
            continue;
        }
        if (rc == 0) json_object_set_new(rec, sides[s].price, json_integer((json_int_t)v));
        const char *f = json_object_get(in, sides[s].flag)    ? sides[s].flag
                        : json_object_get(in, sides[s].alias) ? sides[s].alias
                                                              : NULL;
        /* [I] an absent flag is "0" (a form checkbox), but a price implies it. */
        if (f)
            json_object_set_new(rec, sides[s].shown, json_boolean(qy_in_bool(in, f, 0)));
        else if (rc == 0)
            json_object_set_new(rec, sides[s].shown, json_true());
        if (f && qy_in_bool(in, f, 0) && rc == TH_ENOTFOUND && creating)
            qy_err(errs, sides[s].price, "can't be blank");
    }
    set_bool(rec, in, "is_selling_price_inclusive", NULL);
    set_bool(rec, in, "is_buying_price_inclusive", NULL);
    json_object_set(rec, "is_inclusive", json_object_get(rec, "is_selling_price_inclusive"));
    set_bool(rec, in, "pos_product", NULL);
    if (json_object_get(in, "track_quantity") && !locked) {
        const char *ty = json_string_value(json_object_get(rec, "type"));
        /* [I] services and expenses carry no stock whatever the flag says. */
        int track = qy_in_bool(in, "track_quantity", 0) && strcmp(ty, "Service") != 0 &&
                    strcmp(ty, "Expense") != 0;
        json_object_set_new(rec, "track_quantity", json_boolean(track));
    }
    json_t *uc = json_object_get(in, "unit_conversions");
    if (json_is_array(uc)) {
        json_t *out = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(uc, i, c)
        {
            int64_t from, rate, price;
            if (qy_in_id(c, "from_unit", &from) || !qy_find(t, "product_unit_types", from)) {
                qy_err(errs, "unit_conversions.from_unit", "must exist");
                continue;
            }
            if (qy_in_dec(c, "rate", QYQ_PCT, &rate) || rate <= 0) {
                qy_err(errs, "unit_conversions.rate", "must be greater than 0");
                continue;
            }
            json_t *o = json_pack("{s:I,s:O,s:I}", "from_unit", (json_int_t)from, "to_unit",
                                  json_object_get(rec, "unit_type"), "rate", (json_int_t)rate);
            set_text(o, c, "barcode", NULL);
            if (!json_object_get(o, "barcode")) json_object_set_new(o, "barcode", json_null());
            static const char *const prices[] = {"unit_purchase_price", "unit_selling_price"};
            for (int k = 0; k < 2; k++)
                json_object_set_new(o, prices[k],
                                    qy_in_dec(c, prices[k], QYQ_MONEY, &price) == 0
                                        ? json_integer((json_int_t)price)
                                        : json_null());
            json_array_append_new(out, o);
        }
        json_object_set_new(rec, "unit_conversions", out);
    }
    json_t *ing = json_object_get(in, "ingredients_attributes");
    if (!ing) ing = json_object_get(in, "ingredients");
    if (json_is_array(ing)) {
        json_t *out = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(ing, i, c)
        {
            int64_t comp, unit = 0, qty;
            if ((qy_in_id(c, "component_id", &comp) && qy_in_id(c, "product_id", &comp)) ||
                !qy_find(t, "products", comp)) {
                qy_err(errs, "ingredients.component", "must exist");
                continue;
            }
            if (qy_in_dec(c, "quantity", QYQ_QTY, &qty) || qty <= 0) {
                qy_err(errs, "ingredients.quantity", "must be greater than 0");
                continue;
            }
            if (qy_in_id(c, "unit_id", &unit)) unit = 0;
            json_t *o = json_pack("{s:I,s:I}", "component_id", (json_int_t)comp, "quantity",
                                  (json_int_t)qty);
            json_object_set_new(o, "unit_id", unit ? json_integer((json_int_t)unit) : json_null());
            json_array_append_new(out, o);
        }
        json_object_set_new(rec, "ingredients", out);
    }
    const json_t *unit =
        qy_find(t, "product_unit_types", json_integer_value(json_object_get(rec, "unit_type")));
    if (unit) json_object_set(rec, "unit", json_object_get(unit, "unit_name"));
}

static void category_apply(struct qy *q, struct qy_tenant *t, json_t *rec, const json_t *in,
                           int creating, json_t **errs)
{
    char buf[512];
    if (qy_in_text(in, "name", buf, sizeof buf))
        set_text(rec, in, "name", NULL);
    else if (creating || json_object_get(in, "name"))
        qy_err(errs, "name", "can't be blank");
    set_text(rec, in, "description", NULL);
    int64_t v;
    int rc = qy_in_id(in, "parent_id", &v);
    if (rc == 0 && qy_find(t, "categories", v))
        json_object_set_new(rec, "parent_id", json_integer((json_int_t)v));
    else if (rc != TH_ENOTFOUND)
        qy_err(errs, "parent", "must exist");
}

static void unit_apply(struct qy *q, struct qy_tenant *t, json_t *rec, const json_t *in,
                       int creating, json_t **errs)
{
    char buf[512];
    if (qy_in_text(in, "unit_name", buf, sizeof buf))
        set_text(rec, in, "unit_name", NULL);
    else
        qy_err(errs, "unit_name", "can't be blank");
    set_text(rec, in, "unit_representation", NULL);
    int64_t k;
    int rc = qy_in_id(in, "kind", &k);
    if (rc == 0 && k >= 1 && k <= 6)
        json_object_set_new(rec, "kind", json_integer((json_int_t)k));
    else if (rc != TH_ENOTFOUND)
        qy_err(errs, "kind", "is not included in the list");
}

static void inventory_apply(struct qy *q, struct qy_tenant *t, json_t *rec, const json_t *in,
                            int creating, json_t **errs)
{
    char buf[512];
    if (qy_in_text(in, "name", buf, sizeof buf))
        set_text(rec, in, "name", NULL);
    else if (creating || json_object_get(in, "name"))
        qy_err(errs, "name", "can't be blank");
    set_text(rec, in, "ar_name", NULL);
    ref_field(t, rec, in, "account_id", NULL, "accounts", "account", 0, errs);
    set_bool(rec, in, "is_default", NULL);
    json_t *addr = json_object_get(in, "address");
    if (json_is_object(addr)) {
        json_t *a = json_object_get(rec, "address");
        static const char *const keys[] = {"shipping_address", "shipping_city", "shipping_state",
                                           "shipping_zip", "shipping_country"};
        for (int i = 0; i < 5; i++)
            set_text(a, addr, keys[i], NULL);
    }
}

static const char *const billing_keys[] = {"billing_address", "billing_city",    "billing_state",
                                           "billing_zip",     "billing_country", "building_number"};
static const char *const shipping_keys[] = {"shipping_address", "shipping_city",
                                            "shipping_state",   "shipping_zip",
                                            "shipping_country", "shipping_building_number"};

static json_t *address_blank(int shipping)
{
    const char *const *keys = shipping ? shipping_keys : billing_keys;
    json_t *a = json_pack("{s:i,s:i,s:n}", "id", 0, "contact_id", 0, "is_default");
    for (int i = 0; i < 5; i++)
        json_object_set_new(a, keys[i], json_null());
    json_object_set_new(a, "created_at", json_string(""));
    json_object_set_new(a, "updated_at", json_string(""));
    json_object_set_new(a, keys[5], json_null());
    return a;
}

static json_t *contact_blank(void)
{
    json_t *c =
        json_pack("{s:i,s:n,s:n,s:s,s:s,s:s,s:n,s:n,s:n,s:n,s:{},s:{s:n},s:n,s:b,s:b}", "id", 0,
                  "name", "organization", "status", "Active", "created_at", "", "updated_at", "",
                  "email", "phone_number", "secondary_phone_number", "tax_number", "custom_fields",
                  "customer_details", "cr_number", "website", "pos", 0, "government_entity", 0);
    json_object_set_new(c, "billing_address", address_blank(0));
    json_object_set_new(c, "shipping_address", address_blank(1));
    json_object_set_new(c, "bank", json_null());
    return c;
}

static void contact_apply(struct qy *q, struct qy_tenant *t, json_t *rec, const json_t *in,
                          int creating, json_t **errs)
{
    char buf[512];
    if (qy_in_text(in, "name", buf, sizeof buf))
        set_text(rec, in, "name", NULL);
    else if (creating || json_object_get(in, "name"))
        qy_err(errs, "name", "can't be blank");
    static const char *const texts[] = {"organization",   "email",   "phone_number",
                                        "tax_number",     "website", "secondary_phone_number",
                                        "secondary_email"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (i == 6 && !json_object_get(in, texts[i])) continue;
        set_text(rec, in, texts[i], NULL);
    }
    /* The docs' typo, sent by some clients instead ([C] MCP client.js). */
    if (!json_object_get(in, "secondary_phone_number"))
        set_text(rec, in, "secondary_phone_number", "secondary_contact_number");
    const char *st = qy_in_text(in, "status", buf, sizeof buf);
    if (st && strcmp(st, "Active") != 0 && strcmp(st, "Inactive") != 0)
        qy_err(errs, "status", "is not included in the list");
    else if (st)
        json_object_set_new(rec, "status", json_string(st));
    set_bool(rec, in, "pos", NULL);
    set_bool(rec, in, "government_entity", NULL);
    json_t *cf = json_object_get(in, "custom_fields");
    if (json_is_object(cf)) json_object_set(rec, "custom_fields", cf);
    set_text(json_object_get(rec, "customer_details"), in, "cr_number", NULL);
    static const char *const addrs[] = {"billing_address", "shipping_address"};
    for (int s = 0; s < 2; s++) {
        json_t *a = json_object_get(in, addrs[s]);
        if (!json_is_object(a)) continue;
        json_t *dst = json_object_get(rec, addrs[s]);
        const char *const *keys = s ? shipping_keys : billing_keys;
        for (int i = 0; i < 6; i++)
            set_text(dst, a, keys[i], NULL);
        /* shipping building number arrives as building_number too */
        if (s && !json_object_get(a, keys[5])) set_text(dst, a, keys[5], "building_number");
        qy_touch(dst);
    }
}

/* ---------------------------------------------------------------------- */
/* Resources                                                                */

enum { CAN_LIST = 1, CAN_SHOW = 2, CAN_CREATE = 4, CAN_UPDATE = 8, CAN_BULK = 16 };

struct resource {
    const char *path;   /* "customers" */
    const char *coll;   /* storage collection */
    const char *list;   /* list key */
    const char *one;    /* envelope of create/update and of the show answer */
    const char *show;   /* show key when it differs */
    const char *bulk;   /* answer key of an array create */
    const char *things; /* "Products" in the empty-list sentence */
    int flags, paged, pagination;
    apply_fn apply;
    json_t *(*blank)(void);
};

static const char *const name_fields[] = {"name", "name_en", "name_ar", NULL};

static json_t *account_blank(void)
{
    return json_pack("{s:i}", "id", 0);
}

static json_t *category_blank(void)
{
    return json_pack("{s:i,s:n,s:n,s:n,s:s,s:s}", "id", 0, "name", "description", "parent_id",
                     "created_at", "", "updated_at", "");
}

static json_t *unit_blank(void)
{
    return json_pack("{s:i,s:n,s:n,s:i,s:s,s:s}", "id", 0, "unit_name", "unit_representation",
                     "kind", 1, "created_at", "", "updated_at", "");
}

static json_t *inventory_blank(void)
{
    return json_pack("{s:i,s:n,s:n,s:i,s:b,s:s,s:s,s:{s:i,s:n,s:n,s:n,s:n,s:n}}", "id", 0, "name",
                     "ar_name", "account_id", 10, "is_default", 0, "created_at", "", "updated_at",
                     "", "address", "id", 0, "shipping_address", "shipping_city", "shipping_state",
                     "shipping_zip", "shipping_country");
}

static const struct resource resources[] = {
    {"accounts", "accounts", "accounts", "account", NULL, NULL, "Accounts",
     CAN_LIST | CAN_SHOW | CAN_CREATE, 0, 0, account_apply, account_blank},
    {"products", "products", "products", "product", NULL, "products", "Products",
     CAN_LIST | CAN_SHOW | CAN_CREATE | CAN_UPDATE | CAN_BULK, 1, 1, product_apply, product_blank},
    {"categories", "categories", "categories", "category", NULL, "categories", "Categories",
     CAN_LIST | CAN_SHOW | CAN_CREATE | CAN_UPDATE | CAN_BULK, 0, 0, category_apply,
     category_blank},
    {"product_unit_types", "product_unit_types", "product_unit_types", "product_unit_type", NULL,
     NULL, "Product Unit Types", CAN_LIST | CAN_SHOW | CAN_CREATE, 0, 0, unit_apply, unit_blank},
    {"taxes", "taxes", "taxes", "tax", NULL, NULL, "Taxes", CAN_LIST, 1, 0, NULL, NULL},
    {"inventories", "inventories", "inventories", "inventory", NULL, NULL, "Inventories",
     CAN_LIST | CAN_SHOW | CAN_CREATE | CAN_UPDATE, 0, 0, inventory_apply, inventory_blank},
    {"customers", "contacts", "customers", "contact", NULL, "contacts", "Customers",
     CAN_LIST | CAN_SHOW | CAN_CREATE | CAN_UPDATE | CAN_BULK, 1, 0, contact_apply, contact_blank},
    {"invoices", "invoices", "invoices", "invoice", NULL, NULL, "Invoices", CAN_LIST | CAN_SHOW, 1,
     0, NULL, NULL},
    {"invoice_payments", "receipts", "receipts", "invoice_payment", NULL, NULL, "Invoice Payments",
     CAN_LIST | CAN_SHOW, 1, 0, NULL, NULL},
    {"credit_notes", "credit_notes", "credit_notes", "credit_note", "note", NULL, "Credit Notes",
     CAN_LIST | CAN_SHOW, 1, 0, NULL, NULL},
};

static const struct resource *find_resource(const char *path)
{
    for (size_t i = 0; i < sizeof resources / sizeof resources[0]; i++)
        if (strcmp(resources[i].path, path) == 0) return &resources[i];
    return NULL;
}

static void list_records(struct qy *q, struct qy_tenant *t, const struct resource *r,
                         const struct sim_req *req, struct httpd_resp *resp)
{
    json_t *rows = json_array();
    size_t i;
    json_t *rec;
    /* Speed only: records updated before q[updated_at_gteq] are not even
     * rendered (the same condition is applied again below), so a cursor
     * over a large catalogue costs what it lists (bench/stock). */
    const char *since = httpd_req_arg(req->http, "q[updated_at_gteq]");
    int64_t since_ms = 0, at_ms = 0;
    if (!since || qyq_parse_time(since, &since_ms) != 0) since_ms = 0;
    json_array_foreach(qy_coll(t, r->coll), i, rec)
    {
        const char *up = json_string_value(json_object_get(rec, "updated_at"));
        if (since_ms && up && qyq_parse_time(up, &at_ms) == 0 && at_ms < since_ms) continue;
        json_array_append_new(rows, qy_render(t, r->coll, rec));
    }
    int names_refused = strcmp(r->coll, "products") == 0 || strcmp(r->coll, "accounts") == 0;
    struct qyq_opts o = {
        .paged = r->paged,
        .max_per_page = q->max_per_page,
        /* [C] MCP: product and account names are not filterable (ignored). */
        .ignored = names_refused ? name_fields : NULL,
        /* [C] MCP CHANGELOG: account type_* filters return nothing. */
        .nothing_prefix = strcmp(r->coll, "accounts") == 0 ? "type" : NULL,
        .kind_codes = strcmp(r->coll, "receipts") == 0,
    };
    long total = 0, page = 1, per_page = 0;
    json_t *out = qyq_apply(rows, req->http, &o, &total, &page, &per_page);
    if (json_array_size(out) == 0) {
        json_decref(out);
        char msg[160];
        snprintf(msg, sizeof msg, "We could not retrieve your %s, we found nothing.", r->things);
        sim_json(resp, 404, json_string(msg));
        return;
    }
    json_t *body = json_pack("{s:o}", r->list, out);
    if (r->pagination)
        json_object_set_new(
            body, "pagination",
            json_pack("{s:i,s:i,s:i,s:i}", "currentPage", (int)page, "perPage", (int)per_page,
                      "totalPages", (int)((total + per_page - 1) / per_page), "total", (int)total));
    sim_json(resp, 200, body);
}

static void post_insert(struct qy_tenant *t, const struct resource *r, json_t *rec, int creating)
{
    if (!creating) {
        /* updates keep their address ids */
    } else if (strcmp(r->coll, "contacts") == 0) {
        /* Addresses are their own records in Qoyod, with their own ids. */
        json_t *counters = json_object_get(t->d, "counters");
        static const char *const addrs[] = {"billing_address", "shipping_address"};
        for (int s = 0; s < 2; s++) {
            json_int_t id = json_integer_value(json_object_get(counters, "addresses")) + 1;
            json_object_set_new(counters, "addresses", json_integer(id));
            json_t *a = json_object_get(rec, addrs[s]);
            json_object_set_new(a, "id", json_integer(id));
            json_object_set(a, "contact_id", json_object_get(rec, "id"));
            json_object_set(a, "created_at", json_object_get(rec, "created_at"));
            json_object_set(a, "updated_at", json_object_get(rec, "created_at"));
        }
    } else if (strcmp(r->coll, "inventories") == 0) {
        json_t *counters = json_object_get(t->d, "counters");
        json_int_t id = json_integer_value(json_object_get(counters, "inventory_addresses")) + 1;
        json_object_set_new(counters, "inventory_addresses", json_integer(id));
        json_object_set_new(json_object_get(rec, "address"), "id", json_integer(id));
    }
    if (strcmp(r->coll, "inventories") == 0 && json_is_true(json_object_get(rec, "is_default"))) {
        size_t i;
        json_t *o;
        json_array_foreach(qy_coll(t, "inventories"), i, o)
        {
            if (o != rec) json_object_set_new(o, "is_default", json_false());
        }
    }
}

/* Creates one record, or several from an array when the resource allows. */
static void create_records(struct qy *q, struct qy_tenant *t, const struct resource *r,
                           const struct sim_req *req, struct httpd_resp *resp)
{
    json_t *in = json_object_get(req->body, r->one);
    if (!(json_is_object(in) ||
          ((r->flags & CAN_BULK) && json_is_array(in) && json_array_size(in) > 0))) {
        (void)qy_envelope(req, r->one, resp);
        return;
    }
    json_t *batch = json_is_array(in) ? json_incref(in) : json_pack("[O]", in);
    json_t *built = json_array();
    json_t *errs = NULL;
    size_t i;
    json_t *one;
    json_array_foreach(batch, i, one)
    {
        json_t *rec = r->blank();
        if (json_is_object(one))
            r->apply(q, t, rec, one, 1, &errs);
        else
            qy_err(&errs, r->one, "must be an object");
        json_array_append_new(built, rec);
        if (errs) break; /* all or nothing: the first bad record is reported */
    }
    json_decref(batch);
    if (errs) {
        json_decref(built);
        qy_reply_errors(resp, errs);
        return;
    }
    json_t *out = json_array();
    json_array_foreach(built, i, one)
    {
        json_t *rec = qy_insert(t, r->coll, json_incref(one));
        post_insert(t, r, rec, 1);
        json_array_append_new(out, qy_render(t, r->coll, rec));
    }
    json_decref(built);
    if (json_is_array(in)) {
        sim_json(resp, 201, json_pack("{s:o}", r->bulk, out));
    } else {
        sim_json(resp, 201, json_pack("{s:O}", r->one, json_array_get(out, 0)));
        json_decref(out);
    }
}

static void update_record(struct qy *q, struct qy_tenant *t, const struct resource *r, json_t *rec,
                          const struct sim_req *req, struct httpd_resp *resp)
{
    json_t *in = qy_envelope(req, r->one, resp);
    if (!in) return;
    json_t *copy = json_deep_copy(rec), *errs = NULL;
    r->apply(q, t, copy, in, 0, &errs);
    if (errs) {
        json_decref(copy);
        qy_reply_errors(resp, errs);
        return;
    }
    json_object_update(rec, copy);
    json_decref(copy);
    qy_touch(rec);
    post_insert(t, r, rec, 0);
    sim_json(resp, 200, json_pack("{s:o}", r->one, qy_render(t, r->coll, rec)));
}

/* ---------------------------------------------------------------------- */
/* Tenants and the router                                                   */

static struct qy_tenant *tenant_by_key(struct qy *q, const char *key)
{
    for (size_t i = 0; key && i < q->ntenants; i++)
        if (strcmp(q->tenants[i].key, key) == 0) return &q->tenants[i];
    return NULL;
}

static struct qy_tenant *tenant_add(struct qy *q, const char *key)
{
    struct qy_tenant *t = tenant_by_key(q, key);
    if (t || q->ntenants == QY_MAX_TENANTS) return t;
    t = &q->tenants[q->ntenants++];
    t->key = xstrdup(key);
    t->d = seed_data();
    return t;
}

static int parse_id(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 18) return -1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    *out = strtoll(s, NULL, 10);
    return *out > 0 ? 0 : -1;
}

static void route_not_found(struct httpd_resp *resp)
{
    /* [I] Rails' default JSON 404 for a path with no route. */
    sim_json(resp, 404, json_pack("{s:i,s:s}", "status", 404, "error", "Not Found"));
}

static void handle(void *st, const struct sim_req *req, struct httpd_resp *resp)
{
    struct qy *q = st;
    const char *p = req->path;
    if (strncmp(p, "/api/2.0/", 9) == 0)
        p += 8; /* old host layout ([C] PAYLINK) */
    else if (strncmp(p, "/2.0/", 5) == 0)
        p += 4;
    else {
        route_not_found(resp);
        return;
    }
    const char *key = httpd_req_header(req->http, "API-KEY");
    struct qy_tenant *t = tenant_by_key(q, key);
    if (!t) {
        sim_json(resp, 401, json_pack("{s:s}", "message", "Unauthorized")); /* [I] body */
        return;
    }
    char bucket[300];
    snprintf(bucket, sizeof bucket, "qoyod:%s", t->key);
    long wait = sim_rate_take(q->s, bucket, q->rate_limit, 60, NULL, NULL);
    if (wait > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", wait);
        httpd_resp_header(resp, "Retry-After", ra);
        sim_json(resp, 429, json_pack("{s:s}", "message", "Too Many Requests")); /* [I] body */
        return;
    }
    int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    int put = strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;
    int del = strcmp(req->method, "DELETE") == 0;
    if (req->body_invalid && !get) {
        sim_json(resp, 400,
                 json_pack("{s:s}", "message", "Invalid JSON in request body")); /* [I] */
        return;
    }

    /* Split "/products/5/allocations" into at most three segments. */
    char segs[3][128] = {{0}};
    int nseg = 0;
    for (const char *s = p; *s && nseg <= 3;) {
        while (*s == '/')
            s++;
        if (!*s) break;
        size_t n = strcspn(s, "/");
        if (nseg == 3 || n >= sizeof segs[0]) {
            route_not_found(resp);
            return;
        }
        memcpy(segs[nseg], s, n);
        segs[nseg++][n] = '\0';
        s += n;
    }
    int64_t id = 0;
    int has_id = nseg >= 2;
    if (has_id && parse_id(segs[1], &id) != 0) {
        qy_reply_not_found(resp);
        return;
    }

    if (nseg == 1 && post) {
        if (strcmp(segs[0], "invoices") == 0) {
            qy_invoice_create(q, t, req, resp);
            return;
        }
        if (strcmp(segs[0], "invoice_payments") == 0) {
            qy_payment_create(q, t, req, resp);
            return;
        }
        if (strcmp(segs[0], "credit_notes") == 0) {
            qy_credit_note_create(q, t, req, resp);
            return;
        }
        if (strcmp(segs[0], "inventory_adjustments") == 0) {
            qy_adjustment_create(q, t, req, resp);
            return;
        }
        if (strcmp(segs[0], "inventory_transfers") == 0) {
            qy_transfer_create(q, t, req, resp);
            return;
        }
        if (strcmp(segs[0], "bills") == 0) {
            qy_bill_create(q, t, req, resp);
            return;
        }
    }
    if (nseg == 3 && strcmp(segs[0], "invoices") == 0) {
        if (post && strcmp(segs[2], "allocations") == 0) {
            qy_invoice_allocate(q, t, id, req, resp);
            return;
        }
        if (get && strcmp(segs[2], "pdf") == 0) {
            qy_invoice_pdf(q, t, id, resp);
            return;
        }
    }
    if (nseg == 2 && del && strcmp(segs[0], "invoices") == 0) {
        qy_invoice_delete(q, t, id, resp);
        return;
    }
    if (nseg == 2 && del && strcmp(segs[0], "credit_notes") == 0) {
        qy_credit_note_delete(q, t, id, resp);
        return;
    }

    const struct resource *r = nseg >= 1 && nseg <= 2 ? find_resource(segs[0]) : NULL;
    if (!r) {
        route_not_found(resp);
        return;
    }
    if (nseg == 1 && get && (r->flags & CAN_LIST)) {
        list_records(q, t, r, req, resp);
        return;
    }
    if (nseg == 1 && post && (r->flags & CAN_CREATE)) {
        create_records(q, t, r, req, resp);
        return;
    }
    if (nseg == 2 && (get || put) && (r->flags & (get ? CAN_SHOW : CAN_UPDATE))) {
        json_t *rec = qy_find(t, r->coll, id);
        if (!rec) {
            qy_reply_not_found(resp);
            return;
        }
        if (put) {
            update_record(q, t, r, rec, req, resp);
            return;
        }
        sim_json(resp, 200,
                 json_pack("{s:o}", r->show ? r->show : r->one, qy_render(t, r->coll, rec)));
        return;
    }
    route_not_found(resp);
}

/* ---------------------------------------------------------------------- */
/* Control endpoints: /_sim/qoyod/...                                       */

static struct qy_tenant *control_tenant(struct qy *q, const struct sim_req *req)
{
    const char *key = httpd_req_header(req->http, "API-KEY");
    if (!key) key = httpd_req_arg(req->http, "api_key");
    return key ? tenant_by_key(q, key) : &q->tenants[0];
}

static json_t *money_str(int64_t v)
{
    return jv_dec_string(v, QYQ_MONEY, 1);
}

static json_t *summary(struct qy_tenant *t)
{
    json_t *by = json_object();
    int64_t total = 0, paid = 0, due = 0, pay = 0, cn = 0, cn_left = 0;
    size_t i;
    json_t *r;
    json_array_foreach(qy_coll(t, "invoices"), i, r)
    {
        const char *st = json_string_value(json_object_get(r, "status"));
        json_object_set_new(by, st, json_integer(json_integer_value(json_object_get(by, st)) + 1));
        total += json_integer_value(json_object_get(r, "total"));
        paid += json_integer_value(json_object_get(r, "paid_amount"));
        due += json_integer_value(json_object_get(r, "due_amount"));
    }
    json_array_foreach(qy_coll(t, "receipts"), i, r)
    {
        pay += json_integer_value(json_object_get(r, "amount"));
    }
    json_array_foreach(qy_coll(t, "credit_notes"), i, r)
    {
        cn += json_integer_value(json_object_get(r, "total_amount"));
        cn_left += json_integer_value(json_object_get(r, "remaining_amount"));
    }
    json_t *stock = json_array();
    json_array_foreach(qy_coll(t, "products"), i, r)
    {
        if (!qy_tracked(r)) continue;
        size_t j;
        json_t *inv;
        json_array_foreach(qy_coll(t, "inventories"), j, inv)
        {
            json_int_t iid = json_integer_value(json_object_get(inv, "id"));
            json_array_append_new(
                stock, json_pack("{s:O,s:O,s:I,s:o}", "product_id", json_object_get(r, "id"), "sku",
                                 json_object_get(r, "sku"), "inventory_id", iid, "stock",
                                 jv_dec_string(qy_stock_get(r, iid), QYQ_QTY, 1)));
        }
    }
    return json_pack(
        "{s:s,s:{s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I},s:{s:o,s:o,s:o,s:o,s:o,s:o},s:o}", "api_key",
        t->key, "counts", "products", (json_int_t)json_array_size(qy_coll(t, "products")),
        "customers", (json_int_t)json_array_size(qy_coll(t, "contacts")), "invoices",
        (json_int_t)json_array_size(qy_coll(t, "invoices")), "invoices_by_status", by,
        "invoice_payments", (json_int_t)json_array_size(qy_coll(t, "receipts")), "credit_notes",
        (json_int_t)json_array_size(qy_coll(t, "credit_notes")), "inventory_adjustments",
        (json_int_t)json_array_size(qy_coll(t, "inventory_adjustments")), "inventory_transfers",
        (json_int_t)json_array_size(qy_coll(t, "inventory_transfers")), "accounts",
        (json_int_t)json_array_size(qy_coll(t, "accounts")), "totals", "invoices_total",
        money_str(total), "invoices_paid", money_str(paid), "invoices_due", money_str(due),
        "payments", money_str(pay), "credit_notes_total", money_str(cn), "credit_notes_remaining",
        money_str(cn_left), "stock", stock);
}

/* Seeds one product given in Qoyod's record shape (what GET returns), with
 * stock per inventory. Returns the stored record or NULL with *errs set. */
static json_t *seed_product(struct qy *q, struct qy_tenant *t, const json_t *src, json_t **errs)
{
    json_t *in = json_deep_copy(src);
    static const struct {
        const char *from, *to;
    } renames[] = {{"unit_type", "product_unit_type_id"},
                   {"is_sold", "sale_item"},
                   {"is_bought", "purchase_item"}};
    for (int i = 0; i < 3; i++)
        if (json_object_get(in, renames[i].from) && !json_object_get(in, renames[i].to))
            json_object_set(in, renames[i].to, json_object_get(in, renames[i].from));
    if (!json_object_get(in, "product_unit_type_id"))
        json_object_set_new(in, "product_unit_type_id", json_integer(6));
    if (!json_object_get(in, "category_id"))
        json_object_set_new(in, "category_id", json_integer(1));
    if (!json_object_get(in, "tax_id")) json_object_set_new(in, "tax_id", json_integer(1));
    char sku[256];
    if (qy_in_text(in, "sku", sku, sizeof sku)) {
        if (!json_object_get(in, "name_en")) json_object_set_new(in, "name_en", json_string(sku));
        if (!json_object_get(in, "name_ar")) json_object_set_new(in, "name_ar", json_string(sku));
    }
    json_t *invs = json_object_get(in, "inventories");
    if (json_array_size(invs) > 0 && !json_object_get(in, "track_quantity"))
        json_object_set_new(in, "track_quantity", json_true());
    json_t *rec = product_blank();
    product_apply(q, t, rec, in, 1, errs);
    size_t i;
    json_t *e;
    json_array_foreach(invs, i, e)
    {
        int64_t iid, stock;
        if (qy_in_id(e, "id", &iid) || !qy_find(t, "inventories", iid))
            qy_err(errs, "inventories.id", "must exist");
        else if (qy_in_dec(e, "stock", QYQ_QTY, &stock))
            qy_err(errs, "inventories.stock", "is not a number");
    }
    if (*errs) {
        json_decref(rec);
        json_decref(in);
        return NULL;
    }
    rec = qy_insert(t, "products", rec);
    json_array_foreach(invs, i, e)
    {
        int64_t iid = 0, stock = 0;
        if (qy_in_id(e, "id", &iid) == 0 && qy_in_dec(e, "stock", QYQ_QTY, &stock) == 0)
            qy_stock_set(q, rec, iid, stock);
    }
    json_decref(in);
    return rec;
}

static int control(void *st, const char *sub, const struct sim_req *req, struct httpd_resp *resp)
{
    struct qy *q = st;
    if (strncmp(sub, "qoyod/", 6) != 0) return TH_ENOTFOUND;
    sub += 6;
    int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    if (strcmp(sub, "tenants") == 0 && (get || post)) {
        if (post) {
            const char *key = jv_get_str(req->body, "api_key");
            if (!key || !*key) {
                sim_json(resp, 400,
                         json_pack("{s:s}", "error", "body must be {\"api_key\":\"K\"}"));
                return 0;
            }
            if (!tenant_add(q, key)) {
                sim_json(resp, 400, json_pack("{s:s}", "error", "too many tenants"));
                return 0;
            }
        }
        json_t *keys = json_array();
        for (size_t i = 0; i < q->ntenants; i++)
            json_array_append_new(keys, json_string(q->tenants[i].key));
        sim_json(resp, post ? 201 : 200, json_pack("{s:o}", "tenants", keys));
        return 0;
    }
    struct qy_tenant *t = control_tenant(q, req);
    if (!t) {
        sim_json(resp, 404, json_pack("{s:s}", "error", "no tenant with that API key"));
        return 0;
    }
    if (strcmp(sub, "summary") == 0 && get) {
        sim_json(resp, 200, summary(t));
        return 0;
    }
    if (!post) return TH_ENOTFOUND;
    if (req->body_invalid || !req->body) {
        sim_json(resp, 400, json_pack("{s:s}", "error", "body must be JSON"));
        return 0;
    }
    if (strcmp(sub, "products") == 0 || strcmp(sub, "customers") == 0) {
        int products = sub[0] == 'p';
        const char *one = products ? "product" : "contact",
                   *many = products ? "products" : "contacts";
        const json_t *body = req->body;
        json_t *list = json_is_array(body) ? json_incref((json_t *)body)
                       : json_is_array(json_object_get(body, many))
                           ? json_incref(json_object_get(body, many))
                       : json_is_object(json_object_get(body, one))
                           ? json_pack("[O]", json_object_get(body, one))
                           : json_pack("[O]", body);
        json_t *out = json_array(), *errs = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e)
        {
            json_t *rec = NULL;
            if (products) {
                rec = seed_product(q, t, e, &errs);
            } else {
                rec = contact_blank();
                contact_apply(q, t, rec, e, 1, &errs);
                if (errs)
                    json_decref(rec), rec = NULL;
                else
                    post_insert(t, find_resource("customers"), rec = qy_insert(t, "contacts", rec),
                                1);
            }
            if (!rec) break;
            json_array_append_new(out, qy_render(t, products ? "products" : "contacts", rec));
        }
        json_decref(list);
        if (errs) {
            json_decref(out);
            sim_json(resp, 422, json_pack("{s:o,s:I}", "errors", errs, "created", (json_int_t)i));
        } else {
            sim_json(resp, 201, json_pack("{s:o}", many, out));
        }
        return 0;
    }
    if (strcmp(sub, "stock") == 0) {
        int64_t pid = 0, iid = 1, stock;
        json_t *p = NULL;
        char sku[256];
        if (qy_in_id(req->body, "product_id", &pid) == 0) {
            p = qy_find(t, "products", pid);
        } else if (qy_in_text(req->body, "sku", sku, sizeof sku)) {
            size_t i;
            json_t *r;
            json_array_foreach(qy_coll(t, "products"), i, r)
            {
                if (!p && strcmp(json_string_value(json_object_get(r, "sku")), sku) == 0) p = r;
            }
        }
        if (qy_in_id(req->body, "inventory_id", &iid) == TH_EPARSE) iid = 0;
        if (!p || !qy_find(t, "inventories", iid) ||
            qy_in_dec(req->body, "stock", QYQ_QTY, &stock) != 0) {
            sim_json(resp, 422,
                     json_pack("{s:s}", "error",
                               "need product_id or sku of an existing product, an "
                               "existing inventory_id (default 1) and stock"));
            return 0;
        }
        json_object_set_new(p, "track_quantity", json_true());
        qy_stock_set(q, p, iid, stock);
        sim_json(resp, 200, json_pack("{s:o}", "product", qy_render(t, "products", p)));
        return 0;
    }
    return TH_ENOTFOUND;
}

/* ---------------------------------------------------------------------- */
/* Lifecycle and persistence                                                */

static long opt_long(struct sim *s, const char *name, long dflt)
{
    const char *v = sim_opt(s, name);
    if (!v) return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? dflt : n;
}

static void tenants_clear(struct qy *q)
{
    for (size_t i = 0; i < q->ntenants; i++) {
        free(q->tenants[i].key);
        json_decref(q->tenants[i].d);
    }
    q->ntenants = 0;
}

static void tenants_seed(struct qy *q)
{
    for (size_t i = 0; sim_opt_at(q->s, "api-key", i); i++)
        tenant_add(q, sim_opt_at(q->s, "api-key", i));
    if (q->ntenants == 0) tenant_add(q, DEFAULT_KEY);
}

static void *create(struct sim *s)
{
    struct qy *q = xcalloc(1, sizeof *q);
    q->s = s;
    q->rate_limit = opt_long(s, "rate-limit", QY_RATE_LIMIT_DEFAULT);
    q->max_per_page = opt_long(s, "max-per-page", QY_PER_PAGE_MAX_DEFAULT);
    if (q->max_per_page <= 0) q->max_per_page = QY_PER_PAGE_MAX_DEFAULT;
    q->unique_sku = opt_long(s, "unique-sku", 0) != 0;
    q->stock_bumps = opt_long(s, "stock-bumps-updated-at", 1) != 0;
    tenants_seed(q);
    return q;
}

static void destroy(void *st)
{
    struct qy *q = st;
    if (!q) return;
    tenants_clear(q);
    free(q);
}

static void reset(void *st)
{
    struct qy *q = st;
    tenants_clear(q);
    tenants_seed(q);
}

static json_t *save(void *st)
{
    struct qy *q = st;
    json_t *ts = json_array();
    for (size_t i = 0; i < q->ntenants; i++)
        json_array_append_new(
            ts, json_pack("{s:s,s:O}", "api_key", q->tenants[i].key, "data", q->tenants[i].d));
    return json_pack("{s:s,s:i,s:o}", "emulator", "qoyod", "version", 1, "tenants", ts);
}

static int load(void *st, const json_t *saved, struct th_err *err)
{
    struct qy *q = st;
    json_t *ts = json_object_get(saved, "tenants");
    if (!json_is_array(ts) || json_integer_value(json_object_get(saved, "version")) != 1)
        return th_err_set(err, TH_EPARSE,
                          "qoyod state: expected {\"version\":1,\"tenants\":[...]}");
    size_t i;
    json_t *e;
    json_array_foreach(ts, i, e)
    {
        const char *key = jv_get_str(e, "api_key");
        json_t *d = json_object_get(e, "data");
        if (!key || !json_is_object(d) || !json_is_object(json_object_get(d, "counters")))
            return th_err_set(err, TH_EPARSE, "qoyod state: tenant %zu lacks api_key or data", i);
    }
    /* Tenants in the file replace the seeded ones with the same key; keys
     * given on the command line but absent from the file stay seeded. */
    json_array_foreach(ts, i, e)
    {
        struct qy_tenant *t = tenant_add(q, jv_get_str(e, "api_key"));
        if (!t)
            return th_err_set(err, TH_ELIMIT, "qoyod state: more than %d tenants", QY_MAX_TENANTS);
        json_decref(t->d);
        t->d = json_deep_copy(json_object_get(e, "data"));
    }
    return 0;
}

const struct sim_ops qoyod_sim_ops = {
    .name = "qoyod",
    .create = create,
    .destroy = destroy,
    .reset = reset,
    .handle = handle,
    .control = control,
    .save = save,
    .load = load,
    .usage = "  --api-key KEY                 a tenant (repeatable; default \"demo-key\")\n"
             "  --rate-limit N                requests per minute per key (default 300; 0 = off)\n"
             "  --max-per-page N              largest per_page honoured (default 100)\n"
             "  --unique-sku 0|1              refuse a duplicate product SKU (default 0)\n"
             "  --stock-bumps-updated-at 0|1  stock changes bump product updated_at (default 1)\n",
};
