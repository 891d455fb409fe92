/*
 * Tests for src/qoyod/plan.c: the golden money cases of tests/data/golden/
 * (one file per case: a Salla or Zid order as the platform's API returns
 * it, the connection's settings, and the exact Qoyod request bodies
 * expected), run without network through the real adapter mapping, the
 * plan, the worker's spec builders and the Qoyod client's body builders;
 * every expected document is also recomputed with the Qoyod emulator's own
 * line arithmetic, which must give the store's total. Plus table cases for
 * the spreading and adjustment rules.
 *
 * Product ids in the expected bodies: each distinct SKU gets 1, 2, 3, ...
 * in the order the invoice's lines first name it; the customer is 1.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/plan.h"
#include "qoyod/qoyod.h"
#include "sim/qoyod_sim_docs.h"
#include "worker/transfer.h"

#define GOLDEN_DIR TH_SOURCE_DIR "/tests/data/golden"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                  */

static struct model_order *map(const char *platform, const json_t *order, struct th_err *err,
                               int *rc)
{
    const struct platform_ops *p = platform_by_name(platform);
    if (!p) fail_msg("unknown platform %s", platform);
    char *text = jv_dump(order);
    struct model_order *o = NULL;
    *rc = p->order_map(text, strlen(text), 1305146709, &o, err);
    free(text);
    return o;
}

/* SKU → product id, in order of first use. */
struct ids {
    char *sku[64];
    size_t n;
};

static int64_t id_of(struct ids *ids, const char *sku)
{
    for (size_t i = 0; i < ids->n; i++)
        if (!strcmp(ids->sku[i], sku)) return (int64_t)i + 1;
    assert_true(ids->n < 64);
    ids->sku[ids->n++] = xstrdup(sku);
    return (int64_t)ids->n;
}

static void ids_release(struct ids *ids)
{
    for (size_t i = 0; i < ids->n; i++) free(ids->sku[i]);
    ids->n = 0;
}

/* Σ of the emulator's line totals for a request body's line_items. */
static int64_t sim_total(const json_t *items)
{
    int64_t sum = 0;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        struct qy_line_in in = {0};
        struct th_err e = {0};
        int64_t q = 0;
        assert_int_equal(jv_get_dec(it, "quantity", 0, &q, &e), 0);
        in.qty3 = q * 1000;
        assert_int_equal(jv_get_money(it, "unit_price", &in.price2, &e), 0);
        assert_int_equal(jv_get_money(it, "discount", &in.disc, &e), 0);
        assert_string_equal(jv_get_str(it, "discount_type"), "amount");
        in.disc_is_amount = 1;
        assert_int_equal(jv_get_dec(it, "tax_percent", 4, &in.tax4, &e), 0);
        struct qy_line_out out;
        assert_int_equal(qy_line_compute(&in, &out), 0);
        sum += out.total2;
    }
    return sum;
}

