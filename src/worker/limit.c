/* limit — per-store and per-account concurrency and pauses (see limit.h). */
#include "worker/limit.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/xmalloc.h"

struct lconn {
    int64_t conn;
    uint64_t account; /* 0 = not known yet */
    int running;
};

struct lacct {
    uint64_t account;
    int running;
    int64_t paused_until_ms;
    int64_t milli_tokens; /* call budget × 1000 */
    int64_t refilled_ms;  /* when milli_tokens was last brought up to date */
};

struct limit {
    pthread_mutex_t mu;
    struct store *shared; /* the limits live there (limit_share); NULL: here */
    int per_store, per_account, rpm;
    struct lconn *conns;
    size_t nconns, cconns;
    struct lacct *accts;
    size_t naccts, caccts;
};

struct limit *limit_new(int per_store, int per_account, int account_rpm)
{
    struct limit *l = xcalloc(1, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
    l->per_store = per_store > 0 ? per_store : LIMIT_PER_STORE_DEFAULT;
    l->per_account = per_account > 0 ? per_account : LIMIT_PER_ACCOUNT_DEFAULT;
    l->rpm = account_rpm == 0 ? LIMIT_ACCOUNT_RPM_DEFAULT : account_rpm;
    return l;
}

void limit_free(struct limit *l)
{
    if (!l) return;
    pthread_mutex_destroy(&l->mu);
    free(l->conns);
    free(l->accts);
    free(l);
}

void limit_lock(struct limit *l)
{
    pthread_mutex_lock(&l->mu);
}

void limit_unlock(struct limit *l)
{
    pthread_mutex_unlock(&l->mu);
}

static struct lconn *conn_of(struct limit *l, int64_t conn, int create)
{
    for (size_t i = 0; i < l->nconns; i++)
        if (l->conns[i].conn == conn) return &l->conns[i];
    if (!create) return NULL;
    if (l->nconns == l->cconns) {
        l->cconns = l->cconns ? 2 * l->cconns : 16;
        l->conns = xrealloc(l->conns, l->cconns * sizeof *l->conns);
    }
    l->conns[l->nconns] = (struct lconn){.conn = conn};
    return &l->conns[l->nconns++];
}

static struct lacct *acct_of(struct limit *l, uint64_t account, int create)
{
    if (!account) return NULL;
    for (size_t i = 0; i < l->naccts; i++)
        if (l->accts[i].account == account) return &l->accts[i];
    if (!create) return NULL;
    if (l->naccts == l->caccts) {
        l->caccts = l->caccts ? 2 * l->caccts : 8;
        l->accts = xrealloc(l->accts, l->caccts * sizeof *l->accts);
    }
    l->accts[l->naccts] = (struct lacct){.account = account,
                                         .milli_tokens = LIMIT_ACCOUNT_BURST * 1000LL,
                                         .refilled_ms = -1};
    return &l->accts[l->naccts++];
}

size_t limit_busy(struct limit *l, int64_t now_ms, int64_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < l->nconns && n < max; i++) {
        const struct lconn *c = &l->conns[i];
        const struct lacct *a = acct_of(l, c->account, 0);
        if (c->running >= l->per_store ||
            (a && (a->running >= l->per_account || a->paused_until_ms > now_ms)))
            out[n++] = c->conn;
    }
    return n;
}

int limit_knows(struct limit *l, int64_t conn)
{
    const struct lconn *c = conn_of(l, conn, 0);
    return c && c->account;
}

void limit_learn(struct limit *l, int64_t conn, uint64_t account)
{
    struct lconn *c = conn_of(l, conn, 1);
    if (c->account == account) return;
    /* Move its running jobs to the new account's count. */
    struct lacct *old = acct_of(l, c->account, 0);
    if (old) old->running -= c->running;
    c->account = account;
    acct_of(l, account, 1)->running += c->running;
}

void limit_enter(struct limit *l, int64_t conn)
{
    struct lconn *c = conn_of(l, conn, 1);
    c->running++;
    struct lacct *a = acct_of(l, c->account, 1);
    if (a) a->running++;
}

void limit_leave(struct limit *l, int64_t conn)
{
    pthread_mutex_lock(&l->mu);
    struct lconn *c = conn_of(l, conn, 0);
    if (c && c->running > 0) {
        c->running--;
        struct lacct *a = acct_of(l, c->account, 0);
        if (a && a->running > 0) a->running--;
    }
    pthread_mutex_unlock(&l->mu);
}

int limit_share(struct limit *l, struct store *s)
{
    if (s && store_shared(s)) l->shared = s;
    return l->shared != NULL;
}

struct store *limit_shared(const struct limit *l)
{
    return l->shared;
}

struct store_claim_limits limit_claim_limits(const struct limit *l)
{
    return (struct store_claim_limits){.per_store = l->per_store, .per_account = l->per_account};
}

int64_t limit_call_for(struct limit *l, int64_t conn, uint64_t account, int64_t now_ms)
{
    if (!l->shared || l->rpm < 0) return limit_call(l, account, now_ms);
    int64_t wait = 0;
    struct th_err err = {0};
    if (store_account_take(l->shared, conn, l->rpm, LIMIT_ACCOUNT_BURST, &wait, &err) != 0) {
        log_warn("call_budget_unavailable", "conn=%lld code=%s msg=\"%s\"", (long long)conn,
                 th_err_name(err.code), err.msg);
        return 0;
    }
    return wait;
}

void limit_pause(struct limit *l, int64_t conn, int64_t until_ms)
{
    if (l->shared) {
        struct th_err err = {0};
        if (store_account_pause(l->shared, conn, until_ms, &err) != 0)
            log_warn("account_pause_lost", "conn=%lld code=%s msg=\"%s\"", (long long)conn,
                     th_err_name(err.code), err.msg);
        return;
    }
    pthread_mutex_lock(&l->mu);
    struct lconn *c = conn_of(l, conn, 0);
    struct lacct *a = c ? acct_of(l, c->account, 0) : NULL;
    if (a && a->paused_until_ms < until_ms) a->paused_until_ms = until_ms;
    pthread_mutex_unlock(&l->mu);
}

int64_t limit_call(struct limit *l, uint64_t account, int64_t now_ms)
{
    if (l->rpm < 0) return 0;
    pthread_mutex_lock(&l->mu);
    struct lacct *a = acct_of(l, account ? account : 1, 1);
    int64_t wait = 0;
    if (a->paused_until_ms > now_ms) {
        wait = a->paused_until_ms - now_ms;
    } else {
        /* rpm calls a minute = rpm milli-tokens a millisecond / 60 */
        if (a->refilled_ms >= 0 && now_ms > a->refilled_ms)
            a->milli_tokens += (now_ms - a->refilled_ms) * l->rpm / 60;
        if (a->milli_tokens > LIMIT_ACCOUNT_BURST * 1000LL)
            a->milli_tokens = LIMIT_ACCOUNT_BURST * 1000LL;
        a->refilled_ms = now_ms;
        if (a->milli_tokens >= 1000)
            a->milli_tokens -= 1000;
        else
            wait = ((1000 - a->milli_tokens) * 60 + l->rpm - 1) / l->rpm;
    }
    pthread_mutex_unlock(&l->mu);
    return wait;
}

uint64_t limit_account_key(const char *base, const char *api_key)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *s = base ? base : ""; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    h = (h ^ '\n') * 0x100000001b3ULL;
    for (const char *s = api_key ? api_key : ""; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h ? h : 1;
}
