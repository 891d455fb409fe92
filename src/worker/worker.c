/* worker — job threads and retry timing (see worker.h). */
#include "worker/worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/crash.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "worker/limit.h"
#include "worker/transfer.h"

struct worker {
    struct worker_config cfg;
    struct limit *limit;
    pthread_t threads[WORKER_MAX_THREADS];
    unsigned nthreads;
    pthread_mutex_t lock;
    int stopping;
};

int64_t worker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t worker_backoff_ms(int attempts, uint64_t rnd, long base_ms)
{
    int64_t base = base_ms > 0 ? base_ms : WORKER_BACKOFF_BASE_MS;
    if (attempts < 1) attempts = 1;
    int64_t d = base;
    for (int i = 1; i < attempts && d < WORKER_BACKOFF_MAX_MS; i++) d *= 2;
    if (d > WORKER_BACKOFF_MAX_MS) d = WORKER_BACKOFF_MAX_MS;
    /* jitter in [-25 %, +25 %] */
    int64_t span = d / 2;
    if (span > 0) d = d - d / 4 + (int64_t)(rnd % (uint64_t)(span + 1));
    return d;
}

int64_t worker_retry_delay_ms(enum transfer_cause cause, int64_t hint_ms, int attempts,
                              uint64_t rnd, long base_ms)
{
    switch (cause) {
    case TRANSFER_CAUSE_RATE:
        if (hint_ms <= 0) return 1000;
        return hint_ms > WORKER_RATE_WAIT_MAX_MS ? WORKER_RATE_WAIT_MAX_MS : hint_ms;
    case TRANSFER_CAUSE_AT_ONCE:
        return 0;
    case TRANSFER_CAUSE_WAIT:
        return hint_ms > 0 ? hint_ms : WORKER_WAIT_DEFAULT_MS;
    case TRANSFER_CAUSE_FAILURE:
    default:
        return worker_backoff_ms(attempts, rnd, base_ms);
    }
}

