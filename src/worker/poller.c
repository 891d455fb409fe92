/* poller — the catch-up poll (see poller.h). */
#include "worker/poller.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "worker/transfer.h"

/* Does this listed order need a job? */
static int changed(struct store *s, int64_t conn, const struct platform_order_ref *ref,
                   struct th_err *err, int *need)
{
    struct store_order so;
    int rc = store_order_get(s, conn, ref->id, &so, err);
    if (rc == TH_ENOTFOUND) {
        *need = 1;
        return 0;
    }
    if (rc) return rc;
    *need = (ref->status >= 0 && ref->status != (int)so.status) ||
            (ref->updated_at && ref->updated_at > so.updated_at);
    store_order_release(&so);
    return 0;
}

struct conns {
    struct store_conn *v;
    size_t n, cap;
};

static void collect(void *arg, const struct store_conn *c)
{
    struct conns *cs = arg;
    if (!c->status || strcmp(c->status, "active") != 0) return;
    if (cs->n == cs->cap) {
        cs->cap = cs->cap ? 2 * cs->cap : 8;
        cs->v = xrealloc(cs->v, cs->cap * sizeof *cs->v);
    }
    /* Only what a round needs, copied (the callback's row is borrowed). */
    struct store_conn *d = &cs->v[cs->n++];
    memset(d, 0, sizeof *d);
    d->id = c->id;
    d->platform = c->platform;
    d->store_id = c->store_id;
    d->connected_at = c->connected_at;
    d->api_base = xstrdup(c->api_base);
    d->access_token = xstrdup(c->access_token);
    d->manager_token = xstrdup(c->manager_token);
    /* and what a token refresh reads and writes (transfer_token_ensure) */
    d->refresh_token = xstrdup(c->refresh_token);
    d->token_expires_at = c->token_expires_at;
    d->status = xstrdup(c->status);
}

/* The connection's grant is gone: said as a transfer says it (the
 * connection is "needs_reinstall" and err names what to do). */
static void report_gone(const struct store_conn *c, const struct th_err *e, struct poller_stats *st)
{
    st->reinstall++;
    log_error("poll_needs_reinstall", "conn=%lld store=%lld code=%s msg=\"%s\"", (long long)c->id,
              (long long)c->store_id, th_err_name(e->code), e->msg);
}

static int poll_conn(struct transfer_env *env, struct store_conn *c, int64_t now,
                     struct poller_stats *st, struct th_err *err)
{
    struct store *s = env->store;
    struct httpc *hc = env->platform_http;
    const struct platform_ops *p = platform_by_id(c->platform);
    if (!p || !p->orders_page) return 0;
    st->stores++;
    int64_t cursor = 0;
    int rc = store_map_get(s, c->id, "poll", "cursor", &cursor, err);
    if (rc == TH_ENOTFOUND) {
        cursor = c->connected_at ? c->connected_at : now - 86400;
        rc = 0;
    } else if (rc) {
        return rc;
    }
    struct platform_query q = {.by_updated = p->lists_by_updated, .page = 1};
    q.from = cursor - POLLER_OVERLAP_S;
    if (!p->lists_by_updated) {
        /* Creation dates only: a sliding window catches late status changes. */
        q.from = now - POLLER_WINDOW_S;
        if (c->connected_at && q.from < c->connected_at - POLLER_OVERLAP_S)
            q.from = c->connected_at - POLLER_OVERLAP_S;
    }
    struct platform_conn pc = {.store_id = c->store_id,
                               .api_base = c->api_base,
                               .access_token = c->access_token,
                               .manager_token = c->manager_token};
    int64_t newest = cursor;
    int refreshed = 0;
    for (; q.page <= POLLER_MAX_PAGES; q.page++) {
        struct platform_page pg;
        struct th_err e;
        int lrc = p->orders_page(hc, &pc, &q, &pg, &e);
        if (lrc == TH_EAUTH && !refreshed) {
            /* The token expired (early, or while no order moved: the
             * transfers refresh a day ahead) or was rotated: refresh it
             * once through the transfers' own path (per-store lock, new
             * pair saved before use), or take the one another worker just
             * saved, and list this page again; only a grant that is gone
             * stops the store. */
            refreshed = 1;
            struct th_err te;
            int trc = transfer_token_ensure(env, c, 1, &te);
            if (trc == TH_EAUTH) {
                report_gone(c, &te, st);
                return 0;
            }
            if (trc == 0) {
                /* c may now hold the stored row (its strings replaced) */
                pc = (struct platform_conn){.store_id = c->store_id,
                                            .api_base = c->api_base,
                                            .access_token = c->access_token,
                                            .manager_token = c->manager_token};
                lrc = p->orders_page(hc, &pc, &q, &pg, &e);
            } else {
                e = te; /* why the refresh failed says more than the 401 */
            }
        }
        if (lrc != 0) {
            st->failed++;
            log_warn("poll_failed", "conn=%lld page=%d code=%s msg=\"%s\"", (long long)c->id,
                     q.page, th_err_name(e.code), e.msg);
            return 0; /* the cursor stays: the next round lists again */
        }
        for (size_t i = 0; i < pg.n && !rc; i++) {
            const struct platform_order_ref *ref = &pg.orders[i];
            st->listed++;
            int64_t seen = ref->updated_at ? ref->updated_at : ref->created_at;
            if (seen > newest) newest = seen;
            int need = 0;
            rc = changed(s, c->id, ref, err, &need);
            if (rc || !need) continue;
            char key[96];
            snprintf(key, sizeof key, "poll:%lld:%d:%lld", (long long)ref->id, ref->status,
                     (long long)(ref->updated_at ? ref->updated_at : ref->created_at));
            int dup = 0;
            rc = store_event_ingest(s, c->id, key, "poll", ref->id, "{}", 2, &dup, err);
            if (!rc && !dup) st->queued++;
        }
        int more = pg.more;
        platform_page_release(&pg);
        if (rc) return rc;
        if (!more) break;
    }
    if (newest > now) newest = now; /* a clock ahead of ours must not skip orders */
    if (p->webhooks_health) {
        /* Zid suspends a failing endpoint and drops its events: recover it
         * (this round's listing already covered what it dropped). */
        int health = 0;
        struct th_err e;
        if (p->webhooks_health(hc, &pc, 1, &health, &e) != 0) {
            log_warn("webhook_health_failed", "conn=%lld code=%s msg=\"%s\"", (long long)c->id,
                     th_err_name(e.code), e.msg);
        } else {
            if (health)
                log_warn("webhook_health", "conn=%lld health=%s%s", (long long)c->id,
                         health == 2 ? "broken" : "degraded", health == 2 ? " recovered=1" : "");
            if ((rc = store_map_put(s, c->id, "health", "webhooks", health, err)) != 0) return rc;
            if ((rc = store_map_put(s, c->id, "health", "checked_at", now, err)) != 0) return rc;
            if (health == 2 &&
                (rc = store_map_put(s, c->id, "health", "recovered_at", now, err)) != 0)
                return rc;
        }
    }
    return newest != cursor ? store_map_put(s, c->id, "poll", "cursor", newest, err) : 0;
}

