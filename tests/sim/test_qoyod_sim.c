/*
 * Tests of the Qoyod emulator (sim/qoyod_sim*.c) over HTTP: auth and
 * tenants, Ransack and paging, invoice arithmetic to the exact string, stock,
 * payments, credit notes, validation shapes, rate limiting, --state, control
 * endpoints, and every incoming fault mode as tarheel's client sees it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "th_test.h"

static const char *const two_keys[] = {"api-key", "k1", "api-key", "k2", NULL};

static int setup(void **state)
{
    *state = tt_sim_start(&qoyod_sim_ops, two_keys);
    return 0;
}

static int teardown(void **state)
{
    tt_sim_stop(*state);
    return 0;
}

/* One API call as tenant key (NULL = no API-KEY header). */
static long call(struct sim *s, const char *key, const char *method, const char *path,
                 const char *body, struct tt_resp *r)
{
    char h[128];
    snprintf(h, sizeof h, "API-KEY: %s", key ? key : "");
    const char *hs[] = {h, "Content-Type: application/json", NULL};
    tt_http(method, tt_url(s, "%s", path), key ? hs : hs + 1, body, r);
    return r->status;
}

static void want_status(struct tt_resp *r, long want, const char *what)
{
    if (r->status != want)
        fail_msg("%s: want HTTP %ld, got %ld: %s", what, want, r->status, r->body);
}

/* Asserts the string at a jv_path equals want. */
static void want_str(const json_t *root, const char *path, const char *want)
{
    const json_t *v = jv_path(root, path);
    if (!json_is_string(v) || strcmp(json_string_value(v), want) != 0) {
        char *d = v ? jv_dump(v) : xstrdup("(absent)");
        fail_msg("%s: want \"%s\", got %s", path, want, d);
    }
}

static void want_int(const json_t *root, const char *path, long long want)
{
    const json_t *v = jv_path(root, path);
    if (!json_is_integer(v) || json_integer_value(v) != want) {
        char *d = v ? jv_dump(v) : xstrdup("(absent)");
        fail_msg("%s: want %lld, got %s", path, want, d);
    }
}

/* POSTs and expects 201; returns the new record's id under key. */
static long long create(struct sim *s, const char *path, const char *key, const char *body)
{
    struct tt_resp r;
    call(s, "k1", "POST", path, body, &r);
    want_status(&r, 201, path);
    long long id = json_integer_value(jv_path(r.json, key));
    tt_resp_release(&r);
    return id;
}

static long long make_product(struct sim *s, const char *sku, const char *type, int tracked)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"product\":{\"sku\":\"%s\",\"name_ar\":\"منتج\",\"name_en\":\"Item %s\","
             "\"type\":\"%s\",\"product_unit_type_id\":6,\"category_id\":1,\"tax_id\":1,"
             "\"track_quantity\":\"%d\",\"sale_item\":\"1\",\"selling_price\":\"100.0\"}}",
             sku, sku, type, tracked);
    return create(s, "/2.0/products", "product.id", body);
}

static long long make_customer(struct sim *s, const char *name)
{
    char body[256];
    snprintf(body, sizeof body, "{\"contact\":{\"name\":\"%s\",\"phone_number\":\"0500000001\"}}",
             name);
    return create(s, "/2.0/customers", "contact.id", body);
}

static void set_stock(struct sim *s, long long pid, int inv, const char *qty)
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"inventory_adjustment\":{\"inventory_id\":%d,\"date\":\"2026-01-15\","
             "\"line_items\":[{\"product_id\":%lld,\"actual_quantity\":%s,\"rate\":10}]}}",
             inv, pid, qty);
    create(s, "/2.0/inventory_adjustments", "inventory_adjustment.id", body);
}

/* An invoice body with one line. extra goes inside "invoice" (may be ""). */
static const char *invoice_body(long long contact, long long product, const char *status,
                                const char *line, const char *extra)
{
    static char body[2048];
    snprintf(
        body, sizeof body,
        "{\"invoice\":{\"contact_id\":%lld,\"status\":\"%s\",\"issue_date\":\"2026-01-15\","
        "\"due_date\":\"2026-01-20\",\"inventory_id\":1%s,\"line_items\":[{\"product_id\":%lld,"
        "%s}]}}",
        contact, status, extra, product, line);
    return body;
}

static const char *stock_at(const json_t *product_json, int idx)
{
    char path[64];
    snprintf(path, sizeof path, "product.inventories.%d.stock", idx);
    return json_string_value(jv_path(product_json, path));
}

/* ---------------------------------------------------------------------- */

static void test_auth_and_tenants(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    call(s, NULL, "GET", "/2.0/products", NULL, &r);
    want_status(&r, 401, "no key");
    want_str(r.json, "message", "Unauthorized");
    assert_int_equal(r.rc, TH_EAUTH);
    tt_resp_release(&r);
    call(s, "wrong", "GET", "/2.0/taxes", NULL, &r);
    want_status(&r, 401, "wrong key");
    tt_resp_release(&r);

    /* Each key is its own company with its own ids from 1. */
    assert_int_equal(make_product(s, "A-1", "Product", 0), 1);
    call(s, "k2", "GET", "/2.0/products", NULL, &r);
    want_status(&r, 404, "k2 sees no products");
    assert_string_equal(json_string_value(r.json),
                        "We could not retrieve your Products, we found nothing.");
    tt_resp_release(&r);
    call(s, "k2", "POST", "/2.0/customers", "{\"contact\":{\"name\":\"B\"}}", &r);
    want_status(&r, 201, "k2 customer");
    want_int(r.json, "contact.id", 1);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/customers/1", NULL, &r);
    want_status(&r, 404, "k1 cannot see k2's customer");
    want_str(r.json, "message", "Invalid  ID. Please provide a valid  ID.");
    tt_resp_release(&r);

    /* The old host layout answers the same; unknown paths are 404. */
    call(s, "k1", "GET", "/api/2.0/products/1", NULL, &r);
    want_status(&r, 200, "alias");
    want_str(r.json, "product.sku", "A-1");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/contacts", NULL, &r);
    want_status(&r, 404, "unknown path");
    want_str(r.json, "error", "Not Found");
    tt_resp_release(&r);
}

