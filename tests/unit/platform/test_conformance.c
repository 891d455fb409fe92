/*
 * The adapter conformance suite (issue 4, STYLE C10): the same checks, run
 * against every store-platform adapter registered in platform.c, each
 * against its own emulator. What a new adapter must pass, and how to add its
 * fixture, is in docs/CONFORMANCE.md.
 *
 * Nothing here is written per platform except the fixture (the table of
 * `struct fixture` at the bottom): how to start the platform's emulator,
 * install a store and get its tokens, subscribe a recording receiver to its
 * order webhooks, generate orders, change a status, read what the platform
 * itself says an order costs, and which canonical status each platform
 * status must become. Deliveries are never written by hand: the emulator
 * sends them to a tt_receiver, as the platform would send them to tarheel,
 * and the checks feed the recorded bodies and headers to the adapter.
 *
 * Each test gets a fresh world (emulator, receiver, installed store and
 * NORDERS generated orders whose creation webhooks have arrived), so no test
 * depends on another's leftovers; cmocka's group state carries the fixture.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "th_test.h"
#include "worker/transfer.h"

/* Orders every world starts with: more than 20, and enough that the
 * emulators' generators (seed 42) produce every case the mapping must
 * handle: a coupon, a COD fee, free shipping, an item without SKU (Salla
 * puts one in every 7th order, Zid in every 9th). */
#define NORDERS 28
/* Orders added for the paging check, so both adapters' lists take more than
 * one page (Salla pages by 60, Zid by 100). */
#define NPAGED 110
/* The number every phone form of the fixtures writes. */
#define PHONE_E164 "+966501806978"
/* How long a webhook may take to arrive from an in-process emulator. */
#define WAIT_MS 10000
/* Pages orders_page may need before the check gives up (a loop guard). */
#define MAX_PAGES 20

struct world;

/* An install's tokens. */
struct tokens {
    char access[1024];
    char manager[1024]; /* "" when the platform has one token */
    char refresh[1024];
};

/* What the platform itself says about an order (from the emulator's own
 * inspection endpoint, not through the adapter). Money in halalas. */
#define TRUTH_MAX_LINES 8
struct truth {
    int64_t id;
    int64_t total, shipping, cod_fee, tax;
    int64_t discount; /* all discounts, order and item level, tax-exclusive */
    size_t nlines;
    char sku[TRUTH_MAX_LINES][128]; /* "" for an item without SKU */
    int64_t qty[TRUTH_MAX_LINES];
    char phone[64]; /* the customer's number as the platform writes it */
};

/* One platform status and what it must become. `triggers` lists the
 * transfer triggers (settings: new, ready, in_transit, completed) an order
 * in this status satisfies, i.e. the documentation issue 4 asks for; the
 * test checks it against transfer_triggered(). settable = 0: the emulator
 * cannot put an order in this status; only the mapping of a real delivery
 * with the status edited in is checked. */
struct status_case {
    const char *code;
    enum model_status want;
    const char *triggers;
    int settable;
};

struct fixture {
    enum model_platform platform;
    const struct sim_ops *sim;
    const char *const *sim_opts; /* emulator options: no rate limit, webhook secret */
    const char *api_path;        /* API base under the emulator: "/admin/v2" */
    const char *ctl;             /* control API prefix: "/_sim/salla" */
    const char *token_path;      /* OAuth token endpoint: "/oauth2/token" */
    int64_t store_id;
    /* The install answer's token members (manager NULL: one token). */
    const char *tok_access, *tok_manager, *tok_refresh;
    /* Webhooks: the headers the credential travels in (recorded by the
     * receiver), the credential the store is configured with, and a wrong
     * one. signs_body: the credential covers the body (a signature), so a
     * tampered body fails verify; 0 when the platform signs nothing. */
    const char *const *hdr_names;
    struct platform_auth auth;
    const char *wrong_secret;
    int signs_body;
    /* Dotted paths in a delivery body (read by the test, not the adapter). */
    const char *store_path, *created_id_path, *status_id_path, *status_code_path;
    const char *created_event;  /* parse_event's name for a creation delivery */
    const char *status_key;     /* control API body key for a status change */
    const char *initial_status; /* status of a freshly generated order */
    const char *changed_status; /* a status change for the dedupe check */
    /* Subscribes the store's order webhooks to <receiver>/created and
     * <receiver>/status, with the store's credential. */
    void (*subscribe)(struct world *w);
    /* Reads one order of the emulator's inspection list. */
    void (*truth)(const json_t *emu_order, struct truth *out);
    /* The forms the platform is documented to write a customer's phone in,
     * as JSON objects merged into an order's "customer"; each must map to
     * PHONE_E164. */
    const char *const *phone_forms;
    /* Every status code the platform lists (new array). */
    json_t *(*list_statuses)(struct world *w);
    const struct status_case *statuses;
    size_t nstatuses;
    /* Dotted paths, in a creation delivery, of text fields the model keeps
     * (NULL-terminated), and of the order's item array: for the limits. */
    const char *const *text_paths;
    const char *items_path;
};

struct world {
    const struct fixture *fx;
    const struct platform_ops *ops;
    struct sim *sim;
    struct tt_receiver *rcv;
    struct httpc *hc;
    char api[256];
    struct tokens tok;
    struct platform_conn conn;
    time_t t0; /* before the first order was generated */
    int64_t ids[NORDERS];
};

/* ---------------------------------------------------------------------- */
/* Small helpers                                                            */

static const char *rcname(int rc)
{
    return rc ? th_err_name(rc) : "0";
}

/* Fails with both codes and the adapter's message unless rc == want. */
#define EXPECT_RC(what, rc, want, err)                                                             \
    do {                                                                                           \
        int rc_ = (rc), want_ = (want);                                                            \
        if (rc_ != want_)                                                                          \
            fail_msg("%s: want %s, got %s (%s)", (what), rcname(want_), rcname(rc_), (err).msg);   \
    } while (0)

#define EXPECT_I64(what, got, want)                                                                \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_) fail_msg("%s: want %lld, got %lld", (what), w_, g_);                         \
    } while (0)

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

/* A control or API call that must answer `status`; returns the parsed body
 * (new reference, may be NULL). */
static json_t *call(struct world *w, const char *method, const char *url,
                    const char *const *headers, const char *body, long status)
{
    struct tt_resp r;
    tt_http(method, url, headers, body, &r);
    if (r.status != status)
        fail_msg("%s %s answered %ld, want %ld: %s", method, url, r.status, status, r.body);
    json_t *j = json_incref(r.json);
    tt_resp_release(&r);
    return j;
}

static json_t *ctl(struct world *w, const char *method, const char *sub, const char *body,
                   long status)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s%s", sim_base_url(w->sim), w->fx->ctl, sub);
    return call(w, method, url, NULL, body, status);
}

/* The order id a delivery body is about, read at the fixture's path. */
static int64_t body_order_id(const struct tt_received *x, const char *path)
{
    json_t *j = json_loadb(x->body, x->body_len, 0, NULL);
    int64_t id = 0;
    if (!j || jv_to_id(jv_path(j, path), &id, NULL) != 0) id = 0;
    json_decref(j);
    return id;
}

/* Waits for the n-th (0-based) delivery on receiver path `path` about
 * order_id and copies it into out. */
static void wait_delivery(struct world *w, const char *path, const char *id_path, int64_t order_id,
                          size_t nth, struct tt_received *out)
{
    size_t seen = 0, i = 0;
    for (long waited = 0; waited <= WAIT_MS; waited += 10) {
        for (; i < tt_receiver_count(w->rcv); i++) {
            struct tt_received x;
            assert_int_equal(tt_receiver_get(w->rcv, i, &x), 0);
            if (!strcmp(x.path, path) && body_order_id(&x, id_path) == order_id && seen++ == nth) {
                *out = x;
                return;
            }
            tt_received_release(&x);
        }
        tt_sleep_ms(10);
    }
    fail_msg("%s: delivery %zu to %s about order %lld did not arrive in %d ms (%zu did)",
             w->ops->name, nth + 1, path, (long long)order_id, WAIT_MS, seen);
}