int worker_retry_counts(enum transfer_cause cause)
{
    return cause != TRANSFER_CAUSE_RATE && cause != TRANSFER_CAUSE_AT_ONCE &&
           cause != TRANSFER_CAUSE_WAIT;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int run_claimed(const struct worker_config *cfg, struct transfer_env *env,
                       struct limit *lim, const struct store_job *job, const char *owner,
                       int64_t lease, uint64_t *rng, struct th_err *err);

/* Claims (around the connections at their limits) and runs one job.
 * Returns 1 when a job ran, 0 when none was due, or a negative store error. */
static int run_one(const struct worker_config *cfg, struct transfer_env *env, struct limit *lim,
                   const char *owner, uint64_t *rng, struct th_err *err)
{
    struct store_job job;
    int64_t lease = cfg->lease_ms > 0 ? cfg->lease_ms : 120000;
    int64_t busy[STORE_MAX_CLAIM_EXCEPT];
    if (limit_shared(lim)) {
        /* Many processes: the claim itself counts the leases of the store
         * and of its Qoyod account in the database, and skips paused ones. */
        struct store_claim_limits cl = limit_claim_limits(lim);
        int rc = store_job_claim_limited(cfg->store, owner, lease, &cl, NULL, 0, &job, err);
        if (rc == TH_ENOTFOUND) return 0;
        if (rc) return rc;
        return run_claimed(cfg, env, lim, &job, owner, lease, rng, err);
    }
    limit_lock(lim);
    size_t nbusy = limit_busy(lim, worker_now_ms(), busy, STORE_MAX_CLAIM_EXCEPT);
    int rc = store_job_claim_except(cfg->store, owner, lease, busy, nbusy, &job, err);
    int later = 0;
    if (rc == 0 && !limit_knows(lim, job.conn_id)) {
        /* First job of this connection here: learn its Qoyod account, and
         * give the job back if that account is full or paused. */
        struct store_conn c;
        struct th_err e2;
        if (store_conn_get(cfg->store, job.conn_id, &c, &e2) == 0) {
            limit_learn(lim, job.conn_id, limit_account_key(c.qoyod_base, c.qoyod_api_key));
            store_conn_release(&c);
        }
        nbusy = limit_busy(lim, worker_now_ms(), busy, STORE_MAX_CLAIM_EXCEPT);
        for (size_t i = 0; i < nbusy; i++) later |= busy[i] == job.conn_id;
    }
    if (rc == 0 && !later) limit_enter(lim, job.conn_id);
    limit_unlock(lim);
    if (later) {
        /* its turn, not a failure: the claim is not counted */
        rc = store_job_defer_as(cfg->store, job.id, owner, worker_now_ms() + 200,
                                "waiting for the Qoyod account's limit", err);
        return rc ? rc : 0;
    }
    if (rc == TH_ENOTFOUND) return 0;
    if (rc) return rc;
    return run_claimed(cfg, env, lim, &job, owner, lease, rng, err);
}

/* Runs a claimed job and finishes or reschedules it. Returns 1, or a
 * negative store error. */
static int run_claimed(const struct worker_config *cfg, struct transfer_env *env,
                       struct limit *lim, const struct store_job *jp, const char *owner,
                       int64_t lease, uint64_t *rng, struct th_err *err)
{
    struct store_job job = *jp;
    th_crash_point("job.claimed");
    struct transfer_result res;
    struct th_err terr = {0};
    /* The transfer renews the lease before each Qoyod call (transfer.h). */
    env->job_id = job.id;
    env->job_owner = owner;
    env->lease_ms = lease;
    env->renewed_ms = worker_now_ms();
    int rc = transfer_run(env, job.conn_id, job.order_id, job.manual, &res, &terr);
    env->job_id = 0;
    if (!limit_shared(lim)) limit_leave(lim, job.conn_id);
    if (rc == TH_ECONFLICT) {
        /* A fenced write of the order found the job in other hands: this
         * worker stalled past its lease and another took the order over
         * (or finished it). Nothing was written; the job is the holder's. */
        log_warn("job_taken_over", "job=%lld order=%lld worker=%s msg=\"%s\"", (long long)job.id,
                 (long long)job.order_id, owner, terr.msg);
        return 1;
    }
    if (rc) {
        /* The store failed mid-transfer: run the job again soon. */
        log_error("worker_store_failed", "job=%lld order=%lld code=%s msg=\"%s\"",
                  (long long)job.id, (long long)job.order_id, th_err_name(rc), terr.msg);
        res.verdict = TRANSFER_RETRY;
        res.cause = TRANSFER_CAUSE_FAILURE;
        res.retry_after_ms = 0;
    }
    if (res.pause_account_ms > 0)
        limit_pause(lim, job.conn_id, worker_now_ms() + res.pause_account_ms);
    if (res.verdict == TRANSFER_RETRY) {
        /* The delay by why (worker_retry_delay_ms); only failures count in
         * the job's attempts, so only they grow the backoff. */
        int64_t delay = worker_retry_delay_ms(res.cause, res.retry_after_ms, job.attempts,
                                              xorshift(rng), cfg->backoff_base_ms);
        const char *why = terr.msg[0] ? terr.msg : "retry";
        rc = worker_retry_counts(res.cause)
                 ? store_job_retry_as(cfg->store, job.id, owner, worker_now_ms() + delay, why, err)
                 : store_job_defer_as(cfg->store, job.id, owner, worker_now_ms() + delay, why, err);
    } else {
        rc = store_job_done_as(cfg->store, job.id, owner, err);
    }
    if (rc == TH_ECONFLICT) {
        /* This worker stalled past its lease and another one claimed the
         * job: that one finishes it (the fenced write changed nothing). */
        log_warn("job_taken_over", "job=%lld order=%lld worker=%s msg=\"%s\"", (long long)job.id,
                 (long long)job.order_id, owner, err->msg);
        return 1;
    }
    return rc ? rc : 1;
}

static void env_init(struct transfer_env *env, const struct worker_config *cfg)
{
    memset(env, 0, sizeof *env);
    env->store = cfg->store;
    env->platform_http = httpc_new(&cfg->http);
    env->qoyod_cfg = cfg->http;
    for (int i = 0; i < 4; i++) env->apps[i] = cfg->apps[i].client_id ? &cfg->apps[i] : NULL;
}

int worker_drain(const struct worker_config *cfg, int64_t deadline_ms, struct th_err *err)
{
    struct transfer_env env;
    env_init(&env, cfg);
    struct limit *lim = limit_new(cfg->per_store, cfg->per_account, cfg->qoyod_rpm);
    limit_share(lim, cfg->store);
    env.limit = lim;
    uint64_t rng = (uint64_t)worker_now_ms();
    int rc = 0;
    while (worker_now_ms() < deadline_ms) {
        rc = run_one(cfg, &env, lim, "drain", &rng, err);
        if (rc <= 0) break;
        rc = 0;
    }
    limit_free(lim);
    httpc_free(env.platform_http);
    return rc < 0 ? rc : 0;
}

struct thread_arg {
    struct worker *w;
    unsigned index;
};

static void *thread_main(void *p)
{
    struct thread_arg *ta = p;
    struct worker *w = ta->w;
    /* Lease owners must be unique across every host sharing the store. */
    char host[64] = "host";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    char owner[160];
    snprintf(owner, sizeof owner, "%s-%s-%d-%u", w->cfg.name ? w->cfg.name : "worker", host,
             (int)getpid(), ta->index);
    uint64_t rng = (uint64_t)worker_now_ms() ^ ((uint64_t)ta->index << 32);
    free(ta);
    struct transfer_env env;
    env_init(&env, &w->cfg);
    env.limit = w->limit;
    long idle = w->cfg.idle_poll_ms > 0 ? w->cfg.idle_poll_ms : 200;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        int stop = w->stopping;
        pthread_mutex_unlock(&w->lock);
        if (stop) break;
        struct th_err err = {0};
        int rc = run_one(&w->cfg, &env, w->limit, owner, &rng, &err);
        if (rc == 1) continue;
        if (rc < 0)
            log_error("worker_claim_failed", "worker=%s code=%s msg=\"%s\"", owner,
                      th_err_name(rc), err.msg);
        struct timespec ts = {idle / 1000, (idle % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    httpc_free(env.platform_http);
    return NULL;
}

int worker_start(struct worker **out, const struct worker_config *cfg, struct th_err *err)
{
    struct worker *w = xcalloc(1, sizeof *w);
    w->cfg = *cfg;
    unsigned n = cfg->threads ? cfg->threads : 4;
    if (n > WORKER_MAX_THREADS)
        return free(w), th_err_set(err, TH_EINVAL, "at most %d worker threads",
                                   WORKER_MAX_THREADS);
    pthread_mutex_init(&w->lock, NULL);
    w->limit = limit_new(cfg->per_store, cfg->per_account, cfg->qoyod_rpm);
    limit_share(w->limit, cfg->store);
    for (unsigned i = 0; i < n; i++) {
        struct thread_arg *ta = xmalloc(sizeof *ta);
        ta->w = w;
        ta->index = i;
        if (pthread_create(&w->threads[i], NULL, thread_main, ta) != 0) {
            free(ta);
            w->nthreads = i;
            worker_stop(w);
            return th_err_set(err, TH_EINTERNAL, "cannot start worker thread %u", i);
        }
    }
    w->nthreads = n;
    *out = w;
    return 0;
}

void worker_stop(struct worker *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = 1;
    pthread_mutex_unlock(&w->lock);
    for (unsigned i = 0; i < w->nthreads; i++) pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->lock);
    limit_free(w->limit);
    free(w);
}