static void test_seed_data(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    call(s, "k1", "GET", "/2.0/taxes", NULL, &r);
    want_status(&r, 200, "taxes");
    assert_int_equal(json_array_size(json_object_get(r.json, "taxes")), 3);
    want_str(r.json, "taxes.0.percentage", "15.0");
    want_str(r.json, "taxes.2.name", "VAT Exempt");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/inventories", NULL, &r);
    want_str(r.json, "inventories.0.name", "Main warehouse");
    want_str(r.json, "inventories.0.ar_name", "المستودع الرئيسي");
    assert_true(json_is_true(jv_path(r.json, "inventories.0.is_default")));
    want_int(r.json, "inventories.1.id", 2);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/product_unit_types/6", NULL, &r);
    want_str(r.json, "product_unit_type.unit_name", "قطعة");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/accounts?q[code_eq]=110201", NULL, &r);
    want_status(&r, 200, "account by code");
    assert_int_equal(json_array_size(json_object_get(r.json, "accounts")), 1);
    want_int(r.json, "accounts.0.id", 8);
    want_str(r.json, "accounts.0.type", "Asset");
    tt_resp_release(&r);
    /* [C] MCP: account type_* filters return nothing. */
    call(s, "k1", "GET", "/2.0/accounts?q[type_eq]=Asset", NULL, &r);
    want_status(&r, 404, "type filter");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/categories", NULL, &r);
    want_str(r.json, "categories.0.name", "General");
    tt_resp_release(&r);
}

static void test_accounts_create(void **state)
{
    struct sim *s = *state;
    static const struct {
        const char *body;
        long status;
        const char *err_path, *err;
    } cases[] = {
        {"{\"account\":{\"name_en\":\"Bank 2\",\"name_ar\":\"بنك 2\",\"code\":\"110299\","
         "\"type\":\"Bank\",\"recieve_payments\":\"true\"}}",
         201, NULL, NULL},
        /* the Postman spelling, and the seed's names with account_kind */
        {"{\"account\":{\"en_name\":\"Bank 3\",\"ar_name\":\"بنك 3\",\"account_kind\":\"Bank\","
         "\"parent_kind\":\"Asset\",\"branch_kind\":\"Banks\",\"receive_payments\":\"false\"}}",
         201, NULL, NULL},
        {"{\"account\":{\"name_en\":\"Bank 2\",\"name_ar\":\"x\",\"code\":\"9\",\"type\":\"Bank\","
         "\"recieve_payments\":\"true\"}}",
         422, "errors.name_en.0", "has already been taken"},
        {"{\"account\":{\"name_en\":\"Q\",\"name_ar\":\"q\",\"code\":\"110299\",\"type\":\"Bank\","
         "\"recieve_payments\":\"true\"}}",
         422, "errors.code.0", "has already been taken"},
        {"{\"account\":{\"name_en\":\"Q\",\"name_ar\":\"q\",\"type\":\"Stuff\","
         "\"recieve_payments\":\"true\"}}",
         422, "errors.type.0", "is not included in the list"},
        {"{\"account\":{\"name_ar\":\"q\",\"type\":\"Cash\"}}", 422, "errors.name_en.0",
         "can't be blank"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tt_resp r;
        call(s, "k1", "POST", "/2.0/accounts", cases[i].body, &r);
        char what[32];
        snprintf(what, sizeof what, "account case %zu", i);
        want_status(&r, cases[i].status, what);
        if (cases[i].err_path) want_str(r.json, cases[i].err_path, cases[i].err);
        if (i == 0) {
            want_int(r.json, "account.id", 74); /* after the seeded 73 */
            want_str(r.json, "account.type", "Asset");
            assert_true(json_is_true(jv_path(r.json, "account.recieve_payments")));
        }
        if (i == 1) {
            want_str(r.json, "account.code", "120102"); /* generated: highest + 1 */
            want_str(r.json, "account.branch_kind", "Banks");
            assert_true(json_is_false(jv_path(r.json, "account.recieve_payments")));
        }
        tt_resp_release(&r);
    }
}

static void test_products_search_and_pages(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    make_product(s, "SKU-1001", "Product", 1);
    call(s, "k1", "POST", "/2.0/products",
         "{\"product\":[{\"sku\":\"SKU-1002\",\"name_ar\":\"ب\",\"name_en\":\"B\","
         "\"product_unit_type_id\":6,\"category_id\":1,\"tax_id\":2,\"type\":\"Service\"},"
         "{\"sku\":\"SKU-2000\",\"name_ar\":\"ج\",\"name_en\":\"C\",\"product_unit_type_id\":7,"
         "\"category_id\":1,\"tax_id\":1,\"purchase_item\":\"1\",\"buying_price\":60}]}",
         &r);
    want_status(&r, 201, "bulk create");
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 2);
    want_str(r.json, "products.1.buying_price", "60.0");
    want_str(r.json, "products.1.unit", "كرتون");
    tt_resp_release(&r);

    call(s, "k1", "GET", "/2.0/products?q[sku_eq]=SKU-1001&page=1&per_page=25", NULL, &r);
    want_status(&r, 200, "sku_eq");
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 1);
    want_str(r.json, "products.0.sku", "SKU-1001");
    want_str(r.json, "products.0.selling_price", "100.0");
    want_str(r.json, "products.0.type", "Product");
    assert_true(json_is_true(jv_path(r.json, "products.0.track_quantity")));
    want_str(r.json, "products.0.inventories.0.stock", "0.0");
    want_int(r.json, "pagination.total", 1);
    tt_resp_release(&r);

    call(s, "k1", "GET", "/2.0/products?per_page=2&page=2", NULL, &r);
    want_status(&r, 200, "page 2");
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 1);
    want_int(r.json, "products.0.id", 3);
    want_int(r.json, "pagination.currentPage", 2);
    want_int(r.json, "pagination.perPage", 2);
    want_int(r.json, "pagination.totalPages", 2);
    want_int(r.json, "pagination.total", 3);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/products?per_page=2&page=3", NULL, &r);
    want_status(&r, 404, "page past the end");
    tt_resp_release(&r);

    call(s, "k1", "GET", "/2.0/products?q[sku_start]=SKU-1&q[s]=sku+desc", NULL, &r);
    want_str(r.json, "products.0.sku", "SKU-1002");
    want_str(r.json, "products.1.sku", "SKU-1001");
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 2);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/products?q[id_in][]=1&q[id_in][]=3&q[sku_cont]=", NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 2); /* blank ignored */
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/products?q[selling_price_gteq]=99.5&q[type_not_eq]=Service", NULL,
         &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 1);
    tt_resp_release(&r);
    /* [C] MCP: names are not filterable; the condition is ignored. */
    call(s, "k1", "GET", "/2.0/products?q[name_en_eq]=nothing", NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 3);
    tt_resp_release(&r);

    /* Update: type is ignored, price changes, the echo shows it. */
    call(s, "k1", "PUT", "/2.0/products/1",
         "{\"product\":{\"type\":\"Service\",\"selling_price\":\"120.5\",\"name_en\":\"Renamed\"}}",
         &r);
    want_status(&r, 200, "update");
    want_str(r.json, "product.type", "Product");
    want_str(r.json, "product.selling_price", "120.5");
    want_str(r.json, "product.name_en", "Renamed");
    tt_resp_release(&r);

    call(s, "k1", "POST", "/2.0/products",
         "{\"product\":{\"sku\":\"X\",\"name_ar\":\"x\",\"type\":\"Gadget\",\"category_id\":99,"
         "\"tax_id\":1,\"product_unit_type_id\":6}}",
         &r);
    want_status(&r, 422, "product validation");
    want_str(r.json, "errors.name_en.0", "can't be blank");
    want_str(r.json, "errors.type.0", "is not included in the list");
    want_str(r.json, "errors.category.0", "must exist");
    tt_resp_release(&r);
}