static void created_delivery(struct world *w, int64_t order_id, struct tt_received *out)
{
    wait_delivery(w, "/created", w->fx->created_id_path, order_id, 0, out);
}

/* Header lookup over a recorded delivery, for verify. */
struct hview {
    const char *const *names;
    char *const *values;
};

static const char *hget(void *arg, const char *name)
{
    const struct hview *h = arg;
    for (size_t i = 0; h->names && i < 8 && h->names[i]; i++)
        if (!strcasecmp(h->names[i], name)) return h->values ? h->values[i] : NULL;
    return NULL;
}

/* The delivery body with the member at a dotted path replaced by value
 * (taken) or removed (value NULL). Returns new text. */
static char *edit_body(const char *body, size_t len, const char *path, json_t *value)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    if (!root) fail_msg("a recorded delivery is not JSON");
    char parent[128];
    const char *key = strrchr(path, '.');
    json_t *obj = root;
    if (key) {
        snprintf(parent, sizeof parent, "%.*s", (int)(key - path), path);
        obj = jv_path(root, parent);
        key++;
    } else {
        key = path;
    }
    if (!json_is_object(obj)) fail_msg("the delivery has no object at %s", path);
    if (value)
        json_object_set_new(obj, key, value);
    else
        json_object_del(obj, key);
    char *out = jv_dump(root);
    json_decref(root);
    return out;
}

/* Generates count orders in the world's store; returns their ids. */
static json_t *generate(struct world *w, int count)
{
    char body[128];
    snprintf(body, sizeof body, "{\"store_id\":%lld,\"count\":%d}", (long long)w->fx->store_id,
             count);
    json_t *ans = ctl(w, "POST", "/generate", body, 201);
    json_t *ids = json_incref(json_object_get(ans, "orders"));
    json_decref(ans);
    if (json_array_size(ids) != (size_t)count)
        fail_msg("generate %d answered %zu ids", count, json_array_size(ids));
    return ids;
}

static void set_status(struct world *w, int64_t order_id, const char *code)
{
    char sub[96], body[128];
    snprintf(sub, sizeof sub, "/orders/%lld/status", (long long)order_id);
    snprintf(body, sizeof body, "{\"%s\":\"%s\"}", w->fx->status_key, code);
    json_decref(ctl(w, "POST", sub, body, 200));
}

static void install(struct world *w, int64_t store_id, struct tokens *t)
{
    char body[64];
    snprintf(body, sizeof body, "{\"store_id\":%lld}", (long long)store_id);
    json_t *ans = ctl(w, "POST", "/install", body, 200);
    const struct fixture *fx = w->fx;
    const char *a = jv_get_str(ans, fx->tok_access), *r = jv_get_str(ans, fx->tok_refresh);
    const char *m = fx->tok_manager ? jv_get_str(ans, fx->tok_manager) : "";
    if (!a || !r || !m) fail_msg("%s install answered no tokens", w->ops->name);
    snprintf(t->access, sizeof t->access, "%s", a);
    snprintf(t->manager, sizeof t->manager, "%s", m);
    snprintf(t->refresh, sizeof t->refresh, "%s", r);
    json_decref(ans);
}

static struct platform_conn conn_of(const struct world *w, const struct tokens *t)
{
    struct platform_conn c = {.store_id = w->fx->store_id,
                              .api_base = w->api,
                              .access_token = t->access,
                              .manager_token = t->manager[0] ? t->manager : NULL};
    return c;
}

/* The emulator's own view of every order of the world, by id. */
static void load_truth(struct world *w, const int64_t *ids, size_t n, struct truth *out)
{
    json_t *all = ctl(w, "GET", "/orders", NULL, 200);
    json_t *list = json_object_get(all, "orders"), *o;
    for (size_t k = 0; k < n; k++) {
        size_t i;
        int found = 0;
        json_array_foreach(list, i, o)
        {
            int64_t id = 0;
            if (jv_get_id(o, "id", &id, NULL) == 0 && id == ids[k]) {
                memset(&out[k], 0, sizeof out[k]);
                w->fx->truth(o, &out[k]);
                out[k].id = id;
                found = 1;
                break;
            }
        }
        if (!found) fail_msg("the emulator does not list order %lld", (long long)ids[k]);
    }
    json_decref(all);
}

/* Every order of the store through orders_page, for a query; counts how
 * often each of ids[] was listed in seen[] and returns the number of rows
 * that are not in ids[]. refs (may be NULL) receives the ref of each id. */
static size_t list_all(struct world *w, const struct platform_conn *c, int64_t from, int64_t to,
                       const int64_t *ids, size_t n, int *seen, struct platform_order_ref *refs,
                       int *pages)
{
    size_t others = 0;
    *pages = 0;
    for (int page = 1;; page++) {
        if (page > MAX_PAGES)
            fail_msg("%s: orders_page still says more after %d pages", w->ops->name, MAX_PAGES);
        struct platform_query q = {
            .from = from, .to = to, .by_updated = w->ops->lists_by_updated, .page = page};
        struct platform_page pg = {0};
        struct th_err err = {0};
        EXPECT_RC("orders_page", w->ops->orders_page(w->hc, c, &q, &pg, &err), 0, err);
        (*pages)++;
        for (size_t i = 0; i < pg.n; i++) {
            size_t k = 0;
            while (k < n && ids[k] != pg.orders[i].id)
                k++;
            if (k == n) {
                others++;
                continue;
            }
            seen[k]++;
            if (refs) refs[k] = pg.orders[i];
        }
        int more = pg.more;
        platform_page_release(&pg);
        if (!more) break;
    }
    return others;
}

/* ---------------------------------------------------------------------- */
/* Fixture: set-up and tear-down                                            */

static const struct fixture *current; /* the fixture main() is running */

static int group_setup(void **state)
{
    const struct platform_ops *ops = platform_by_id(current->platform);
    if (!ops) fail_msg("platform %d has a fixture but no adapter", (int)current->platform);
    *state = (void *)current;
    return 0;
}

static int group_teardown(void **state)
{
    return 0;
}

/* A fresh world: emulator, receiver, installed store subscribed to its
 * order webhooks, NORDERS orders generated and their creation webhooks in. */
