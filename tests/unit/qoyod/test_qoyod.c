/*
 * Tests for src/qoyod/qoyod.c, the Qoyod API client.
 *
 * Two kinds of server:
 *  - a scripted stub (httpd in this file) that answers exactly what a test
 *    says and records what the client sent: Qoyod's quirks (404 string body,
 *    422 shapes, 401, unreadable answers, ignored filters) and the exact
 *    bytes of a request body;
 *  - the Qoyod emulator (sim/qoyod_sim.c) in-process: the client's calls
 *    end to end, including a lost answer (commit_then_drop) settled by
 *    looking the invoice up.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/xmalloc.h"
#include "net/httpd.h"
#include "qoyod/qoyod.h"
#include "sim/qoyod_sim.h"
#include "th_test.h"

/* ---------------------------------------------------------------------- */
/* Assertions that print both sides                                         */

#define want_rc(got, want, err) want_rc_at(__LINE__, (got), (want), (err))
static void want_rc_at(int line, int got, int want, const struct th_err *err)
{
    if (got != want)
        fail_msg("line %d: want %s, got %s: %s", line, th_err_name(want), th_err_name(got),
                 err ? err->msg : "");
}

#define want_streq(got, want) want_streq_at(__LINE__, (got), (want))
static void want_streq_at(int line, const char *got, const char *want)
{
    if (!got || strcmp(got, want) != 0)
        fail_msg("line %d: want \"%s\", got \"%s\"", line, want, got ? got : "(null)");
}

#define want_i64(got, want) want_i64_at(__LINE__, (int64_t)(got), (int64_t)(want))
static void want_i64_at(int line, int64_t got, int64_t want)
{
    if (got != want)
        fail_msg("line %d: want %lld, got %lld", line, (long long)want, (long long)got);
}

#define want_has(text, part) want_has_at(__LINE__, (text), (part), 1)
#define want_lacks(text, part) want_has_at(__LINE__, (text), (part), 0)
static void want_has_at(int line, const char *text, const char *part, int yes)
{
    if ((strstr(text, part) != NULL) != yes)
        fail_msg("line %d: \"%s\" should %scontain \"%s\"", line, text, yes ? "" : "not ", part);
}

/* ---------------------------------------------------------------------- */
/* Scripted stub server                                                     */

#define STUB_MAX 8

struct stub_req {
    char *method, *path, *query, *api_key, *ctype, *body;
};

struct stub {
    struct httpd *d;
    char base[96]; /* "http://127.0.0.1:PORT/2.0" */
    pthread_mutex_t lock;
    int status[STUB_MAX];
    const char *body[STUB_MAX];
    size_t nscript, next;
    struct stub_req reqs[STUB_MAX];
    size_t nreqs;
};

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void on_stub(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct stub *st = arg;
    struct buf q;
    buf_init(&q, 0);
    for (size_t i = 0; i < httpd_req_nargs(req); i++) {
        const char *k, *v;
        httpd_req_arg_at(req, i, &k, &v);
        if (buf_printf(&q, "%s%s=%s", i ? "&" : "", k, v ? v : "") != 0) abort();
    }
    size_t len;
    const char *body = httpd_req_body(req, &len);
    pthread_mutex_lock(&st->lock);
    if (st->nreqs < STUB_MAX) {
        struct stub_req *r = &st->reqs[st->nreqs++];
        r->method = xstrdup(httpd_req_method(req));
        r->path = xstrdup(httpd_req_path(req));
        r->query = xstrdup(buf_cstr(&q));
        r->api_key = dup_or_null(httpd_req_header(req, "API-KEY"));
        r->ctype = dup_or_null(httpd_req_header(req, "Content-Type"));
        r->body = xstrndup(body ? body : "", body ? len : 0);
    }
    int status = 599;
    const char *text = "{\"message\":\"stub: no answer scripted\"}";
    if (st->next < st->nscript) {
        status = st->status[st->next];
        text = st->body[st->next];
        st->next++;
    }
    pthread_mutex_unlock(&st->lock);
    buf_release(&q);
    httpd_resp_set(resp, status, "application/json", text, strlen(text));
}

static struct stub *stub_start(void)
{
    struct stub *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .handler = on_stub, .arg = st};
    struct th_err err;
    if (httpd_open(&st->d, &cfg, &err) != 0) fail_msg("stub: %s", err.msg);
    snprintf(st->base, sizeof st->base, "http://127.0.0.1:%u/2.0", httpd_port(st->d));
    return st;
}