static void test_empty_lists_and_unknown_ids(void **state)
{
    struct sim *s = *state;
    static const struct {
        const char *path, *body;
    } cases[] = {
        {"/2.0/invoices", "We could not retrieve your Invoices, we found nothing."},
        {"/2.0/customers", "We could not retrieve your Customers, we found nothing."},
        {"/2.0/credit_notes", "We could not retrieve your Credit Notes, we found nothing."},
        {"/2.0/invoice_payments", "We could not retrieve your Invoice Payments, we found nothing."},
        {"/2.0/categories?q[name_eq]=none",
         "We could not retrieve your Categories, we found nothing."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tt_resp r;
        call(s, "k1", "GET", cases[i].path, NULL, &r);
        want_status(&r, 404, cases[i].path);
        assert_true(json_is_string(r.json));
        assert_string_equal(json_string_value(r.json), cases[i].body);
        tt_resp_release(&r);
    }
    static const char *const unknown[] = {"/2.0/invoices/9", "/2.0/products/abc",
                                          "/2.0/credit_notes/1", "/2.0/inventories/77"};
    for (size_t i = 0; i < 4; i++) {
        struct tt_resp r;
        call(s, "k1", "GET", unknown[i], NULL, &r);
        want_status(&r, 404, unknown[i]);
        want_str(r.json, "message", "Invalid  ID. Please provide a valid  ID.");
        tt_resp_release(&r);
    }
}

static void test_customers(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    call(s, "k1", "POST", "/2.0/customers",
         "{\"contact\":{\"name\":\"Ahmed Ali\",\"email\":\"a@example.com\",\"phone_number\":"
         "\"0500000000\",\"status\":\"Active\",\"billing_address\":{\"billing_city\":\"Riyadh\","
         "\"building_number\":\"1234\"}}}",
         &r);
    want_status(&r, 201, "customer");
    want_int(r.json, "contact.id", 1);
    want_str(r.json, "contact.status", "Active");
    want_str(r.json, "contact.billing_address.billing_city", "Riyadh");
    want_int(r.json, "contact.billing_address.contact_id", 1);
    tt_resp_release(&r);
    call(s, "k1", "POST", "/2.0/customers",
         "{\"contact\":[{\"name\":\"B\",\"phone_number\":\"0511111111\"},{\"name\":\"C\"}]}", &r);
    want_status(&r, 201, "bulk customers");
    want_int(r.json, "contacts.1.id", 3);
    tt_resp_release(&r);

    call(s, "k1", "GET", "/2.0/customers?q[phone_number_eq]=0511111111", NULL, &r);
    want_status(&r, 200, "phone_number_eq");
    want_str(r.json, "customers.0.name", "B");
    assert_int_equal(json_array_size(json_object_get(r.json, "customers")), 1);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/customers?q[phone_number_cont]=05", NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "customers")), 2);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/customers?q[email_eq]=a@example.com", NULL, &r);
    want_int(r.json, "customers.0.id", 1);
    tt_resp_release(&r);

    call(s, "k1", "POST", "/2.0/customers", "{\"contact\":{\"status\":\"Sleeping\"}}", &r);
    want_status(&r, 422, "customer validation");
    want_str(r.json, "errors.name.0", "can't be blank");
    want_str(r.json, "errors.status.0", "is not included in the list");
    tt_resp_release(&r);

    /* Inactive contacts cannot be invoiced ([C] MCP-CAP array form). */
    call(s, "k1", "PUT", "/2.0/customers/2", "{\"contact\":{\"status\":\"Inactive\"}}", &r);
    want_status(&r, 200, "deactivate");
    want_str(r.json, "contact.status", "Inactive");
    want_int(r.json, "contact.billing_address.id", 3); /* an update keeps address ids */
    want_int(r.json, "contact.shipping_address.id", 4);
    tt_resp_release(&r);
    long long p = make_product(s, "S-1", "Service", 0);
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(2, p, "Approved", "\"quantity\":1,\"unit_price\":10", ""), &r);
    want_status(&r, 422, "inactive contact");
    want_str(r.json, "errors.0", "this contact 2 is not active");
    tt_resp_release(&r);
}