int poller_round(struct store *s, struct httpc *hc, const struct platform_app *const *apps,
                 int64_t now, struct poller_stats *st, struct th_err *err)
{
    return poller_round_as(s, hc, apps, now, NULL, 0, st, err);
}

int poller_round_as(struct store *s, struct httpc *hc, const struct platform_app *const *apps,
                    int64_t now, const char *owner, int64_t lease_ms, struct poller_stats *st,
                    struct th_err *err)
{
    memset(st, 0, sizeof *st);
    struct transfer_env env = {.store = s, .platform_http = hc};
    for (int i = 0; apps && i < 4; i++)
        env.apps[i] = apps[i];
    struct conns cs = {0};
    int rc = store_conn_list(s, collect, &cs, err);
    for (size_t i = 0; i < cs.n && !rc; i++) {
        if (owner) {
            char name[48];
            snprintf(name, sizeof name, "poll:%lld", (long long)cs.v[i].id);
            int held = 0;
            if ((rc = store_lease_take(s, name, owner, lease_ms, &held, err)) != 0) break;
            if (!held) {
                st->elsewhere++;
                continue;
            }
        }
        rc = poll_conn(&env, &cs.v[i], now, st, err);
    }
    for (size_t i = 0; i < cs.n; i++) store_conn_release(&cs.v[i]);
    free(cs.v);
    if (!rc && (st->queued || st->reinstall))
        log_info("poll_round", "stores=%zu listed=%zu queued=%zu failed=%zu reinstall=%zu",
                 st->stores, st->listed, st->queued, st->failed, st->reinstall);
    return rc;
}

struct poller {
    struct store *store;
    long interval_s;
    struct platform_app apps[4];
    const struct platform_app *app_ptrs[4]; /* NULL where no client is configured */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    struct httpc *hc = httpc_new(NULL);
    /* A shared store: poll only the stores no other process polls. */
    char owner[128] = "";
    if (store_shared(p->store)) {
        char host[64] = "host";
        if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "host");
        host[sizeof host - 1] = '\0';
        snprintf(owner, sizeof owner, "poller-%s-%d", host, (int)getpid());
    }
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        pthread_mutex_unlock(&p->mu);
        struct poller_stats st;
        struct th_err err;
        if (poller_round_as(p->store, hc, p->app_ptrs, (int64_t)time(NULL), owner[0] ? owner : NULL,
                            (int64_t)p->interval_s * 1000, &st, &err) != 0)
            log_error("poll_store_failed", "code=%s msg=\"%s\"", th_err_name(err.code), err.msg);
        pthread_mutex_lock(&p->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += p->interval_s;
        while (!p->stopping && pthread_cond_timedwait(&p->cv, &p->mu, &until) == 0) {}
    }
    pthread_mutex_unlock(&p->mu);
    httpc_free(hc);
    return NULL;
}

int poller_start(struct poller **out, struct store *s, long interval_s,
                 const struct platform_app *apps, struct th_err *err)
{
    if (interval_s <= 0) return th_err_set(err, TH_EINVAL, "poll interval must be positive");
    struct poller *p = xcalloc(1, sizeof *p);
    p->store = s;
    p->interval_s = interval_s;
    for (int i = 0; apps && i < 4; i++) {
        p->apps[i] = apps[i];
        p->app_ptrs[i] = apps[i].client_id ? &p->apps[i] : NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, poller_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
        free(p);
        return th_err_set(err, TH_EINTERNAL, "cannot start the poller thread");
    }
    *out = p;
    return 0;
}

void poller_stop(struct poller *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
