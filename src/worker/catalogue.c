/*
 * catalogue — default accounts and categories at connect (see catalogue.h;
 * the rules in docs/CATALOGUE.md).
 *
 * Design notes.
 *  - Accounts are per platform, not per store ("Salla sales"), as Qoyod's own
 *    Salla app names them: two Salla stores on one Qoyod account share them.
 *    They are found by the stored mapping (if Qoyod still lists that id),
 *    then by exact name (English, case-insensitive, or Arabic), then
 *    created. The opening-balance account is Qoyod's own when the chart has
 *    one ("أرصدة افتتاحية", code 3201 in every company seen, qoyod.md §6).
 *  - Qoyod's reference and the data-model seed (003) name the account fields
 *    differently (type vs account_kind, name_en vs en_name; parent_kind and
 *    branch_kind only in the seed): qoyod_account_create sends both.
 *  - Categories are matched by name under the same parent, so a merchant's
 *    existing "العطور" is used, not duplicated.
 */
#include "worker/catalogue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"

struct acct_def {
    const char *key;     /* mapping key */
    const char *en, *ar; /* %s: the platform's name */
    const char *type, *parent_kind, *branch_kind;
    const char *code; /* an existing account with this code is used (NULL: none) */
};

/* The three accounts, by platform ("Salla"/"سلة", "Zid"/"زد"). */
static const struct acct_def accts[] = {
    {"sales", "%s sales", "مبيعات %s", "Sale", "Revenue", "Sales", NULL},
    {"cost", "%s cost of goods sold", "تكلفة البضاعة المباعة - %s", "DirectCost", "Expense",
     "Cost of sales", NULL},
    {"opening", "Opening balances", "أرصدة افتتاحية", "Equity", "Equity", "Opening balances",
     "3201"},
};

static void platform_names(enum model_platform p, const char **en, const char **ar)
{
    switch (p) {
    case MODEL_PLATFORM_SALLA:
        *en = "Salla", *ar = "سلة";
        break;
    case MODEL_PLATFORM_ZID:
        *en = "Zid", *ar = "زد";
        break;
    default:
        *en = model_platform_name(p), *ar = model_platform_name(p);
        break;
    }
}

static int find_account(const struct qoyod_account *v, size_t n, int64_t mapped, const char *en,
                        const char *ar, const char *code, int64_t *id)
{
    for (size_t i = 0; mapped && i < n; i++)
        if (v[i].id == mapped) return *id = mapped, 1;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i].name_en, en) == 0 || strcmp(v[i].name_ar, ar) == 0 ||
            (code && strcmp(v[i].code, code) == 0))
            return *id = v[i].id, 1;
    return 0;
}

static int setup_accounts(struct store *s, struct qoyod *q, const struct store_conn *c,
                          struct catalogue_report *out, struct th_err *err)
{
    struct qoyod_account *v = NULL;
    size_t n = 0;
    int rc = qoyod_accounts(q, &v, &n, err);
    if (rc) return rc;
    const char *pen, *par;
    platform_names(c->platform, &pen, &par);
    for (size_t k = 0; k < sizeof accts / sizeof accts[0] && !rc; k++) {
        const struct acct_def *d = &accts[k];
        char en[160], ar[160];
        snprintf(en, sizeof en, d->en, pen);
        snprintf(ar, sizeof ar, d->ar, par);
        int64_t mapped = 0, id = 0;
        if ((rc = store_map_get(s, c->id, "account", d->key, &mapped, err)) == TH_ENOTFOUND) rc = 0;
        if (rc) break;
        if (find_account(v, n, mapped, en, ar, d->code, &id)) {
            out->accounts_found++;
        } else {
            struct qoyod_account_spec spec = {.name_en = en,
                                              .name_ar = ar,
                                              .type = d->type,
                                              .parent_kind = d->parent_kind,
                                              .branch_kind = d->branch_kind};
            if ((rc = qoyod_account_create(q, &spec, &id, err)) != 0) break;
            out->accounts_created++;
            log_info("catalogue_account_created", "conn=%lld key=%s id=%lld name=\"%s\"",
                     (long long)c->id, d->key, (long long)id, en);
        }
        if (id != mapped && (rc = store_map_put(s, c->id, "account", d->key, id, err)) != 0) break;
        if (k == 0) out->sales = id;
        if (k == 1) out->cost = id;
        if (k == 2) out->opening = id;
    }
    free(v);
    return rc;
}