/* Line arithmetic of §4.8, to the exact string Qoyod prints. */
static void test_invoice_arithmetic(void **state)
{
    struct sim *s = *state;
    static const struct {
        const char *line;
        const char *unit_price, *discount_percent, *discount_amount, *vat, *line_total;
    } cases[] = {
        /* 15% VAT, 10% discount */
        {"\"quantity\":2,\"unit_price\":100,\"discount\":10,\"discount_type\":\"percentage\","
         "\"tax_percent\":15",
         "100.0", "10.0", "20.0", "27.0", "207.0"},
        /* the reference's real line: 10 x 165.0 at 6% */
        {"\"quantity\":\"10\",\"unit_price\":\"165.0\",\"discount\":6,\"tax_percent\":\"15.0\"",
         "165.0", "6.0", "99.0", "232.65", "1783.65"},
        /* amount discount: both fields come back */
        {"\"quantity\":2,\"unit_price\":50,\"discount\":5,\"discount_type\":\"amount\","
         "\"tax_percent\":15",
         "50.0", "5.0", "5.0", "14.25", "109.25"},
        /* a 0% line */
        {"\"quantity\":1,\"unit_price\":20,\"tax_percent\":0", "20.0", "0.0", "0.0", "0.0", "20.0"},
        /* 3 x 33.33: VAT 14.9985 kept to 3 places, total rounded to 2 */
        {"\"quantity\":3,\"unit_price\":33.33,\"tax_percent\":15", "33.33", "0.0", "0.0", "14.999",
         "114.99"},
        /* the reference's "59.23" with VAT "7.725" */
        {"\"quantity\":1,\"unit_price\":\"51.5\",\"tax_percent\":15", "51.5", "0.0", "0.0", "7.725",
         "59.23"},
        /* tax_percent omitted: the product's tax (1 = 15%) [I] */
        {"\"quantity\":1,\"unit_price\":10", "10.0", "0.0", "0.0", "1.5", "11.5"},
        /* VAT-inclusive price [I]: 115 incl. -> net 100 */
        {"\"quantity\":1,\"unit_price\":115,\"tax_percent\":15,\"is_inclusive\":true", "100.0",
         "0.0", "0.0", "15.0", "115.0"},
    };
    long long c = make_customer(s, "Arith");
    long long p = make_product(s, "SVC", "Service", 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tt_resp r;
        call(s, "k1", "POST", "/2.0/invoices", invoice_body(c, p, "Approved", cases[i].line, ""),
             &r);
        char what[32];
        snprintf(what, sizeof what, "arithmetic case %zu", i);
        want_status(&r, 201, what);
        want_str(r.json, "invoice.line_items.0.unit_price", cases[i].unit_price);
        want_str(r.json, "invoice.line_items.0.discount_percent", cases[i].discount_percent);
        want_str(r.json, "invoice.line_items.0.discount_amount", cases[i].discount_amount);
        want_str(r.json, "invoice.line_items.0.unrounded_vat_value", cases[i].vat);
        want_str(r.json, "invoice.line_items.0.line_total", cases[i].line_total);
        want_str(r.json, "invoice.total", cases[i].line_total);
        want_str(r.json, "invoice.due_amount", cases[i].line_total);
        want_str(r.json, "invoice.paid_amount", "0.0");
        want_str(r.json, "invoice.status", "Approved");
        tt_resp_release(&r);
    }
    /* total = sum of line totals over several lines */
    char body[1024];
    snprintf(body, sizeof body,
             "{\"invoice\":{\"contact_id\":%lld,\"status\":\"Draft\",\"issue_date\":\"2026-01-15\","
             "\"due_date\":\"2026-01-15\",\"inventory_id\":1,\"line_items\":["
             "{\"product_id\":%lld,\"quantity\":1,\"unit_price\":\"51.5\",\"tax_percent\":15},"
             "{\"product_id\":%lld,\"quantity\":3,\"unit_price\":\"33.33\",\"tax_percent\":15},"
             "{\"product_id\":%lld,\"quantity\":1,\"unit_price\":20,\"tax_percent\":0}]}}",
             c, p, p, p);
    struct tt_resp r;
    call(s, "k1", "POST", "/2.0/invoices", body, &r);
    want_status(&r, 201, "three lines");
    want_str(r.json, "invoice.total", "194.22"); /* 59.23 + 114.99 + 20.0 */
    want_str(r.json, "invoice.status", "Draft");
    assert_true(json_is_null(jv_path(r.json, "invoice.qrcode_string")));
    tt_resp_release(&r);
}

static void test_stock(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    long long c = make_customer(s, "Stock");
    long long p = make_product(s, "TRK", "Product", 1);
    set_stock(s, p, 1, "5");
    set_stock(s, p, 2, "\"7.5\"");
    call(s, "k1", "GET", "/2.0/products/1", NULL, &r);
    assert_string_equal(stock_at(r.json, 0), "5.0");
    assert_string_equal(stock_at(r.json, 1), "7.5");
    char before[64];
    snprintf(before, sizeof before, "%s", json_string_value(jv_path(r.json, "product.updated_at")));
    tt_resp_release(&r);

    tt_sleep_ms(5);
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", "\"quantity\":2,\"unit_price\":10", ""), &r);
    want_status(&r, 201, "in stock");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/products/1", NULL, &r);
    assert_string_equal(stock_at(r.json, 0), "3.0");
    assert_string_equal(stock_at(r.json, 1), "7.5"); /* other inventory untouched */
    /* [I] a stock change bumps updated_at, so q[updated_at_gteq] finds it */
    assert_true(strcmp(json_string_value(jv_path(r.json, "product.updated_at")), before) > 0);
    tt_resp_release(&r);
    char path[160];
    snprintf(path, sizeof path, "/2.0/products?q[updated_at_gteq]=%s", before);
    /* sent unencoded: the '+' of "+03:00" may arrive as a space; both parse */
    call(s, "k1", "GET", path, NULL, &r);
    want_status(&r, 200, "updated_at_gteq");
    tt_resp_release(&r);

    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", "\"quantity\":4,\"unit_price\":10", ""), &r);
    want_status(&r, 422, "out of stock");
    assert_non_null(strstr(json_string_value(jv_path(r.json, "errors.line_items.0")),
                           "available 3.0, requested 4.0"));
    tt_resp_release(&r);
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", "\"quantity\":4,\"unit_price\":10",
                      ",\"draft_if_out_of_stock\":true"),
         &r);
    want_status(&r, 201, "draft_if_out_of_stock");
    want_str(r.json, "invoice.status", "Draft");
    long long draft = json_integer_value(jv_path(r.json, "invoice.id"));
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/products/1", NULL, &r);
    assert_string_equal(stock_at(r.json, 0), "3.0"); /* a draft takes no stock */
    tt_resp_release(&r);

    /* Drafts can be deleted; approved invoices cannot. */
    snprintf(path, sizeof path, "/2.0/invoices/%lld", draft);
    call(s, "k1", "DELETE", path, NULL, &r);
    want_status(&r, 200, "delete draft");
    tt_resp_release(&r);
    call(s, "k1", "DELETE", "/2.0/invoices/1", NULL, &r);
    want_status(&r, 422, "delete approved");
    tt_resp_release(&r);

    /* Transfers move stock between inventories. */
    char body[512];
    snprintf(body, sizeof body,
             "{\"inventory_transfer\":{\"from_location\":2,\"to_location\":1,\"date\":"
             "\"2026-01-16\",\"line_items\":[{\"product_id\":%lld,\"quantity\":2.5}]}}",
             p);
    create(s, "/2.0/inventory_transfers", "inventory_transfer.id", body);
    call(s, "k1", "GET", "/2.0/products/1", NULL, &r);
    assert_string_equal(stock_at(r.json, 0), "5.5");
    assert_string_equal(stock_at(r.json, 1), "5.0");
    tt_resp_release(&r);

    /* Adjustments only apply to tracked products. */
    long long svc = make_product(s, "SVC-2", "Service", 1);
    snprintf(body, sizeof body,
             "{\"inventory_adjustment\":{\"inventory_id\":1,\"date\":\"2026-01-15\","
             "\"line_items\":[{\"product_id\":%lld,\"actual_quantity\":3}]}}",
             svc);
    call(s, "k1", "POST", "/2.0/inventory_adjustments", body, &r);
    want_status(&r, 422, "adjust a service");
    tt_resp_release(&r);
}