static int world_setup(void **state)
{
    const struct fixture *fx = *state;
    struct world *w = xcalloc(1, sizeof *w);
    w->fx = fx;
    w->ops = platform_by_id(fx->platform);
    w->sim = tt_sim_start(fx->sim, fx->sim_opts);
    w->rcv = tt_receiver_start(200, 0, fx->hdr_names);
    w->hc = httpc_new(NULL);
    snprintf(w->api, sizeof w->api, "%s%s", sim_base_url(w->sim), fx->api_path);
    install(w, fx->store_id, &w->tok);
    w->conn = conn_of(w, &w->tok);
    fx->subscribe(w);
    w->t0 = time(NULL);
    json_t *ids = generate(w, NORDERS);
    for (size_t i = 0; i < NORDERS; i++)
        if (jv_to_id(json_array_get(ids, i), &w->ids[i], NULL) != 0) fail_msg("generate: bad id");
    json_decref(ids);
    if (tt_receiver_wait(w->rcv, NORDERS, WAIT_MS) < NORDERS)
        fail_msg("%s: %zu of %d creation webhooks arrived", w->ops->name, tt_receiver_count(w->rcv),
                 NORDERS);
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *w = *state;
    httpc_free(w->hc);
    tt_sim_stop(w->sim);
    tt_receiver_stop(w->rcv);
    free(w);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* (0) The adapter is registered and fills the slots the hub calls          */

static void test_registered(void **state)
{
    struct world *w = *state;
    const struct platform_ops *p = w->ops;
    assert_int_equal(p->platform, w->fx->platform);
    assert_non_null(p->name);
    assert_ptr_equal(platform_by_name(p->name), p);
    /* required by platform.h */
    assert_non_null(p->peek_store);
    assert_non_null(p->verify);
    assert_non_null(p->parse_event);
    assert_non_null(p->order_map);
    assert_non_null(p->order_fetch);
    /* optional in platform.h, required here: the worker refreshes tokens
     * and the catch-up poll lists orders for every platform */
    assert_non_null(p->token_refresh);
    assert_non_null(p->orders_page);
}

/* ---------------------------------------------------------------------- */
/* (1) peek_store                                                           */

static void test_peek_store(void **state)
{
    struct world *w = *state;
    const struct fixture *fx = w->fx;
    const struct platform_ops *p = w->ops;
    struct th_err err = {0};
    for (size_t i = 0; i < NORDERS; i++) {
        struct tt_received x;
        created_delivery(w, w->ids[i], &x);
        int64_t sid = 0;
        EXPECT_RC("peek_store on a real delivery", p->peek_store(x.body, x.body_len, &sid, &err), 0,
                  err);
        EXPECT_I64("peek_store's store id", sid, fx->store_id);
        tt_received_release(&x);
    }

    struct tt_received x;
    created_delivery(w, w->ids[0], &x);
    /* Every strict prefix of a real delivery is malformed JSON: TH_EPARSE
     * from both entry points, never a crash. Each prefix gets a buffer of
     * exactly its length, so a read past it is caught by ASan. */
    for (size_t n = 0; n < x.body_len; n++) {
        char *cut = n ? xmalloc(n) : NULL;
        if (n) memcpy(cut, x.body, n);
        const char *b = n ? cut : "";
        int64_t sid = 0;
        struct platform_event ev;
        int rc = p->peek_store(b, n, &sid, &err);
        if (rc != TH_EPARSE)
            fail_msg("peek_store on the first %zu bytes: want TH_EPARSE, got %s", n, rcname(rc));
        rc = p->parse_event(b, n, &ev, &err);
        if (rc != TH_EPARSE)
            fail_msg("parse_event on the first %zu bytes: want TH_EPARSE, got %s", n, rcname(rc));
        free(cut);
    }

    /* Malformed or wrong-shaped bodies, some made from the real delivery. */
    char *no_store = edit_body(x.body, x.body_len, fx->store_path, NULL);
    char *bad_store = edit_body(x.body, x.body_len, fx->store_path, json_string("abc"));
    char *no_order = edit_body(x.body, x.body_len, fx->created_id_path, NULL);
    char deep[161];
    for (int i = 0; i < 80; i++)
        deep[i] = '[', deep[80 + i] = ']';
    deep[160] = '\0';
    const struct {
        const char *name, *body;
        int peek, parse;
    } cases[] = {
        {"not JSON", "order.created", TH_EPARSE, TH_EPARSE},
        {"unbalanced", "{\"a\":1}}", TH_EPARSE, TH_EPARSE},
        {"invalid UTF-8", "{\"a\":\"\xff\xfe\"}", TH_EPARSE, TH_EPARSE},
        {"empty object", "{}", TH_ENOTFOUND, TH_EPARSE},
        {"array", "[1,2]", TH_ENOTFOUND, TH_EPARSE},
        {"deeply nested", deep, TH_EDEPTH, TH_EDEPTH},
        {"store id removed", no_store, TH_ENOTFOUND, TH_EPARSE},
        {"store id not a number", bad_store, TH_EPARSE, TH_EPARSE},
        {"order id removed", no_order, 0, TH_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t sid = 0;
        struct platform_event ev;
        size_t len = strlen(cases[i].body);
        memset(&err, 0, sizeof err);
        int rc = p->peek_store(cases[i].body, len, &sid, &err);
        if (rc != cases[i].peek)
            fail_msg("peek_store, %s: want %s, got %s (%s)", cases[i].name, rcname(cases[i].peek),
                     rcname(rc), err.msg);
        if (rc && !err.msg[0]) fail_msg("peek_store, %s: no message", cases[i].name);
        memset(&err, 0, sizeof err);
        rc = p->parse_event(cases[i].body, len, &ev, &err);
        if (rc != cases[i].parse)
            fail_msg("parse_event, %s: want %s, got %s (%s)", cases[i].name, rcname(cases[i].parse),
                     rcname(rc), err.msg);
        if (!err.msg[0]) fail_msg("parse_event, %s: no message", cases[i].name);
    }
    free(no_store);
    free(bad_store);
    free(no_order);
    tt_received_release(&x);
}

/* ---------------------------------------------------------------------- */
/* (2) verify                                                               */

static int verify_with(struct world *w, const struct platform_auth *auth,
                       const struct tt_received *x, const char *body, size_t len,
                       struct th_err *err)
{
    struct hview h = {w->fx->hdr_names, x->headers};
    memset(err, 0, sizeof *err);
    return w->ops->verify(auth, hget, &h, body, len, err);
}

static void test_verify(void **state)
{
    struct world *w = *state;
    const struct fixture *fx = w->fx;
    struct th_err err;
    struct platform_auth wrong = {fx->auth.strategy, fx->wrong_secret};
    struct platform_auth none = {fx->auth.strategy, ""};
    for (size_t i = 0; i < NORDERS; i++) {
        struct tt_received x;
        created_delivery(w, w->ids[i], &x);
        EXPECT_RC("verify a real delivery", verify_with(w, &fx->auth, &x, x.body, x.body_len, &err),
                  0, err);
        EXPECT_RC("verify with a wrong secret",
                  verify_with(w, &wrong, &x, x.body, x.body_len, &err), TH_EAUTH, err);
        EXPECT_RC("verify with no secret configured",
                  verify_with(w, &none, &x, x.body, x.body_len, &err), TH_EAUTH, err);
        tt_received_release(&x);
    }

    struct tt_received x;
    created_delivery(w, w->ids[0], &x);
    /* Without its headers. */
    struct tt_received bare = {.body = x.body, .body_len = x.body_len};
    EXPECT_RC("verify without credential headers",
              verify_with(w, &fx->auth, &bare, x.body, x.body_len, &err), TH_EAUTH, err);
    assert_true(err.msg[0] != '\0');
    /* Tampered bodies with the real credential: redirected to another store,
     * or one byte more. A platform that signs its bodies is refused; one that
     * signs nothing (Zid) cannot be told apart here, which is why its URL
     * carries a per-store token and every order is fetched before it is
     * invoiced. */
    int want = fx->signs_body ? TH_EAUTH : 0;
    char *moved = edit_body(x.body, x.body_len, fx->store_path, json_integer(fx->store_id + 1));
    EXPECT_RC("verify a body moved to another store",
              verify_with(w, &fx->auth, &x, moved, strlen(moved), &err), want, err);
    char *longer = xasprintf("%.*s ", (int)x.body_len, x.body);
    EXPECT_RC("verify a body one byte longer",
              verify_with(w, &fx->auth, &x, longer, strlen(longer), &err), want, err);
    free(moved);
    free(longer);
    /* A delivery of a second order, with the first one's credential. */
    struct tt_received y;
    created_delivery(w, w->ids[1], &y);
    EXPECT_RC("verify another delivery's body",
              verify_with(w, &fx->auth, &x, y.body, y.body_len, &err), want, err);
    tt_received_release(&y);
    tt_received_release(&x);

    /* What the platform sends with a corrupted credential (the emulator's
     * bad_signature fault) is refused. */
    tt_faults(w->sim, "{\"match\":\"webhook order.*\",\"mode\":\"bad_signature\",\"count\":1}");
    json_t *ids = generate(w, 1);
    int64_t id = 0;
    assert_int_equal(jv_to_id(json_array_get(ids, 0), &id, NULL), 0);
    json_decref(ids);
    created_delivery(w, id, &x);
    EXPECT_RC("verify a delivery with a corrupted credential",
              verify_with(w, &fx->auth, &x, x.body, x.body_len, &err), TH_EAUTH, err);
    tt_received_release(&x);
}

/* ---------------------------------------------------------------------- */
/* (3) parse_event and dedupe keys                                          */

static void parse_ok(struct world *w, const struct tt_received *x, int64_t order_id,
                     struct platform_event *ev)
{
    struct th_err err = {0};
    EXPECT_RC("parse_event on a real delivery", w->ops->parse_event(x->body, x->body_len, ev, &err),
              0, err);
    EXPECT_I64("parse_event's kind", ev->kind, PLATFORM_EV_ORDER);
    EXPECT_I64("parse_event's order id", ev->order_id, order_id);
    EXPECT_I64("parse_event's store id", ev->store_id, w->fx->store_id);
    if (strlen(ev->dedupe_key) < 16)
        fail_msg("order %lld: dedupe key '%s' is too short to be stable and distinct",
                 (long long)order_id, ev->dedupe_key);
}

static void test_parse_event(void **state)
{
    struct world *w = *state;
    const struct fixture *fx = w->fx;
    static struct platform_event evs[NORDERS];
    for (size_t i = 0; i < NORDERS; i++) {
        struct tt_received x;
        created_delivery(w, w->ids[i], &x);
        parse_ok(w, &x, w->ids[i], &evs[i]);
        assert_string_equal(evs[i].name, fx->created_event);
        /* The same bytes again are the same event. */
        struct platform_event again;
        parse_ok(w, &x, w->ids[i], &again);
        assert_string_equal(again.dedupe_key, evs[i].dedupe_key);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(evs[k].dedupe_key, evs[i].dedupe_key))
                fail_msg("orders %lld and %lld share the dedupe key %s", (long long)w->ids[k],
                         (long long)w->ids[i], evs[i].dedupe_key);
        tt_received_release(&x);
    }

    /* The platform delivering the same event twice (the duplicate fault):
     * one event. */
    tt_faults(w->sim, "{\"match\":\"webhook order.*\",\"mode\":\"duplicate\",\"count\":1}");
    json_t *ids = generate(w, 1);
    int64_t id = 0;
    assert_int_equal(jv_to_id(json_array_get(ids, 0), &id, NULL), 0);
    json_decref(ids);
    struct tt_received a, b;
    wait_delivery(w, "/created", fx->created_id_path, id, 0, &a);
    wait_delivery(w, "/created", fx->created_id_path, id, 1, &b);
    struct platform_event ea, eb;
    parse_ok(w, &a, id, &ea);
    parse_ok(w, &b, id, &eb);
    assert_string_equal(ea.dedupe_key, eb.dedupe_key);
    tt_received_release(&a);
    tt_received_release(&b);

    /* A status change is a new event about the same order. */
    set_status(w, w->ids[0], fx->changed_status);
    struct tt_received s;
    wait_delivery(w, "/status", fx->status_id_path, w->ids[0], 0, &s);
    struct platform_event es;
    parse_ok(w, &s, w->ids[0], &es);
    if (!strcmp(es.dedupe_key, evs[0].dedupe_key))
        fail_msg("order %lld: the status change to %s kept the creation's dedupe key %s",
                 (long long)w->ids[0], fx->changed_status, es.dedupe_key);
    tt_received_release(&s);
}

/* ---------------------------------------------------------------------- */
/* (4) order_fetch and order_map                                            */

/* The canonical order against what the platform says about it. */
static void check_order(struct world *w, const struct model_order *o, const struct truth *t,
                        const char *via)
{
    struct th_err err = {0};
    char what[160];
    long long id = (long long)t->id;
    int rc = model_order_check(o, &err);
    if (rc) fail_msg("%s order %lld: model_order_check gave %s: %s", via, id, rcname(rc), err.msg);
    snprintf(what, sizeof what, "%s order %lld: platform", via, id);
    EXPECT_I64(what, o->platform, w->fx->platform);
    snprintf(what, sizeof what, "%s order %lld: store id", via, id);
    EXPECT_I64(what, o->store_id, w->fx->store_id);
    snprintf(what, sizeof what, "%s order %lld: order id", via, id);
    EXPECT_I64(what, o->order_id, t->id);
    snprintf(what, sizeof what, "%s order %lld: total (what the platform says it costs)", via, id);
    EXPECT_I64(what, o->total, t->total);
    snprintf(what, sizeof what, "%s order %lld: shipping", via, id);
    EXPECT_I64(what, o->shipping, t->shipping);
    snprintf(what, sizeof what, "%s order %lld: COD fee", via, id);
    EXPECT_I64(what, o->cod_fee, t->cod_fee);
    snprintf(what, sizeof what, "%s order %lld: VAT", via, id);
    EXPECT_I64(what, o->tax, t->tax);
    int64_t disc = o->order_discount;
    for (size_t l = 0; l < o->nlines; l++)
        disc += o->lines[l].discount;
    snprintf(what, sizeof what, "%s order %lld: discounts (order + lines)", via, id);
    EXPECT_I64(what, disc, t->discount);
    snprintf(what, sizeof what, "%s order %lld: lines", via, id);
    EXPECT_I64(what, o->nlines, t->nlines);
    for (size_t l = 0; l < o->nlines; l++) {
        /* model/order.h allows NULL or "" for an item without SKU. */
        if (strcmp(or_empty(o->lines[l].sku), t->sku[l]) != 0)
            fail_msg("%s order %lld line %zu: SKU want '%s', got '%s'", via, id, l + 1, t->sku[l],
                     o->lines[l].sku ? o->lines[l].sku : "(null)");
        snprintf(what, sizeof what, "%s order %lld line %zu: quantity", via, id, l + 1);
        EXPECT_I64(what, o->lines[l].quantity, t->qty[l]);
    }
    char want[64];
    if (model_phone_normalize(t->phone, want, sizeof want) != 0)
        fail_msg("order %lld: the platform's phone '%s' has no digits", id, t->phone);
    if (strncmp(want, "+9665", 5) != 0)
        fail_msg("order %lld: the emulator's phone '%s' is not a Saudi mobile", id, t->phone);
    if (strcmp(or_empty(o->customer.phone), want) != 0)
        fail_msg("%s order %lld: phone '%s' (platform: '%s') is not in the one form '%s'", via, id,
                 or_empty(o->customer.phone), t->phone, want);
}

static void test_order_fetch(void **state)
{
    struct world *w = *state;
    const struct platform_ops *p = w->ops;
    static struct truth truth[NORDERS];
    load_truth(w, w->ids, NORDERS, truth);
    int coupons = 0, cods = 0, free_ship = 0, no_sku = 0;
    for (size_t i = 0; i < NORDERS; i++) {
        struct model_order *o = NULL;
        struct th_err err = {0};
        EXPECT_RC("order_fetch of a generated order",
                  p->order_fetch(w->hc, &w->conn, w->ids[i], &o, &err), 0, err);
        check_order(w, o, &truth[i], "fetched");
        EXPECT_I64("a new order's status", o->status, MODEL_STATUS_NEW);
        assert_string_equal(o->status_raw, w->fx->initial_status);
        assert_string_equal(o->currency, "SAR");
        if (o->created_at < w->t0 - 5 || o->created_at > time(NULL) + 5)
            fail_msg("order %lld: created_at %lld is not when it was generated (%lld)",
                     (long long)w->ids[i], (long long)o->created_at, (long long)w->t0);
        model_order_free(o);

        /* The creation webhook maps to the same order (webhooks are hints,
         * but a mapping must not depend on which door the order came in). */
        struct tt_received x;
        created_delivery(w, w->ids[i], &x);
        EXPECT_RC("order_map of the creation delivery",
                  p->order_map(x.body, x.body_len, w->fx->store_id, &o, &err), 0, err);
        check_order(w, o, &truth[i], "delivered");
        model_order_free(o);
        tt_received_release(&x);

        coupons += truth[i].discount > 0;
        cods += truth[i].cod_fee > 0;
        free_ship += truth[i].shipping == 0;
        for (size_t l = 0; l < truth[i].nlines; l++)
            no_sku += truth[i].sku[l][0] == '\0';
    }
    /* The generated set covered every case (else the checks above proved
     * less than they claim). */
    if (!coupons || !cods || !free_ship || !no_sku)
        fail_msg("%s: %d orders with a coupon, %d with a COD fee, %d with free shipping, %d items "
                 "without SKU: each must be at least 1",
                 p->name, coupons, cods, free_ship, no_sku);
}

/* Orders whose customer writes the phone in each documented form, posted
 * to the emulator in the platform's own shape: fetched, each has it in the
 * one form. */
static void test_phone_forms(void **state)
{
    struct world *w = *state;
    const struct fixture *fx = w->fx;
    const struct platform_ops *p = w->ops;
    json_t *all = ctl(w, "GET", "/orders", NULL, 200), *base = NULL, *o;
    size_t i;
    json_array_foreach(json_object_get(all, "orders"), i, o)
    {
        int64_t id = 0;
        if (jv_get_id(o, "id", &id, NULL) == 0 && id == w->ids[0]) base = o;
    }
    if (!base) fail_msg("the emulator does not list order %lld", (long long)w->ids[0]);
    for (size_t f = 0; fx->phone_forms[f]; f++) {
        json_t *copy = json_deep_copy(base);
        json_t *patch = json_loads(fx->phone_forms[f], 0, NULL);
        if (!patch) fail_msg("phone form %zu is not JSON", f);
        json_object_update(json_object_get(copy, "customer"), patch);
        json_decref(patch);
        json_object_del(copy, "id"); /* a new order */
        json_object_set_new(copy, "store_id", json_integer(fx->store_id));
        char *body = jv_dump(copy);
        json_decref(copy);
        json_t *ans = ctl(w, "POST", "/orders", body, 201);
        free(body);
        int64_t id = 0;
        json_t *made = json_object_get(ans, "data");
        if (!made) made = json_object_get(ans, "order");
        if (jv_get_id(made, "id", &id, NULL) != 0) fail_msg("posted order has no id");
        json_decref(ans);
        struct model_order *m = NULL;
        struct th_err err = {0};
        EXPECT_RC("order_fetch", p->order_fetch(w->hc, &w->conn, id, &m, &err), 0, err);
        if (strcmp(or_empty(m->customer.phone), PHONE_E164) != 0)
            fail_msg("%s: customer %s gives the phone '%s', want '%s'", p->name, fx->phone_forms[f],
                     or_empty(m->customer.phone), PHONE_E164);
        model_order_free(m);
    }
    json_decref(all);
}

/* ---------------------------------------------------------------------- */
/* (5) orders_page                                                          */

static void test_orders_page(void **state)
{
    struct world *w = *state;
    const struct platform_ops *p = w->ops;
    json_t *more = generate(w, NPAGED);
    size_t n = NORDERS + NPAGED;
    int64_t *ids = xcalloc(n, sizeof *ids);
    memcpy(ids, w->ids, sizeof w->ids);
    for (size_t i = 0; i < NPAGED; i++)
        assert_int_equal(jv_to_id(json_array_get(more, i), &ids[NORDERS + i], NULL), 0);
    json_decref(more);
    int *seen = xcalloc(n, sizeof *seen);
    struct platform_order_ref *refs = xcalloc(n, sizeof *refs);
    int pages = 0;
    time_t now = time(NULL);
    size_t others = list_all(w, &w->conn, (int64_t)w->t0 - 86400, (int64_t)now + 86400, ids, n,
                             seen, refs, &pages);
    EXPECT_I64("orders listed that were never generated", others, 0);
    for (size_t i = 0; i < n; i++) {
        if (seen[i] != 1)
            fail_msg("%s: order %lld listed %d times across %d pages, want once", p->name,
                     (long long)ids[i], seen[i], pages);
        EXPECT_I64("a listed order's status", refs[i].status, MODEL_STATUS_NEW);
        if (refs[i].created_at < w->t0 - 5 || refs[i].created_at > (int64_t)now + 5)
            fail_msg("order %lld: listed created_at %lld, generated at %lld", (long long)ids[i],
                     (long long)refs[i].created_at, (long long)w->t0);
    }
    if (pages < 2) fail_msg("%s: %zu orders fit one page: paging was not exercised", p->name, n);

    /* Ranges that exclude every order: long before, and after. */
    const struct {
        const char *name;
        int64_t from, to;
    } empty[] = {
        {"January 2020", 1577836800, 1580515199},
        {"next month", (int64_t)now + 20 * 86400, (int64_t)now + 50 * 86400},
    };
    for (size_t r = 0; r < sizeof empty / sizeof empty[0]; r++) {
        memset(seen, 0, n * sizeof *seen);
        others = list_all(w, &w->conn, empty[r].from, empty[r].to, ids, n, seen, NULL, &pages);
        size_t listed = others;
        for (size_t i = 0; i < n; i++)
            listed += (size_t)seen[i];
        if (listed)
            fail_msg("%s: a range of %s listed %zu orders, want none", p->name, empty[r].name,
                     listed);
        EXPECT_I64("pages for an empty range", pages, 1);
    }
    free(ids);
    free(seen);
    free(refs);
}

/* ---------------------------------------------------------------------- */
/* (6) token_refresh                                                        */

static void test_token_refresh(void **state)
{
    struct world *w = *state;
    const struct platform_ops *p = w->ops;
    char token_url[512];
    snprintf(token_url, sizeof token_url, "%s%s", sim_base_url(w->sim), w->fx->token_path);
    struct platform_app app = {
        .client_id = "demo-client", .client_secret = "demo-secret", .token_url = token_url};
    struct platform_tokens t;
    struct th_err err = {0};
    time_t before = time(NULL);

    /* The app's own credentials refused: a configuration error, and the
     * grant is not spent. */
    struct platform_app bad = app;
    bad.client_secret = "not-the-secret";
    EXPECT_RC("token_refresh with a wrong client secret",
              p->token_refresh(w->hc, &bad, w->tok.refresh, &t, &err), TH_ECONFIG, err);

    EXPECT_RC("token_refresh", p->token_refresh(w->hc, &app, w->tok.refresh, &t, &err), 0, err);
    if (!t.access_token[0] || !t.refresh_token[0]) fail_msg("token_refresh gave empty tokens");
    assert_string_not_equal(t.access_token, w->tok.access);
    assert_string_not_equal(t.refresh_token, w->tok.refresh);
    /* The second token exactly when the platform has one. */
    if ((w->tok.manager[0] != '\0') != (t.manager_token[0] != '\0'))
        fail_msg("token_refresh: manager token '%s' for a platform whose install gave '%s'",
                 t.manager_token, w->tok.manager);
    if (t.expires_at <= (int64_t)before)
        fail_msg("token_refresh: expires_at %lld is not in the future", (long long)t.expires_at);

    /* The new tokens work. */
    struct tokens nt;
    snprintf(nt.access, sizeof nt.access, "%s", t.access_token);
    snprintf(nt.manager, sizeof nt.manager, "%s", t.manager_token);
    snprintf(nt.refresh, sizeof nt.refresh, "%s", t.refresh_token);
    struct platform_conn c = conn_of(w, &nt);
    struct model_order *o = NULL;
    EXPECT_RC("order_fetch with the refreshed tokens",
              p->order_fetch(w->hc, &c, w->ids[0], &o, &err), 0, err);
    EXPECT_I64("order id", o->order_id, w->ids[0]);
    model_order_free(o);

    /* The spent refresh token again: the grant is gone (reinstall). */
    struct platform_tokens t2;
    memset(&t2, 'x', sizeof t2);
    EXPECT_RC("token_refresh with a used refresh token",
              p->token_refresh(w->hc, &app, w->tok.refresh, &t2, &err), TH_EAUTH, err);
    assert_true(err.msg[0] != '\0');
    assert_string_equal(t2.access_token, ""); /* nothing half-filled to save by mistake */
    assert_string_equal(t2.refresh_token, "");
}

/* ---------------------------------------------------------------------- */
/* (7) refusals: unknown orders, other stores' orders, revoked tokens       */

static void test_refusals(void **state)
{
    struct world *w = *state;
    const struct fixture *fx = w->fx;
    const struct platform_ops *p = w->ops;
    struct model_order *o = NULL;
    struct th_err err = {0};
    EXPECT_RC("order_fetch of an unknown id", p->order_fetch(w->hc, &w->conn, 1, &o, &err),
              TH_ENOTFOUND, err);
    assert_null(o);
    assert_true(err.msg[0] != '\0');

    /* Another store's order, with this store's tokens. */
    struct world other = *w;
    struct fixture ofx = *fx;
    ofx.store_id = fx->store_id + 1;
    other.fx = &ofx;
    install(&other, ofx.store_id, &other.tok);
    json_t *ids = generate(&other, 1);
    int64_t theirs = 0;
    assert_int_equal(jv_to_id(json_array_get(ids, 0), &theirs, NULL), 0);
    json_decref(ids);
    EXPECT_RC("order_fetch of another store's order",
              p->order_fetch(w->hc, &w->conn, theirs, &o, &err), TH_ENOTFOUND, err);
    assert_null(o);

    /* Tokens the platform never issued. */
    struct tokens junk;
    snprintf(junk.access, sizeof junk.access, "not-a-token");
    snprintf(junk.manager, sizeof junk.manager, "%s", w->tok.manager[0] ? "not-a-token" : "");
    snprintf(junk.refresh, sizeof junk.refresh, "-");
    struct platform_conn c = conn_of(w, &junk);
    EXPECT_RC("order_fetch with unknown tokens", p->order_fetch(w->hc, &c, w->ids[0], &o, &err),
              TH_EAUTH, err);
    assert_null(o);

    /* The app uninstalled: the store's tokens are revoked. */
    char body[64];
    snprintf(body, sizeof body, "{\"store_id\":%lld}", (long long)fx->store_id);
    json_decref(ctl(w, "POST", "/uninstall", body, 200));
    EXPECT_RC("order_fetch with revoked tokens",
              p->order_fetch(w->hc, &w->conn, w->ids[0], &o, &err), TH_EAUTH, err);
    assert_null(o);
    assert_true(err.msg[0] != '\0');
    struct platform_query q = {.page = 1, .by_updated = p->lists_by_updated};
    struct platform_page pg = {0};
    EXPECT_RC("orders_page with revoked tokens", p->orders_page(w->hc, &w->conn, &q, &pg, &err),
              TH_EAUTH, err);
    platform_page_release(&pg);
    /* The other store is untouched. */
    struct platform_conn oc = conn_of(&other, &other.tok);
    EXPECT_RC("order_fetch in a store still installed",
              p->order_fetch(w->hc, &oc, theirs, &o, &err), 0, err);
    EXPECT_I64("the other store's order id", o->order_id, theirs);
    EXPECT_I64("the other store's store id", o->store_id, ofx.store_id);
    model_order_free(o);
}

/* ---------------------------------------------------------------------- */
/* (8) the status map                                                       */

static const char *const trigger_names[] = {"new", "ready", "in_transit", "completed"};

/* Does the documented `triggers` list name trigger? */
static int lists_trigger(const char *triggers, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = triggers; p && *p;) {
        const char *end = strchr(p, ' ');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

static void test_status_map(void **state)
{
    struct world *w = *state;
    const struct fixture *fx = w->fx;
    const struct platform_ops *p = w->ops;
    struct th_err err = {0};

    /* The table covers every status the platform lists. */
    json_t *listed = fx->list_statuses(w), *v;
    size_t i;
    json_array_foreach(listed, i, v)
    {
        size_t k = 0;
        while (k < fx->nstatuses && strcmp(fx->statuses[k].code, json_string_value(v)) != 0)
            k++;
        if (k == fx->nstatuses)
            fail_msg("%s lists the status '%s', which the fixture's table does not map", p->name,
                     json_string_value(v));
    }
    if (json_array_size(listed) != fx->nstatuses)
        fail_msg("%s lists %zu statuses, the fixture's table has %zu", p->name,
                 json_array_size(listed), fx->nstatuses);
    json_decref(listed);
    if (fx->nstatuses > NORDERS) fail_msg("more statuses than orders in a world");

    struct tt_received created;
    created_delivery(w, w->ids[0], &created);
    for (size_t s = 0; s < fx->nstatuses; s++) {
        const struct status_case *sc = &fx->statuses[s];
        char what[160];

        /* The documented triggers are the ones the worker applies. */
        for (size_t t = 0; t < 4; t++) {
            int trig = model_status_from_name(trigger_names[t]);
            if (trig < 0) fail_msg("model_status_from_name('%s') failed", trigger_names[t]);
            int doc = lists_trigger(sc->triggers, trigger_names[t]);
            if (transfer_triggered((enum model_status)trig, sc->want) != doc)
                fail_msg("%s status '%s' (%s): the table says trigger %s is %s, the worker "
                         "disagrees",
                         p->name, sc->code, model_status_name(sc->want), trigger_names[t],
                         doc ? "met" : "not met");
        }

        /* A real delivery with this status edited in maps to it. */
        char *body =
            edit_body(created.body, created.body_len, fx->status_code_path, json_string(sc->code));
        struct model_order *o = NULL;
        EXPECT_RC("order_map of a delivery with the status edited in",
                  p->order_map(body, strlen(body), fx->store_id, &o, &err), 0, err);
        snprintf(what, sizeof what, "%s status '%s' in a delivery", p->name, sc->code);
        EXPECT_I64(what, o->status, sc->want);
        assert_string_equal(o->status_raw, sc->code);
        model_order_free(o);
        free(body);
        if (!sc->settable) continue;

        /* Through the platform: its order s goes to the status; the fetch,
         * the status webhook and the list all say the same. */
        int64_t id = w->ids[s];
        int moves = strcmp(sc->code, fx->initial_status) != 0;
        if (moves) set_status(w, id, sc->code);
        EXPECT_RC("order_fetch after a status change",
                  p->order_fetch(w->hc, &w->conn, id, &o, &err), 0, err);
        snprintf(what, sizeof what, "%s status '%s' fetched", p->name, sc->code);
        EXPECT_I64(what, o->status, sc->want);
        assert_string_equal(o->status_raw, sc->code);
        model_order_free(o);
        if (moves) {
            struct tt_received x;
            wait_delivery(w, "/status", fx->status_id_path, id, 0, &x);
            struct platform_event ev;
            parse_ok(w, &x, id, &ev);
            EXPECT_RC("order_map of the status delivery",
                      p->order_map(x.body, x.body_len, fx->store_id, &o, &err), 0, err);
            snprintf(what, sizeof what, "%s status '%s' delivered", p->name, sc->code);
            EXPECT_I64(what, o->status, sc->want);
            model_order_free(o);
            tt_received_release(&x);
        }
    }
    /* The list shows each order's status as well. */
    int *seen = xcalloc(NORDERS, sizeof *seen);
    struct platform_order_ref refs[NORDERS];
    int pages = 0;
    list_all(w, &w->conn, (int64_t)w->t0 - 86400, (int64_t)time(NULL) + 86400, w->ids, NORDERS,
             seen, refs, &pages);
    for (size_t s = 0; s < fx->nstatuses; s++) {
        if (!fx->statuses[s].settable) continue;
        char what[160];
        snprintf(what, sizeof what, "%s status '%s' listed", p->name, fx->statuses[s].code);
        EXPECT_I64(what, seen[s], 1);
        EXPECT_I64(what, refs[s].status, fx->statuses[s].want);
    }
    free(seen);
    tt_received_release(&created);
}

/* ---------------------------------------------------------------------- */
/* (11) limits: text is never cut short, items are bounded                  */

/* The longest text the model holds of o. */
static size_t longest_text(const struct model_order *o)
{
    size_t m = 0;
#define TAKE(s) do { if ((s) && strlen(s) > m) m = strlen(s); } while (0)
    TAKE(o->number);
    TAKE(o->status_raw);
    TAKE(o->payment_method);
    TAKE(o->currency);
    TAKE(o->customer.name);
    TAKE(o->customer.email);
    TAKE(o->customer.city);
    TAKE(o->customer.country);
    for (size_t i = 0; i < o->nlines; i++) {
        TAKE(o->lines[i].name);
        TAKE(o->lines[i].sku);
        TAKE(o->lines[i].platform_type);
    }
#undef TAKE
    return m;
}

static void test_limits(void **state)
{
    struct world *w = *state;
    const struct fixture *fx = w->fx;
    const struct platform_ops *p = w->ops;
    struct th_err err;
    struct tt_received x;
    created_delivery(w, w->ids[0], &x);
    char *text = xmalloc(MODEL_MAX_TEXT + 1);
    /* Every text field: MODEL_MAX_TEXT - 1 bytes are kept whole, one more is
     * refused with TH_ETOOBIG naming the field, and no order is made. */
    for (const char *const *path = fx->text_paths; *path; path++) {
        for (size_t n = MODEL_MAX_TEXT - 1; n <= MODEL_MAX_TEXT; n++) {
            memset(text, 'k', n);
            text[n] = '\0';
            char *body = edit_body(x.body, x.body_len, *path, json_string(text));
            struct model_order *o = NULL;
            memset(&err, 0, sizeof err);
            int rc = p->order_map(body, strlen(body), fx->store_id, &o, &err);
            if (n < MODEL_MAX_TEXT) {
                if (rc) fail_msg("%s of %zu bytes: want 0, got %s (%s)", *path, n, rcname(rc),
                                 err.msg);
                if (longest_text(o) != n)
                    fail_msg("%s of %zu bytes: the longest text mapped is %zu bytes", *path, n,
                             longest_text(o));
                model_order_free(o);
            } else {
                if (rc != TH_ETOOBIG)
                    fail_msg("%s of %zu bytes: want TH_ETOOBIG, got %s (%s)", *path, n,
                             rcname(rc), err.msg);
                if (o) fail_msg("%s of %zu bytes: an order was made anyway", *path, n);
                if (!strstr(err.msg, "bytes long"))
                    fail_msg("%s of %zu bytes: the message does not say the length: %s", *path,
                             n, err.msg);
            }
            free(body);
        }
    }
    free(text);
    /* Items: MODEL_MAX_LINES are mapped, one more is refused (TH_ELIMIT). */
    json_t *root = json_loadb(x.body, x.body_len, 0, NULL);
    json_t *items = jv_path(root, fx->items_path);
    if (!json_is_array(items) || !json_array_size(items))
        fail_msg("the delivery has no items at %s", fx->items_path);
    json_t *one = json_deep_copy(json_array_get(items, 0));
    json_array_clear(items);
    for (int n = 1; n <= MODEL_MAX_LINES + 1; n++) {
        json_array_append(items, one);
        if (n < MODEL_MAX_LINES) continue;
        char *body = jv_dump(root);
        struct model_order *o = NULL;
        memset(&err, 0, sizeof err);
        int rc = p->order_map(body, strlen(body), fx->store_id, &o, &err);
        if (n == MODEL_MAX_LINES) {
            EXPECT_RC("an order of MODEL_MAX_LINES items", rc, 0, err);
            EXPECT_I64("its lines", o->nlines, MODEL_MAX_LINES);
            model_order_free(o);
        } else {
            EXPECT_RC("an order of one item more", rc, TH_ELIMIT, err);
            if (o) fail_msg("an order of one item too many was made anyway");
        }
        free(body);
    }
    json_decref(one);
    json_decref(root);
    tt_received_release(&x);
}

/* ---------------------------------------------------------------------- */
/* Fixture: Salla                                                           */

#define SALLA_SECRET "whsec-conformance"

static void salla_subscribe(struct world *w)
{
    char *auth = xasprintf("Authorization: Bearer %s", w->tok.access);
    const char *h[] = {auth, "Content-Type: application/json", NULL};
    const char *const subs[][2] = {{"order.created", "/created"},
                                   {"order.status.updated", "/status"}};
    for (size_t i = 0; i < 2; i++) {
        char url[512], *body;
        snprintf(url, sizeof url, "%s/webhooks/subscribe", w->api);
        body = xasprintf("{\"name\":\"tarheel\",\"event\":\"%s\",\"url\":\"%s%s\"}", subs[i][0],
                         tt_receiver_url(w->rcv), subs[i][1]);
        json_decref(call(w, "POST", url, h, body, 200));
        free(body);
    }
    free(auth);
}

static int64_t money_of(const json_t *o, const char *key)
{
    int64_t v = 0;
    int rc = jv_get_money(o, key, &v, NULL);
    if (rc && rc != TH_ENOTFOUND) fail_msg("the emulator's %s is not money", key);
    return rc ? 0 : v;
}

static void salla_truth(const json_t *o, struct truth *t)
{
    const json_t *am = json_object_get(o, "amounts");
    t->total = money_of(am, "total");
    t->shipping = money_of(am, "shipping_cost");
    t->cod_fee = money_of(am, "cash_on_delivery");
    t->tax = money_of(json_object_get(am, "tax"), "amount");
    size_t i;
    json_t *d, *it;
    json_array_foreach(json_object_get(am, "discounts"), i, d) t->discount +=
        money_of(d, "discount");
    json_array_foreach(json_object_get(o, "items"), i, it)
    {
        if (i >= TRUTH_MAX_LINES) fail_msg("more items than the test keeps");
        snprintf(t->sku[i], sizeof t->sku[i], "%s", or_empty(jv_get_str(it, "sku")));
        if (jv_get_dec(it, "quantity", 0, &t->qty[i], NULL) != 0) fail_msg("item without quantity");
        t->nlines++;
    }
    char code[16] = "", num[32] = "";
    const json_t *c = json_object_get(o, "customer");
    jv_get_text(c, "mobile_code", code, sizeof code);
    jv_get_text(c, "mobile", num, sizeof num);
    snprintf(t->phone, sizeof t->phone, "%s%s", code, num);
}

static json_t *salla_statuses(struct world *w)
{
    char url[512], *auth = xasprintf("Authorization: Bearer %s", w->tok.access);
    const char *h[] = {auth, NULL};
    snprintf(url, sizeof url, "%s/orders/statuses", w->api);
    json_t *ans = call(w, "GET", url, h, NULL, 200), *out = json_array(), *s;
    size_t i;
    json_array_foreach(json_object_get(ans, "data"), i, s)
        json_array_append_new(out, json_string(jv_get_str(s, "slug")));
    json_decref(ans);
    free(auth);
    return out;
}

/* sim/salla.md, salla_status_map() and docs/SETTINGS.md: Salla's built-in
 * statuses (GET /orders/statuses). */
static const char *const salla_texts[] = {
    "data.reference_id", "data.payment_method", "data.customer.email", "data.customer.city",
    "data.customer.country", "data.items.0.name", "data.items.0.sku", NULL,
};

static const struct status_case salla_statuses_table[] = {
    {"payment_pending", MODEL_STATUS_OTHER, "", 1},
    {"under_review", MODEL_STATUS_NEW, "new", 1},
    {"in_progress", MODEL_STATUS_READY, "new ready", 1},
    {"delivering", MODEL_STATUS_IN_TRANSIT, "new ready in_transit", 1},
    {"shipped", MODEL_STATUS_IN_TRANSIT, "new ready in_transit", 1},
    {"delivered", MODEL_STATUS_COMPLETED, "new ready in_transit completed", 1},
    {"completed", MODEL_STATUS_COMPLETED, "new ready in_transit completed", 1},
    {"canceled", MODEL_STATUS_CANCELLED, "", 1},
    {"restoring", MODEL_STATUS_OTHER, "", 1},
    {"restored", MODEL_STATUS_REFUNDED, "", 1},
};

/* salla.md §1: a number without country code plus mobile_code "+966", or
 * one string with the code (order.status.updated); §6 also shows the code
 * without its '+' ("966"). */
static const char *const salla_phones[] = {
    "{\"mobile\":501806978,\"mobile_code\":\"+966\"}",
    "{\"mobile\":\"+966501806978\",\"mobile_code\":null}",
    "{\"mobile\":501806978,\"mobile_code\":\"966\"}",
    NULL,
};

static const char *const salla_opts[] = {"rate-limit-plan", "off", "webhook-secret", SALLA_SECRET,
                                         NULL};
static const char *const salla_hdrs[] = {"X-Salla-Signature", "Authorization", NULL};

/* ---------------------------------------------------------------------- */
/* Fixture: Zid                                                             */

#define ZID_BASIC "tarheel:s3cret"

static void zid_subscribe(struct world *w)
{
    char *b = xasprintf("Authorization: Bearer %s", w->tok.access);
    char *m = xasprintf("X-Manager-Token: %s", w->tok.manager);
    const char *h[] = {b, m, "Content-Type: application/json", NULL};
    const char *const subs[][2] = {{"order.create", "/created"},
                                   {"order.status.update", "/status"}};
    for (size_t i = 0; i < 2; i++) {
        char url[512], *body;
        snprintf(url, sizeof url, "%s/managers/webhooks", w->api);
        body = xasprintf("{\"event\":\"%s\",\"target_url\":\"%s%s\",\"original_id\":\"tarheel\","
                         "\"username\":\"tarheel\",\"password\":\"s3cret\"}",
                         subs[i][0], tt_receiver_url(w->rcv), subs[i][1]);
        json_decref(call(w, "POST", url, h, body, 201));
        free(body);
    }
    free(b);
    free(m);
}

static void zid_truth(const json_t *o, struct truth *t)
{
    size_t i;
    json_t *line, *it;
    /* The invoice block is what Zid shows the customer; negative lines are
     * discounts. */
    json_array_foreach(jv_path(o, "payment.invoice"), i, line)
    {
        const char *code = or_empty(jv_get_str(line, "code"));
        int64_t v = money_of(line, "value");
        if (!strcmp(code, "total"))
            t->total = v;
        else if (!strcmp(code, "shipping"))
            t->shipping = v;
        else if (!strcmp(code, "cash_on_delivery"))
            t->cod_fee = v;
        else if (!strcmp(code, "vat"))
            t->tax = v;
        else if (v < 0)
            t->discount += -v;
    }
    json_array_foreach(json_object_get(o, "products"), i, it)
    {
        if (i >= TRUTH_MAX_LINES) fail_msg("more products than the test keeps");
        snprintf(t->sku[i], sizeof t->sku[i], "%s", or_empty(jv_get_str(it, "sku")));
        if (jv_get_dec(it, "quantity", 0, &t->qty[i], NULL) != 0) fail_msg("item without quantity");
        t->nlines++;
    }
    if (!jv_get_text(json_object_get(o, "customer"), "mobile", t->phone, sizeof t->phone))
        t->phone[0] = '\0';
}

/* Zid has no status list endpoint; its order list counts orders per status
 * code, every code included. */
static json_t *zid_statuses(struct world *w)
{
    char url[512];
    char *b = xasprintf("Authorization: Bearer %s", w->tok.access);
    char *m = xasprintf("X-Manager-Token: %s", w->tok.manager);
    const char *h[] = {b, m, NULL};
    snprintf(url, sizeof url, "%s/managers/store/orders?per_page=1", w->api);
    json_t *ans = call(w, "GET", url, h, NULL, 200), *out = json_array(), *v;
    const char *k;
    json_object_foreach(json_object_get(ans, "total_order_count_per_status"), k, v)
        json_array_append_new(out, json_string(k));
    json_decref(ans);
    free(b);
    free(m);
    return out;
}

/* sim/zid.md, zid_status_map() and docs/SETTINGS.md: Zid's status codes.
 * "preparing" is still new: the ready trigger waits for Ready. "initial" (an
 * order not yet placed) is counted by the list but cannot be set. */
static const struct status_case zid_statuses_table[] = {
    {"new", MODEL_STATUS_NEW, "new", 1},
    {"preparing", MODEL_STATUS_NEW, "new", 1},
    {"ready", MODEL_STATUS_READY, "new ready", 1},
    {"indelivery", MODEL_STATUS_IN_TRANSIT, "new ready in_transit", 1},
    {"delivered", MODEL_STATUS_COMPLETED, "new ready in_transit completed", 1},
    {"cancelled", MODEL_STATUS_CANCELLED, "", 1},
    {"reverse_in_progress", MODEL_STATUS_OTHER, "", 1},
    {"reversed", MODEL_STATUS_REFUNDED, "", 1},
    /* a sale that completed, then credit notes for what came back */
    {"partially_reversed", MODEL_STATUS_PARTIALLY_REFUNDED, "new ready in_transit completed", 1},
    {"initial", MODEL_STATUS_OTHER, "", 0},
};

static const char *const zid_texts[] = {
    "invoice_number", "customer.name", "customer.email", "products.0.name", "products.0.sku",
    "products.0.product_class", NULL,
};

/* zid.md X6: the REST API writes digits, the webhook schema a leading '+'. */
static const char *const zid_phones[] = {
    "{\"mobile\":\"966501806978\"}",
    "{\"mobile\":\"+966501806978\"}",
    NULL,
};

static const char *const zid_opts[] = {"rate-limit", "0", NULL};
static const char *const zid_hdrs[] = {"Authorization", NULL};

/* ---------------------------------------------------------------------- */
/* The fixtures, one per registered adapter                                 */

static const struct fixture fixtures[] = {
    {
        .platform = MODEL_PLATFORM_SALLA,
        .sim = &salla_sim_ops,
        .sim_opts = salla_opts,
        .api_path = "/admin/v2",
        .ctl = "/_sim/salla",
        .token_path = "/oauth2/token",
        .store_id = 1305146709,
        .tok_access = "access_token",
        .tok_manager = NULL,
        .tok_refresh = "refresh_token",
        .hdr_names = salla_hdrs,
        .auth = {"signature", SALLA_SECRET},
        .wrong_secret = "whsec-wrong",
        .signs_body = 1,
        .store_path = "merchant",
        .created_id_path = "data.id",
        .status_id_path = "data.order.id",
        .status_code_path = "data.status.slug",
        .created_event = "order.created",
        .status_key = "slug",
        .initial_status = "under_review",
        .changed_status = "in_progress",
        .subscribe = salla_subscribe,
        .truth = salla_truth,
        .phone_forms = salla_phones,
        .list_statuses = salla_statuses,
        .statuses = salla_statuses_table,
        .nstatuses = sizeof salla_statuses_table / sizeof salla_statuses_table[0],
        .text_paths = salla_texts,
        .items_path = "data.items",
    },
    {
        .platform = MODEL_PLATFORM_ZID,
        .sim = &zid_sim_ops,
        .sim_opts = zid_opts,
        .api_path = "/v1",
        .ctl = "/_sim/zid",
        .token_path = "/oauth/token",
        .store_id = 251073,
        .tok_access = "authorization", /* the Bearer; Zid's access_token is the manager token */
        .tok_manager = "access_token",
        .tok_refresh = "refresh_token",
        .hdr_names = zid_hdrs,
        .auth = {"basic", ZID_BASIC},
        .wrong_secret = "tarheel:wrong",
        .signs_body = 0,
        .store_path = "store_id",
        .created_id_path = "id",
        .status_id_path = "id",
        .status_code_path = "order_status.code",
        .created_event = "order", /* Zid names no event: the URL tarheel registered does */
        .status_key = "status",
        .initial_status = "new",
        .changed_status = "preparing",
        .subscribe = zid_subscribe,
        .truth = zid_truth,
        .phone_forms = zid_phones,
        .list_statuses = zid_statuses,
        .statuses = zid_statuses_table,
        .nstatuses = sizeof zid_statuses_table / sizeof zid_statuses_table[0],
        .text_paths = zid_texts,
        .items_path = "products",
    },
};
#define NFIXTURES (sizeof fixtures / sizeof fixtures[0])

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registered, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_peek_store, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_verify, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_parse_event, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_order_fetch, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_phone_forms, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_orders_page, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_token_refresh, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_status_map, world_setup, world_teardown),
        cmocka_unit_test_setup_teardown(test_limits, world_setup, world_teardown),
    };
    int failed = 0;
    /* Every registered adapter must have a fixture: a new platform cannot
     * skip the suite by not being listed here. */
    for (int p = 0; p <= 64; p++) {
        const struct platform_ops *ops = platform_by_id((enum model_platform)p);
        size_t k = 0;
        while (ops && k < NFIXTURES && fixtures[k].platform != ops->platform)
            k++;
        if (ops && k == NFIXTURES) {
            fprintf(stderr, "conformance: adapter '%s' is registered but has no fixture here\n",
                    ops->name);
            failed++;
        }
    }
    for (size_t k = 0; k < NFIXTURES; k++) {
        current = &fixtures[k];
        const struct platform_ops *ops = platform_by_id(fixtures[k].platform);
        char group[64];
        snprintf(group, sizeof group, "conformance_%s", ops ? ops->name : "unregistered");
        failed += cmocka_run_group_tests_name(group, tests, group_setup, group_teardown);
    }
    return failed;
}