static void expect_json(const char *file, const char *what, const char *got_text,
                        const json_t *want)
{
    json_error_t je;
    json_t *got = json_loads(got_text, 0, &je);
    assert_non_null(got);
    if (!json_equal(got, (json_t *)want)) {
        char *w = json_dumps(want, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        char *g = json_dumps(got, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        print_error("%s: %s differs\n--- expected\n%s\n--- got\n%s\n", file, what, w, g);
        free(w);
        free(g);
        json_decref(got);
        fail();
    }
    json_decref(got);
}

static void expect_error(const char *file, int rc, const struct th_err *err, const json_t *want)
{
    if (!want) {
        if (rc) fail_msg("%s: unexpected failure %s: %s", file, th_err_name(rc), err->msg);
        return;
    }
    if (!rc) fail_msg("%s: expected a failure saying \"%s\"", file, json_string_value(want));
    if (!strstr(err->msg, json_string_value(want)))
        fail_msg("%s: failure \"%s\" does not say \"%s\"", file, err->msg, json_string_value(want));
}

/* ---------------------------------------------------------------------- */
/* The golden cases                                                         */

static void run_case(const char *file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, file);
    json_error_t je;
    json_t *c = json_load_file(path, 0, &je);
    if (!c) fail_msg("%s: %s (line %d)", file, je.text, je.line);
    const char *platform = jv_get_str(c, "platform");
    const json_t *settings = json_object_get(c, "settings");
    struct store_conn conn = {0};
    int b = 0;
    conn.number_by_order = jv_get_bool(settings, "number_by_order", &b, NULL) == 0 && b;
    if (jv_get_id(settings, "inventory_id", &conn.inventory_id, NULL) != 0) conn.inventory_id = 1;

    struct th_err err = {0};
    int rc;
    struct model_order *o = map(platform, json_object_get(c, "order"), &err, &rc);
    if (rc == 0) rc = model_order_check(o, &err);
    struct plan pl = {0};
    if (rc == 0) rc = plan_invoice(o, &pl, &err);
    expect_error(file, rc, &err, json_object_get(c, "error"));
    if (rc) {
        model_order_free(o);
        json_decref(c);
        return;
    }
    int64_t want_rounding = 0;
    if (jv_get_dec(c, "rounding", 0, &want_rounding, NULL) != 0) want_rounding = 0;
    if (pl.rounding != want_rounding)
        fail_msg("%s: rounding %lld, expected %lld", file, (long long)pl.rounding,
                 (long long)want_rounding);
    assert_int_equal(pl.total, o->total);

    struct ids ids = {0};
    int64_t *pids = xcalloc(pl.n, sizeof *pids);
    for (size_t i = 0; i < pl.n; i++) pids[i] = id_of(&ids, pl.l[i].sku);
    struct qoyod_line_spec *lines = xcalloc(pl.n, sizeof *lines);
    transfer_plan_lines(&pl, pids, lines);
    struct transfer_texts tx;
    struct qoyod_invoice_spec spec;
    transfer_invoice_spec(&conn, o, 1, lines, pl.n, &tx, &spec);
    char *body = qoyod_invoice_body(&spec);
    const json_t *want = json_object_get(c, "invoice");
    if (getenv("TH_GOLDEN_PRINT")) print_message("%s invoice: %s\n", file, body);
    expect_json(file, "the invoice request", body, want);
    /* The emulator's arithmetic on what was asked gives the store's total. */
    int64_t qt = sim_total(json_object_get(json_object_get(want, "invoice"), "line_items"));
    if (qt != o->total)
        fail_msg("%s: Qoyod's arithmetic gives %lld, the store's total is %lld", file,
                 (long long)qt, (long long)o->total);
    free(body);

    /* Returns after transfer: each step is the order as the store shows it
     * then, and the credit notes that must follow (none, one or more). */
    const json_t *steps = json_object_get(c, "returns");
    size_t si;
    json_t *step;
    struct transfer_credited done = {0};
    json_array_foreach(steps, si, step) {
        struct model_order *after = map(platform, json_object_get(step, "order"), &err, &rc);
        assert_int_equal(rc, 0);
        struct transfer_credit_plan cp = {0};
        rc = transfer_credits(after, &pl, o->total, &done, &cp, &err);
        expect_error(file, rc, &err, json_object_get(step, "error"));
        const json_t *notes = json_object_get(step, "credit_notes");
        if (rc == 0) {
            if (cp.n != json_array_size(notes))
                fail_msg("%s: return %zu gives %zu credit notes, expected %zu", file, si + 1,
                         cp.n, json_array_size(notes));
            for (size_t k = 0; k < cp.n; k++) {
                struct transfer_credit *cn = &cp.notes[k];
                int64_t *cids = xcalloc(cn->plan.n, sizeof *cids);
                for (size_t i = 0; i < cn->plan.n; i++) cids[i] = id_of(&ids, cn->plan.l[i].sku);
                struct qoyod_line_spec *cl = xcalloc(cn->plan.n, sizeof *cl);
                transfer_plan_lines(&cn->plan, cids, cl);
                struct transfer_texts ct;
                struct qoyod_credit_spec cs;
                transfer_credit_spec(&conn, after, tx.ref, 77, 1, cn, cl, cn->plan.n, &ct, &cs);
                char *cb = qoyod_credit_note_body(&cs);
                if (getenv("TH_GOLDEN_PRINT")) print_message("%s credit: %s\n", file, cb);
                const json_t *w = json_array_get(notes, k);
                expect_json(file, "a credit note request", cb, w);
                int64_t ct_total =
                    sim_total(json_object_get(json_object_get(w, "credit_note"), "line_items"));
                assert_int_equal(ct_total, cn->plan.total);
                /* what the worker records once Qoyod has the note */
                transfer_credited_add(&done, cn);
                free(cb);
                free(cl);
                free(cids);
            }
            int64_t want_credited = -1;
            if (jv_get_money(step, "credited", &want_credited, NULL) == 0 &&
                done.total != want_credited)
                fail_msg("%s: %lld credited after return %zu, expected %lld", file,
                         (long long)done.total, si + 1, (long long)want_credited);
        }
        transfer_credit_plan_release(&cp);
        model_order_free(after);
    }
    transfer_credited_release(&done);
    free(lines);
    free(pids);
    ids_release(&ids);
    plan_release(&pl);
    model_order_free(o);
    json_decref(c);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden_cases(void **state)
{
    (void)state;
    DIR *d = opendir(GOLDEN_DIR);
    assert_non_null(d);
    char *names[256];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".json")) names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    /* The list of cases must all be there. */
    assert_true(n >= 12);
    for (size_t i = 0; i < n; i++) {
        print_message("golden: %s\n", names[i]);
        run_case(names[i]);
        free(names[i]);
    }
}