static void test_references(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    long long c = make_customer(s, "Ref");
    long long p = make_product(s, "R-1", "Service", 0);
    const char *line = "\"quantity\":1,\"unit_price\":10";
    call(s, "k1", "POST", "/2.0/invoices", invoice_body(c, p, "Approved", line, ""), &r);
    want_str(r.json, "invoice.reference", "INV1");
    tt_resp_release(&r);
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", line, ",\"reference\":\"SALLA-100234\""), &r);
    want_status(&r, 201, "own reference");
    tt_resp_release(&r);
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", line, ",\"reference\":\"SALLA-100234\""), &r);
    want_status(&r, 422, "duplicate reference");
    want_str(r.json, "errors.reference.0", "has already been taken");
    tt_resp_release(&r);
    call(s, "k1", "POST", "/2.0/invoices", invoice_body(c, p, "Approved", line, ""), &r);
    want_str(r.json, "invoice.reference", "INV3");
    tt_resp_release(&r);
    assert_int_equal(tt_count_requests(s, "POST", "/2.0/invoices", 201), 3);

    call(s, "k1", "GET", "/2.0/invoices?q[reference_eq]=SALLA-100234", NULL, &r);
    want_status(&r, 200, "reference_eq");
    assert_int_equal(json_array_size(json_object_get(r.json, "invoices")), 1);
    want_int(r.json, "invoices.0.id", 2);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/invoices?q[reference_eq]=SALLA-999", NULL, &r);
    want_status(&r, 404, "no such reference");
    tt_resp_release(&r);
    call(s, "k1", "GET",
         "/2.0/invoices?q[status_in][]=Paid&q[status_in][]=Approved&q[contact_id_eq]=1"
         "&q[issue_date_gteq]=2026-01-15&q[issue_date_lteq]=2026-01-15&q[s]=id+desc",
         NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "invoices")), 3);
    want_int(r.json, "invoices.0.id", 3);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/invoices?q[issue_date_gt]=2026-01-15", NULL, &r);
    want_status(&r, 404, "issue_date_gt");
    tt_resp_release(&r);
}

static void test_payments(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    long long c = make_customer(s, "Payer");
    long long p = make_product(s, "P-1", "Service", 0);
    call(
        s, "k1", "POST", "/2.0/invoices",
        invoice_body(c, p, "Approved", "\"quantity\":1,\"unit_price\":1000,\"tax_percent\":15", ""),
        &r);
    want_str(r.json, "invoice.total", "1150.0");
    tt_resp_release(&r);

    static const struct {
        const char *body;
        long status;
        const char *path, *want;
    } cases[] = {
        {"{\"invoice_payment\":{\"reference\":\"PAY-1\",\"invoice_id\":1,\"account_id\":8,"
         "\"date\":\"2026-01-15\",\"amount\":\"1000.00\"}}",
         201, "invoice_payment.kind", "received"},
        {"{\"invoice_payment\":{\"reference\":\"PAY-1\",\"invoice_id\":1,\"account_id\":8,"
         "\"date\":\"2026-01-15\",\"amount\":\"1\"}}",
         422, "errors.reference.0", "has already been taken"},
        {"{\"invoice_payment\":{\"reference\":\"PAY-2\",\"invoice_id\":\"1\",\"date\":"
         "\"2026-01-15\",\"amount\":\"1\"}}",
         422, "errors.account.0", "can't be blank"},
        {"{\"invoice_payment\":{\"reference\":\"PAY-2\",\"invoice_id\":1,\"account_id\":8,"
         "\"date\":\"2026-01-15\",\"amount\":\"150.01\"}}",
         422, "errors.amount.0", "is greater than the invoice's due amount"},
        {"{\"invoice_payment\":{\"reference\":\"PAY-2\",\"invoice_id\":\"1\",\"account_id\":\"8\","
         "\"date\":\"2026-01-16\",\"amount\":\"150.00\"}}",
         201, "invoice_payment.amount", "150.0"},
        {"{\"invoice_payment\":{\"reference\":\"PAY-3\",\"invoice_id\":1,\"account_id\":8,"
         "\"date\":\"2026-01-16\",\"amount\":1}}",
         422, "errors.invoice.0", "is already paid"},
    };
    static const char *const after[] = {"Partially Paid", NULL, NULL, NULL, "Paid", NULL};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        call(s, "k1", "POST", "/2.0/invoice_payments", cases[i].body, &r);
        char what[32];
        snprintf(what, sizeof what, "payment case %zu", i);
        want_status(&r, cases[i].status, what);
        want_str(r.json, cases[i].path, cases[i].want);
        tt_resp_release(&r);
        if (!after[i]) continue;
        call(s, "k1", "GET", "/2.0/invoices/1", NULL, &r);
        want_str(r.json, "invoice.status", after[i]);
        tt_resp_release(&r);
    }
    call(s, "k1", "GET", "/2.0/invoices/1", NULL, &r);
    want_str(r.json, "invoice.paid_amount", "1150.0");
    want_str(r.json, "invoice.due_amount", "0.0");
    assert_int_equal(json_array_size(jv_path(r.json, "invoice.payments")), 2);
    want_str(r.json, "invoice.payments.1.source_type", "Receipt");
    want_str(r.json, "invoice.payments.1.allocatee_type", "Invoice");
    want_str(r.json, "invoice.payments.1.amount", "150.0");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/invoice_payments?q[kind_eq]=0&q[date_gteq]=2026-01-16", NULL, &r);
    want_status(&r, 200, "receipts list");
    assert_int_equal(json_array_size(json_object_get(r.json, "receipts")), 1);
    want_str(r.json, "receipts.0.reference", "PAY-2");
    want_int(r.json, "receipts.0.allocations.0.allocatee_id", 1);
    tt_resp_release(&r);
}

