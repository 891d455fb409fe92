/*
 * Tests for worker/fields against the Qoyod, Salla and Zid emulators: every
 * combination of field (name, price, cost) x source of truth (store, Qoyod)
 * x {unchanged, changed in the store only, changed in Qoyod only, both
 * changed to the same value, both changed to different values}. Each case
 * is its own SKU, changed through each side's own API (never through
 * tarheel); after a pass each side must hold the expected value, a conflict
 * must be recorded exactly for the "both differently" cases (with the
 * values and the side that won), and a second pass must write nothing to
 * either side (checked by the emulators' updated_at, not only tarheel's
 * counts). Also: first sight takes the source of truth as the baseline,
 * products without SKU are skipped, and reviewing a conflict with --keep
 * writes the kept value.
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
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "th_test.h"
#include "worker/fields.h"

#define KEY "qk"

enum { UNCHANGED, STORE_ONLY, QOYOD_ONLY, BOTH_SAME, BOTH_DIFF, NCASES };
static const char *const case_names[NCASES] = {"unchanged", "store-only", "qoyod-only",
                                               "both-same", "both-diff"};

struct fx {
    char dir[64];
    struct store *store;
    struct sim *qoyod, *shop;
    struct httpc *hc;
    struct store_conn conn;
    int zid;
    int src; /* STORE_SRC_* of every field in this run */
    /* per field and case: the SKU's ids on each side */
    char store_id[STORE_NFIELDS][NCASES][64];
    int64_t qoyod_id[STORE_NFIELDS][NCASES];
};

static const char *const QH[] = {"API-KEY: " KEY, "Content-Type: application/json", NULL};

static json_t *qoyod(struct fx *f, const char *method, const char *path, const char *body, int want)
{
    struct tt_resp r;
    tt_http(method, tt_url(f->qoyod, "%s", path), QH, body, &r);
    if (r.status != want)
        fail_msg("%s %s: %d, want %d: %s", method, path, r.status, want, r.body ? r.body : "");
    json_t *j = json_incref(r.json);
    tt_resp_release(&r);
    return j;
}

/* The store's API, as a merchant's edit would reach it. */
static json_t *shop(struct fx *f, const char *method, const char *path, const char *body)
{
    char *auth = xasprintf("Authorization: Bearer %s", f->conn.access_token);
    char *acc = xasprintf("Access-Token: %s", f->conn.manager_token ? f->conn.manager_token : "");
    const char *h[] = {auth, acc, "Store-Id: 251073", "Role: Manager",
                       "Content-Type: application/json", NULL};
    struct tt_resp r;
    tt_http(method, tt_url(f->shop, "%s%s", f->zid ? "/v1" : "/admin/v2", path), h, body, &r);
    free(auth);
    free(acc);
    if (r.status != 200 && r.status != 201)
        fail_msg("%s %s: %d: %s", method, path, r.status, r.body ? r.body : "");
    json_t *j = json_incref(r.json);
    tt_resp_release(&r);
    if (!f->zid) {
        json_t *d = json_incref(json_object_get(j, "data"));
        json_decref(j);
        j = d;
    }
    return j;
}