static int setup_categories(struct store *s, struct httpc *hc, struct qoyod *q,
                            const struct store_conn *c, struct catalogue_report *out,
                            struct th_err *err)
{
    const struct platform_ops *p = platform_by_id(c->platform);
    if (!p || !p->categories_list) return 0;
    struct platform_conn pc = {.store_id = c->store_id,
                               .api_base = c->api_base,
                               .access_token = c->access_token,
                               .manager_token = c->manager_token};
    struct platform_category *cats = NULL;
    size_t ncats = 0;
    struct th_err e = {0};
    if (p->categories_list(hc, &pc, &cats, &ncats, &e) != 0) {
        out->categories_failed = 1;
        log_warn("catalogue_categories_unread", "conn=%lld code=%s msg=\"%s\"", (long long)c->id,
                 th_err_name(e.code), e.msg);
        return 0;
    }
    out->categories = ncats;
    struct qoyod_category *qc = NULL;
    size_t nq = 0;
    int rc = qoyod_categories(q, &qc, &nq, err);
    /* ids of what this run mapped, to find a child's parent */
    int64_t *ids = xcalloc(ncats ? ncats : 1, sizeof *ids);
    for (size_t i = 0; i < ncats && !rc; i++) {
        const struct platform_category *sc = &cats[i];
        int64_t parent = 0, mapped = 0, id = 0;
        for (size_t k = 0; k < i && sc->parent_id[0]; k++)
            if (strcmp(cats[k].id, sc->parent_id) == 0) parent = ids[k];
        if ((rc = store_map_get(s, c->id, "category", sc->id, &mapped, err)) == TH_ENOTFOUND)
            rc = 0;
        if (rc) break;
        for (size_t k = 0; mapped && k < nq && !id; k++)
            if (qc[k].id == mapped) id = mapped;
        for (size_t k = 0; k < nq && !id; k++)
            if (strcmp(qc[k].name, sc->name) == 0 && qc[k].parent_id == parent) id = qc[k].id;
        if (id) {
            out->categories_found++;
        } else {
            if ((rc = qoyod_category_create(q, sc->name, parent, &id, err)) != 0) break;
            out->categories_created++;
            log_info("catalogue_category_created", "conn=%lld store_category=%s id=%lld",
                     (long long)c->id, sc->id, (long long)id);
        }
        ids[i] = id;
        if (id != mapped) rc = store_map_put(s, c->id, "category", sc->id, id, err);
    }
    free(ids);
    free(qc);
    free(cats);
    return rc;
}

int catalogue_setup(struct store *s, struct httpc *platform_http,
                    const struct httpc_config *qoyod_cfg, struct qoyod_patience *patience,
                    const struct store_conn *c, struct catalogue_report *out,
                    struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (!c->id) return th_err_set(err, TH_EINVAL, "the connection must be saved first");
    struct httpc_config dflt = {0};
    struct qoyod *q = qoyod_new(c->qoyod_base ? c->qoyod_base : QOYOD_BASE_DEFAULT,
                                c->qoyod_api_key, qoyod_cfg ? qoyod_cfg : &dflt);
    if (patience) qoyod_set_patience(q, patience);
    int rc = setup_accounts(s, q, c, out, err);
    if (!rc) rc = setup_categories(s, platform_http, q, c, out, err);
    qoyod_free(q);
    return rc;
}

void catalogue_accounts(struct store *s, int64_t conn_id, int64_t *sales, int64_t *cost,
                        int64_t *opening)
{
    struct th_err e;
    if (store_map_get(s, conn_id, "account", "sales", sales, &e) != 0) *sales = 0;
    if (store_map_get(s, conn_id, "account", "cost", cost, &e) != 0) *cost = 0;
    if (store_map_get(s, conn_id, "account", "opening", opening, &e) != 0) *opening = 0;
}

struct pending {
    struct store_conn *v;
    size_t n, cap;
    struct store *s;
};

static void collect(void *arg, const struct store_conn *c)
{
    struct pending *p = arg;
    if (!c->status || strcmp(c->status, "active") != 0 || !c->qoyod_api_key) return;
    int64_t id;
    struct th_err e;
    if (store_map_get(p->s, c->id, "account", "sales", &id, &e) == 0) return;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->v = xrealloc(p->v, p->cap * sizeof *p->v);
    }
    struct store_conn *d = &p->v[p->n++];
    memset(d, 0, sizeof *d);
    d->id = c->id;
    d->platform = c->platform;
    d->store_id = c->store_id;
    d->api_base = xstrdup(c->api_base);
    d->access_token = xstrdup(c->access_token);
    d->manager_token = xstrdup(c->manager_token);
    d->qoyod_base = xstrdup(c->qoyod_base);
    d->qoyod_api_key = xstrdup(c->qoyod_api_key);
}

int catalogue_round(struct store *s, struct httpc *platform_http, int64_t now_s, struct th_err *err)
{
    struct pending p = {.s = s};
    int rc = store_conn_list(s, collect, &p, err);
    for (size_t i = 0; i < p.n && !rc; i++) {
        const struct store_conn *c = &p.v[i];
        int64_t tried = 0;
        struct th_err e;
        if (store_map_get(s, c->id, "catalogue", "tried_at", &tried, &e) == 0 &&
            now_s < tried + CATALOGUE_RETRY_S)
            continue;
        if ((rc = store_map_put(s, c->id, "catalogue", "tried_at", now_s, err)) != 0) break;
        struct catalogue_report r;
        if (catalogue_setup(s, platform_http, NULL, NULL, c, &r, &e) != 0)
            log_warn("catalogue_failed", "conn=%lld code=%s msg=\"%s\"", (long long)c->id,
                     th_err_name(e.code), e.msg);
        else
            log_info("catalogue_set_up", "conn=%lld accounts_created=%zu categories_created=%zu",
                     (long long)c->id, r.accounts_created, r.categories_created);
    }
    for (size_t i = 0; i < p.n; i++)
        store_conn_release(&p.v[i]);
    free(p.v);
    return rc;
}