static void test_credit_notes(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    long long c = make_customer(s, "Returns");
    long long p = make_product(s, "CN-1", "Product", 1);
    set_stock(s, p, 1, "10");
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", "\"quantity\":2,\"unit_price\":380,\"tax_percent\":15", ""),
         &r);
    want_str(r.json, "invoice.total", "874.0");
    tt_resp_release(&r);
    char body[1024];
    snprintf(body, sizeof body,
             "{\"credit_note\":{\"contact_id\":%lld,\"parent_id\":1,\"issue_date\":\"2026-01-17\","
             "\"status\":\"Approved\",\"inventory_id\":1,\"line_items\":[{\"product_id\":%lld,"
             "\"quantity\":1,\"unit_price\":380,\"discount_percent\":0,\"tax_percent\":15}]}}",
             c, p);
    call(s, "k1", "POST", "/2.0/credit_notes", body, &r);
    want_status(&r, 201, "credit note");
    want_str(r.json, "credit_note.reference", "CRN1");
    want_str(r.json, "credit_note.total_amount", "437.0");
    want_str(r.json, "credit_note.remaining_amount", "437.0");
    want_str(r.json, "credit_note.status", "Unused");
    want_int(r.json, "credit_note.parent_id", 1);
    want_str(r.json, "credit_note.line_items.0.price", "380.0");
    want_str(r.json, "credit_note.line_items.0.total", "437.0");
    want_str(r.json, "credit_note.line_items.0.unrounded_vat_value", "57.0");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/products/1", NULL, &r);
    assert_string_equal(stock_at(r.json, 0), "9.0"); /* 10 - 2 + 1 returned */
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/credit_notes/1", NULL, &r);
    want_status(&r, 200, "note show");
    want_str(r.json, "note.reference", "CRN1");
    tt_resp_release(&r);

    call(s, "k1", "POST", "/2.0/invoices/1/allocations",
         "{\"invoice\":{\"allocations_attributes\":[{\"source_type\":\"CreditNote\","
         "\"source_id\":1,\"amount\":500,\"date\":\"2026-01-17\"}]}}",
         &r);
    want_status(&r, 422, "allocate more than the note holds");
    tt_resp_release(&r);
    call(s, "k1", "POST", "/2.0/invoices/1/allocations",
         "{\"invoice\":{\"allocations_attributes\":[{\"source_type\":\"CreditNote\","
         "\"source_id\":1,\"amount\":437,\"date\":\"2026-01-17\"}]}}",
         &r);
    want_status(&r, 201, "allocate");
    want_str(r.json, "invoice.due_amount", "437.0");
    want_str(r.json, "invoice.paid_amount", "437.0");
    want_str(r.json, "invoice.status", "Partially Paid");
    want_str(r.json, "invoice.payments.0.source_type", "CreditNote");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/credit_notes?q[status_eq]=Used", NULL, &r);
    want_status(&r, 200, "used note");
    want_str(r.json, "credit_notes.0.remaining_amount", "0.0");
    tt_resp_release(&r);
}