static void start(struct fx *f, int zid, int src)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/th_fieldsXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    struct th_err err;
    if (store_open(&f->store, url, &err) != 0) fail_msg("store: %s", err.msg);
    free(url);
    f->zid = zid;
    f->src = src;
    f->qoyod = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", KEY, NULL});
    f->hc = httpc_new(NULL);
    struct store_conn *c = &f->conn;
    c->status = xstrdup("active");
    c->qoyod_base = xasprintf("%s/2.0", sim_base_url(f->qoyod));
    c->qoyod_api_key = xstrdup(KEY);
    c->inventory_id = 1;
    c->webhook_secret = xstrdup("unused");
    c->connected_at = time(NULL) - 60;
    c->fields_sync = 1;
    for (int k = 0; k < STORE_NFIELDS; k++)
        c->field_source[k] = src;
    struct tt_resp r;
    if (!zid) {
        f->shop = tt_sim_start(&salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
        tt_http("POST", tt_url(f->shop, "/_sim/salla/install"), NULL, "{\"store_id\":4242}", &r);
        assert_int_equal(r.status, 200);
        c->platform = MODEL_PLATFORM_SALLA;
        c->store_id = 4242;
        c->access_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
        c->api_base = xasprintf("%s/admin/v2", sim_base_url(f->shop));
    } else {
        f->shop = tt_sim_start(&zid_sim_ops, (const char *[]){"rate-limit", "0", NULL});
        tt_http("POST", tt_url(f->shop, "/_sim/zid/install"), NULL, "{\"store_id\":251073}", &r);
        assert_int_equal(r.status, 200);
        c->platform = MODEL_PLATFORM_ZID;
        c->store_id = 251073;
        c->access_token = xstrdup(json_string_value(json_object_get(r.json, "authorization")));
        c->manager_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
        c->api_base = xasprintf("%s/v1", sim_base_url(f->shop));
        c->webhook_strategy = xstrdup("basic");
    }
    tt_resp_release(&r);
    if (store_conn_put(f->store, c, &err) != 0) fail_msg("conn: %s", err.msg);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    httpc_free(f->hc);
    tt_sim_stop(f->shop);
    tt_sim_stop(f->qoyod);
    store_conn_release(&f->conn);
    store_close(f->store);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static int setup_salla_store(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    start(f, 0, STORE_SRC_STORE);
    *state = f;
    return 0;
}
static int setup_salla_qoyod(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    start(f, 0, STORE_SRC_QOYOD);
    *state = f;
    return 0;
}
static int setup_zid_store(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    start(f, 1, STORE_SRC_STORE);
    *state = f;
    return 0;
}
static int setup_zid_qoyod(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    start(f, 1, STORE_SRC_QOYOD);
    *state = f;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Values. Prices are VAT-exclusive in Salla and Qoyod; Zid shows them with
 * VAT, and its products' Qoyod twins hold the VAT-exclusive figure (net
 * prices are multiples of 20 halalas so 15 % is exact), so the field sync
 * must convert. Money in halalas. */

static int64_t gross(int64_t net)
{
    return net + net * 15 / 100;
}

/* A product on both sides: name, net price and cost (equal everywhere). */
static void both(struct fx *f, int field, int cs, const char *name, int64_t net, int64_t cost)
{
    char sku[32];
    snprintf(sku, sizeof sku, "F%d-C%d", field, cs);
    char *b = xasprintf("{\"product\":{\"sku\":\"%s\",\"name_ar\":\"%s\",\"name_en\":\"%s\","
                        "\"type\":\"Product\",\"product_unit_type_id\":6,\"category_id\":1,"
                        "\"tax_id\":1,\"sale_item\":\"1\",\"selling_price\":\"%lld.%02lld\","
                        "\"sales_account_id\":17,\"purchase_item\":\"1\",\"buying_price\":"
                        "\"%lld.%02lld\",\"expense_account_id\":12}}",
                        sku, name, name, (long long)(net / 100), (long long)(net % 100),
                        (long long)(cost / 100), (long long)(cost % 100));
    json_t *j = qoyod(f, "POST", "/2.0/products", b, 201);
    free(b);
    f->qoyod_id[field][cs] = json_integer_value(json_object_get(json_object_get(j, "product"), "id"));
    json_decref(j);
    struct tt_resp r;
    if (!f->zid) {
        long id = 800000 + field * 10 + cs;
        b = xasprintf("{\"store_id\":4242,\"data\":{\"id\":%ld,\"sku\":\"%s\",\"name\":\"%s\","
                      "\"price\":{\"amount\":%lld.%02lld,\"currency\":\"SAR\"},\"cost_price\":"
                      "\"%lld.%02lld\",\"quantity\":5,\"skus\":[]}}",
                      id, sku, name, (long long)(net / 100), (long long)(net % 100),
                      (long long)(cost / 100), (long long)(cost % 100));
        tt_http("POST", tt_url(f->shop, "/_sim/salla/products"), NULL, b, &r);
        snprintf(f->store_id[field][cs], 64, "%ld", id);
    } else {
        int64_t g = gross(net);
        b = xasprintf("{\"store_id\":251073,\"product\":{\"sku\":\"%s\",\"name\":{\"ar\":\"%s\","
                      "\"en\":\"en\"},\"price\":%lld.%02lld,\"cost\":%lld.%02lld,\"quantity\":5}}",
                      sku, name, (long long)(g / 100), (long long)(g % 100),
                      (long long)(cost / 100), (long long)(cost % 100));
        tt_http("POST", tt_url(f->shop, "/_sim/zid/products"), NULL, b, &r);
        snprintf(f->store_id[field][cs], 64, "%s", json_string_value(json_object_get(r.json, "id")));
    }
    free(b);
    if (r.status != 201) fail_msg("seed: %d %s", r.status, r.body);
    tt_resp_release(&r);
}

/* Reads one side's value of field in the store's form (price with VAT for
 * Zid) as text, as tarheel keeps it. */
static void store_read(struct fx *f, int field, int cs, char *out)
{
    char *path = xasprintf(f->zid ? "/products/%s/" : "/products/%s", f->store_id[field][cs]);
    json_t *p = shop(f, "GET", path, NULL);
    free(path);
    int64_t v = 0;
    if (field == STORE_FIELD_NAME) {
        json_t *nm = json_object_get(p, "name");
        snprintf(out, 64, "%s", f->zid ? jv_get_str(nm, "ar") : json_string_value(nm));
    } else {
        const char *key = field == STORE_FIELD_PRICE ? "price" : f->zid ? "cost" : "cost_price";
        if (jv_get_money(p, key, &v, NULL) != 0) fail_msg("no %s", key);
        snprintf(out, 64, "%lld", (long long)v);
    }
    json_decref(p);
}

static void qoyod_read(struct fx *f, int field, int cs, char *out, char *updated)
{
    char path[64];
    snprintf(path, sizeof path, "/2.0/products/%lld", (long long)f->qoyod_id[field][cs]);
    json_t *j = qoyod(f, "GET", path, NULL, 200);
    json_t *p = json_object_get(j, "product");
    if (updated) snprintf(updated, 64, "%s", jv_get_str(p, "updated_at"));
    int64_t v = 0;
    if (field == STORE_FIELD_NAME) {
        snprintf(out, 64, "%s", jv_get_str(p, "name_ar"));
    } else {
        if (jv_get_money(p, field == STORE_FIELD_PRICE ? "selling_price" : "buying_price", &v,
                         NULL) != 0)
            fail_msg("no price");
        int incl = 0;
        if (jv_get_bool(p, "is_selling_price_inclusive", &incl, NULL) != 0) incl = 0;
        if (field == STORE_FIELD_PRICE && f->zid && !incl) v = gross(v);
        if (field == STORE_FIELD_PRICE && !f->zid && incl) fail_msg("Salla price made inclusive");
        snprintf(out, 64, "%lld", (long long)v);
    }
    json_decref(j);
}

/* Changes one side of (field, case) to value v (names: text; money:
 * halalas in the store's form). */
static void change_store(struct fx *f, int field, int cs, const char *name, int64_t v)
{
    char *b;
    if (field == STORE_FIELD_NAME)
        b = f->zid ? xasprintf("{\"name\":{\"ar\":\"%s\",\"en\":\"en\"}}", name)
                   : xasprintf("{\"name\":\"%s\"}", name);
    else
        b = xasprintf("{\"%s\":%lld.%02lld}",
                      field == STORE_FIELD_PRICE ? "price" : f->zid ? "cost" : "cost_price",
                      (long long)(v / 100), (long long)(v % 100));
    char *path = xasprintf(f->zid ? "/products/%s/" : "/products/%s", f->store_id[field][cs]);
    json_decref(shop(f, f->zid ? "PATCH" : "PUT", path, b));
    free(path);
    free(b);
}

static void change_qoyod(struct fx *f, int field, int cs, const char *name, int64_t v)
{
    char *b;
    if (field == STORE_FIELD_NAME) {
        b = xasprintf("{\"product\":{\"name_ar\":\"%s\"}}", name);
    } else {
        /* Zid prices are given with VAT: Qoyod's twin holds them without. */
        int64_t q = field == STORE_FIELD_PRICE && f->zid ? v * 100 / 115 : v;
        b = xasprintf("{\"product\":{\"%s\":\"%lld.%02lld\"}}",
                      field == STORE_FIELD_PRICE ? "selling_price" : "buying_price",
                      (long long)(q / 100), (long long)(q % 100));
    }
    char path[64];
    snprintf(path, sizeof path, "/2.0/products/%lld", (long long)f->qoyod_id[field][cs]);
    json_decref(qoyod(f, "PUT", path, b, 200));
    free(b);
}

static struct fields_stats pass(struct fx *f)
{
    struct fields_config cfg = {.force = 1, .platform_rpm = -1, .qoyod_rpm = -1};
    struct fields_stats st;
    struct th_err err;
    if (fields_round(f->store, f->hc, &cfg, &st, &err) != 0) fail_msg("fields: %s", err.msg);
    assert_int_equal(st.stores, 1);
    assert_int_equal(st.failed, 0);
    return st;
}

struct clist {
    struct store_conflict v[32];
    size_t n;
};

static void clist_add(void *arg, const struct store_conflict *c)
{
    struct clist *l = arg;
    if (l->n < 32) l->v[l->n++] = *c;
}

/* Base values: net prices multiples of 20 halalas. */
#define BASE_NET 10000
#define BASE_COST 4000
/* The values each case moves to (store form), per side. */
static void case_values(int field, int cs, char sname[64], int64_t *sv, char qname[64],
                        int64_t *qv)
{
    (void)field;
    snprintf(sname, 64, "اسم المتجر %d", cs);
    snprintf(qname, 64, "اسم قيود %d", cs);
    *sv = 12000 + cs * 100; /* a store change */
    *qv = 13800 + cs * 230; /* a Qoyod change; both are exact at 15 % for Zid */
    if (cs == BOTH_SAME) {
        snprintf(qname, 64, "%s", sname);
        *qv = *sv;
    }
}

static void test_every_combination(void **state)
{
    struct fx *f = *state;
    char base_name[64];
    for (int k = 0; k < STORE_NFIELDS; k++)
        for (int cs = 0; cs < NCASES; cs++) {
            snprintf(base_name, sizeof base_name, "منتج %d-%d", k, cs);
            both(f, k, cs, base_name, BASE_NET, BASE_COST);
        }
    /* First pass: both sides agree everywhere, nothing to write. */
    struct fields_stats st = pass(f);
    assert_int_equal(st.to_store, 0);
    assert_int_equal(st.to_qoyod, 0);
    assert_int_equal(st.conflicts, 0);
    assert_true(st.compared >= STORE_NFIELDS * NCASES);
    assert_true(st.no_sku >= 1); /* the sample catalogue's product without SKU */

    /* The edits, through each side's own API. Zid's prices are in whole
     * 20-halala steps so 15 % VAT stays exact. */
    sleep(1); /* the cursors work in whole seconds */
    for (int k = 0; k < STORE_NFIELDS; k++)
        for (int cs = 0; cs < NCASES; cs++) {
            char sname[64], qname[64];
            int64_t sv, qv;
            case_values(k, cs, sname, &sv, qname, &qv);
            if (f->zid) {
                sv = gross(BASE_NET + 200 * (cs + 1));
                qv = cs == BOTH_SAME ? sv : gross(BASE_NET + 2000 + 200 * (cs + 1));
                if (k == STORE_FIELD_COST) {
                    sv = 5000 + cs;
                    qv = cs == BOTH_SAME ? sv : 6000 + cs;
                }
            }
            if (cs == STORE_ONLY || cs == BOTH_SAME || cs == BOTH_DIFF)
                change_store(f, k, cs, sname, sv);
            if (cs == QOYOD_ONLY || cs == BOTH_SAME || cs == BOTH_DIFF)
                change_qoyod(f, k, cs, qname, qv);
        }
    st = pass(f);
    assert_int_equal(st.conflicts, STORE_NFIELDS); /* one both-diff per field */
    assert_int_equal(st.same, STORE_NFIELDS);

    /* Each side ends with the right value; both sides agree. */
    size_t want_to_store = 0, want_to_qoyod = 0;
    for (int k = 0; k < STORE_NFIELDS; k++)
        for (int cs = 0; cs < NCASES; cs++) {
            char s[64], q[64], sname[64], qname[64], want[64];
            int64_t sv, qv;
            case_values(k, cs, sname, &sv, qname, &qv);
            if (f->zid) {
                sv = gross(BASE_NET + 200 * (cs + 1));
                qv = cs == BOTH_SAME ? sv : gross(BASE_NET + 2000 + 200 * (cs + 1));
                if (k == STORE_FIELD_COST) {
                    sv = 5000 + cs;
                    qv = cs == BOTH_SAME ? sv : 6000 + cs;
                }
            }
            int64_t base = k == STORE_FIELD_PRICE ? (f->zid ? gross(BASE_NET) : BASE_NET)
                                                  : BASE_COST;
            const char *wname = NULL;
            int64_t wv = 0;
            switch (cs) {
            case UNCHANGED:
                snprintf(base_name, sizeof base_name, "منتج %d-%d", k, cs);
                wname = base_name;
                wv = base;
                break;
            case STORE_ONLY:
                wname = sname, wv = sv;
                want_to_qoyod++;
                break;
            case QOYOD_ONLY:
                wname = qname, wv = qv;
                want_to_store++;
                break;
            case BOTH_SAME:
                wname = sname, wv = sv;
                break;
            case BOTH_DIFF:
                if (f->src == STORE_SRC_STORE) {
                    wname = sname, wv = sv;
                    want_to_qoyod++;
                } else {
                    wname = qname, wv = qv;
                    want_to_store++;
                }
                break;
            }
            if (k == STORE_FIELD_NAME)
                snprintf(want, sizeof want, "%s", wname);
            else
                snprintf(want, sizeof want, "%lld", (long long)wv);
            store_read(f, k, cs, s);
            qoyod_read(f, k, cs, q, NULL);
            if (strcmp(s, want) != 0 || strcmp(q, want) != 0)
                fail_msg("%s %s (source %s): store \"%s\", qoyod \"%s\", want \"%s\"",
                         store_field_name(k), case_names[cs], store_src_name(f->src), s, q, want);
        }
    assert_int_equal(st.to_store, want_to_store);
    assert_int_equal(st.to_qoyod, want_to_qoyod);

    /* Conflicts: exactly the both-diff SKUs, with both values, the last
     * agreed ones, and the source of truth as the winner. */
    struct clist cl = {0};
    struct th_err err;
    assert_int_equal(store_conflict_list(f->store, f->conn.id, 1, 0, clist_add, &cl, &err), 0);
    assert_int_equal(cl.n, STORE_NFIELDS);
    for (size_t i = 0; i < cl.n; i++) {
        const struct store_conflict *c = &cl.v[i];
        char sku[32];
        snprintf(sku, sizeof sku, "F%d-C%d", c->field, BOTH_DIFF);
        assert_string_equal(c->sku, sku);
        assert_int_equal(c->winner, f->src);
        assert_int_equal(c->resolved_ms, 0);
        assert_string_not_equal(c->store_value, c->qoyod_value);
        assert_string_equal(c->last_store, c->last_qoyod);
        if (c->field == STORE_FIELD_NAME) {
            assert_string_equal(c->store_value, "اسم المتجر 4");
            assert_string_equal(c->qoyod_value, "اسم قيود 4");
        }
    }

    /* A second pass writes nothing anywhere (no ping-pong): tarheel's counts
     * and the emulators' own updated_at agree. */
    char before[STORE_NFIELDS][NCASES][64];
    for (int k = 0; k < STORE_NFIELDS; k++)
        for (int cs = 0; cs < NCASES; cs++) {
            char q[64];
            qoyod_read(f, k, cs, q, before[k][cs]);
        }
    sleep(1);
    st = pass(f);
    assert_int_equal(st.to_store, 0);
    assert_int_equal(st.to_qoyod, 0);
    assert_int_equal(st.conflicts, 0);
    for (int k = 0; k < STORE_NFIELDS; k++)
        for (int cs = 0; cs < NCASES; cs++) {
            char q[64], up[64];
            qoyod_read(f, k, cs, q, up);
            assert_string_equal(up, before[k][cs]);
        }
    cl.n = 0;
    assert_int_equal(store_conflict_list(f->store, f->conn.id, 0, 0, clist_add, &cl, &err), 0);
    assert_int_equal(cl.n, STORE_NFIELDS);
}

/* First sight of a SKU whose sides differ: the source of truth's value is
 * written to the other side, no conflict is recorded; then --keep on a
 * conflict writes the kept value back. */
static void test_first_sight_and_keep(void **state)
{
    struct fx *f = *state;
    both(f, STORE_FIELD_COST, 0, "كوب", BASE_NET, BASE_COST);
    change_qoyod(f, STORE_FIELD_COST, 0, NULL, 7777);
    struct fields_stats st = pass(f);
    assert_int_equal(st.conflicts, 0);
    char s[64], q[64];
    store_read(f, STORE_FIELD_COST, 0, s);
    qoyod_read(f, STORE_FIELD_COST, 0, q, NULL);
    assert_string_equal(s, f->src == STORE_SRC_STORE ? "4000" : "7777");
    assert_string_equal(q, s);

    /* A conflict on cost, then kept the loser's way. */
    sleep(1);
    change_store(f, STORE_FIELD_COST, 0, NULL, 1111);
    change_qoyod(f, STORE_FIELD_COST, 0, NULL, 2222);
    st = pass(f);
    assert_int_equal(st.conflicts, 1);
    struct clist cl = {0};
    struct th_err err;
    assert_int_equal(store_conflict_list(f->store, 0, 1, 0, clist_add, &cl, &err), 0);
    assert_int_equal(cl.n, 1);
    int loser = f->src == STORE_SRC_STORE ? STORE_SRC_QOYOD : STORE_SRC_STORE;
    if (fields_conflict_resolve(f->store, f->hc, cl.v[0].id, loser, NULL, &err) != 0)
        fail_msg("resolve: %s", err.msg);
    store_read(f, STORE_FIELD_COST, 0, s);
    qoyod_read(f, STORE_FIELD_COST, 0, q, NULL);
    assert_string_equal(s, loser == STORE_SRC_STORE ? "1111" : "2222");
    assert_string_equal(q, s);
    assert_int_equal(fields_conflict_resolve(f->store, f->hc, cl.v[0].id, 0, NULL, &err),
                     TH_ECONFLICT);
    struct store_conflict c;
    assert_int_equal(store_conflict_get(f->store, cl.v[0].id, &c, &err), 0);
    assert_string_equal(c.resolution, loser == STORE_SRC_STORE ? "kept store" : "kept qoyod");
    /* And the next pass leaves it so. */
    sleep(1);
    st = pass(f);
    assert_int_equal(st.to_store + st.to_qoyod + st.conflicts, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_combination, setup_salla_store, teardown),
        cmocka_unit_test_setup_teardown(test_every_combination, setup_salla_qoyod, teardown),
        cmocka_unit_test_setup_teardown(test_every_combination, setup_zid_store, teardown),
        cmocka_unit_test_setup_teardown(test_every_combination, setup_zid_qoyod, teardown),
        cmocka_unit_test_setup_teardown(test_first_sight_and_keep, setup_salla_store, teardown),
        cmocka_unit_test_setup_teardown(test_first_sight_and_keep, setup_zid_qoyod, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
