/*
 * cli — command table and handlers (see cli.h).
 *
 * Options are `--name value` pairs or bare `--flag`s after the command
 * words; every command also reads the database from --db or $TARHEEL_DB
 * (default ./tarheel.db).
 */
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/pull.h"
#include "cli/reconcile.h"
#include "cli/report.h"
#include "core/err.h"
#include "core/jv.h"
#include "core/log.h"
#include "core/money.h"
#include "core/passwd.h"
#include "core/xmalloc.h"
#include "http/api.h"
#include "http/connect.h"
#include "http/server.h"
#include "net/httpd.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"
#include "store/store.h"
#include "worker/manage.h"
#include "worker/catalogue.h"
#include "worker/fields.h"
#include "worker/poller.h"
#include "worker/stock.h"
#include "worker/worker.h"

/* ---------------------------------------------------------------------- */
/* Arguments                                                                */

#define MAX_OPTS 64

/* Set by SIGINT / SIGTERM: long-running commands finish cleanly. */
static volatile sig_atomic_t stop_flag;

struct args {
    int npos;
    const char *pos[MAX_OPTS]; /* words that are not options (ids) */
    int nopt;
    const char *name[MAX_OPTS];
    const char *val[MAX_OPTS]; /* NULL for a bare flag */
};

static const char *opt(const struct args *a, const char *name)
{
    for (int i = a->nopt - 1; i >= 0; i--)
        if (strcmp(a->name[i], name) == 0) return a->val[i] ? a->val[i] : "";
    return NULL;
}

static int flag(const struct args *a, const char *name)
{
    return opt(a, name) != NULL;
}

/* Options whose next word is their value. Everything else is a flag. */
static const char *const valued[] = {
    "db",           "listen",         "threads",      "api-key",    "qoyod-url",
    "qoyod-key",    "store",          "platform",     "access-token", "refresh-token",
    "webhook-secret", "webhook-strategy", "api-base",  "inventory",  "trigger",
    "customer-per-invoice", "number-by-order", "financial-invoice", "payment-account",
    "salla-webhook-secret", "salla-api", "status", "workers", "name", "salla-client-id",
    "salla-client-secret", "salla-token-url", "per-store", "per-account", "qoyod-rpm", "client-id", "client-secret",
    "redirect-uri", "salla-accounts-url", "timeout", "api-token-file", "retry-base-ms", "poll-interval", "lease", "zid-oauth-url", "public-url", "zid-app-token", "zid-api", "zid-client-id",
    "zid-client-secret", "zid-token-url", "from", "to", "max-pages", "stock-sync",
    "fields-sync", "name-source", "price-source", "cost-source", "keep",
    "stock-interval", "password-file", "new-key-file", "reference-prefix", "tenant", "label",
    NULL};

static int is_valued(const char *n)
{
    for (int i = 0; valued[i]; i++)
        if (strcmp(valued[i], n) == 0) return 1;
    return 0;
}

static int parse_args(int argc, char **argv, int start, struct args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = start; i < argc; i++) {
        if (a->npos >= MAX_OPTS || a->nopt >= MAX_OPTS) {
            fprintf(stderr, "tarheel: too many arguments\n");
            return CLI_USAGE;
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            a->pos[a->npos++] = argv[i];
            continue;
        }
        const char *n = argv[i] + 2;
        a->name[a->nopt] = n;
        if (is_valued(n)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tarheel: --%s needs a value\n", n);
                return CLI_USAGE;
            }
            a->val[a->nopt] = argv[++i];
        }
        a->nopt++;
    }
    return CLI_OK;
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

static const char *db_url(const struct args *a)
{
    const char *d = opt(a, "db");
    if (!d) d = getenv("TARHEEL_DB");
    return d ? d : "tarheel.db";
}

static struct store *open_store(const struct args *a)
{
    struct store *s;
    struct th_err err;
    if (store_open(&s, db_url(a), &err) != 0) {
        fprintf(stderr, "tarheel: cannot open the database %s: %s\n  %s\n", db_url(a), err.msg,
                th_err_todo(err.code));
        return NULL;
    }
    return s;
}

/* The tenant --tenant NAME names (store.h, Tenants): *id = its id, or 0 when
 * the option is absent. Prints why and returns a CLI code when it is not a
 * tenant. */
static int tenant_opt(const struct args *a, struct store *s, int64_t *id)
{
    *id = 0;
    const char *name = opt(a, "tenant");
    if (!name) return CLI_OK;
    struct store_tenant t;
    struct th_err err;
    if (store_tenant_find(s, name, &t, &err) != 0) {
        if (err.code == TH_ENOTFOUND)
            fprintf(stderr, "tarheel: no tenant named '%s'\n  what to do: `tarheel tenant list` "
                            "shows them; `tarheel tenant add %s` makes it\n",
                    name, name);
        else
            fprintf(stderr, "tarheel: %s\n", err.msg);
        return cli_exit_code(err.code);
    }
    *id = t.id;
    return CLI_OK;
}

int cli_exit_code(int th_code)
{
    switch (th_code) {
    case TH_OK:
        return CLI_OK;
    case TH_ENOTFOUND:
        return CLI_NOTFOUND;
    case TH_EAUTH:
        return CLI_AUTH;
    case TH_ETEMP:
    case TH_ERATE:
    case TH_EUNKNOWN:
    case TH_EDB:
    case TH_EIO:
    case TH_EDISKFULL:
        return CLI_TEMP;
    case TH_EINVAL:
        return CLI_USAGE;
    default:
        return CLI_FAIL;
    }
}

/* What to do about code, for a command: the error table's advice, except
 * where it speaks of the daemon retrying (a command that ended does not). */
static const char *cli_todo(int code)
{
    if (code == TH_ERATE) return "wait a few minutes, then run the command again";
    return th_err_todo(code);
}

static int fail(const struct th_err *err)
{
    fprintf(stderr, "tarheel: %s\n  what to do: %s\n", err->msg, cli_todo(err->code));
    return cli_exit_code(err->code);
}

/* Says on stderr that the command waits out Qoyod's rate limit. */
static void say_waiting(void *arg, long wait_s, const char *what)
{
    (void)arg;
    fprintf(stderr, "tarheel: Qoyod is busy (HTTP 429, too many requests) and asks to wait %ld s "
                    "before it will %s; waiting\n", wait_s, what);
}

/* One command's patience with Qoyod's rate limit: QOYOD_PATIENCE_MS in
 * all, shared by every Qoyod client the command makes. */
static struct qoyod_patience patience(void)
{
    return (struct qoyod_patience){.max_ms = QOYOD_PATIENCE_MS, .notify = say_waiting};
}

/* Prints v (taken) as one line of JSON on stdout. */
static int print_json(json_t *v)
{
    char *text = jv_dump(v);
    printf("%s\n", text);
    free(text);
    json_decref(v);
    return CLI_OK;
}

/* {"halalas": 11500, "decimal": "115.00"}, as the REST API writes money. */
static json_t *json_money(int64_t h)
{
    char d[MONEY_FMT_MAX];
    return json_pack("{s:I,s:s}", "halalas", (json_int_t)h, "decimal", money_format(h, d, sizeof d));
}

/* A string member that may be NULL or not UTF-8 (then null). */
static json_t *json_text(const char *s)
{
    json_t *v = s ? json_string(s) : NULL;
    return v ? v : json_null();
}

/* ---------------------------------------------------------------------- */
/* Commands                                                                 */

static int cmd_errors(const struct args *a)
{
    if (flag(a, "json")) {
        json_t *arr = json_array();
        for (size_t i = 0; i < th_err_count(); i++) {
            int c = th_err_at(i);
            json_array_append_new(arr, json_pack("{s:i,s:s,s:s,s:s}", "code", c, "name",
                                                 th_err_name(c), "what", th_err_what(c), "todo",
                                                 th_err_todo(c)));
        }
        return print_json(arr);
    }
    printf("# tarheel error codes\n\n"
           "Generated by `tarheel errors --markdown` from `src/core/err.h`. Codes are stored\n"
           "with failed transfers, so they are never renumbered or reused.\n\n"
           "| Code | Name | What happened | What to do |\n|---|---|---|---|\n");
    for (size_t i = 0; i < th_err_count(); i++) {
        int c = th_err_at(i);
        printf("| %d | `%s` | %s | %s |\n", c, th_err_name(c), th_err_what(c), th_err_todo(c));
    }
    return CLI_OK;
}

static int cmd_connect_qoyod(const struct args *a)
{
    const char *key = opt(a, "api-key");
    if (!key || !*key) {
        fprintf(stderr, "tarheel: --api-key is required (Qoyod → Settings → General Settings → "
                        "Generate New Key, then Save)\n");
        return CLI_USAGE;
    }
    const char *url = opt(a, "qoyod-url");
    struct qoyod *q = qoyod_new(url ? url : QOYOD_BASE_DEFAULT, key, NULL);
    struct qoyod_patience pat = patience();
    qoyod_set_patience(q, &pat);
    struct qoyod_inventory *inv = NULL;
    size_t n = 0;
    struct th_err err;
    int rc = qoyod_inventories(q, &inv, &n, &err);
    qoyod_free(q);
    if (rc) return fail(&err);
    if (flag(a, "json")) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:I,s:o,s:o}", "id", (json_int_t)inv[i].id,
                                                 "name", json_text(inv[i].name), "ar_name",
                                                 json_text(inv[i].ar_name)));
        free(inv);
        return print_json(json_pack("{s:b,s:o}", "ok", 1, "inventories", arr));
    }
    printf("The API key works. Inventory locations (choose one with --inventory ID):\n");
    printf("  %-6s %-30s %s\n", "ID", "NAME", "الاسم");
    for (size_t i = 0; i < n; i++) printf("  %-6lld %-30s %s\n", (long long)inv[i].id, inv[i].name,
                                           inv[i].ar_name);
    free(inv);
    return CLI_OK;
}

/* Applies the settings options present in a to c (worker/manage.c checks
 * each value). Returns 0 or CLI_USAGE. */
static int apply_settings(const struct args *a, struct store_conn *c)
{
    static const char *const names[] = {"trigger",         "customer-per-invoice",
                                        "number-by-order", "financial-invoice",
                                        "inventory",       "payment-account",
                                        "stock-sync",      "stock-interval",
                                        "reference-prefix", "fields-sync",
                                        "name-source",      "price-source",
                                        "cost-source"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct th_err err;
        if (opt(a, names[i]) && manage_setting_set(c, names[i], opt(a, names[i]), &err) != 0) {
            fprintf(stderr, "tarheel: --%s\n", err.msg);
            return CLI_USAGE;
        }
    }
    return 0;
}

/* Sets up the store's default accounts and categories in Qoyod and says
 * what was found and created, waiting out Qoyod's rate limit within pat.
 * Returns 0 or CLI_FAIL (after saying why and how to retry). */
static int run_catalogue(struct store *s, const struct store_conn *c,
                         struct qoyod_patience *pat)
{
    struct httpc *hc = httpc_new(NULL);
    struct catalogue_report r;
    struct th_err err;
    int rc = catalogue_setup(s, hc, NULL, pat, c, &r, &err);
    httpc_free(hc);
    if (rc) {
        fprintf(stderr, "tarheel: setting up the store's accounts and categories in Qoyod "
                        "failed: %s\n  what to do: %s; then run `tarheel catalogue --store "
                        "%lld`\n", err.msg, cli_todo(err.code), (long long)c->store_id);
        return CLI_FAIL;
    }
    printf("Qoyod accounts: sales %lld, cost of goods sold %lld, opening balances %lld "
           "(%zu found, %zu created)\n",
           (long long)r.sales, (long long)r.cost, (long long)r.opening, r.accounts_found,
           r.accounts_created);
    if (r.categories_failed)
        printf("Store categories: could not be read (see the log); run `tarheel catalogue "
               "--store %lld` to try again\n", (long long)c->store_id);
    else
        printf("Store categories: %zu, in Qoyod as product categories (%zu found, %zu "
               "created)\n", r.categories, r.categories_found, r.categories_created);
    return CLI_OK;
}

static void print_settings(const struct store_conn *c)
{
    printf("store %lld (%s), connection %lld, %s\n", (long long)c->store_id,
           model_platform_name(c->platform), (long long)c->id, c->status ? c->status : "?");
    printf("  trigger               %s\n", model_status_name(c->trigger));
    printf("  customer-per-invoice  %s\n", c->customer_per_invoice ? "on" : "off");
    printf("  number-by-order       %s\n", c->number_by_order ? "on" : "off");
    printf("  financial-invoice     %s\n", c->financial_invoice ? "on" : "off");
    printf("  inventory             %lld\n", (long long)c->inventory_id);
    printf("  payment-account       %lld\n", (long long)c->payment_account_id);
    /* The key itself is a secret (sealed at rest): its last 4 characters
     * tell which key is set. */
    size_t kl = c->qoyod_api_key ? strlen(c->qoyod_api_key) : 0;
    printf("  qoyod-key             %s%s\n", kl ? "****" : "(none)",
           kl >= 8 ? c->qoyod_api_key + kl - 4 : "");
    printf("  stock-sync            %s\n", c->stock_sync ? "on" : "off");
    printf("  stock-interval        %lld s\n",
           (long long)(c->stock_interval_s ? c->stock_interval_s : STORE_STOCK_INTERVAL_DEFAULT));
    /* Set when another store shares the Qoyod account (docs/SETTINGS.md). */
    printf("  reference-prefix      %s\n",
           c->ref_prefix && *c->ref_prefix ? c->ref_prefix : "(none: invoice references are "
                                                             "the order numbers)");
    printf("  fields-sync           %s\n", c->fields_sync ? "on" : "off");
    printf("  name-source           %s\n", store_src_name(store_field_source(c, STORE_FIELD_NAME)));
    printf("  price-source          %s\n", store_src_name(store_field_source(c, STORE_FIELD_PRICE)));
    printf("  cost-source           %s\n", store_src_name(store_field_source(c, STORE_FIELD_COST)));
}