/* Validation answers: status and the error's place in the body. */
static void test_validation_shapes(void **state)
{
    struct sim *s = *state;
    long long c = make_customer(s, "V");
    long long p = make_product(s, "V-1", "Service", 0);
    char good_line[64];
    snprintf(good_line, sizeof good_line, "{\"product_id\":%lld,\"quantity\":1,\"unit_price\":1}",
             p);
    char bodies[8][512];
    snprintf(bodies[0], sizeof bodies[0],
             "{\"invoice\":{\"status\":\"Approved\",\"issue_date\":\"2026-01-15\",\"due_date\":"
             "\"2026-01-15\",\"inventory_id\":1,\"line_items\":[%s]}}",
             good_line);
    snprintf(bodies[1], sizeof bodies[1],
             "{\"invoice\":{\"contact_id\":%lld,\"status\":\"Paid\",\"issue_date\":\"2026-02-30\","
             "\"line_items\":[]}}",
             c);
    snprintf(bodies[2], sizeof bodies[2],
             "{\"invoice\":{\"contact_id\":%lld,\"status\":\"Draft\",\"issue_date\":\"2026-01-15\","
             "\"due_date\":\"2026-01-15\",\"inventory_id\":1,\"line_items\":[{\"product_id\":999,"
             "\"quantity\":0,\"unit_price\":1}]}}",
             c);
    snprintf(bodies[3], sizeof bodies[3],
             "{\"invoice\":{\"contact_id\":%lld,\"status\":\"Draft\",\"issue_date\":\"2026-01-15\","
             "\"due_date\":\"2026-01-15\",\"inventory_id\":1,\"line_items\":[{\"product_id\":%lld,"
             "\"quantity\":1,\"unit_price\":10,\"discount\":11,\"discount_type\":\"amount\"}]}}",
             c, p);
    static const struct {
        int body; /* index into bodies, or -1 for raw */
        const char *raw;
        long status;
        const char *path, *want;
    } cases[] = {
        {0, NULL, 422, "errors.contact.0", "can't be blank"},
        {1, NULL, 422, "errors.status.0", "is not included in the list"},
        {1, NULL, 422, "errors.issue_date.0", "is not a valid date"},
        {1, NULL, 422, "errors.due_date.0", "can't be blank"},
        {1, NULL, 422, "errors.inventory.0", "can't be blank"},
        {1, NULL, 422, "errors.line_items.0", "can't be blank"},
        {2, NULL, 422, "errors.line_items\\.product.0", "must exist"},
        {3, NULL, 422, "errors.line_items\\.discount.0", "can't exceed the line amount"},
        {-1, "{\"invoice\": [1,", 400, "message", "Invalid JSON in request body"},
        {-1, "{\"order\":{}}", 422, "errors.invoice.0",
         "param is missing or the value is empty: invoice"},
        {-1, "", 422, "errors.invoice.0", "param is missing or the value is empty: invoice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tt_resp r;
        call(s, "k1", "POST", "/2.0/invoices",
             cases[i].body >= 0 ? bodies[cases[i].body] : cases[i].raw, &r);
        char what[32];
        snprintf(what, sizeof what, "validation case %zu", i);
        want_status(&r, cases[i].status, what);
        if (strstr(cases[i].path, "\\.")) {
            /* keys with a dot ("line_items.product") cannot go through jv_path */
            char key[64];
            const char *start = cases[i].path + strlen("errors."), *esc = strstr(start, "\\.");
            snprintf(key, sizeof key, "%.*s.%s", (int)(esc - start), start, esc + 2);
            *strrchr(key, '.') = '\0';
            json_t *v = json_array_get(json_object_get(json_object_get(r.json, "errors"), key), 0);
            if (!json_is_string(v) || strcmp(json_string_value(v), cases[i].want) != 0)
                fail_msg("%s: errors[%s] want \"%s\": %s", what, key, cases[i].want, r.body);
        } else {
            want_str(r.json, cases[i].path, cases[i].want);
        }
        tt_resp_release(&r);
    }
    assert_int_equal(tt_count_requests(s, "POST", "/2.0/invoices", 201), 0);
}

static void test_rate_limit(void **state)
{
    static const char *const opts[] = {"api-key", "k1", "rate-limit", "3", NULL};
    struct sim *s = tt_sim_start(&qoyod_sim_ops, opts);
    struct tt_resp r;
    for (int i = 0; i < 3; i++) {
        call(s, "k1", "GET", "/2.0/taxes", NULL, &r);
        want_status(&r, 200, "within the limit");
        tt_resp_release(&r);
    }
    call(s, "k1", "GET", "/2.0/taxes", NULL, &r);
    want_status(&r, 429, "over the limit");
    assert_int_equal(r.rc, TH_ETEMP);
    assert_true(r.retry_after_s >= 1 && r.retry_after_s <= 60);
    want_str(r.json, "message", "Too Many Requests");
    tt_resp_release(&r);
    tt_sim_stop(s);
}

static void test_state_round_trip(void **state)
{
    char path[] = "/tmp/th_qoyod_stateXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    const char *names[] = {"api-key", "api-key"};
    const char *values[] = {"k1", "k2"};
    struct sim_config cfg = {.listen = "127.0.0.1:0",
                             .state_file = path,
                             .nopts = 2,
                             .opt_names = names,
                             .opt_values = values};
    struct sim *s;
    struct th_err err;
    assert_int_equal(sim_open(&s, &qoyod_sim_ops, &cfg, &err), 0);
    long long c = make_customer(s, "Saved");
    long long p = make_product(s, "ST-1", "Product", 1);
    set_stock(s, p, 1, "4");
    struct tt_resp r;
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", "\"quantity\":1,\"unit_price\":51.5,\"tax_percent\":15",
                      ",\"reference\":\"KEEP-1\""),
         &r);
    want_status(&r, 201, "invoice before restart");
    tt_resp_release(&r);
    sim_close(s);

    /* A second emulator loads the saved state. */
    assert_int_equal(sim_open(&s, &qoyod_sim_ops, &cfg, &err), 0);
    call(s, "k1", "GET", "/2.0/invoices?q[reference_eq]=KEEP-1", NULL, &r);
    want_status(&r, 200, "invoice after restart");
    want_str(r.json, "invoices.0.total", "59.23");
    want_str(r.json, "invoices.0.line_items.0.unrounded_vat_value", "7.725");
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/products/1", NULL, &r);
    assert_string_equal(stock_at(r.json, 0), "3.0");
    tt_resp_release(&r);
    /* counters survive: the next invoice gets id 2 */
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Draft", "\"quantity\":1,\"unit_price\":1", ""), &r);
    want_int(r.json, "invoice.id", 2);
    want_str(r.json, "invoice.reference", "INV2");
    tt_resp_release(&r);
    call(s, "k2", "GET", "/2.0/invoices", NULL, &r);
    want_status(&r, 404, "k2 still empty");
    tt_resp_release(&r);
    sim_close(s);

    FILE *f = fopen(path, "w");
    fputs("{\"version\":1,\"tenants\":[{\"api_key\":\"k1\"}]}", f);
    fclose(f);
    assert_int_equal(sim_open(&s, &qoyod_sim_ops, &cfg, &err), TH_EPARSE);
    unlink(path);
}

static void test_control_endpoints(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    tt_http("POST", tt_url(s, "/_sim/qoyod/products?api_key=k2"), NULL,
            "{\"products\":[{\"sku\":\"SEED-1\",\"name_en\":\"Seeded\",\"selling_price\":\"25.0\","
            "\"inventories\":[{\"id\":1,\"stock\":\"40.0\"},{\"id\":2,\"stock\":3}]},"
            "{\"sku\":\"SEED-2\",\"type\":\"Service\"}]}",
            &r);
    want_status(&r, 201, "seed products");
    want_str(r.json, "products.0.inventories.0.stock", "40.0");
    want_str(r.json, "products.0.inventories.1.stock", "3.0");
    want_str(r.json, "products.0.name_ar", "SEED-1");
    tt_resp_release(&r);
    const char *h[] = {"API-KEY: k2", NULL};
    tt_http("POST", tt_url(s, "/_sim/qoyod/customers"), h, "{\"name\":\"Seeded customer\"}", &r);
    want_status(&r, 201, "seed customer");
    tt_resp_release(&r);
    tt_http("POST", tt_url(s, "/_sim/qoyod/stock?api_key=k2"), NULL,
            "{\"sku\":\"SEED-1\",\"inventory_id\":2,\"stock\":\"9\"}", &r);
    want_status(&r, 200, "set stock");
    want_str(r.json, "product.inventories.1.stock", "9.0");
    tt_resp_release(&r);

    call(s, "k2", "POST", "/2.0/invoices",
         invoice_body(1, 1, "Approved", "\"quantity\":2,\"unit_price\":25,\"tax_percent\":15", ""),
         &r);
    want_status(&r, 201, "invoice on seeded data");
    tt_resp_release(&r);
    tt_http("GET", tt_url(s, "/_sim/qoyod/summary?api_key=k2"), NULL, NULL, &r);
    want_status(&r, 200, "summary");
    want_int(r.json, "counts.products", 2);
    want_int(r.json, "counts.customers", 1);
    want_int(r.json, "counts.invoices", 1);
    want_int(r.json, "counts.invoices_by_status.Approved", 1);
    want_int(r.json, "counts.invoice_payments", 0);
    want_str(r.json, "totals.invoices_total", "57.5");
    want_str(r.json, "totals.invoices_due", "57.5");
    want_str(r.json, "stock.0.stock", "38.0");
    tt_resp_release(&r);
    tt_http("GET", tt_url(s, "/_sim/qoyod/summary?api_key=k1"), NULL, NULL, &r);
    want_int(r.json, "counts.products", 0);
    tt_resp_release(&r);
    tt_http("GET", tt_url(s, "/_sim/qoyod/summary?api_key=nobody"), NULL, NULL, &r);
    want_status(&r, 404, "unknown tenant");
    tt_resp_release(&r);
    tt_http("POST", tt_url(s, "/_sim/qoyod/tenants"), NULL, "{\"api_key\":\"k3\"}", &r);
    want_status(&r, 201, "add tenant");
    tt_resp_release(&r);
    call(s, "k3", "GET", "/2.0/taxes", NULL, &r);
    want_status(&r, 200, "new tenant works");
    tt_resp_release(&r);
    /* reset: back to the seeded tenants */
    tt_http("POST", tt_url(s, "/_sim/reset"), NULL, "", &r);
    tt_resp_release(&r);
    call(s, "k3", "GET", "/2.0/taxes", NULL, &r);
    want_status(&r, 401, "tenant gone after reset");
    tt_resp_release(&r);
    call(s, "k2", "GET", "/2.0/products", NULL, &r);
    want_status(&r, 404, "data gone after reset");
    tt_resp_release(&r);
}