/* ---------------------------------------------------------------------- */
/* Rules in isolation                                                       */

static struct model_order *order_of(const int64_t (*lines)[3], size_t n, int64_t discount,
                                    int64_t shipping, int64_t total)
{
    struct model_order *o = model_order_new();
    o->number = xstrdup("T-1");
    o->shipping = shipping;
    o->fees_tax_rate_bp = 1500;
    o->order_discount = discount;
    o->total = total;
    for (size_t i = 0; i < n; i++) {
        struct model_line *l = model_order_add_line(o);
        l->sku = xasprintf("S%zu", i);
        l->name = xasprintf("item %zu", i);
        l->quantity = lines[i][0];
        l->unit_price = lines[i][1];
        l->tax_rate_bp = (int32_t)lines[i][2];
    }
    return o;
}

/* One halala over 10.00 and 20.00 of goods: floor gives both 0, and the
 * halala goes to the larger remainder (the second line), not the first.
 * 10.00 over three lines of 5.00: 3.34 to the first (equal remainders). */
static void test_spread_largest_remainder(void **state)
{
    (void)state;
    const int64_t a[][3] = {{1, 1000, 0}, {1, 2000, 0}};
    struct model_order *o = order_of(a, 2, 1, 0, 2999);
    struct plan p;
    struct th_err err = {0};
    assert_int_equal(plan_invoice(o, &p, &err), 0);
    assert_int_equal(p.l[0].discount, 0);
    assert_int_equal(p.l[1].discount, 1);
    assert_int_equal(p.total, 2999);
    assert_int_equal(p.rounding, 0);
    plan_release(&p);
    model_order_free(o);
    const int64_t b[][3] = {{1, 500, 0}, {1, 500, 0}, {1, 500, 0}};
    o = order_of(b, 3, 1000, 0, 500);
    assert_int_equal(plan_invoice(o, &p, &err), 0);
    assert_int_equal(p.l[0].discount, 334);
    assert_int_equal(p.l[1].discount, 333);
    assert_int_equal(p.l[2].discount, 333);
    plan_release(&p);
    model_order_free(o);
}

/* A discount larger than the goods reaches shipping; larger than both is
 * refused. */