/* $<NAME>_<what> for a platform: "SALLA_CLIENT_ID". */
static void env_name(const struct platform_ops *ops, const char *what, char *out, size_t n)
{
    size_t k = 0;
    for (const char *c = ops->name; *c && k + 1 < n; c++)
        out[k++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
    snprintf(out + k, n - k, "_%s", what);
}

/* Checks the Qoyod key and the chosen inventory location, waiting out
 * Qoyod's rate limit within pat. */
static int check_qoyod(const char *qurl, const char *key, int64_t inventory,
                       struct qoyod_patience *pat)
{
    struct qoyod *q = qoyod_new(qurl, key, NULL);
    qoyod_set_patience(q, pat);
    struct qoyod_inventory *inv = NULL;
    size_t n = 0;
    struct th_err err;
    int rc;
    for (int attempt = 0;; attempt++) {
        rc = qoyod_inventories(q, &inv, &n, &err);
        if (rc != TH_ETEMP || attempt == 3) break;
        /* A temporary failure (503, a reset) need not fail a connect the
         * merchant is waiting on: try again shortly, as the daemon would
         * (a 429 is waited out by the patience, as Qoyod asks). */
        usleep((useconds_t)(400000u << attempt));
    }
    qoyod_free(q);
    if (rc) return fail(&err);
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= inv[i].id == inventory;
    free(inv);
    if (!found) {
        fprintf(stderr, "tarheel: Qoyod has no inventory location %lld; list them with "
                        "`tarheel connect qoyod --api-key ...`\n", (long long)inventory);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* Stores the connection of store_id: what the options say, on top of what
 * tarheel already knows of it (an Easy Mode install leaves its tokens).
 * tok may be NULL (keep the stored tokens). */
static int save_connection(const struct args *a, enum model_platform p, int64_t store_id,
                           const struct platform_tokens *tok, const char *name)
{
    const char *key = opt(a, "qoyod-key");
    const char *qurl = opt(a, "qoyod-url") ? opt(a, "qoyod-url") : QOYOD_BASE_DEFAULT;
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct th_err err;
    struct store_conn c = {0};
    int64_t tenant = 0;
    int trc = tenant_opt(a, s, &tenant);
    if (trc) {
        store_close(s);
        return trc;
    }
    int known = store_conn_find(s, p, store_id, &c, &err) == 0;
    if (known && tenant && c.tenant_id != tenant) {
        struct store_tenant from = {0};
        if (store_tenant_get(s, c.tenant_id, &from, &err) != 0)
            snprintf(from.name, sizeof from.name, "%lld", (long long)c.tenant_id);
        printf("moving %s store %lld from tenant %s to tenant %s\n", platform_by_id(p)->name,
               (long long)store_id, from.name, opt(a, "tenant"));
    }
    if (!known) {
        c = (struct store_conn){.platform = p,
                                .store_id = store_id,
                                .trigger = MODEL_STATUS_NEW,
                                .customer_per_invoice = 1,
                                .number_by_order = 1,
                                .financial_invoice = 1,
                                .inventory_id = 1};
        c.connected_at = time(NULL);
    }
    int rc = apply_settings(a, &c);
    if (!rc && !key && !c.qoyod_api_key) {
        fprintf(stderr, "tarheel: --qoyod-key is required (the Qoyod API key to post into)\n");
        rc = CLI_USAGE;
    }
    /* one patience for the whole command: its Qoyod calls wait at most
     * QOYOD_PATIENCE_MS in all for the rate limit */
    struct qoyod_patience pat = patience();
    if (!rc) rc = check_qoyod(key ? qurl : c.qoyod_base, key ? key : c.qoyod_api_key,
                              c.inventory_id, &pat);
    if (rc) goto out;
#define SET(field, value)                                                                          \
    do {                                                                                           \
        if (value) {                                                                               \
            free(c.field);                                                                         \
            c.field = xstrdup(value);                                                              \
        }                                                                                          \
    } while (0)
    SET(name, name && *name ? name : opt(a, "name"));
    if (tok) {
        SET(access_token, tok->access_token);
        SET(refresh_token, tok->refresh_token);
        if (tok->manager_token[0]) SET(manager_token, tok->manager_token);
        c.token_expires_at = tok->expires_at;
    }
    SET(access_token, opt(a, "access-token"));
    SET(refresh_token, opt(a, "refresh-token"));
    SET(webhook_secret, opt(a, "webhook-secret"));
    SET(webhook_strategy, opt(a, "webhook-strategy"));
    const struct platform_ops *ops = platform_by_id(p);
    if (ops->needs_url_token && !c.webhook_secret) {
        /* Zid does not sign deliveries: tarheel makes the Basic credential
         * (and from it the URL token) that it registers with the webhooks. */
        unsigned char rnd[16];
        char hex[33];
        FILE *ur = fopen("/dev/urandom", "rb");
        int ok = ur && fread(rnd, 1, sizeof rnd, ur) == sizeof rnd;
        if (ur) fclose(ur);
        if (!ok) {
            fprintf(stderr, "tarheel: cannot read /dev/urandom for the webhook secret\n");
            rc = CLI_FAIL;
            goto out;
        }
        for (int i = 0; i < 16; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
        c.webhook_secret = xasprintf("tarheel:%s", hex);
    }
    if (!c.webhook_strategy) c.webhook_strategy = xstrdup(ops->webhook_strategy);
    SET(api_base, opt(a, "api-base"));
    if (!c.api_base) c.api_base = xstrdup(ops->api_base);
    if (key) {
        SET(qoyod_base, qurl);
        SET(qoyod_api_key, key);
    }
    free(c.status);
    c.status = xstrdup("active");
    c.tenant_id = tenant; /* 0: a known store keeps its tenant, a new one gets the default */
#undef SET
    if (!c.webhook_secret) {
        fprintf(stderr, "tarheel: --webhook-secret is required (the app's webhook secret, to "
                        "check deliveries)\n");
        rc = CLI_USAGE;
        goto out;
    }
    rc = store_conn_put(s, &c, &err) ? fail(&err) : CLI_OK;
    if (rc == CLI_OK) {
        print_settings(&c);
        /* A failure here leaves the store connected; the message says how
         * to finish (and `serve` retries it in the background). */
        (void)run_catalogue(s, &c, &pat);
        if (!ops->webhooks_register)
            printf("Point the store's webhooks at http://<this host>/webhooks/%s\n",
                   model_platform_name(p));
    }
out:
    store_conn_release(&c);
    store_close(s);
    return rc;
}

/* Subscribes the store's order events to this tarheel (--public-url, the
 * address the platform can reach), with the store's Basic credential and
 * the URL token derived from it. */
static int register_webhooks(const struct args *a, enum model_platform p, int64_t store_id,
                             struct httpc *hc)
{
    const struct platform_ops *ops = platform_by_id(p);
    const char *pub = opt(a, "public-url");
    if (!pub || strncmp(pub, "http", 4) != 0) {
        fprintf(stderr, "tarheel: connected, but no webhooks were registered: give --public-url "
                        "https://HOST (where %s can reach `tarheel serve`) and run the command "
                        "again; until then only the catch-up poll brings orders\n",
                model_platform_name(p));
        return CLI_FAIL;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct store_conn c = {0};
    struct th_err err;
    int rc = store_conn_find(s, p, store_id, &c, &err) ? fail(&err) : CLI_OK;
    if (rc == CLI_OK) {
        char token[33];
        platform_url_token(c.webhook_secret, c.store_id, token);
        char *url = xasprintf("%s/webhooks/%s/%s", pub, model_platform_name(p), token);
        struct platform_conn pc = {.store_id = c.store_id,
                                   .api_base = c.api_base,
                                   .access_token = c.access_token,
                                   .manager_token = c.manager_token};
        if (ops->webhooks_register(hc, &pc, url, c.webhook_secret, &err) != 0) rc = fail(&err);
        else printf("Webhooks registered: order events go to %s/webhooks/%s/…\n", pub,
                    model_platform_name(p));
        free(url);
    }
    store_conn_release(&c);
    store_close(s);
    return rc;
}

/* The redirect the OAuth flow comes back on: a one-shot listener. */
struct callback {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char path[256];
    char code[512], state[128], error[256];
    int done;
};

static void callback_handler(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct callback *cb = arg;
    if (strcmp(httpd_req_path(req), cb->path) != 0) {
        httpd_resp_text(resp, 404, "not the tarheel callback");
        return;
    }
    pthread_mutex_lock(&cb->mu);
    const char *code = httpd_req_arg(req, "code"), *state = httpd_req_arg(req, "state");
    const char *e = httpd_req_arg(req, "error");
    snprintf(cb->code, sizeof cb->code, "%s", code ? code : "");
    snprintf(cb->state, sizeof cb->state, "%s", state ? state : "");
    snprintf(cb->error, sizeof cb->error, "%s", e ? e : (code ? "" : "no code in the redirect"));
    cb->done = 1;
    pthread_cond_signal(&cb->cv);
    pthread_mutex_unlock(&cb->mu);
    httpd_resp_set(resp, 200, "text/html; charset=utf-8",
                   "<!doctype html><meta charset=utf-8><title>tarheel</title>"
                   "<p>tarheel: you can close this tab and go back to the terminal.</p>"
                   "<p dir=rtl>ترحيل: يمكنك إغلاق هذه الصفحة والعودة إلى الطرفية.</p>",
                   strlen("<!doctype html><meta charset=utf-8><title>tarheel</title>"
                          "<p>tarheel: you can close this tab and go back to the terminal.</p>"
                          "<p dir=rtl>ترحيل: يمكنك إغلاق هذه الصفحة والعودة إلى الطرفية.</p>"));
}

static long timeout_s(const struct args *a)
{
    int64_t t = 600;
    if (opt(a, "timeout") && (parse_i64(opt(a, "timeout"), &t) || t <= 0)) t = 600;
    return (long)t;
}

/* Custom mode: print the authorize URL, wait for the redirect, trade the
 * code for tokens, ask which store they belong to, save. */
static int connect_oauth(const struct args *a, enum model_platform p)
{
    const struct platform_ops *ops = platform_by_id(p);
    if (!ops->authorize_url || !ops->oauth_exchange || !ops->whoami) {
        fprintf(stderr, "tarheel: %s has no OAuth flow in tarheel yet\n", model_platform_name(p));
        return CLI_USAGE;
    }
    /* The adapter says where its platform lives; options override. */
    const char *acc = opt(a, ops->oauth_base_option) ? opt(a, ops->oauth_base_option)
                                                     : ops->oauth_base;
    const char *redirect = opt(a, "redirect-uri") ? opt(a, "redirect-uri")
                                                  : "http://127.0.0.1:8765/callback";
    const char *api_base = opt(a, "api-base") ? opt(a, "api-base") : ops->api_base;
    char *auth_url = xasprintf("%s%s", acc, ops->auth_path);
    char *token_url = xasprintf("%s%s", acc, ops->token_path);
    char *info_url = ops->userinfo_path ? xasprintf("%s%s", acc, ops->userinfo_path) : NULL;
    char id_env[64], secret_env[64];
    env_name(ops, "CLIENT_ID", id_env, sizeof id_env);
    env_name(ops, "CLIENT_SECRET", secret_env, sizeof secret_env);
    struct platform_app app = {
        .client_id = opt(a, "client-id") ? opt(a, "client-id") : getenv(id_env),
        .client_secret = opt(a, "client-secret") ? opt(a, "client-secret") : getenv(secret_env),
        .token_url = token_url,
        .redirect_uri = redirect,
        .auth_url = auth_url,
        .userinfo_url = info_url};
    struct callback cb = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct httpd *d = NULL;
    struct httpc *hc = NULL;
    struct th_err err;
    int rc = CLI_FAIL;
    char listen[256], state[33], url[4096];
    /* http://HOST:PORT/PATH: listen on HOST:PORT, answer PATH */
    const char *hp = strncmp(redirect, "http://", 7) == 0 ? redirect + 7 : NULL;
    const char *slash = hp ? strchr(hp, '/') : NULL;
    if (!hp || !slash || (size_t)(slash - hp) >= sizeof listen || !strchr(hp, ':')) {
        fprintf(stderr, "tarheel: --redirect-uri must be http://HOST:PORT/PATH on this machine "
                        "(register the same URI as the app's callback in the Salla Partners "
                        "portal)\n");
        rc = CLI_USAGE;
        goto out;
    }
    snprintf(listen, sizeof listen, "%.*s", (int)(slash - hp), hp);
    snprintf(cb.path, sizeof cb.path, "%s", slash);
    unsigned char rnd[16];
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(rnd, 1, sizeof rnd, ur) != sizeof rnd) {
        if (ur) fclose(ur);
        fprintf(stderr, "tarheel: cannot read /dev/urandom for the OAuth state\n");
        goto out;
    }
    fclose(ur);
    for (int i = 0; i < 16; i++) snprintf(state + 2 * i, 3, "%02x", rnd[i]);
    if (ops->authorize_url(&app, state, url, sizeof url, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    struct httpd_config hcfg = {.listen = listen, .handler = callback_handler, .arg = &cb};
    if (httpd_open(&d, &hcfg, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    printf("Open this address in a browser where you are signed in to the Salla store:\n\n  %s\n\n"
           "Waiting up to %ld s for Salla to send you back to %s ...\n",
           url, timeout_s(a), redirect);
    fflush(stdout);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_s(a);
    pthread_mutex_lock(&cb.mu);
    while (!cb.done && !stop_flag)
        if (pthread_cond_timedwait(&cb.cv, &cb.mu, &until) == ETIMEDOUT) break;
    int done = cb.done;
    pthread_mutex_unlock(&cb.mu);
    if (done) {
        /* Let the browser get its page before the listener goes away (the
         * handler signals before its answer is written). */
        struct timespec ts = {0, 300000000L};
        nanosleep(&ts, NULL);
    }
    httpd_close(d);
    d = NULL;
    if (!done) {
        fprintf(stderr, "tarheel: no answer from Salla in time; run the command again\n");
        goto out;
    }
    if (cb.error[0]) {
        fprintf(stderr, "tarheel: Salla did not authorize the app: %s\n", cb.error);
        goto out;
    }
    if (!platform_secure_eq(cb.state, state)) {
        fprintf(stderr, "tarheel: the redirect's state does not match this request (a stale "
                        "or forged link); run the command again\n");
        goto out;
    }
    struct platform_tokens tok;
    hc = httpc_new(NULL);
    if (ops->oauth_exchange(hc, &app, cb.code, &tok, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    int64_t store_id = 0;
    char name[256] = "";
    if (ops->whoami(hc, &app, api_base, &tok, &store_id, name, sizeof name, &err) != 0) {
        rc = fail(&err);
        goto out;
    }
    printf("Authorized by store %lld%s%s\n", (long long)store_id, name[0] ? ": " : "", name);
    rc = save_connection(a, p, store_id, &tok, name);
    if (rc == CLI_OK && ops->webhooks_register) rc = register_webhooks(a, p, store_id, hc);
out:
    httpc_free(hc);
    httpd_close(d);
    free(auth_url);
    free(token_url);
    free(info_url);
    return rc;
}

struct new_install {
    enum model_platform platform;
    int64_t since;
    int64_t store_id; /* found, or 0 */
};

static void find_new_install(void *arg, const struct store_conn *c)
{
    struct new_install *ni = arg;
    if (!ni->store_id && c->platform == ni->platform && c->connected_at >= ni->since &&
        c->access_token)
        ni->store_id = c->store_id;
}

/* Easy Mode: the platform sends the tokens to `tarheel serve` when the
 * merchant installs the app; wait for that connection, then apply the
 * options (Qoyod key, location, settings) to it. */
static int connect_wait(const struct args *a, enum model_platform p)
{
    int64_t store_id = 0;
    if (opt(a, "store") && (parse_i64(opt(a, "store"), &store_id) || store_id <= 0)) {
        fprintf(stderr, "tarheel: --store takes the platform's merchant id\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    printf("Waiting up to %ld s for the app to be installed in %s%s (Easy Mode: `tarheel serve` "
           "receives the tokens) ...\n",
           timeout_s(a), store_id ? "store " : "the store", store_id ? opt(a, "store") : "");
    fflush(stdout);
    time_t start = time(NULL), deadline = start + timeout_s(a);
    int64_t found = 0;
    struct th_err err;
    while (!found && !stop_flag && time(NULL) < deadline) {
        struct store_conn c = {0};
        if (store_id) {
            if (store_conn_find(s, p, store_id, &c, &err) == 0 && c.access_token &&
                c.status && !strcmp(c.status, "active"))
                found = store_id;
        } else {
            struct new_install ni = {.platform = p, .since = start - 1};
            if (store_conn_list(s, find_new_install, &ni, &err) == 0) found = ni.store_id;
        }
        store_conn_release(&c);
        if (!found) {
            struct timespec ts = {0, 500000000L};
            nanosleep(&ts, NULL);
        }
    }
    store_close(s);
    if (!found) {
        fprintf(stderr, "tarheel: no install arrived in time: is `tarheel serve` running and is "
                        "the app's webhook URL pointing at it? Run the command again\n");
        return CLI_FAIL;
    }
    printf("Installed in store %lld\n", (long long)found);
    return save_connection(a, p, found, NULL, NULL);
}

/* tarheel connect salla: tokens given (--access-token), the OAuth flow
 * (--oauth, custom mode) or waiting for an Easy Mode install (--wait). */
static int cmd_connect_store(const struct args *a, enum model_platform p)
{
    if (flag(a, "oauth")) return connect_oauth(a, p);
    if (flag(a, "wait")) return connect_wait(a, p);
    int64_t store_id;
    if (parse_i64(opt(a, "store"), &store_id) || store_id <= 0 || !opt(a, "access-token")) {
        fprintf(stderr, "tarheel: connect a store with --oauth (custom mode: open a link), "
                        "--wait (Easy Mode: install the app from the app store), or "
                        "--store ID --access-token T (tokens you already have)\n");
        return CLI_USAGE;
    }
    return save_connection(a, p, store_id, NULL, NULL);
}

static int cmd_connect_salla(const struct args *a)
{
    return cmd_connect_store(a, MODEL_PLATFORM_SALLA);
}

static int cmd_connect_zid(const struct args *a)
{
    return cmd_connect_store(a, MODEL_PLATFORM_ZID);
}

static int find_conn(struct store *s, const struct args *a, struct store_conn *c)
{
    int64_t store_id;
    if (parse_i64(opt(a, "store"), &store_id)) {
        fprintf(stderr, "tarheel: --store STORE_ID is required\n");
        return CLI_USAGE;
    }
    const char *pn = opt(a, "platform") ? opt(a, "platform") : "salla";
    const struct platform_ops *p = platform_by_name(pn);
    if (!p) {
        fprintf(stderr, "tarheel: unknown platform '%s'\n", pn);
        return CLI_USAGE;
    }
    struct th_err err;
    if (store_conn_find(s, p->platform, store_id, c, &err) != 0) {
        fprintf(stderr, "tarheel: %s store %lld is not connected (see `tarheel connect %s`)\n",
                pn, (long long)store_id, pn);
        return CLI_NOTFOUND;
    }
    return CLI_OK;
}

/* tarheel catalogue --store ID: sets up (again) the store's default
 * accounts and categories in Qoyod; finds what exists, creates the rest. */
static int cmd_catalogue(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct store_conn c = {0};
    int rc = find_conn(s, a, &c);
    struct qoyod_patience pat = patience();
    if (rc == CLI_OK) rc = run_catalogue(s, &c, &pat);
    store_conn_release(&c);
    store_close(s);
    return rc;
}

static int cmd_settings(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct store_conn c = {0};
    int rc = find_conn(s, a, &c);
    if (rc == CLI_OK) rc = apply_settings(a, &c);
    if (rc == CLI_OK) {
        struct th_err err;
        struct store_conn now = {0};
        if (store_conn_put_settings(s, &c, &err) != 0) {
            rc = fail(&err);
        } else if (store_conn_get(s, c.id, &now, &err) != 0) {
            rc = fail(&err); /* read back: saving may have given it a reference prefix */
        } else {
            store_conn_release(&c);
            c = now;
        }
        if (rc != CLI_OK) {
        } else if (flag(a, "json")) {
            print_json(json_pack(
                "{s:I,s:s,s:I,s:o,s:{s:s,s:b,s:b,s:b,s:I,s:I,s:b,s:I,s:s,s:b,s:s,s:s,s:s}}",
                "connection", (json_int_t)c.id, "platform", model_platform_name(c.platform),
                "store_id", (json_int_t)c.store_id, "state", json_text(c.status), "settings",
                "trigger", model_status_name(c.trigger), "customer_per_invoice",
                c.customer_per_invoice, "number_by_order", c.number_by_order,
                "financial_invoice", c.financial_invoice, "inventory_id",
                (json_int_t)c.inventory_id, "payment_account_id",
                (json_int_t)c.payment_account_id, "stock_sync", c.stock_sync, "stock_interval",
                (json_int_t)(c.stock_interval_s ? c.stock_interval_s
                                                : STORE_STOCK_INTERVAL_DEFAULT),
                "reference_prefix", c.ref_prefix ? c.ref_prefix : "", "fields_sync",
                c.fields_sync, "name_source",
                store_src_name(store_field_source(&c, STORE_FIELD_NAME)), "price_source",
                store_src_name(store_field_source(&c, STORE_FIELD_PRICE)), "cost_source",
                store_src_name(store_field_source(&c, STORE_FIELD_COST))));
        } else {
            print_settings(&c);
            /* What the catch-up poll last saw of the platform's webhooks. */
            int64_t health, checked;
            if (store_map_get(s, c.id, "health", "webhooks", &health, &err) == 0 &&
                store_map_get(s, c.id, "health", "checked_at", &checked, &err) == 0) {
                char when[32];
                time_t t = (time_t)checked;
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
                printf("  %-22s %s (checked %s)\n", "webhooks",
                       health == 2   ? "broken: recovered, the poll covered the gap"
                       : health == 1 ? "degraded: deliveries are failing"
                                     : "healthy",
                       when);
            }
        }
    }
    store_conn_release(&c);
    store_close(s);
    return rc;
}

/* tarheel fields sync --store ID [--full] [--json]: one field-sync pass of
 * the store now (whether field sync is on or not: a person asked). */
static int cmd_fields_sync(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct store_conn c = {0};
    int rc = find_conn(s, a, &c);
    if (rc == CLI_OK) {
        struct fields_config cfg = {.conn_id = c.id, .force = 1, .full = flag(a, "full")};
        struct fields_stats st;
        struct th_err err;
        struct httpc *hc = httpc_new(NULL);
        if (fields_round(s, hc, &cfg, &st, &err) != 0) {
            rc = fail(&err);
        } else if (flag(a, "json")) {
            print_json(json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}",
                                 "read", (json_int_t)st.read, "no_sku", (json_int_t)st.no_sku,
                                 "unmatched", (json_int_t)st.unmatched, "compared",
                                 (json_int_t)st.compared, "first", (json_int_t)st.first,
                                 "to_store", (json_int_t)st.to_store, "to_qoyod",
                                 (json_int_t)st.to_qoyod, "same", (json_int_t)st.same,
                                 "conflicts", (json_int_t)st.conflicts, "qoyod_calls",
                                 (json_int_t)st.qoyod_calls, "store_calls",
                                 (json_int_t)st.store_calls, "failed_stores",
                                 (json_int_t)st.failed, "ok", st.failed == 0));
        } else {
            printf("products read %zu (%zu without SKU, skipped), %zu SKUs compared, %zu on "
                   "one side only\n",
                   st.read, st.no_sku, st.compared, st.unmatched);
            printf("fields written: %zu to the store, %zu to Qoyod; %zu changed alike on both "
                   "sides; %zu conflicts recorded\n",
                   st.to_store, st.to_qoyod, st.same, st.conflicts);
            if (st.conflicts)
                printf("review them: tarheel conflicts --store %lld\n", (long long)c.store_id);
        }
        if (rc == CLI_OK && st.failed) {
            fprintf(stderr, "tarheel: the pass stopped on a remote failure (see the log); run "
                            "it again later\n");
            rc = CLI_TEMP;
        }
        httpc_free(hc);
    }
    store_conn_release(&c);
    store_close(s);
    return rc;
}

static int print_conflicts(const char *json)
{
    struct th_err err;
    json_t *j = jv_parse(json, strlen(json), 16, &err);
    if (!j) return CLI_FAIL;
    json_t *v;
    size_t i;
    if (!json_array_size(json_object_get(j, "conflicts"))) printf("no conflicts\n");
    else
        printf("%-6s %-6s %-12s %-20s %-6s %-24s %-24s %-7s %s\n", "ID", "PLAT", "STORE", "SKU",
               "FIELD", "STORE VALUE", "QOYOD VALUE", "WON", "WHEN / REVIEW");
    json_array_foreach(json_object_get(j, "conflicts"), i, v)
    {
        char sv[64], qv[64];
        for (int side = 0; side < 2; side++) {
            json_t *x = json_object_get(v, side ? "qoyod_value" : "store_value");
            char *out = side ? qv : sv;
            if (json_is_integer(x)) {
                char m[32];
                money_format((int64_t)json_integer_value(x), m, sizeof m);
                snprintf(out, 64, "%s", m);
            } else {
                snprintf(out, 64, "%.60s", json_string_value(x) ? json_string_value(x) : "");
            }
        }
        const char *res = jv_get_str(v, "resolution");
        printf("%-6lld %-6s %-12lld %-20s %-6s %-24s %-24s %-7s %s%s%s\n",
               (long long)json_integer_value(json_object_get(v, "id")),
               jv_get_str(v, "platform") ? jv_get_str(v, "platform") : "?",
               (long long)json_integer_value(json_object_get(v, "store_id")),
               jv_get_str(v, "sku"), jv_get_str(v, "field"), sv, qv, jv_get_str(v, "winner"),
               jv_get_str(v, "at") ? jv_get_str(v, "at") : "", res ? " / " : " / open",
               res ? res : "");
    }
    json_decref(j);
    return CLI_OK;
}

/* tarheel conflicts [--store ID] [--all] [--json]: fields both sides
 * changed differently, waiting for review (--all: reviewed ones too). */
static int cmd_conflicts(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct store_conn c = {0};
    int rc = opt(a, "store") ? find_conn(s, a, &c) : CLI_OK;
    if (rc == CLI_OK) {
        char *json = NULL;
        struct th_err err;
        if (fields_conflicts_json(s, c.id, !flag(a, "all"), 0, NULL, NULL, &json, &err) != 0)
            rc = fail(&err);
        else if (flag(a, "json"))
            printf("%s\n", json);
        else
            rc = print_conflicts(json);
        free(json);
    }
    store_conn_release(&c);
    store_close(s);
    return rc;
}

/* tarheel conflicts resolve ID [--keep store|qoyod] [--json] */
static int cmd_conflicts_resolve(const struct args *a)
{
    int64_t id;
    if (a->npos != 1 || parse_i64(a->pos[0], &id) || id <= 0) {
        fprintf(stderr, "tarheel: conflicts resolve takes one conflict ID (see `tarheel "
                        "conflicts`)\n");
        return CLI_USAGE;
    }
    int keep = 0;
    if (opt(a, "keep") && (keep = store_src_from_name(opt(a, "keep"))) < 0) {
        fprintf(stderr, "tarheel: --keep store|qoyod, not '%s'\n", opt(a, "keep"));
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct th_err err;
    struct httpc *hc = httpc_new(NULL);
    int rc = CLI_OK;
    if (fields_conflict_resolve(s, hc, id, keep, NULL, &err) != 0) {
        rc = fail(&err);
    } else if (flag(a, "json")) {
        char *json = NULL;
        if (fields_conflict_json(s, id, &json, &err) != 0)
            rc = fail(&err);
        else
            printf("%s\n", json);
        free(json);
    } else {
        printf("conflict %lld %s\n", (long long)id,
               keep == STORE_SRC_STORE   ? "resolved: the store's value kept on both sides"
               : keep == STORE_SRC_QOYOD ? "resolved: Qoyod's value kept on both sides"
                                         : "marked reviewed");
    }
    httpc_free(hc);
    store_close(s);
    return rc;
}

static const char *xfer_name(enum store_xfer x)
{
    static const char *const n[] = {"not transferred", "transferring", "transferred", "failed",
                                     "skipped"};
    return (unsigned)x < 5 ? n[x] : "?";
}

struct list_ctx {
    int status; /* model status filter or -1 */
    int rows;
    json_t *json; /* --json: the rows go here instead of stdout */
    int64_t want_order; /* orders show / lookup: 0 = all */
    struct store_order found;
    int nfound;
};

/* unix_s as UTC text ("2026-01-15T10:00:00Z") in out; "" when it cannot be
 * shown. Returns out. */
static char *utc_text(int64_t unix_s, char out[32])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    out[0] = '\0';
    if (gmtime_r(&t, &tm)) strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

static json_t *json_time(int64_t unix_s)
{
    char b[32];
    return unix_s <= 0 ? json_null() : json_string(utc_text(unix_s, b));
}

/* An order as `orders list --json` and `orders show --json` print it (the
 * REST API's names). */
static json_t *order_json(const struct store_order *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "connection", json_integer(o->conn_id));
    json_object_set_new(j, "order_id", json_integer(o->order_id));
    json_object_set_new(j, "number", json_text(o->number));
    json_object_set_new(j, "status", json_string(model_status_name(o->status)));
    json_object_set_new(j, "state", json_string(store_xfer_name(o->xfer)));
    json_object_set_new(j, "reason",
                        (o->reason && *o->reason) || o->reason_code
                            ? json_pack("{s:s?,s:o}", "code",
                                        o->reason_code ? th_err_name(o->reason_code) : NULL,
                                        "message", json_text(o->reason ? o->reason : ""))
                            : json_null());
    json_object_set_new(j, "attempts", json_integer(o->attempts));
    json_object_set_new(j, "total", json_money(o->total));
    json_object_set_new(j, "qoyod",
                        o->xfer == STORE_XFER_TRANSFERRED || o->qoyod_invoice_id
                            ? json_pack("{s:I,s:o,s:o,s:o}", "invoice_id",
                                        (json_int_t)o->qoyod_invoice_id, "invoice_reference",
                                        json_text(o->qoyod_reference), "payment_id",
                                        o->qoyod_payment_id ? json_integer(o->qoyod_payment_id)
                                                            : json_null(),
                                        "total", json_money(o->qoyod_total))
                            : json_null());
    json_object_set_new(j, "created_at", json_time(o->created_at));
    json_object_set_new(j, "transferred_at", json_time(o->transferred_at));
    return j;
}

static void print_row(void *arg, const struct store_order *o)
{
    struct list_ctx *lc = arg;
    if (lc->want_order) {
        if (o->order_id == lc->want_order) {
            if (lc->nfound++ == 0) {
                lc->found = *o;
                lc->found.number = xstrdup(o->number);
                lc->found.reason = xstrdup(o->reason);
                lc->found.qoyod_reference = xstrdup(o->qoyod_reference);
            }
        }
        return;
    }
    if (lc->status >= 0 && (int)o->status != lc->status) return;
    if (lc->json) {
        json_array_append_new(lc->json, order_json(o));
        lc->rows++;
        return;
    }
    char tot[MONEY_FMT_MAX], qtot[MONEY_FMT_MAX];
    money_format(o->total, tot, sizeof tot);
    money_format(o->qoyod_total, qtot, sizeof qtot);
    printf("%-12lld %-10s %-11s %-16s %-10s %10s %10s %s\n", (long long)o->order_id,
           o->number ? o->number : "", model_status_name(o->status), xfer_name(o->xfer),
           o->qoyod_reference ? o->qoyod_reference : "-", tot,
           o->xfer == STORE_XFER_TRANSFERRED ? qtot : "-", o->reason ? o->reason : "");
    lc->rows++;
}

static int cmd_orders_list(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct list_ctx lc = {.status = -1};
    if (opt(a, "status") && (lc.status = model_status_from_name(opt(a, "status"))) < 0) {
        fprintf(stderr, "tarheel: --status must be one of new, ready, in_transit, completed, "
                        "cancelled, refunded, other\n");
        store_close(s);
        return CLI_USAGE;
    }
    int xfer = -1;
    if (flag(a, "failed")) xfer = STORE_XFER_FAILED;
    if (flag(a, "json"))
        lc.json = json_array();
    else
        printf("%-12s %-10s %-11s %-16s %-10s %10s %10s %s\n", "ORDER", "NUMBER", "STATUS",
               "STATE", "INVOICE", "TOTAL", "IN QOYOD", "REASON");
    struct th_err err;
    int64_t tenant = 0;
    int trc = tenant_opt(a, s, &tenant);
    if (trc) {
        json_decref(lc.json);
        store_close(s);
        return trc;
    }
    int rc = store_order_list_in(s, tenant, 0, xfer, print_row, &lc, &err);
    store_close(s);
    if (rc) {
        json_decref(lc.json);
        return fail(&err);
    }
    if (lc.json)
        return print_json(json_pack("{s:o,s:i}", "orders", lc.json, "count", lc.rows));
    printf("(%d orders)\n", lc.rows);
    return CLI_OK;
}

static int lookup_order(struct store *s, int64_t order_id, struct store_order *out)
{
    struct list_ctx lc = {.status = -1, .want_order = order_id};
    struct th_err err;
    if (store_order_list(s, 0, -1, print_row, &lc, &err) != 0) return fail(&err);
    if (lc.nfound == 0) {
        fprintf(stderr, "tarheel: order %lld is not known to tarheel yet\n", (long long)order_id);
        return CLI_NOTFOUND;
    }
    *out = lc.found;
    return CLI_OK;
}

/* One history line: "  2026-11-23 10:02:11  transferred  detail". */
static void print_history(void *arg, int64_t ts_ms, const char *what, const char *detail)
{
    (void)arg;
    time_t t = (time_t)(ts_ms / 1000) + 3 * 3600; /* Riyadh time, as the merchant sees it */
    struct tm tm;
    char when[32];
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    printf("    %s  %-18s %s\n", when, what, detail ? detail : "");
}

static void add_history(void *arg, int64_t ts_ms, const char *what, const char *detail)
{
    time_t t = (time_t)(ts_ms / 1000);
    struct tm tm;
    char b[32], at[40];
    gmtime_r(&t, &tm);
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(at, sizeof at, "%s.%03dZ", b, (int)(ts_ms % 1000));
    json_array_append_new(arg, json_pack("{s:s,s:o,s:o}", "at", at, "what", json_text(what),
                                         "detail", json_text(detail)));
}

static int cmd_orders_show(const struct args *a)
{
    int64_t id;
    if (a->npos != 1 || parse_i64(a->pos[0], &id)) {
        fprintf(stderr, "usage: tarheel orders show ORDER_ID\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct store_order o;
    int rc = lookup_order(s, id, &o);
    if (rc) {
        store_close(s);
        return rc;
    }
    if (flag(a, "json")) {
        json_t *j = order_json(&o);
        json_t *hist = json_array();
        struct th_err herr;
        rc = store_order_history(s, o.conn_id, o.order_id, add_history, hist, &herr);
        store_order_release(&o);
        store_close(s);
        if (rc) {
            json_decref(j);
            json_decref(hist);
            return fail(&herr);
        }
        json_object_set_new(j, "history", hist);
        return print_json(j);
    }
    char tot[MONEY_FMT_MAX], qtot[MONEY_FMT_MAX];
    printf("order %lld (number %s)\n", (long long)o.order_id, o.number ? o.number : "");
    printf("  status in store   %s\n", model_status_name(o.status));
    printf("  transfer          %s\n", xfer_name(o.xfer));
    if (o.reason && *o.reason) printf("  reason            %s\n", o.reason);
    printf("  attempts          %d\n", o.attempts);
    printf("  total             %s\n", money_format(o.total, tot, sizeof tot));
    if (o.xfer == STORE_XFER_TRANSFERRED) {
        printf("  qoyod invoice     %lld (%s), total %s\n", (long long)o.qoyod_invoice_id,
               o.qoyod_reference ? o.qoyod_reference : "",
               money_format(o.qoyod_total, qtot, sizeof qtot));
        if (o.qoyod_payment_id) printf("  qoyod payment     %lld\n", (long long)o.qoyod_payment_id);
        if (o.credit != STORE_CREDIT_NONE)
            printf("  credit notes      %s, %s credited\n", store_credit_name(o.credit),
                   money_format(o.credited, qtot, sizeof qtot));
    }
    printf("  history (Riyadh time)\n");
    struct th_err err;
    if (store_order_history(s, o.conn_id, o.order_id, print_history, NULL, &err) != 0)
        printf("    (not available: %s)\n", err.msg);
    store_order_release(&o);
    store_close(s);
    return CLI_OK;
}

/* The OAuth clients for token refresh, for every platform: the options
 * --<name>-client-id, --<name>-client-secret and --<name>-token-url, else
 * $<NAME>_CLIENT_ID and $<NAME>_CLIENT_SECRET, and the adapter's token URL. */
static void platform_apps(const struct args *a, struct worker_config *wc)
{
    static char token_urls[4][256];
    static const enum model_platform all[] = {MODEL_PLATFORM_SALLA, MODEL_PLATFORM_ZID};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const struct platform_ops *ops = platform_by_id(all[i]);
        struct platform_app *app = &wc->apps[all[i]];
        char id_opt[64], secret_opt[64], url_opt[64], id_env[64], secret_env[64];
        snprintf(id_opt, sizeof id_opt, "%s-client-id", ops->name);
        snprintf(secret_opt, sizeof secret_opt, "%s-client-secret", ops->name);
        snprintf(url_opt, sizeof url_opt, "%s-token-url", ops->name);
        env_name(ops, "CLIENT_ID", id_env, sizeof id_env);
        env_name(ops, "CLIENT_SECRET", secret_env, sizeof secret_env);
        snprintf(token_urls[all[i]], sizeof token_urls[all[i]], "%s%s", ops->oauth_base,
                 ops->token_path);
        app->client_id = opt(a, id_opt) ? opt(a, id_opt) : getenv(id_env);
        app->client_secret = opt(a, secret_opt) ? opt(a, secret_opt) : getenv(secret_env);
        app->token_url = opt(a, url_opt) ? opt(a, url_opt) : token_urls[all[i]];
    }
}

static int drain(const struct args *a, struct store *s)
{
    struct worker_config wc = {.store = s};
    platform_apps(a, &wc);
    struct th_err err;
    if (worker_drain(&wc, worker_now_ms() + 120000, &err) != 0) return fail(&err);
    return CLI_OK;
}

/* tarheel orders pull, and orders transfer --from --to: cli/pull.c, which
 * cannot see struct args. */
static int drain_cb(void *arg, struct store *s)
{
    return drain(arg, s);
}

static void pull_opts(const struct args *a, struct cli_pull_opts *o)
{
    *o = (struct cli_pull_opts){.db = db_url(a),
                                .store = opt(a, "store"),
                                .platform = opt(a, "platform"),
                                .from = opt(a, "from"),
                                .to = opt(a, "to"),
                                .max_pages = opt(a, "max-pages"),
                                .retry_base_ms = opt(a, "retry-base-ms"),
                                .again = flag(a, "again"),
                                .yes = flag(a, "yes"),
                                .queue_only = flag(a, "queue-only"),
                                .drain = drain_cb,
                                .drain_arg = (void *)a};
}

static int cmd_orders_pull(const struct args *a)
{
    struct cli_pull_opts o;
    pull_opts(a, &o);
    return cli_orders_pull(&o);
}

static int cmd_orders_transfer(const struct args *a)
{
    if (opt(a, "from") || opt(a, "to")) {
        struct cli_pull_opts o;
        pull_opts(a, &o);
        return cli_orders_transfer_range(&o);
    }
    if (a->npos < 1) {
        fprintf(stderr, "usage: tarheel orders transfer ORDER_ID... [--store ID --platform P]\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    int rc = CLI_OK;
    for (int i = 0; i < a->npos && rc == CLI_OK; i++) {
        int64_t id, conn_id = 0;
        if (parse_i64(a->pos[i], &id)) {
            fprintf(stderr, "tarheel: '%s' is not an order id\n", a->pos[i]);
            rc = CLI_USAGE;
            break;
        }
        struct store_order o;
        if (opt(a, "store")) {
            struct store_conn c = {0};
            rc = find_conn(s, a, &c);
            conn_id = c.id;
            store_conn_release(&c);
        } else if ((rc = lookup_order(s, id, &o)) == CLI_OK) {
            conn_id = o.conn_id;
            store_order_release(&o);
        }
        struct th_err err;
        if (rc == CLI_OK && manage_transfer(s, conn_id, &id, 1, "from the command line", NULL,
                                            &err) != 0)
            rc = fail(&err);
    }
    if (rc == CLI_OK && !flag(a, "queue-only")) rc = drain(a, s);
    store_close(s);
    if (rc == CLI_OK) printf("queued %d order(s); see `tarheel orders list`\n", a->npos);
    return rc;
}

static int cmd_orders_retry(const struct args *a)
{
    if (!flag(a, "failed")) {
        fprintf(stderr, "usage: tarheel orders retry --failed\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct th_err err;
    size_t queued = 0;
    int rc = manage_retry_failed(s, 0, "retry from the command line", NULL, NULL, &queued, &err)
                 ? fail(&err)
                 : CLI_OK;
    if (queued) {
        /* What was queued is sent even when some order could not be. */
        int drc = drain(a, s);
        if (rc == CLI_OK) rc = drc;
    }
    store_close(s);
    if (rc == CLI_OK) printf("queued %zu failed order(s); see `tarheel orders list`\n", queued);
    return rc;
}


static void on_signal(int sig)
{
    stop_flag = 1;
}

static int cmd_serve(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    int64_t threads = 0, workers = 4, inv = 1;
    if ((opt(a, "threads") && parse_i64(opt(a, "threads"), &threads)) ||
        (opt(a, "workers") && parse_i64(opt(a, "workers"), &workers)) ||
        (opt(a, "inventory") && parse_i64(opt(a, "inventory"), &inv))) {
        fprintf(stderr, "tarheel: --threads, --workers and --inventory take numbers\n");
        store_close(s);
        return CLI_USAGE;
    }
    struct server_config sc = {
        .listen = opt(a, "listen") ? opt(a, "listen") : "127.0.0.1:8080",
        .store = s,
        .threads = (unsigned)threads,
        .salla = {.webhook_secret = opt(a, "salla-webhook-secret")
                                        ? opt(a, "salla-webhook-secret")
                                        : getenv("SALLA_WEBHOOK_SECRET"),
                  .webhook_strategy = opt(a, "webhook-strategy"),
                  .api_base = opt(a, "salla-api") ? opt(a, "salla-api")
                                                  : platform_by_id(MODEL_PLATFORM_SALLA)->api_base},
        /* Zid: each store's deliveries are checked by its own URL token and
         * Basic credential; the app token names the URL of app events. */
        .zid = {.webhook_secret = opt(a, "zid-app-token") ? opt(a, "zid-app-token")
                                                          : getenv("ZID_APP_TOKEN"),
                .webhook_strategy = "basic",
                .api_base = opt(a, "zid-api") ? opt(a, "zid-api")
                                              : platform_by_id(MODEL_PLATFORM_ZID)->api_base},
        .qoyod_base = opt(a, "qoyod-url") ? opt(a, "qoyod-url") : QOYOD_BASE_DEFAULT,
        .qoyod_api_key = opt(a, "qoyod-key"),
        .inventory_id = inv};
    struct server *srv;
    struct worker *w = NULL;
    struct th_err err;
    /* Connecting stores from the dashboard: the platforms' apps, and where
     * browsers and platforms reach this serve. */
    char public_default[300];
    snprintf(public_default, sizeof public_default, "http://%s", sc.listen);
    struct worker_config apps = {.store = s};
    platform_apps(a, &apps);
    struct connect_config kc = {
        .store = s,
        .public_url = opt(a, "public-url") ? opt(a, "public-url") : public_default,
        .qoyod_base = sc.qoyod_base,
        .salla = {.client_id = apps.apps[MODEL_PLATFORM_SALLA].client_id,
                  .client_secret = apps.apps[MODEL_PLATFORM_SALLA].client_secret,
                  .oauth_base = opt(a, "salla-accounts-url"),
                  .api_base = sc.salla.api_base,
                  .webhook_secret = sc.salla.webhook_secret},
        .zid = {.client_id = apps.apps[MODEL_PLATFORM_ZID].client_id,
                .client_secret = apps.apps[MODEL_PLATFORM_ZID].client_secret,
                .oauth_base = opt(a, "zid-oauth-url"),
                .api_base = sc.zid.api_base}};
    sc.connect = connect_new(&kc);
    struct api_config ac = {.store = s,
                            .token_file = opt(a, "api-token-file"),
                            .token = getenv("TARHEEL_API_TOKEN"),
                            .qoyod_base = sc.qoyod_base,
                            .connect = sc.connect};
    if (api_open(&sc.api, &ac, &err) != 0) {
        connect_free(sc.connect);
        store_close(s);
        return fail(&err);
    }
    if (server_open(&srv, &sc, &err) != 0) {
        api_close(sc.api);
        connect_free(sc.connect);
        store_close(s);
        return fail(&err);
    }
    int64_t per_store = 0, per_account = 0, rpm = 0, retry_base = 0, lease_s = 0;
    if ((opt(a, "retry-base-ms") && parse_i64(opt(a, "retry-base-ms"), &retry_base)) ||
        (opt(a, "lease") && (parse_i64(opt(a, "lease"), &lease_s) || lease_s < 1)) ||
        (opt(a, "per-store") && parse_i64(opt(a, "per-store"), &per_store)) ||
        (opt(a, "per-account") && parse_i64(opt(a, "per-account"), &per_account)) ||
        (opt(a, "qoyod-rpm") && parse_i64(opt(a, "qoyod-rpm"), &rpm))) {
        fprintf(stderr, "tarheel: --per-store, --per-account, --qoyod-rpm, --retry-base-ms and "
                        "--lease (seconds, at least 1) take numbers\n");
        server_close(srv);
        api_close(sc.api);
        connect_free(sc.connect);
        store_close(s);
        return CLI_USAGE;
    }
    struct worker_config wc = {.store = s,
                               .threads = (unsigned)workers,
                               .per_store = (int)per_store,
                               .per_account = (int)per_account,
                               .qoyod_rpm = (int)rpm,
                               .backoff_base_ms = (long)retry_base,
                               .lease_ms = lease_s * 1000};
    platform_apps(a, &wc);
    int64_t poll_s = 300;
    if (opt(a, "poll-interval") && (parse_i64(opt(a, "poll-interval"), &poll_s) || poll_s < 0)) {
        fprintf(stderr, "tarheel: --poll-interval takes seconds (0 turns the catch-up poll off)\n");
        server_close(srv);
        api_close(sc.api);
        connect_free(sc.connect);
        store_close(s);
        return CLI_USAGE;
    }
    struct poller *pl = NULL;
    if (poll_s > 0 && poller_start(&pl, s, (long)poll_s, wc.apps, &err) != 0) {
        server_close(srv);
        api_close(sc.api);
        connect_free(sc.connect);
        store_close(s);
        return fail(&err);
    }
    /* The stock poller runs always: it only polls stores whose stock sync
     * is on (off by default), each at its own interval. */
    struct stock_poller *sp = NULL;
    if (stock_poller_start(&sp, s, NULL, &err) != 0) {
        poller_stop(pl);
        server_close(srv);
        api_close(sc.api);
        connect_free(sc.connect);
        store_close(s);
        return fail(&err);
    }
    if (workers > 0 && worker_start(&w, &wc, &err) != 0) {
        stock_poller_stop(sp);
        poller_stop(pl);
        server_close(srv);
        api_close(sc.api);
        connect_free(sc.connect);
        store_close(s);
        return fail(&err);
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("tarheel listening on http://%s (webhooks: /webhooks/salla, /webhooks/zid/…), "
           "database %s\n", sc.listen,
           db_url(a));
    int64_t tenant_tokens = 0;
    if (store_token_count(s, &tenant_tokens, &err) != 0) tenant_tokens = 0;
    if (api_token_count(sc.api) && tenant_tokens)
        printf("REST API at http://%s/api/v1 (%zu token(s), and %lld of tenants)\n", sc.listen,
               api_token_count(sc.api), (long long)tenant_tokens);
    else if (api_token_count(sc.api))
        printf("REST API at http://%s/api/v1 (%zu token(s))\n", sc.listen,
               api_token_count(sc.api));
    else if (tenant_tokens)
        printf("REST API at http://%s/api/v1 (no operator token; %lld of tenants, from `tarheel "
               "token add`)\n",
               sc.listen, (long long)tenant_tokens);
    else
        printf("REST API off for scripts (no token; it answers 403): set --api-token-file FILE "
               "or TARHEEL_API_TOKEN, or make a tenant's with `tarheel token add`\n");
    int64_t users = 0;
    if (store_user_count(s, &users, &err) == 0 && users > 0)
        printf("Dashboard at http://%s/ (%lld user(s))\n", sc.listen, (long long)users);
    else
        printf("Dashboard at http://%s/ has no user yet: add one with `tarheel user add NAME`\n",
               sc.listen);
    fflush(stdout);
    while (!stop_flag) pause();
    stock_poller_stop(sp);
    poller_stop(pl);
    server_close(srv);
    api_close(sc.api);
    connect_free(sc.connect);
    worker_stop(w);
    store_close(s);
    return CLI_OK;
}

/* Reads one line (without its newline) from f into buf; echo off when f is a
 * terminal. Returns 0, or -1 at end of input. */
static int read_secret_line(FILE *f, const char *prompt, char *buf, size_t n)
{
    int tty = isatty(fileno(f));
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(fileno(f), &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(f), TCSAFLUSH, &quiet);
    }
    char *r = fgets(buf, (int)n, f);
    if (tty) {
        tcsetattr(fileno(f), TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!r) return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* tarheel user add NAME: a dashboard login (a new password for an existing
 * name). The password comes from --password-file, else standard input (one
 * line; asked twice, without echo, on a terminal); never from the command
 * line, where other users of the machine could read it. */
static void count_conn(void *arg, const struct store_conn *c)
{
    (void)c;
    ++*(size_t *)arg;
}

/* tarheel secrets status: where the key that seals the database's secrets
 * comes from, and that it opens every connection's. */
static int cmd_secrets_status(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    const char *source, *file, *kid;
    store_secrets_info(s, &source, &file, &kid);
    printf("secrets sealed with AES-256-GCM, key %s from %s%s%s\n", kid, source,
           file[0] ? " " : "", file);
    size_t n = 0;
    struct th_err err;
    int rc = store_conn_list(s, count_conn, &n, &err);
    store_close(s);
    if (rc) {
        fprintf(stderr, "tarheel: %s\n", err.msg);
        return CLI_FAIL;
    }
    printf("%zu connection(s), every secret readable with this key\n", n);
    return CLI_OK;
}

/* tarheel secrets rotate [--new-key-file F] */
static int cmd_secrets_rotate(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    size_t n = 0;
    struct th_err err;
    const char *nk = opt(a, "new-key-file");
    int rc = store_secrets_rotate(s, nk, &n, &err);
    const char *source, *file, *kid;
    store_secrets_info(s, &source, &file, &kid);
    char kid_copy[9];
    snprintf(kid_copy, sizeof kid_copy, "%s", kid);
    char file_copy[512];
    snprintf(file_copy, sizeof file_copy, "%s", file);
    store_close(s);
    if (rc) {
        fprintf(stderr, "tarheel: rotation stopped after %zu connection(s): %s\n  run it again "
                        "to finish (every secret stays readable meanwhile)\n",
                n, err.msg);
        return CLI_FAIL;
    }
    if (nk)
        printf("re-sealed %zu connection(s) with key %s from %s; now start tarheel with "
               "TARHEEL_SECRET_KEY_FILE=%s (and without the old key)\n",
               n, kid_copy, nk, nk);
    else
        printf("re-sealed %zu connection(s) with the new key %s, now in %s\n", n, kid_copy,
               file_copy);
    return CLI_OK;
}

static int cmd_user_add(const struct args *a)
{
    if (a->npos != 1) {
        fprintf(stderr, "tarheel: name one user: tarheel user add NAME\n");
        return CLI_USAGE;
    }
    const char *name = a->pos[0];
    char pw[PASSWD_MAX_LEN + 2] = "", again[PASSWD_MAX_LEN + 2] = "";
    const char *file = opt(a, "password-file");
    FILE *f = file ? fopen(file, "r") : stdin;
    if (!f) {
        fprintf(stderr, "tarheel: cannot read %s: %s\n", file, strerror(errno));
        return CLI_FAIL;
    }
    int rc = read_secret_line(f, "Password: ", pw, sizeof pw);
    if (!rc && !file && isatty(fileno(stdin)))
        rc = read_secret_line(f, "Password again: ", again, sizeof again);
    if (file) fclose(f);
    if (rc) {
        fprintf(stderr, "tarheel: no password given (one line on standard input, or "
                        "--password-file FILE)\n");
        return CLI_USAGE;
    }
    if (!file && isatty(fileno(stdin)) && strcmp(pw, again) != 0) {
        OPENSSL_cleanse(pw, sizeof pw);
        OPENSSL_cleanse(again, sizeof again);
        fprintf(stderr, "tarheel: the two passwords differ; nothing was changed\n");
        return CLI_USAGE;
    }
    char hash[PASSWD_HASH_MAX];
    struct th_err err;
    rc = passwd_hash(pw, 0, hash, sizeof hash, &err);
    OPENSSL_cleanse(pw, sizeof pw);
    OPENSSL_cleanse(again, sizeof again);
    if (rc) {
        fprintf(stderr, "tarheel: %s\n", err.msg);
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    int64_t tenant = 0, now_in = 0;
    rc = tenant_opt(a, s, &tenant);
    if (rc) {
        store_close(s);
        return rc;
    }
    rc = store_user_put_in(s, name, hash, tenant, &err);
    char *h = NULL;
    struct store_tenant t = {0};
    if (!rc && store_user_get_in(s, name, &h, &now_in, &err) == 0)
        (void)!store_tenant_get(s, now_in, &t, &err);
    free(h);
    store_close(s);
    if (rc) return rc == TH_EINVAL ? (fprintf(stderr, "tarheel: %s\n", err.msg), CLI_USAGE)
                                   : fail(&err);
    printf("user %s (tenant %s) can log in to the dashboard (http://HOST:PORT/ of `tarheel "
           "serve`)\n",
           name, t.name[0] ? t.name : "?");
    return CLI_OK;
}

struct user_rows {
    struct store *s;
    json_t *arr; /* --json */
    int n;
};

static void user_row(void *arg, const char *name, int64_t tenant, int64_t set_ms)
{
    struct user_rows *r = arg;
    struct store_tenant t = {0};
    struct th_err err;
    if (store_tenant_get(r->s, tenant, &t, &err) != 0) snprintf(t.name, sizeof t.name, "?");
    char when[32] = "";
    if (set_ms > 0) utc_text(set_ms / 1000, when);
    r->n++;
    if (r->arr)
        json_array_append_new(r->arr, json_pack("{s:s,s:s,s:s?}", "name", name, "tenant", t.name,
                                                "password_set_at", when[0] ? when : NULL));
    else
        printf("%-32s %-24s %s\n", name, t.name, when[0] ? when : "-");
}

/* tarheel user list [--tenant NAME] [--json] */
static int cmd_user_list(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    int64_t tenant = 0;
    int rc = tenant_opt(a, s, &tenant);
    if (rc) {
        store_close(s);
        return rc;
    }
    struct user_rows r = {.s = s, .arr = flag(a, "json") ? json_array() : NULL};
    if (!r.arr) printf("%-32s %-24s %s\n", "NAME", "TENANT", "PASSWORD SET");
    struct th_err err;
    rc = store_user_list(s, tenant, user_row, &r, &err);
    store_close(s);
    if (rc) {
        json_decref(r.arr);
        return fail(&err);
    }
    if (r.arr) return print_json(json_pack("{s:o}", "users", r.arr));
    if (r.n == 0) printf("(no dashboard users: `tarheel user add NAME` makes one)\n");
    return CLI_OK;
}

/* tarheel user remove NAME: the login is gone and its sessions end at
 * their next request (api.c reads the user for every request). */
static int cmd_user_remove(const struct args *a)
{
    if (a->npos != 1) {
        fprintf(stderr, "tarheel: name one user: tarheel user remove NAME\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct th_err err;
    int rc = store_user_delete(s, a->pos[0], &err);
    store_close(s);
    if (rc == TH_ENOTFOUND) {
        fprintf(stderr, "tarheel: %s\n  what to do: `tarheel user list` shows the users\n",
                err.msg);
        return cli_exit_code(rc);
    }
    if (rc) return fail(&err);
    printf("user %s removed: it can no longer log in, and its open dashboard sessions end at "
           "their next request\n",
           a->pos[0]);
    return CLI_OK;
}

/* ---------------------------------------------------------------------- */
/* Tenants and their API tokens                                             */

/* tarheel tenant add NAME */
static int cmd_tenant_add(const struct args *a)
{
    if (a->npos != 1) {
        fprintf(stderr, "tarheel: name one tenant: tarheel tenant add NAME\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    int64_t id = 0;
    struct th_err err;
    int rc = store_tenant_add(s, a->pos[0], &id, &err);
    store_close(s);
    if (rc == TH_ECONFLICT) {
        fprintf(stderr, "tarheel: a tenant named '%s' exists already (`tarheel tenant list`)\n",
                a->pos[0]);
        return CLI_FAIL;
    }
    if (rc) return rc == TH_EINVAL ? (fprintf(stderr, "tarheel: %s\n", err.msg), CLI_USAGE)
                                   : fail(&err);
    printf("tenant %s added (id %lld): give it stores with `tarheel connect ... --tenant %s`, "
           "dashboard users with `tarheel user add NAME --tenant %s`, API tokens with `tarheel "
           "token add --tenant %s`\n",
           a->pos[0], (long long)id, a->pos[0], a->pos[0], a->pos[0]);
    return CLI_OK;
}

struct tenant_rows {
    struct store *s;
    json_t *arr; /* --json */
    int rc;
    struct th_err err;
};

static void count_in_tenant(void *arg, const struct store_conn *c)
{
    (void)c;
    ++*(int64_t *)arg;
}

static void count_token(void *arg, const struct store_token *t)
{
    (void)t;
    ++*(int64_t *)arg;
}

static void tenant_row(void *arg, const struct store_tenant *t)
{
    struct tenant_rows *r = arg;
    int64_t conns = 0, tokens = 0;
    if (!r->rc) r->rc = store_conn_list_in(r->s, t->id, count_in_tenant, &conns, &r->err);
    if (!r->rc) r->rc = store_token_list(r->s, t->id, count_token, &tokens, &r->err);
    char when[32];
    utc_text(t->created_ms / 1000, when);
    if (r->arr)
        json_array_append_new(r->arr, json_pack("{s:I,s:s,s:s,s:I,s:I}", "id", (json_int_t)t->id,
                                                "name", t->name, "created_at", when,
                                                "connections", (json_int_t)conns, "tokens",
                                                (json_int_t)tokens));
    else
        printf("%-6lld %-24s %-21s %11lld %6lld\n", (long long)t->id, t->name, when,
               (long long)conns, (long long)tokens);
}

/* tarheel tenant list [--json] */
static int cmd_tenant_list(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct tenant_rows r = {.s = s, .arr = flag(a, "json") ? json_array() : NULL};
    if (!r.arr)
        printf("%-6s %-24s %-21s %11s %6s\n", "ID", "NAME", "CREATED", "CONNECTIONS", "TOKENS");
    struct th_err err;
    int rc = store_tenant_list(s, tenant_row, &r, &err);
    store_close(s);
    if (!rc && r.rc) {
        rc = r.rc;
        err = r.err;
    }
    if (rc) {
        json_decref(r.arr);
        return fail(&err);
    }
    return r.arr ? print_json(json_pack("{s:o}", "tenants", r.arr)) : CLI_OK;
}

/* tarheel token add --tenant NAME [--label TEXT]: a new random token,
 * printed once; only its SHA-256 digest is stored. */
static int cmd_token_add(const struct args *a)
{
    if (!opt(a, "tenant")) {
        fprintf(stderr, "tarheel: name the tenant the token is for: tarheel token add --tenant "
                        "NAME (operator tokens that see every tenant go in serve's "
                        "--api-token-file)\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    int64_t tenant = 0;
    int rc = tenant_opt(a, s, &tenant);
    if (rc) {
        store_close(s);
        return rc;
    }
    unsigned char rnd[32];
    char token[8 + 2 * sizeof rnd + 1], hex[STORE_TOKEN_DIGEST_HEX + 1];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        store_close(s);
        fprintf(stderr, "tarheel: no random bytes for the token\n");
        return CLI_FAIL;
    }
    int o = snprintf(token, sizeof token, "tht_");
    for (size_t i = 0; i < sizeof rnd; i++)
        o += snprintf(token + o, sizeof token - (size_t)o, "%02x", rnd[i]);
    unsigned char d[32];
    unsigned int dn = 0;
    if (!EVP_Digest(token, strlen(token), d, &dn, EVP_sha256(), NULL) || dn != sizeof d)
        TH_BUG("SHA-256 failed");
    for (size_t i = 0; i < sizeof d; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    int64_t id = 0;
    struct th_err err;
    rc = store_token_add(s, tenant, hex, opt(a, "label"), &id, &err);
    store_close(s);
    OPENSSL_cleanse(rnd, sizeof rnd);
    if (rc) {
        OPENSSL_cleanse(token, sizeof token);
        return rc == TH_EINVAL ? (fprintf(stderr, "tarheel: %s\n", err.msg), CLI_USAGE)
                               : fail(&err);
    }
    if (flag(a, "json")) {
        print_json(json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "tenant", opt(a, "tenant"),
                             "token", token));
    } else {
        fprintf(stderr, "API token %lld of tenant %s (shown once: tarheel keeps only its "
                        "digest; send it as Authorization: Bearer TOKEN):\n",
                (long long)id, opt(a, "tenant"));
        printf("%s\n", token);
    }
    OPENSSL_cleanse(token, sizeof token);
    return CLI_OK;
}

struct token_rows {
    struct store *s;
    json_t *arr;
};

static void token_row(void *arg, const struct store_token *t)
{
    struct token_rows *r = arg;
    struct store_tenant tn = {0};
    struct th_err err;
    if (store_tenant_get(r->s, t->tenant_id, &tn, &err) != 0)
        snprintf(tn.name, sizeof tn.name, "%lld", (long long)t->tenant_id);
    char when[32];
    utc_text(t->created_ms / 1000, when);
    if (r->arr)
        json_array_append_new(r->arr, json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)t->id,
                                                "tenant", tn.name, "label", t->label,
                                                "created_at", when));
    else
        printf("%-6lld %-24s %-21s %s\n", (long long)t->id, tn.name, when, t->label);
}

/* tarheel token list [--tenant NAME] [--json]: never the tokens themselves
 * (tarheel does not have them). */
static int cmd_token_list(const struct args *a)
{
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    int64_t tenant = 0;
    int rc = tenant_opt(a, s, &tenant);
    if (rc) {
        store_close(s);
        return rc;
    }
    struct token_rows r = {.s = s, .arr = flag(a, "json") ? json_array() : NULL};
    if (!r.arr) printf("%-6s %-24s %-21s %s\n", "ID", "TENANT", "CREATED", "LABEL");
    struct th_err err;
    rc = store_token_list(s, tenant, token_row, &r, &err);
    store_close(s);
    if (rc) {
        json_decref(r.arr);
        return fail(&err);
    }
    return r.arr ? print_json(json_pack("{s:o}", "tokens", r.arr)) : CLI_OK;
}

/* tarheel token revoke ID */
static int cmd_token_revoke(const struct args *a)
{
    int64_t id;
    if (a->npos != 1 || parse_i64(a->pos[0], &id) || id <= 0) {
        fprintf(stderr, "tarheel: name one token by its id (`tarheel token list`): tarheel token "
                        "revoke ID\n");
        return CLI_USAGE;
    }
    struct store *s = open_store(a);
    if (!s) return CLI_FAIL;
    struct th_err err;
    int rc = store_token_revoke(s, id, &err);
    store_close(s);
    if (rc) return fail(&err);
    printf("API token %lld revoked: it is refused from now on\n", (long long)id);
    return CLI_OK;
}

/* tarheel demo: runs scripts/demo.sh of the source tree this binary was
 * built in (the demo needs the emulators and the script next to it). */
static int cmd_demo(const struct args *a)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "tarheel: cannot find this program's directory; run `make demo` in the "
                        "source tree\n");
        return CLI_FAIL;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    char *script = xasprintf("%s/../scripts/demo.sh", exe);
#ifdef TH_SOURCE_DIR
    if (access(script, R_OK) != 0) { /* built outside the source tree */
        free(script);
        script = xasprintf("%s/scripts/demo.sh", TH_SOURCE_DIR);
    }
#endif
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "tarheel: %s is missing: the demo runs from the source tree tarheel was "
                        "built in (`make demo` there)\n", script);
        free(script);
        return CLI_FAIL;
    }
    fflush(stdout);
    if (flag(a, "exit-when-done"))
        execl("/bin/bash", "bash", script, exe, "--exit-when-done", (char *)NULL);
    else
        execl("/bin/bash", "bash", script, exe, (char *)NULL);
    fprintf(stderr, "tarheel: cannot run %s: %s\n", script, strerror(errno));
    free(script);
    return CLI_FAIL;
}

/* tarheel report: cli/report.c, which cannot see struct args. */
static int cmd_report(const struct args *a)
{
    struct cli_report_opts ro = {.db = db_url(a),
                                 .store = opt(a, "store"),
                                 .platform = opt(a, "platform"),
                                 .from = opt(a, "from"),
                                 .to = opt(a, "to"),
                                 .json = flag(a, "json")};
    return cli_report(&ro, stdout);
}

/* tarheel reconcile: cli/reconcile.c, which cannot see struct args. */
static int cmd_reconcile(const struct args *a)
{
    struct cli_reconcile_opts ro = {.db = db_url(a),
                                    .store = opt(a, "store"),
                                    .platform = opt(a, "platform"),
                                    .from = opt(a, "from"),
                                    .to = opt(a, "to"),
                                    .json = flag(a, "json")};
    return cli_reconcile(&ro, stdout);
}

/* ---------------------------------------------------------------------- */
/* The command table, with each command's help: `tarheel COMMAND --help`,
 * `tarheel help` and the man page (`tarheel help --man` > docs/tarheel.1)
 * are all printed from it, so they cannot drift apart. */

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct command {
    const char *word, *sub;
    int (*fn)(const struct args *);
    const char *synopsis;             /* options, after "tarheel WORD SUB" */
    const char *summary;              /* one line */
    const char *text;                 /* a paragraph (may be NULL) */
    const char *const *options;       /* "--name VALUE\tdescription" */
    const char *const *examples;      /* "command\tcomment" (comment may be empty) */
} commands[] = {
    {"serve", NULL, cmd_serve, "[--listen HOST:PORT] [--db FILE|URL] [options]",
     "run tarheel: webhook intake, the dashboard, the REST API, workers and the catch-up poll",
     "Listens for Salla and Zid webhooks at /webhooks/<platform>, serves the dashboard at / "
     "(log in with a user from `tarheel user add`) and the REST API under /api/v1 (bearer "
     "tokens from --api-token-file or $TARHEEL_API_TOKEN; docs/openapi.yaml), and moves orders "
     "to Qoyod with a pool of workers. Stops cleanly on Ctrl-C or SIGTERM.",
     L("--listen HOST:PORT\twhere to listen (default 127.0.0.1:8080)",
       "--workers N\ttransfer threads (default 4; 0: none)",
       "--threads N\tHTTP threads (default 4)",
       "--api-token-file FILE\tREST API tokens, one a line (also $TARHEEL_API_TOKEN)",
       "--salla-webhook-secret S\tthe Salla app's webhook secret (also $SALLA_WEBHOOK_SECRET)",
       "--salla-client-id ID, --salla-client-secret S\tthe Salla app, to refresh tokens",
       "--zid-app-token T\tthe Zid app's own webhook token (also $ZID_APP_TOKEN)",
       "--zid-client-id ID, --zid-client-secret S\tthe Zid app, to refresh tokens",
       "--qoyod-url URL, --qoyod-key KEY, --inventory ID\tdefaults for a store installed by "
       "Easy Mode; --qoyod-url is also where the dashboard checks a Qoyod key",
       "--public-url URL\twhere browsers and the platforms reach this serve (default "
       "http://LISTEN); the dashboard's \"Connect a Zid/Salla store\" sends them back to "
       "URL/oauth/<platform>/callback, which must be the app's registered callback",
       "--zid-oauth-url URL, --salla-accounts-url URL\tthe platforms' OAuth hosts (for the "
       "emulators)",
       "--salla-api URL, --zid-api URL\tthe platforms' API bases (for the emulators)",
       "--poll-interval S\tcatch-up poll every S seconds (default 300; 0: off)",
       "--per-store N, --per-account N, --qoyod-rpm N\tconcurrency and Qoyod call budget",
       "--retry-base-ms N\tfirst retry delay of a temporary failure",
       "--lease S\tseconds a worker holds a job before another may take it over (default 120)"),
     L("tarheel user add admin\tfirst, a dashboard login",
       "tarheel serve --listen 0.0.0.0:8080 --salla-client-id ID --salla-client-secret S\t",
       "TARHEEL_API_TOKEN=$(openssl rand -hex 32) tarheel serve\twith the REST API on")},
    {"connect", "qoyod", cmd_connect_qoyod, "--api-key KEY [--qoyod-url URL] [--json]",
     "check a Qoyod API key and list its inventory locations",
     "Nothing is saved: the key and the chosen location are given to `connect salla` or "
     "`connect zid` (or set in the dashboard's Connect page).",
     L("--api-key KEY\tfrom Qoyod: Settings, General Settings, Generate New Key, then Save",
       "--qoyod-url URL\tQoyod's API (default https://api.qoyod.com/2.0)",
       "--json\t{\"ok\":true,\"inventories\":[{\"id\",\"name\",\"ar_name\"}]}"),
     L("tarheel connect qoyod --api-key 3f9c...\t",
       "tarheel connect qoyod --api-key 3f9c... --json | jq '.inventories[].id'\t")},
    {"connect", "salla", cmd_connect_salla,
     "(--oauth --client-id ID --client-secret S | --wait | --store ID --access-token T) "
     "--qoyod-key KEY [--inventory ID] [--tenant NAME] [settings]",
     "connect a Salla store: OAuth custom mode, an Easy Mode install, or tokens you have",
     "Checks the Qoyod key and inventory location first. With --oauth it prints a link for "
     "the merchant to open and waits for the redirect; with --wait it waits for `serve` to "
     "receive the app.store.authorize webhook of an Easy Mode install.",
     L("--oauth\tOAuth custom mode (with --client-id, --client-secret, --redirect-uri URI)",
       "--wait [--store ID]\tEasy Mode: wait for the install's tokens",
       "--store ID --access-token T [--refresh-token T]\ttokens you already have",
       "--webhook-secret S\tthe app's webhook secret",
       "--qoyod-key KEY [--qoyod-url URL] [--inventory ID]\twhere the invoices go",
       "--trigger S, --customer-per-invoice on|off, ...\tsettings, as for `tarheel settings`",
       "--tenant NAME\tthe tenant the store belongs to (default: a new store the default "
       "tenant, a known one stays where it is; naming another tenant moves it)"),
     L("tarheel connect salla --wait --qoyod-key KEY --inventory 1\t",
       "tarheel connect salla --store 1305146709 --access-token T --webhook-secret S "
       "--qoyod-key KEY\t")},
    {"connect", "zid", cmd_connect_zid,
     "--oauth --client-id ID --client-secret S --public-url URL --qoyod-key KEY [--inventory ID] [--tenant NAME]",
     "connect a Zid store (OAuth) and register its order webhooks",
     "Prints a link for the merchant to open, exchanges the code for Zid's two tokens, and "
     "registers the order webhooks at <public-url>/webhooks/zid/<store token> with a Basic "
     "credential.",
     L("--oauth --client-id ID --client-secret S\tthe Zid app",
       "--public-url URL\twhere Zid reaches this tarheel (https in production)",
       "--redirect-uri URI\tdefault http://127.0.0.1:8765/callback",
       "--qoyod-key KEY [--qoyod-url URL] [--inventory ID]\twhere the invoices go",
       "--tenant NAME\tthe tenant the store belongs to (as for `connect salla`)"),
     L("tarheel connect zid --oauth --client-id ID --client-secret S --public-url "
       "https://tarheel.example.com --qoyod-key KEY\t")},
    {"settings", NULL, cmd_settings,
     "--store ID [--platform salla|zid] [--trigger S] [--customer-per-invoice on|off] "
     "[--number-by-order on|off] [--financial-invoice on|off] [--inventory ID] "
     "[--payment-account ID] [--stock-sync on|off] [--stock-interval S] "
     "[--reference-prefix P|none] [--fields-sync on|off] [--name-source store|qoyod] "
     "[--price-source store|qoyod] [--cost-source store|qoyod] [--json]",
     "show a store's settings, or change them", "What each setting does: docs/SETTINGS.md.",
     L("--store ID [--platform salla|zid]\tthe store (default platform salla)",
       "--trigger new|ready|in_transit|completed\tthe status at which an order is transferred",
       "--customer-per-invoice on|off\ta Qoyod contact per customer, or one cash customer",
       "--number-by-order on|off\tinvoice reference = the order number",
       "--financial-invoice on|off\tinvoice and payment (Paid), or Approved only",
       "--inventory ID, --payment-account ID\tQoyod ids",
       "--stock-sync on|off, --stock-interval S\tstock from Qoyod to the store (docs/STOCK.md)",
       "--reference-prefix P|none\tP-<order number> as the invoice reference, for stores sharing "
       "a Qoyod account; only before the first transfer",
       "--fields-sync on|off\tkeep name, price and cost the same on both sides (docs/FIELDS.md)",
       "--name-source, --price-source, --cost-source store|qoyod\tthe side that wins when both "
       "changed (default: name and price the store, cost Qoyod)",
       "--json\tthe settings as the REST API shows them"),
     L("tarheel settings --store 1305146709\tshow",
       "tarheel settings --store 1305146709 --trigger completed --financial-invoice off\t",
       "tarheel settings --store 251073 --platform zid --json\t")},
    {"fields", "sync", cmd_fields_sync, "--store ID [--platform salla|zid] [--full] [--json]",
     "keep a store's product names, prices and costs the same as Qoyod's, now",
     "One pass of the field sync (docs/FIELDS.md), whether it is on or not: a field changed on "
     "one side only is written to the other; changed on both to different values, it is "
     "recorded as a conflict and the field's source of truth wins. `serve` runs a pass every "
     "15 minutes for stores with --fields-sync on. Exits 5 when a remote call failed.",
     L("--store ID [--platform P]\tthe store", "--full\tread both catalogues whole",
       "--json\tthe pass's counts"),
     L("tarheel fields sync --store 1305146709\t")},
    {"conflicts", "resolve", cmd_conflicts_resolve, "ID [--keep store|qoyod] [--json]",
     "mark a conflict reviewed, or keep one side's value",
     "Without --keep the values stay as the policy left them. --keep writes the value that "
     "side had when the conflict was recorded to both sides.",
     L("--keep store|qoyod\tthe side whose value to keep", "--json\tthe conflict afterwards"),
     L("tarheel conflicts resolve 12\t", "tarheel conflicts resolve 12 --keep qoyod\t")},
    {"conflicts", NULL, cmd_conflicts, "[--store ID [--platform salla|zid]] [--all] [--json]",
     "product fields both sides changed differently, for review",
     "Each conflict names the store, SKU and field, both values, the values they had agreed "
     "on, and the side whose value was kept (the field's source of truth).",
     L("--store ID [--platform P]\tone store", "--all\treviewed ones too",
       "--json\tas GET /api/v1/conflicts"),
     L("tarheel conflicts\t", "tarheel conflicts --store 251073 --platform zid --json\t")},
    {"catalogue", NULL, cmd_catalogue, "--store ID [--platform salla|zid]",
     "set up the store's default accounts and categories in Qoyod",
     "Sales, cost of goods sold and opening-balance accounts, and the store's categories; done "
     "at connect, safe to repeat.",
     L("--store ID [--platform salla|zid]\tthe store"),
     L("tarheel catalogue --store 1305146709\t")},
    {"orders", "list", cmd_orders_list, "[--status S] [--failed] [--tenant NAME] [--json]",
     "orders and their transfer state", NULL,
     L("--status new|ready|in_transit|completed|cancelled|refunded|other\tthe store's status",
       "--failed\tonly orders that failed, with their reason",
       "--tenant NAME\tonly the orders of that tenant's stores",
       "--json\t{\"orders\":[...],\"count\":N}, money as halalas and decimal text"),
     L("tarheel orders list --failed\t",
       "tarheel orders list --json | jq -r '.orders[] | select(.state==\"failed\") | .order_id'\t")},
    {"orders", "show", cmd_orders_show, "ORDER_ID [--json]",
     "one order: state, reason, attempts, Qoyod ids and history", NULL,
     L("--json\tthe order with its history (times in UTC)"),
     L("tarheel orders show 2116149737\t", "tarheel orders show 2116149737 --json\t")},
    {"orders", "transfer", cmd_orders_transfer,
     "ORDER_ID... [--store ID] [--queue-only] | --store ID [--platform P] --from D --to D "
     "[--yes] [--queue-only]",
     "send orders to Qoyod now, or every waiting order of a date range",
     "Orders already transferred stay as they are: a transfer never makes a second invoice. "
     "A range (days in Riyadh time, both included) is sent after a confirmation with its "
     "count; cancelled orders are left out.",
     L("--store ID [--platform P]\tthe store", "--from YYYY-MM-DD --to YYYY-MM-DD\ta range",
       "--yes\tconfirm a range without asking (required without a terminal)",
       "--queue-only\tqueue for `serve` instead of sending now"),
     L("tarheel orders transfer 2116149737 2116149811\t",
       "tarheel orders transfer --store 1305146709 --from 2024-01-01 --to 2024-01-31 --yes\t")},
    {"orders", "pull", cmd_orders_pull,
     "--store ID [--platform salla|zid] --from YYYY-MM-DD --to YYYY-MM-DD [--again] "
     "[--max-pages N]",
     "fetch the orders created in a date range and list them as not transferred",
     "Nothing is sent to Qoyod. Resumable: run the same command again after Ctrl-C or a "
     "failure; a finished range says so (--again looks again).",
     L("--store ID [--platform P]\tthe store",
       "--from D --to D\tdays in Riyadh time, both included",
       "--again\tpull a finished range again", "--max-pages N\tstop after N pages"),
     L("tarheel orders pull --store 1305146709 --from 2023-11-01 --to 2024-02-01\t")},
    {"orders", "retry", cmd_orders_retry, "--failed", "send every failed order again", NULL,
     L("--failed\trequired: says what is retried"), L("tarheel orders retry --failed\t")},
    {"report", NULL, cmd_report,
     "--store ID [--platform salla|zid] [--from YYYY-MM] [--to YYYY-MM] [--json]",
     "a store's monthly report: orders by transfer state, sales, VAT, credit notes",
     "Months in Riyadh time, orders by creation date; --json prints what "
     "GET /api/v1/reports/monthly answers.",
     L("--store ID [--platform P]\tthe store", "--from YYYY-MM --to YYYY-MM\tthe months",
       "--json\tthe API's JSON"),
     L("tarheel report --store 1305146709 --from 2024-01 --to 2024-06\t")},
    {"user", "add", cmd_user_add, "NAME [--tenant NAME] [--password-file FILE]",
     "add a dashboard login, or set a new password",
     "The password (10 to 1024 characters) is read from the file or standard input (asked "
     "twice, without echo, on a terminal), never from the command line; it is stored as an "
     "scrypt hash (N=2^15, r=8, p=1). The user sees only its tenant's stores: a new user "
     "without --tenant belongs to the default tenant; a new password keeps the user's tenant "
     "unless --tenant moves it, and ends the user's dashboard sessions begun under the old "
     "one.",
     L("--tenant NAME\tthe tenant whose stores the user sees (`tarheel tenant add`)",
       "--password-file FILE\tread the password from the file's first line"),
     L("tarheel user add admin\tasks for the password",
       "printf '%s\\n' \"$PASSWORD\" | tarheel user add sara@shop.sa\tfrom a script")},
    {"user", "list", cmd_user_list, "[--tenant NAME] [--json]",
     "the dashboard users: name, tenant, when the password was set (never the password)", NULL,
     L("--tenant NAME\tonly that tenant's users",
       "--json\t{\"users\":[{\"name\",\"tenant\",\"password_set_at\"}]}"),
     L("tarheel user list\t", "tarheel user list --tenant acme --json\t")},
    {"user", "remove", cmd_user_remove, "NAME", "remove a dashboard login; its sessions end at once",
     "The user can no longer log in, and every dashboard session of the user ends at its next "
     "request, also in a `tarheel serve` already running. Setting a new password with `tarheel "
     "user add NAME` likewise ends the sessions that began under the old one.",
     L("NAME\tthe user's login name"), L("tarheel user remove sara@shop.sa\t")},
    {"tenant", "add", cmd_tenant_add, "NAME",
     "add a tenant: a set of stores with their own dashboard users and API tokens",
     "A tenant's users and tokens see and change only the tenant's stores and orders in the "
     "dashboard and the REST API (docs/RELIABILITY.md, Tenants). Every store, user and token "
     "made without --tenant belongs to the tenant named default. Operator tokens (serve's "
     "--api-token-file, $TARHEEL_API_TOKEN) see every tenant.",
     L("NAME\t1 to 64 characters of A-Z a-z 0-9 . _ @ -"),
     L("tarheel tenant add acme\t",
       "tarheel connect salla --wait --qoyod-key KEY --tenant acme\tthen give it a store")},
    {"tenant", "list", cmd_tenant_list, "[--json]", "the tenants, with their stores and tokens",
     NULL, L("--json\t{\"tenants\":[{\"id\",\"name\",\"created_at\",\"connections\",\"tokens\"}]}"),
     L("tarheel tenant list\t")},
    {"token", "add", cmd_token_add, "--tenant NAME [--label TEXT] [--json]",
     "make a REST API token for one tenant, printed once",
     "The token (tht_ and 64 hex digits) is printed on standard output once; tarheel keeps "
     "only its SHA-256 digest, so a lost token is revoked and replaced, never shown again. It "
     "works at once, also for a running serve, and sees only the tenant's stores and orders.",
     L("--tenant NAME\tthe tenant (required)", "--label TEXT\tto tell tokens apart in `token list`",
       "--json\t{\"id\",\"tenant\",\"token\"}"),
     L("tarheel token add --tenant acme --label 'ERP sync' > acme.token\t")},
    {"token", "list", cmd_token_list, "[--tenant NAME] [--json]",
     "the tenants' API tokens: id, tenant, label, when made (never the token)", NULL,
     L("--tenant NAME\tonly this tenant's", "--json\t{\"tokens\":[{\"id\",\"tenant\",\"label\",\"created_at\"}]}"),
     L("tarheel token list --tenant acme\t")},
    {"token", "revoke", cmd_token_revoke, "ID", "revoke a tenant's API token at once", NULL,
     L("ID\tfrom `tarheel token list`"), L("tarheel token revoke 3\t")},
    {"secrets", "status", cmd_secrets_status, "",
     "where the key sealing stored tokens and API keys comes from",
     "Platform tokens, webhook secrets and Qoyod API keys are sealed with AES-256-GCM before "
     "they reach the database; the key comes from TARHEEL_SECRET_KEY, TARHEEL_SECRET_KEY_FILE "
     "or a 0600 file made next to the SQLite database (docs/RELIABILITY.md). Also checks that "
     "the key opens every connection's secrets.",
     L("--db FILE|URL\tthe database (default tarheel.db or $TARHEEL_DB)"), L("tarheel secrets status --db /var/lib/tarheel/tarheel.db\t")},
    {"secrets", "rotate", cmd_secrets_rotate, "[--new-key-file FILE]",
     "re-seal every stored secret under a new key",
     "Stop the daemons sharing the database first. Without --new-key-file the key must come "
     "from a file F: a new key is made in F.next, every connection is re-sealed with it, then "
     "it replaces F; if this stops half way every secret stays readable and running it again "
     "finishes. With --new-key-file the key files are left alone: start tarheel with "
     "TARHEEL_SECRET_KEY_FILE=FILE afterwards.",
     L("--new-key-file FILE\ta key you made (openssl rand -hex 32 > FILE; chmod 600 FILE)"),
     L("tarheel secrets rotate\trotates the default key file")},
    {"reconcile", NULL, cmd_reconcile, "--store ID [--platform salla|zid] --from D --to D [--json]",
     "compare the store's orders with Qoyod's invoices and credit notes (read-only)",
     "Lists the orders created in the range (Riyadh days) and the invoices and credit notes "
     "tarheel made: orders with no invoice, invoices with no order, duplicates, amount "
     "mismatches, with totals; orders tarheel failed are listed apart. Exits 1 when there is a "
     "difference (docs/MONEY.md).",
     L("--store ID [--platform P]\tthe store", "--from YYYY-MM-DD --to YYYY-MM-DD\tthe days",
       "--json\tthe API's JSON"),
     L("tarheel reconcile --store 1305146709 --from 2024-01-01 --to 2024-01-31\t")},
    {"errors", NULL, cmd_errors, "[--markdown | --json]", "the error-code table",
     "Every failure tarheel reports has one of these codes (docs/ERRORS.md).",
     L("--markdown\tas docs/ERRORS.md", "--json\t[{\"code\",\"name\",\"what\",\"todo\"}]"),
     L("tarheel errors --json | jq -r '.[] | .name'\t")},
    {"demo", NULL, cmd_demo, "[--exit-when-done]",
     "the emulators and tarheel with sample orders (as `make demo`)",
     "Prints the dashboard's URL and login. With --exit-when-done it exits 0 only if every "
     "order ended as it should.",
     L("--exit-when-done\tcheck and stop instead of staying up"), L("tarheel demo\t")},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char EXIT_CODES[] =
    "0 done; 1 the command ran and failed (the message says why and what to do); 2 the "
    "command line is wrong; 3 not found (no such store, order or user); 4 a credential was "
    "refused (API key, token, password); 5 temporarily unavailable (a service or the "
    "database): run it again later.";

static void command_name(const struct command *c, char *out, size_t n)
{
    snprintf(out, n, "%s%s%s", c->word, c->sub ? " " : "", c->sub ? c->sub : "");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tarheel COMMAND [options]   (database: --db FILE, --db postgres://user@host/db or $TARHEEL_DB)\n\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char name[64];
        command_name(&commands[i], name, sizeof name);
        fprintf(f, "  %-18s %s\n", name, commands[i].summary);
    }
    fprintf(f, "\n`tarheel COMMAND --help` for its options and examples; `tarheel help --man` "
               "for the manual page.\nExit status: %s\n",
            EXIT_CODES);
}

/* Prints "  left  right" with left padded to w (tab-separated in the table). */
static void two_cols(FILE *f, const char *line, int w)
{
    const char *tab = strchr(line, '\t');
    if (!tab) {
        fprintf(f, "  %s\n", line);
        return;
    }
    int n = (int)(tab - line);
    if (!tab[1])
        fprintf(f, "  %.*s\n", n, line);
    else if (n <= w)
        fprintf(f, "  %-*.*s  %s\n", w, n, line, tab + 1);
    else
        fprintf(f, "  %.*s\n  %-*s  %s\n", n, line, w, "", tab + 1);
}

static void command_help(FILE *f, const struct command *c)
{
    char name[64];
    command_name(c, name, sizeof name);
    fprintf(f, "usage: tarheel %s %s\n\n%s.\n", name, c->synopsis, c->summary);
    if (c->text) fprintf(f, "%s\n", c->text);
    fprintf(f, "\nOptions:\n");
    for (size_t i = 0; c->options[i]; i++)
        two_cols(f, c->options[i], 28);
    two_cols(f, "--db FILE|URL\tthe database (default ./tarheel.db, or $TARHEEL_DB; "
                "postgres://... for PostgreSQL)", 28);
    two_cols(f, "--help\tthis text", 28);
    fprintf(f, "\nExamples:\n");
    for (size_t i = 0; c->examples[i]; i++) {
        const char *tab = strchr(c->examples[i], '\t');
        int n = tab ? (int)(tab - c->examples[i]) : (int)strlen(c->examples[i]);
        if (tab && tab[1])
            fprintf(f, "  %.*s    # %s\n", n, c->examples[i], tab + 1);
        else
            fprintf(f, "  %.*s\n", n, c->examples[i]);
    }
    fprintf(f, "\nExit status: %s\n", EXIT_CODES);
}

/* Roff text: backslashes doubled as \e, a leading . or ' escaped, '-' as \-. */
static void roff(FILE *f, const char *s, int n)
{
    if (n < 0) n = (int)strlen(s);
    if (n > 0 && (s[0] == '.' || s[0] == '\'')) fputs("\\&", f);
    for (int i = 0; i < n; i++) {
        if (s[i] == '\\')
            fputs("\\e", f);
        else if (s[i] == '-')
            fputs("\\-", f);
        else
            fputc(s[i], f);
    }
}

/* The manual page, from the table above (docs/tarheel.1). */
static void man_page(FILE *f)
{
    fputs(".\\\" Generated by `tarheel help --man` from src/cli/cli.c: do not edit.\n"
          ".TH TARHEEL 1 \"\" \"tarheel\" \"User Commands\"\n"
          ".SH NAME\ntarheel \\- move Salla and Zid orders into Qoyod as invoices, and stock back\n"
          ".SH SYNOPSIS\n.B tarheel\n.I COMMAND\n[\\fIoptions\\fR]\n"
          ".SH DESCRIPTION\ntarheel keeps online stores and their books in step: orders from "
          "Salla and Zid become invoices in Qoyod, and stock flows back from Qoyod to the store. "
          "An order the platform handed over is never lost and never becomes two invoices.\n"
          "Every command reads the database from \\fB\\-\\-db\\fR \\fIFILE|URL\\fR or "
          "\\fB$TARHEEL_DB\\fR (default \\fI./tarheel.db\\fR; \\fIpostgres://...\\fR for "
          "PostgreSQL) and prints its help with \\fB\\-\\-help\\fR.\n"
          ".SH COMMANDS\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *c = &commands[i];
        char name[64];
        command_name(c, name, sizeof name);
        fputs(".SS \"tarheel ", f);
        fputs(name, f);
        fputs("\"\n.B tarheel ", f);
        fputs(name, f);
        fputc('\n', f);
        roff(f, c->synopsis, -1);
        fputs("\n.PP\n", f);
        roff(f, c->summary, -1);
        fputs(".\n", f);
        if (c->text) {
            roff(f, c->text, -1);
            fputc('\n', f);
        }
        for (size_t j = 0; c->options[j]; j++) {
            const char *tab = strchr(c->options[j], '\t');
            fputs(".TP\n.B ", f);
            roff(f, c->options[j], tab ? (int)(tab - c->options[j]) : -1);
            fputc('\n', f);
            if (tab) roff(f, tab + 1, -1);
            fputc('\n', f);
        }
        fputs(".PP\nExamples:\n.RS\n.nf\n", f);
        for (size_t j = 0; c->examples[j]; j++) {
            const char *tab = strchr(c->examples[j], '\t');
            roff(f, c->examples[j], tab ? (int)(tab - c->examples[j]) : -1);
            if (tab && tab[1]) {
                fputs("    # ", f);
                roff(f, tab + 1, -1);
            }
            fputc('\n', f);
        }
        fputs(".fi\n.RE\n", f);
    }
    fputs(".SH EXIT STATUS\n", f);
    roff(f, EXIT_CODES, -1);
    fputs("\n.SH ENVIRONMENT\n"
          ".TP\n.B TARHEEL_DB\nthe database, when \\fB\\-\\-db\\fR is not given\n"
          ".TP\n.B TARHEEL_API_TOKEN\na REST API token for \\fBserve\\fR\n"
          ".TP\n.B SALLA_WEBHOOK_SECRET, SALLA_CLIENT_ID, SALLA_CLIENT_SECRET, ZID_APP_TOKEN, "
          "ZID_CLIENT_ID, ZID_CLIENT_SECRET\nthe platform apps, when not given as options\n"
          ".SH SEE ALSO\nREADME.md, docs/ARCHITECTURE.md, docs/SETTINGS.md, docs/ERRORS.md, "
          "docs/openapi.yaml\n",
          f);
}

/* tarheel help [COMMAND [SUB]] | help --man */
static int help(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[2], "--man")) {
        man_page(stdout);
        return CLI_OK;
    }
    if (argc < 3) {
        usage(stdout);
        return CLI_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *c = &commands[i];
        if (strcmp(argv[2], c->word) != 0) continue;
        if (c->sub && (argc < 4 || strcmp(argv[3], c->sub) != 0)) continue;
        command_help(stdout, c);
        return CLI_OK;
    }
    fprintf(stderr, "tarheel: no command '%s%s%s'\n\n", argv[2], argc > 3 ? " " : "",
            argc > 3 ? argv[3] : "");
    usage(stderr);
    return CLI_USAGE;
}

int cli_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (!strcmp(argv[1], "help")) return help(argc, argv);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *c = &commands[i];
        if (strcmp(argv[1], c->word) != 0) continue;
        int start = 2;
        if (c->sub) {
            if (argc < 3 || strcmp(argv[2], c->sub) != 0) continue;
            start = 3;
        }
        for (int k = start; k < argc; k++)
            if (!strcmp(argv[k], "--help") || !strcmp(argv[k], "-h")) {
                command_help(stdout, c);
                return CLI_OK;
            }
        struct args a;
        int rc = parse_args(argc, argv, start, &a);
        if (rc) return rc;
        return c->fn(&a);
    }
    /* "tarheel orders" alone, "tarheel orders --help", or an unknown
     * sub-command: the word's commands */
    int word = 0;
    for (size_t i = 0; i < NCOMMANDS; i++)
        word |= !strcmp(argv[1], commands[i].word);
    int asked = argc == 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
    FILE *f = asked ? stdout : stderr;
    if (!word)
        fprintf(f, "tarheel: unknown command '%s'\n\n", argv[1]);
    else if (argc > 2 && !asked)
        fprintf(f, "tarheel: unknown command '%s %s'\n\n", argv[1], argv[2]);
    else if (!asked)
        fprintf(f, "tarheel %s needs one of:\n\n", argv[1]);
    if (word) {
        for (size_t i = 0; i < NCOMMANDS; i++)
            if (!strcmp(argv[1], commands[i].word))
                fprintf(f, "  tarheel %s %-9s %s\n", commands[i].word,
                        commands[i].sub ? commands[i].sub : "", commands[i].summary);
        fprintf(f, "\n`tarheel %s SUBCOMMAND --help` for its options and examples.\n", argv[1]);
    } else {
        usage(f);
    }
    return asked ? CLI_OK : CLI_USAGE;
}