static long elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

static void test_incoming_faults(void **state)
{
    struct sim *s = *state;
    struct tt_resp r;
    long long c = make_customer(s, "Faulty");
    long long p = make_product(s, "F-1", "Service", 0);
    const char *line = "\"quantity\":1,\"unit_price\":10";

    tt_faults(s, "{\"match\":\"GET /2.0/taxes\",\"mode\":\"latency\",\"latency_ms\":120,"
                 "\"count\":1}");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    call(s, "k1", "GET", "/2.0/taxes", NULL, &r);
    long ms = elapsed_ms(&t0);
    want_status(&r, 200, "latency");
    if (ms < 120) fail_msg("latency fault: call took %ld ms, want >= 120", ms);
    tt_resp_release(&r);

    tt_faults(s, "{\"match\":\"POST /2.0/invoices\",\"mode\":\"error\",\"status\":503,"
                 "\"count\":1}");
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", line, ",\"reference\":\"E-1\""), &r);
    want_status(&r, 503, "error");
    assert_int_equal(r.rc, TH_ETEMP);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/invoices?q[reference_eq]=E-1", NULL, &r);
    want_status(&r, 404, "error: nothing created");
    tt_resp_release(&r);

    tt_faults(s, "{\"match\":\"GET /2.0/products\",\"mode\":\"rate_limit\",\"retry_after\":7,"
                 "\"count\":1}");
    call(s, "k1", "GET", "/2.0/products", NULL, &r);
    want_status(&r, 429, "rate_limit");
    assert_int_equal(r.retry_after_s, 7);
    assert_int_equal(r.rc, TH_ETEMP);
    tt_resp_release(&r);

    tt_faults(s, "{\"match\":\"GET /2.0/products\",\"mode\":\"reset\",\"count\":1}");
    call(s, "k1", "GET", "/2.0/products", NULL, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rc, TH_ETEMP);
    tt_resp_release(&r);
    tt_faults(s, "{\"match\":\"POST /2.0/invoices\",\"mode\":\"reset\",\"count\":1}");
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", line, ",\"reference\":\"RS-1\""), &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rc, TH_EUNKNOWN);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/invoices?q[reference_eq]=RS-1", NULL, &r);
    want_status(&r, 404, "reset: the invoice was not created");
    tt_resp_release(&r);

    tt_faults(s, "{\"match\":\"POST /2.0/invoices\",\"mode\":\"commit_then_drop\",\"count\":1}");
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", line, ",\"reference\":\"CD-1\""), &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.rc, TH_EUNKNOWN);
    tt_resp_release(&r);
    call(s, "k1", "GET", "/2.0/invoices?q[reference_eq]=CD-1", NULL, &r);
    want_status(&r, 200, "commit_then_drop: the invoice exists");
    assert_int_equal(json_array_size(json_object_get(r.json, "invoices")), 1);
    want_str(r.json, "invoices.0.total", "11.5");
    tt_resp_release(&r);
    /* retrying the same reference is refused, so no duplicate can be made */
    call(s, "k1", "POST", "/2.0/invoices",
         invoice_body(c, p, "Approved", line, ",\"reference\":\"CD-1\""), &r);
    want_status(&r, 422, "retry after a lost answer");
    tt_resp_release(&r);

    /* count-limited: exactly two failures, then success */
    tt_faults(s, "{\"match\":\"GET /2.0/inventories\",\"mode\":\"error\",\"status\":502,"
                 "\"count\":2}");
    long seen[3];
    for (int i = 0; i < 3; i++) {
        call(s, "k1", "GET", "/2.0/inventories", NULL, &r);
        seen[i] = r.status;
        tt_resp_release(&r);
    }
    assert_int_equal(seen[0], 502);
    assert_int_equal(seen[1], 502);
    assert_int_equal(seen[2], 200);
    assert_int_equal(tt_count_requests(s, "GET", "/2.0/inventories", 502), 2);
}

/* The same seed gives the same sequence of probabilistic fault hits. */
static int hits_for_seed(uint64_t seed)
{
    const char *names[] = {"api-key"};
    const char *values[] = {"k1"};
    struct sim_config cfg = {.listen = "127.0.0.1:0",
                             .seed = seed,
                             .nopts = 1,
                             .opt_names = names,
                             .opt_values = values};
    struct sim *s;
    struct th_err err;
    assert_int_equal(sim_open(&s, &qoyod_sim_ops, &cfg, &err), 0);
    tt_faults(s,
              "{\"match\":\"GET /2.0/*\",\"mode\":\"error\",\"status\":503,\"probability\":0.5}");
    int pattern = 0;
    for (int i = 0; i < 16; i++) {
        struct tt_resp r;
        call(s, "k1", "GET", "/2.0/taxes", NULL, &r);
        if (r.status == 503)
            pattern |= 1 << i;
        else
            assert_int_equal(r.status, 200);
        tt_resp_release(&r);
    }
    sim_close(s);
    return pattern;
}

static void test_fault_seed_determinism(void **state)
{
    int a = hits_for_seed(11), b = hits_for_seed(11), c = hits_for_seed(12);
    assert_int_equal(a, b);
    assert_int_not_equal(a, 0);
    assert_int_not_equal(a, 0xffff);
    assert_int_not_equal(a, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_and_tenants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_accounts_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_products_search_and_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_lists_and_unknown_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_customers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invoice_arithmetic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_payments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credit_notes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_validation_shapes, setup, teardown),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test_setup_teardown(test_control_endpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incoming_faults, setup, teardown),
        cmocka_unit_test(test_fault_seed_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