static void test_spread_reaches_shipping(void **state)
{
    (void)state;
    const int64_t a[][3] = {{1, 1000, 0}};
    struct model_order *o = order_of(a, 1, 1500, 2000, 1725);
    struct plan p;
    struct th_err err = {0};
    assert_int_equal(plan_invoice(o, &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(p.l[0].discount, 1000);
    assert_string_equal(p.l[1].sku, PLAN_SKU_SHIPPING);
    assert_int_equal(p.l[1].discount, 500);
    assert_int_equal(p.total, 1725); /* 15.00 shipping × 1.15 */
    plan_release(&p);
    o->order_discount = 3001;
    assert_int_equal(plan_invoice(o, &p, &err), TH_EMONEY);
    model_order_free(o);
}

/* Off by rounding: a rounding line (up) or one more halala of discount
 * (down); one halala past the tolerance fails naming both totals. */
static void test_adjustment_limits(void **state)
{
    (void)state;
    const int64_t a[][3] = {{1, 1000, 1500}}; /* 11.50 in Qoyod; tolerance 1×1.15/2+1 = 1 */
    struct model_order *o = order_of(a, 1, 0, 0, 1151);
    struct plan p;
    struct th_err err = {0};
    assert_int_equal(plan_invoice(o, &p, &err), 0);
    assert_int_equal(p.rounding, 1);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.l[1].sku, PLAN_SKU_ROUNDING);
    assert_int_equal(p.l[1].tax_rate_bp, 0);
    assert_int_equal(p.total, 1151);
    plan_release(&p);
    o->total = 1149;
    assert_int_equal(plan_invoice(o, &p, &err), 0);
    assert_int_equal(p.rounding, -1);
    assert_int_equal(p.n, 1);
    assert_int_equal(p.l[0].discount, 1); /* 9.99 × 1.15 = 11.4885 → 11.49 */
    assert_int_equal(p.total, 1149);
    plan_release(&p);
    o->total = 1152;
    assert_int_equal(plan_invoice(o, &p, &err), TH_EMONEY);
    assert_non_null(strstr(err.msg, "gives 11.50 but the store's total is 11.52 (difference 0.02"));
    o->total = 1148;
    assert_int_equal(plan_invoice(o, &p, &err), TH_EMONEY);
    assert_non_null(strstr(err.msg, "difference -0.02"));
    model_order_free(o);
}

/* A partial return takes its share of the line's discount; more than was
 * invoiced is refused; a full return with fees is the invoice itself. */
static void test_credit_rules(void **state)
{
    (void)state;
    const int64_t a[][3] = {{3, 1000, 1500}, {1, 2000, 1500}};
    struct model_order *o = order_of(a, 2, 300, 1500, 0);
    struct th_err err = {0};
    struct plan inv;
    /* 30.00 − 1.80 + 20.00 − 1.20 + 15.00 = 62.00 net → 71.30 */
    o->total = 7130;
    assert_int_equal(plan_invoice(o, &inv, &err), 0);
    assert_int_equal(inv.l[0].discount, 180);
    int64_t qty[2] = {1, 0};
    struct plan cn;
    assert_int_equal(plan_credit(&inv, qty, 2, 0, 0, &cn, &err), 0);
    assert_int_equal(cn.n, 1);
    assert_int_equal(cn.l[0].quantity, 1);
    assert_int_equal(cn.l[0].discount, 60);
    assert_int_equal(cn.total, 1081); /* 9.40 × 1.15 */
    plan_release(&cn);
    qty[0] = 4;
    assert_int_equal(plan_credit(&inv, qty, 2, 0, 0, &cn, &err), TH_EINVAL);
    assert_int_equal(plan_credit(&inv, NULL, 2, 1, 0, &cn, &err), 0);
    assert_int_equal(cn.total, inv.total);
    assert_int_equal(cn.n, inv.n);
    plan_release(&cn);
    assert_int_equal(plan_credit(&inv, NULL, 2, 1, inv.total + 1, &cn, &err), TH_EMONEY);
    plan_release(&inv);
    model_order_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_largest_remainder),
        cmocka_unit_test(test_spread_reaches_shipping),
        cmocka_unit_test(test_adjustment_limits),
        cmocka_unit_test(test_credit_rules),
        cmocka_unit_test(test_golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