/* Appends one answer to the script (body is borrowed: use literals). */
static void stub_answer(struct stub *st, int status, const char *body)
{
    pthread_mutex_lock(&st->lock);
    if (st->nscript == STUB_MAX) fail_msg("stub: script full");
    st->status[st->nscript] = status;
    st->body[st->nscript] = body;
    st->nscript++;
    pthread_mutex_unlock(&st->lock);
}

static void stub_stop(struct stub *st)
{
    httpd_close(st->d);
    for (size_t i = 0; i < st->nreqs; i++) {
        struct stub_req *r = &st->reqs[i];
        free(r->method), free(r->path), free(r->query), free(r->api_key), free(r->ctype),
            free(r->body);
    }
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static const struct stub_req *stub_req(struct stub *st, size_t i)
{
    if (i >= st->nreqs) fail_msg("stub: want request %zu, only %zu arrived", i + 1, st->nreqs);
    return &st->reqs[i];
}

#define STUB_KEY "sekret-key-0123456789"

struct fx {
    struct stub *st;
    struct qoyod *q;
    struct th_err err;
};

static int stub_setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->st = stub_start();
    f->q = qoyod_new(f->st->base, STUB_KEY, NULL);
    *state = f;
    return 0;
}

static int stub_teardown(void **state)
{
    struct fx *f = *state;
    qoyod_free(f->q);
    stub_stop(f->st);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Quirks, against the stub                                                 */

static void test_empty_list_is_notfound(void **state)
{
    struct fx *f = *state;
    stub_answer(f->st, 404, "\"We could not retrieve your Products, we found nothing.\"");
    int64_t id = -1;
    /* '&', ' ' and '+' must survive as data, not as query syntax. */
    int rc = qoyod_product_find_sku(f->q, "A&B C+1", &id, &f->err);
    want_rc(rc, TH_ENOTFOUND, &f->err);
    want_i64(id, -1);
    want_i64(qoyod_last_status(f->q), 404);
    const struct stub_req *r = stub_req(f->st, 0);
    want_streq(r->method, "GET");
    want_streq(r->path, "/2.0/products");
    want_streq(r->query, "q[sku_eq]=A&B C+1&page=1&per_page=100");
    want_streq(r->api_key, STUB_KEY);
    want_lacks(f->err.msg, STUB_KEY);
}

static void test_other_404_is_perm(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *body;
        const char *says;
    } cases[] = {
        {"{\"message\":\"Invalid  ID. Please provide a valid  ID.\"}", "Invalid  ID."},
        {"\"Not Found\"", "Not Found"},
        {"<html><body>nginx</body></html>", "<html><body>nginx"},
        {"{\"status\":404,\"error\":\"Not Found\"}", "Not Found"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stub_answer(f->st, 404, cases[i].body);
        struct qoyod_invoice_info inv;
        int rc = qoyod_invoice_find(f->q, "SALLA-1", &inv, &f->err);
        want_rc(rc, TH_EPERM, &f->err);
        want_has(f->err.msg, "HTTP 404");
        want_has(f->err.msg, cases[i].says);
    }
}

static void test_unauthorized(void **state)
{
    struct fx *f = *state;
    stub_answer(f->st, 401, "{\"message\":\"Unauthorized " STUB_KEY "\"}");
    struct qoyod_inventory *inv = NULL;
    size_t n = 99;
    int rc = qoyod_inventories(f->q, &inv, &n, &f->err);
    want_rc(rc, TH_EAUTH, &f->err);
    want_i64(n, 0);
    assert_null(inv);
    want_i64(qoyod_last_status(f->q), 401);
    want_streq(f->err.msg, "Qoyod refused the API key: generate a new key in Qoyod → Settings → "
                           "General Settings, press Save, and enter it again (HTTP 401 when "
                           "asked to list the inventories)");
}

static void test_key_never_in_message(void **state)
{
    struct fx *f = *state;
    /* A proxy echoing the header back must not put the key into err. */
    stub_answer(f->st, 500, "{\"message\":\"bad header API-KEY: " STUB_KEY " (" STUB_KEY ")\"}");
    int64_t id;
    int rc = qoyod_product_find_sku(f->q, "X", &id, &f->err);
    want_rc(rc, TH_ETEMP, &f->err); /* a GET: safe to retry */
    want_lacks(f->err.msg, STUB_KEY);
    want_has(f->err.msg, "bad header API-KEY: [API key] ([API key])");
}

static const struct qoyod_line_spec two_lines[] = {
    {.product_id = 11,
     .description = "Blue shirt",
     .quantity = 2,
     .unit_price = 10000,
     .discount = 0,
     .tax_rate_bp = 1500},
    {.product_id = 12, .quantity = 1, .unit_price = 3946, .discount = 150, .tax_rate_bp = 0},
};

static struct qoyod_invoice_spec spec_of(const char *ref)
{
    return (struct qoyod_invoice_spec){.contact_id = 5,
                                       .reference = ref,
                                       .description = "salla order 100234",
                                       .issue_date = "2026-01-15",
                                       .approved = 1,
                                       .inventory_id = 1,
                                       .payment_method = "10",
                                       .nlines = 2,
                                       .lines = two_lines};
}

static void test_invoice_body_exact(void **state)
{
    struct fx *f = *state;
    stub_answer(f->st, 201,
                "{\"invoice\":{\"id\":77,\"reference\":\"SALLA-100234\",\"status\":\"Approved\","
                "\"total\":\"268.32\",\"due_amount\":\"268.32\",\"paid_amount\":\"0.0\"}}");
    struct qoyod_invoice_spec s = spec_of("SALLA-100234");
    struct qoyod_invoice_info inv;
    int rc = qoyod_invoice_create(f->q, &s, &inv, &f->err);
    want_rc(rc, 0, &f->err);
    want_i64(inv.id, 77);
    want_streq(inv.reference, "SALLA-100234");
    want_streq(inv.status, "Approved");
    want_i64(inv.total, 26832);
    want_i64(inv.due, 26832);
    want_i64(qoyod_last_status(f->q), 201);
    const struct stub_req *r = stub_req(f->st, 0);
    want_streq(r->method, "POST");
    want_streq(r->path, "/2.0/invoices");
    want_streq(r->ctype, "application/json");
    want_streq(r->api_key, STUB_KEY);
    want_streq(r->body,
               "{\"invoice\":{\"contact_id\":5,\"reference\":\"SALLA-100234\","
               "\"description\":\"salla order 100234\",\"issue_date\":\"2026-01-15\","
               "\"due_date\":\"2026-01-15\",\"status\":\"Approved\",\"inventory_id\":1,"
               "\"payment_method\":\"10\",\"line_items\":["
               "{\"product_id\":11,\"description\":\"Blue shirt\",\"quantity\":2,"
               "\"unit_price\":\"100.0\",\"discount\":\"0.0\",\"discount_type\":\"amount\","
               "\"tax_percent\":\"15.0\",\"is_inclusive\":false},"
               "{\"product_id\":12,\"quantity\":1,\"unit_price\":\"39.46\",\"discount\":\"1.5\","
               "\"discount_type\":\"amount\",\"tax_percent\":\"0.0\",\"is_inclusive\":false}]}}");
}

/* The three validation shapes of qoyod.md §2.4, flattened in plain words. */
static void test_422_shapes(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *body;
        int want;
        const char *msg;
    } cases[] = {
        {"{\"errors\":{\"contact\":[\"can't be blank\"],\"line_items\":[\"Shirt (S1) quantity is "
         "not available\",\"must exist\"]}}",
         TH_EPERM,
         "Qoyod refused to create the invoice R-1: contact can't be blank; line_items Shirt (S1) "
         "quantity is not available; line_items must exist"},
        {"{\"errors\":[\"this contact 2 is not active\"]}", TH_EPERM,
         "Qoyod refused to create the invoice R-1: this contact 2 is not active"},
        {"{\"account\":[\"Can't be blank\"],\"base\":[\"Something else\"]}", TH_EPERM,
         "Qoyod refused to create the invoice R-1: account Can't be blank; Something else"},
        {"{\"errors\":{\"reference\":[\"has already been taken\"]}}", TH_ECONFLICT,
         "Qoyod refused to create the invoice R-1: reference has already been taken"},
        {"{\"errors\":[\"Reference is already used\"]}", TH_ECONFLICT,
         "Qoyod refused to create the invoice R-1: Reference is already used"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stub_answer(f->st, 422, cases[i].body);
        struct qoyod_invoice_spec s = spec_of("R-1");
        struct qoyod_invoice_info inv;
        int rc = qoyod_invoice_create(f->q, &s, &inv, &f->err);
        want_rc(rc, cases[i].want, &f->err);
        want_streq(f->err.msg, cases[i].msg);
        want_i64(qoyod_last_status(f->q), 422);
    }
}

/* A write whose outcome cannot be read is an unknown outcome, not a failure. */
static void test_write_outcomes(void **state)
{
    struct fx *f = *state;
    static const struct {
        int status;
        const char *body;
        int want;
    } cases[] = {
        {201, "<html>oops</html>", TH_EUNKNOWN}, /* saved, answer unreadable */
        {201, "{\"invoice\":{\"status\":\"Approved\"}}", TH_EUNKNOWN}, /* no id */
        {500, "{\"message\":\"boom\"}", TH_EUNKNOWN},                  /* may have been saved */
        {503, "{\"message\":\"down\"}", TH_ETEMP},                     /* not processed */
        {429, "{\"message\":\"Too Many Requests\"}", TH_ETEMP},
        {302, "", TH_EUNKNOWN}, /* redirect on a write: never followed */
        {400, "{\"message\":\"bad\"}", TH_EPERM},
        /* Qoyod saved it under another reference: the exactly-once key is lost */
        {201, "{\"invoice\":{\"id\":3,\"reference\":\"INV3\",\"total\":\"1.0\"}}", TH_EPERM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stub_answer(f->st, cases[i].status, cases[i].body);
        struct qoyod_invoice_spec s = spec_of("R-2");
        struct qoyod_invoice_info inv;
        int rc = qoyod_invoice_create(f->q, &s, &inv, &f->err);
        if (rc != cases[i].want)
            fail_msg("case %zu (HTTP %d): want %s, got %s: %s", i, cases[i].status,
                     th_err_name(cases[i].want), th_err_name(rc), f->err.msg);
        want_i64(qoyod_last_status(f->q), cases[i].status);
    }
}

/* Qoyod is not trusted to have filtered: rows are verified, further pages
 * read when the filter was ignored, duplicates reported. */
static void test_sku_verified(void **state)
{
    struct fx *f = *state;
    int64_t id = 0;
    /* filter ignored: other SKUs on page 1 of 2, the exact one on page 2 */
    stub_answer(f->st, 200,
                "{\"products\":[{\"id\":1,\"sku\":\"sku-1\"},{\"id\":2,\"sku\":\"SKU-10\"}],"
                "\"pagination\":{\"currentPage\":1,\"perPage\":100,\"totalPages\":2,\"total\":3}}");
    stub_answer(f->st, 200,
                "{\"products\":[{\"id\":3,\"sku\":\"SKU-1\"}],"
                "\"pagination\":{\"currentPage\":2,\"perPage\":100,\"totalPages\":2,\"total\":3}}");
    int rc = qoyod_product_find_sku(f->q, "SKU-1", &id, &f->err);
    want_rc(rc, 0, &f->err);
    want_i64(id, 3);
    want_streq(stub_req(f->st, 1)->query, "q[sku_eq]=SKU-1&page=2&per_page=100");

    /* only near misses: not found (case and prefix differ) */
    stub_answer(f->st, 200,
                "{\"products\":[{\"id\":1,\"sku\":\"sku-1\"},{\"id\":2,\"sku\":"
                "\"SKU-10\"}],\"pagination\":{\"totalPages\":1}}");
    want_rc(qoyod_product_find_sku(f->q, "SKU-1", &id, &f->err), TH_ENOTFOUND, &f->err);

    /* two products with the exact SKU: the merchant must fix it */
    stub_answer(f->st, 200,
                "{\"products\":[{\"id\":4,\"sku\":\"SKU-1\"},{\"id\":9,\"sku\":\"SKU-1\"}]}");
    rc = qoyod_product_find_sku(f->q, "SKU-1", &id, &f->err);
    want_rc(rc, TH_ECONFLICT, &f->err);
    want_streq(f->err.msg, "2 products in Qoyod have the SKU SKU-1 (ids 4, 9): give each "
                           "product its own SKU in Qoyod, then retry");
    /* a numeric SKU arriving as a JSON number still matches */
    stub_answer(f->st, 200, "{\"products\":[{\"id\":\"12\",\"sku\":1001}]}");
    want_rc(qoyod_product_find_sku(f->q, "1001", &id, &f->err), 0, &f->err);
    want_i64(id, 12);
}

static void test_contact_find_stub(void **state)
{
    struct fx *f = *state;
    stub_answer(f->st, 404, "\"We could not retrieve your Customers, we found nothing.\"");
    stub_answer(f->st, 200,
                "{\"customers\":[{\"id\":4,\"email\":\"a@example.com\",\"status\":\"Inactive\"},"
                "{\"id\":9,\"email\":\"A@Example.com\",\"status\":\"Active\"},"
                "{\"id\":7,\"email\":\"b@example.com\",\"status\":\"Active\"}]}");
    int64_t id = 0;
    int rc = qoyod_contact_find(f->q, "+966500000001", "a@example.com", &id, &f->err);
    want_rc(rc, 0, &f->err);
    want_i64(id, 9);
    want_streq(stub_req(f->st, 0)->path, "/2.0/customers");
    want_streq(stub_req(f->st, 0)->query,
               "q[phone_number_eq]=+966500000001&q[status_eq]=Active&page=1&per_page=100");
    want_streq(stub_req(f->st, 1)->query,
               "q[email_eq]=a@example.com&q[status_eq]=Active&page=1&per_page=100");
}

static void test_payment_body_exact(void **state)
{
    struct fx *f = *state;
    stub_answer(f->st, 201, "{\"invoice_payment\":{\"id\":31,\"reference\":\"PAY-1\"}}");
    int64_t id = 0;
    int rc = qoyod_payment_create(f->q, 77, 8, 26832, "2026-01-15", "PAY-1", &id, &f->err);
    want_rc(rc, 0, &f->err);
    want_i64(id, 31);
    want_streq(stub_req(f->st, 0)->path, "/2.0/invoice_payments");
    want_streq(stub_req(f->st, 0)->body,
               "{\"invoice_payment\":{\"reference\":\"PAY-1\",\"invoice_id\":77,\"account_id\":8,"
               "\"date\":\"2026-01-15\",\"amount\":\"268.32\"}}");
}

static void test_product_body_exact(void **state)
{
    struct fx *f = *state;
    stub_answer(f->st, 201, "{\"product\":{\"id\":5,\"sku\":\"S-1\"}}");
    struct qoyod_product_spec p = {.sku = "S-1",
                                   .name_en = "Shirt",
                                   .type = "Product",
                                   .track_quantity = 1,
                                   .selling_price = 8500};
    int64_t id = 0;
    int rc = qoyod_product_create(f->q, &p, &id, &f->err);
    want_rc(rc, 0, &f->err);
    want_i64(id, 5);
    want_streq(stub_req(f->st, 0)->body,
               "{\"product\":{\"sku\":\"S-1\",\"name_ar\":\"Shirt\",\"name_en\":\"Shirt\","
               "\"type\":\"Product\",\"product_unit_type_id\":6,\"category_id\":1,\"tax_id\":1,"
               "\"track_quantity\":\"1\",\"sale_item\":\"1\",\"selling_price\":\"85.0\","
               "\"is_selling_price_inclusive\":\"0\",\"purchase_item\":\"1\","
               "\"buying_price\":\"0.0\",\"is_buying_price_inclusive\":\"0\"}}");
}

/* QOYOD_MAX_LINES: at the limit the invoice is sent, past it nothing is. */
static void test_line_limit(void **state)
{
    struct fx *f = *state;
    struct qoyod_line_spec *ls = xcalloc(QOYOD_MAX_LINES + 1, sizeof *ls);
    for (size_t i = 0; i <= QOYOD_MAX_LINES; i++)
        ls[i] = (struct qoyod_line_spec){
            .product_id = 1, .quantity = 1, .unit_price = 100, .tax_rate_bp = 1500};
    struct qoyod_invoice_spec s = spec_of("R-3");
    s.lines = ls;
    struct qoyod_invoice_info inv;

    s.nlines = QOYOD_MAX_LINES + 1;
    want_rc(qoyod_invoice_create(f->q, &s, &inv, &f->err), TH_ELIMIT, &f->err);
    want_i64(f->st->nreqs, 0);
    s.nlines = 0;
    want_rc(qoyod_invoice_create(f->q, &s, &inv, &f->err), TH_EINVAL, &f->err);
    want_i64(f->st->nreqs, 0);

    stub_answer(f->st, 201, "{\"invoice\":{\"id\":1,\"reference\":\"R-3\",\"total\":\"575.0\"}}");
    s.nlines = QOYOD_MAX_LINES;
    want_rc(qoyod_invoice_create(f->q, &s, &inv, &f->err), 0, &f->err);
    want_i64(inv.due, 57500); /* no due_amount, no paid_amount: all of it is due */
    json_error_t je;
    json_t *sent = json_loads(stub_req(f->st, 0)->body, 0, &je);
    want_i64(json_array_size(jv_path(sent, "invoice.line_items")), QOYOD_MAX_LINES);
    json_decref(sent);
    free(ls);
}

static void test_inventories_stub(void **state)
{
    struct fx *f = *state;
    stub_answer(f->st, 200,
                "{\"inventories\":[{\"id\":1,\"name\":\"Main\",\"ar_name\":\"الرئيسي\"},"
                "{\"id\":\"2\",\"name\":null}]}");
    stub_answer(f->st, 404, "\"We could not retrieve your Inventories, we found nothing.\"");
    struct qoyod_inventory *inv = NULL;
    size_t n = 0;
    want_rc(qoyod_inventories(f->q, &inv, &n, &f->err), 0, &f->err);
    want_i64(n, 2);
    want_i64(inv[0].id, 1);
    want_streq(inv[0].name, "Main");
    want_streq(inv[0].ar_name, "الرئيسي");
    want_i64(inv[1].id, 2);
    want_streq(inv[1].name, "");
    free(inv);
    want_rc(qoyod_inventories(f->q, &inv, &n, &f->err), 0, &f->err);
    want_i64(n, 0);
}

/* ---------------------------------------------------------------------- */
/* Against the Qoyod emulator                                               */

struct ex {
    struct sim *s;
    struct qoyod *q;
    struct th_err err;
};

static int sim_setup(void **state)
{
    struct ex *e = xcalloc(1, sizeof *e);
    e->s = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", "k1", NULL});
    e->q = qoyod_new(tt_url(e->s, "/2.0"), "k1", NULL);
    *state = e;
    return 0;
}

static int sim_teardown(void **state)
{
    struct ex *e = *state;
    qoyod_free(e->q);
    tt_sim_stop(e->s);
    free(e);
    return 0;
}

/* Number of invoices the emulator holds for tenant k1. */
static long long sim_invoices(struct sim *s)
{
    struct tt_resp r;
    tt_http("GET", tt_url(s, "/_sim/qoyod/summary?api_key=k1"), NULL, NULL, &r);
    if (r.status != 200) fail_msg("summary: HTTP %ld: %s", r.status, r.body);
    long long n = json_integer_value(jv_path(r.json, "counts.invoices"));
    tt_resp_release(&r);
    return n;
}

static void test_sim_inventories_and_key(void **state)
{
    struct ex *e = *state;
    struct qoyod_inventory *inv = NULL;
    size_t n = 0;
    want_rc(qoyod_inventories(e->q, &inv, &n, &e->err), 0, &e->err);
    want_i64(n, 2);
    want_i64(inv[0].id, 1);
    want_streq(inv[0].name, "Main warehouse");
    want_streq(inv[0].ar_name, "المستودع الرئيسي");
    want_i64(inv[1].id, 2);
    want_streq(inv[1].name, "Branch warehouse");
    free(inv);
    want_i64(qoyod_last_status(e->q), 200);

    struct qoyod *bad = qoyod_new(tt_url(e->s, "/2.0/"), "wrong-key-xyz", NULL);
    inv = NULL;
    int rc = qoyod_inventories(bad, &inv, &n, &e->err);
    want_rc(rc, TH_EAUTH, &e->err);
    want_i64(qoyod_last_status(bad), 401);
    want_has(e->err.msg, "Qoyod refused the API key: generate a new key");
    want_lacks(e->err.msg, "wrong-key-xyz");
    assert_null(inv);
    qoyod_free(bad);
}

static void test_sim_contacts(void **state)
{
    struct ex *e = *state;
    int64_t id = 0, found = 0;
    want_rc(qoyod_contact_find(e->q, "+966500000001", NULL, &found, &e->err), TH_ENOTFOUND,
            &e->err);
    struct model_customer c = {.name = "Ahmed Ali",
                               .phone = "+966500000001",
                               .email = "ahmed@example.com",
                               .city = "Riyadh",
                               .country = "SA"};
    want_rc(qoyod_contact_create(e->q, &c, &id, &e->err), 0, &e->err);
    want_i64(qoyod_last_status(e->q), 201);
    assert_true(id > 0);
    want_rc(qoyod_contact_find(e->q, "+966500000001", NULL, &found, &e->err), 0, &e->err);
    want_i64(found, id);
    /* phone unknown, email known */
    found = 0;
    want_rc(qoyod_contact_find(e->q, "0599999999", "ahmed@example.com", &found, &e->err), 0,
            &e->err);
    want_i64(found, id);
    want_rc(qoyod_contact_find(e->q, "0599999999", "x@example.com", &found, &e->err), TH_ENOTFOUND,
            &e->err);
    struct model_customer unnamed = {.phone = "1"};
    want_rc(qoyod_contact_create(e->q, &unnamed, &id, &e->err), TH_EINVAL, &e->err);
}

static void test_sim_products(void **state)
{
    struct ex *e = *state;
    int64_t id = 0, found = 0;
    struct qoyod_product_spec p = {.sku = "A&B 1+2",
                                   .name_ar = "قميص",
                                   .name_en = "Shirt",
                                   .type = "Product",
                                   .selling_price = 10000};
    want_rc(qoyod_product_find_sku(e->q, "A&B 1+2", &found, &e->err), TH_ENOTFOUND, &e->err);
    want_i64(qoyod_last_status(e->q), 404);
    want_rc(qoyod_product_create(e->q, &p, &id, &e->err), 0, &e->err);
    want_rc(qoyod_product_find_sku(e->q, "A&B 1+2", &found, &e->err), 0, &e->err);
    want_i64(found, id);
    want_rc(qoyod_product_find_sku(e->q, "A&B 1", &found, &e->err), TH_ENOTFOUND, &e->err);
    /* the emulator, like Qoyod, lets two products share a SKU */
    int64_t id2 = 0;
    want_rc(qoyod_product_create(e->q, &p, &id2, &e->err), 0, &e->err);
    want_rc(qoyod_product_find_sku(e->q, "A&B 1+2", &found, &e->err), TH_ECONFLICT, &e->err);
    want_has(e->err.msg, "2 products in Qoyod have the SKU A&B 1+2");
    /* a bad product is refused with Qoyod's words */
    struct qoyod_product_spec bad = p;
    bad.sku = "S-BAD";
    bad.type = "Gadget";
    want_rc(qoyod_product_create(e->q, &bad, &id, &e->err), TH_EPERM, &e->err);
    want_streq(e->err.msg, "Qoyod refused to create the product with SKU S-BAD: type is not "
                           "included in the list");
}

/* A count sets the stock absolutely, with the description asked for; a
 * product's stock is read at one location (0 where it has none). */
static void test_sim_stock_count_and_read(void **state)
{
    struct ex *e = *state;
    int64_t id = 0, qty = -1;
    struct qoyod_product_spec p = {.sku = "CNT-1", .name_en = "Cup", .type = "Product",
                                   .track_quantity = 1, .selling_price = 500};
    want_rc(qoyod_product_create(e->q, &p, &id, &e->err), 0, &e->err);
    want_rc(qoyod_product_stock(e->q, 1, id, &qty, &e->err), 0, &e->err);
    want_i64(qty, 0);
    want_rc(qoyod_stock_count_as(e->q, 1, id, 7, 300, "2026-01-15", 0, 0, "Fix (test)", &e->err),
            0, &e->err);
    want_rc(qoyod_product_stock(e->q, 1, id, &qty, &e->err), 0, &e->err);
    want_i64(qty, 7);
    want_rc(qoyod_stock_count(e->q, 1, id, 4, 300, "2026-01-15", 0, 0, &e->err), 0, &e->err);
    want_rc(qoyod_product_stock(e->q, 1, id, &qty, &e->err), 0, &e->err);
    want_i64(qty, 4);
    struct tt_resp r;
    tt_http("GET", tt_url(e->s, "/_sim/requests"), NULL, NULL, &r);
    want_has(r.body, "Fix (test)");
    want_has(r.body, "Opening balance (tarheel, first transfer)");
    tt_resp_release(&r);
    want_rc(qoyod_product_stock(e->q, 1, id + 1000, &qty, &e->err), TH_EPERM, &e->err);
}

/* A customer and an untracked product to invoice; returns their ids. */
static void sim_parties(struct ex *e, int64_t *contact, int64_t *product)
{
    struct model_customer c = {.name = "Sara"};
    want_rc(qoyod_contact_create(e->q, &c, contact, &e->err), 0, &e->err);
    struct qoyod_product_spec p = {
        .sku = "SVC-1", .name_en = "Gift wrap", .type = "Service", .selling_price = 10000};
    want_rc(qoyod_product_create(e->q, &p, product, &e->err), 0, &e->err);
}

static struct qoyod_invoice_spec sim_spec(const char *ref, int64_t contact,
                                          const struct qoyod_line_spec *l)
{
    return (struct qoyod_invoice_spec){.contact_id = contact,
                                       .reference = ref,
                                       .description = "salla order 1",
                                       .issue_date = "2026-01-15",
                                       .approved = 1,
                                       .inventory_id = 1,
                                       .payment_method = "48",
                                       .nlines = 1,
                                       .lines = l};
}

static void test_sim_invoice_and_payment(void **state)
{
    struct ex *e = *state;
    int64_t contact = 0, product = 0;
    sim_parties(e, &contact, &product);
    struct qoyod_line_spec l = {.product_id = product,
                                .description = "Gift wrap",
                                .quantity = 2,
                                .unit_price = 10000,
                                .discount = 1000,
                                .tax_rate_bp = 1500};
    struct qoyod_invoice_spec s = sim_spec("SALLA-1", contact, &l);
    struct qoyod_invoice_info inv, got;
    want_rc(qoyod_invoice_find(e->q, "SALLA-1", &got, &e->err), TH_ENOTFOUND, &e->err);
    want_rc(qoyod_invoice_create(e->q, &s, &inv, &e->err), 0, &e->err);
    want_i64(qoyod_last_status(e->q), 201);
    /* (2 × 100.00 − 10.00) × 1.15 = 218.50 */
    want_i64(inv.total, 21850);
    want_i64(inv.due, 21850);
    want_streq(inv.reference, "SALLA-1");
    want_streq(inv.status, "Approved");
    want_rc(qoyod_invoice_find(e->q, "SALLA-1", &got, &e->err), 0, &e->err);
    want_i64(got.id, inv.id);
    want_i64(got.total, 21850);
    want_rc(qoyod_invoice_find(e->q, "SALLA-", &got, &e->err), TH_ENOTFOUND, &e->err);

    /* the same reference again: Qoyod refuses, and says why */
    want_rc(qoyod_invoice_create(e->q, &s, &got, &e->err), TH_ECONFLICT, &e->err);
    want_i64(qoyod_last_status(e->q), 422);
    want_has(e->err.msg, "reference has already been taken");
    want_i64(sim_invoices(e->s), 1);

    /* an invoice Qoyod refuses for another reason is permanent */
    struct qoyod_invoice_spec nobody = sim_spec("SALLA-2", 999, &l);
    want_rc(qoyod_invoice_create(e->q, &nobody, &got, &e->err), TH_EPERM, &e->err);
    want_has(e->err.msg, "Qoyod refused to create the invoice SALLA-2: contact");

    int64_t pay = 0, pfound = 0;
    want_rc(qoyod_payment_find(e->q, "PAY-SALLA-1", &pfound, &e->err), TH_ENOTFOUND, &e->err);
    want_rc(
        qoyod_payment_create(e->q, inv.id, 8, inv.due, "2026-01-15", "PAY-SALLA-1", &pay, &e->err),
        0, &e->err);
    assert_true(pay > 0);
    want_rc(qoyod_payment_find(e->q, "PAY-SALLA-1", &pfound, &e->err), 0, &e->err);
    want_i64(pfound, pay);
    want_rc(qoyod_invoice_find(e->q, "SALLA-1", &got, &e->err), 0, &e->err);
    want_streq(got.status, "Paid");
    want_i64(got.due, 0);
    want_i64(got.total, 21850);
    /* paying again under the same reference is a conflict, not a new receipt */
    want_rc(qoyod_payment_create(e->q, inv.id, 8, 100, "2026-01-15", "PAY-SALLA-1", &pay, &e->err),
            TH_ECONFLICT, &e->err);
}

/* The answer to the create is lost after Qoyod saved the invoice: the client
 * says "unknown", and the lookup by reference settles it to exactly one. */
static void test_sim_commit_then_drop(void **state)
{
    struct ex *e = *state;
    int64_t contact = 0, product = 0;
    sim_parties(e, &contact, &product);
    struct qoyod_line_spec l = {
        .product_id = product, .quantity = 1, .unit_price = 5000, .tax_rate_bp = 1500};
    struct qoyod_invoice_spec s = sim_spec("ZID-77", contact, &l);
    tt_faults(e->s, "{\"match\":\"POST /2.0/invoices\",\"mode\":\"commit_then_drop\",\"count\":1}");
    struct qoyod_invoice_info inv = {0};
    int rc = qoyod_invoice_create(e->q, &s, &inv, &e->err);
    want_rc(rc, TH_EUNKNOWN, &e->err);
    want_i64(qoyod_last_status(e->q), 0);
    want_i64(sim_invoices(e->s), 1);
    want_rc(qoyod_invoice_find(e->q, "ZID-77", &inv, &e->err), 0, &e->err);
    want_streq(inv.reference, "ZID-77");
    want_i64(inv.total, 5750);
    want_i64(sim_invoices(e->s), 1);
    /* sent once: the lost answer was not "fixed" by sending it again */
    want_i64(tt_count_requests(e->s, "POST", "/2.0/invoices", -2), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_list_is_notfound, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_other_404_is_perm, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_unauthorized, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_key_never_in_message, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_invoice_body_exact, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_422_shapes, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_write_outcomes, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_sku_verified, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_contact_find_stub, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_payment_body_exact, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_product_body_exact, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_line_limit, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_inventories_stub, stub_setup, stub_teardown),
        cmocka_unit_test_setup_teardown(test_sim_inventories_and_key, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_contacts, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_products, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_stock_count_and_read, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_invoice_and_payment, sim_setup, sim_teardown),
        cmocka_unit_test_setup_teardown(test_sim_commit_then_drop, sim_setup, sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
