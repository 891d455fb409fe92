/*
 * pull — old orders (see pull.h).
 *
 * Design notes.
 *  - Two passes. A run first lists the range (orders_page by creation date,
 *    oldest first: cheap, 60 or 100 orders a request) and only then fetches
 *    the orders it does not know, one request each. Listing first gives the
 *    exact count the progress bar needs, whatever the platform says about
 *    totals, and costs a few percent of the requests.
 *  - Progress is kept per listing page: "<range>:page" is the last page
 *    whose every order is recorded, "<range>:seen" the orders of the range
 *    on those pages, "<range>:done" when the range was completed (unix s; 0
 *    while not). The next run lists from the page after, so it neither asks
 *    for those pages again nor fetches their orders. Orders of the page a run
 *    stopped in are recorded already and are not fetched again either: every
 *    order is looked up in the store before it is fetched.
 *    XXX pages are stable because both platforms list oldest first and new
 *    orders come last; an order deleted in the store between two runs
 *    shifts later ones one place back, and the first of them could then be
 *    skipped by the resumed run (the catch-up poll does not look that far
 *    back). Re-listing the last page done would close that gap.
 *  - Pulled orders are added (store_order_add), never put: an order a
 *    webhook or a transfer brought meanwhile keeps its row as it is.
 *  - A rate limit is not a failure: a 429 waits its Retry-After (the
 *    adapter only says TH_ETEMP; httpc_last_answer tells a 429 and its wait
 *    from a 503), then the same request is made again.
 */
#include "worker/pull.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "worker/manage.h"

/* Riyadh is UTC+3 all year (no daylight saving). */
#define RIYADH_OFFSET_S (3 * 3600)

/* ---------------------------------------------------------------------- */
/* Ranges                                                                   */

/* "YYYY-MM-DD" → midnight UTC of that day. Returns 0 or -1. */
static int parse_day(const char *s, int64_t *out)
{
    int y, mo, d, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10 || s[n]) return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d};
    time_t t = timegm(&tm);
    struct tm back;
    /* timegm normalises 31 February to March: refuse what was not a date. */
    if (t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1)
        return -1;
    *out = (int64_t)t;
    return 0;
}

int pull_range_parse(const char *from, const char *to, struct pull_range *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    int64_t f, t;
    if (!from || !*from) return th_err_set(err, TH_EINVAL, "from (the first day) is required");
    if (!to || !*to) return th_err_set(err, TH_EINVAL, "to (the last day) is required");
    if (parse_day(from, &f))
        return th_err_set(err, TH_EINVAL, "from must be a date YYYY-MM-DD, not \"%.32s\"", from);
    if (parse_day(to, &t))
        return th_err_set(err, TH_EINVAL, "to must be a date YYYY-MM-DD, not \"%.32s\"", to);
    if (f > t)
        return th_err_set(err, TH_EINVAL, "from %s is after to %s: the range would be empty", from,
                          to);
    out->from = f - RIYADH_OFFSET_S;
    out->to = t + 86400 - 1 - RIYADH_OFFSET_S;
    snprintf(out->text, sizeof out->text, "%.10s..%.10s", from, to);
    return 0;
}

static int in_range(const struct pull_range *r, int64_t t)
{
    return t >= r->from && t <= r->to;
}

/* ---------------------------------------------------------------------- */
/* One run                                                                  */

struct ref_at {
    struct platform_order_ref ref;
    int page;
};

struct run {
    const struct pull_config *cfg;
    const struct platform_ops *p;
    struct store_conn c;
    struct platform_conn pc;
    struct pull_progress prog;
    struct ref_at *refs;
    size_t n, cap;
    char key_page[48], key_seen[48], key_done[48];
};

/* The internal "stopped as asked" outcome of the helpers below (> 0, so it
 * is never mistaken for a TH_E* code). */
#define STOPPED 1

static void report(struct run *r)
{
    if (r->cfg->progress) r->cfg->progress(r->cfg->arg, &r->prog);
}

static int stop_asked(const struct run *r)
{
    return r->cfg->stop && atomic_load(r->cfg->stop);
}

/* Sleeps ms in short turns; STOPPED when a stop was asked meanwhile. */
static int nap(const struct run *r, long ms)
{
    while (ms > 0) {
        if (stop_asked(r)) return STOPPED;
        long t = ms < 100 ? ms : 100;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = t * 1000000L};
        nanosleep(&ts, NULL);
        ms -= t;
    }
    return stop_asked(r) ? STOPPED : 0;
}

typedef int (*call_fn)(struct run *r, void *arg, struct th_err *err);

/*
 * Makes one remote call with the pull's rules: temporary failures are
 * retried with a doubling backoff (PULL_MAX_TRIES attempts), a 429 waits its
 * Retry-After (PULL_MAX_RATE_WAITS times). Returns the call's result, or
 * STOPPED.
 */
static int with_retry(struct run *r, const char *what, call_fn call, void *arg, struct th_err *err)
{
    long base = r->cfg->retry_base_ms > 0 ? r->cfg->retry_base_ms : 1000;
    int tries = 0, waits = 0;
    for (;;) {
        int rc = call(r, arg, err);
        if (rc != TH_ETEMP && rc != TH_EUNKNOWN && rc != TH_ERATE) return rc;
        long status = 0, after = -1, ms;
        httpc_last_answer(r->cfg->http, &status, &after);
        if (status == 429) {
            if (++waits > PULL_MAX_RATE_WAITS) return rc;
            long s = after > 0 ? after : 1;
            if (s > PULL_MAX_WAIT_S) s = PULL_MAX_WAIT_S;
            ms = s * 1000;
            r->prog.wait_s = s;
            log_info("pull_rate_limited", "conn=%lld range=%s what=\"%s\" wait_s=%ld",
                     (long long)r->c.id, r->cfg->range.text, what, s);
        } else {
            if (++tries >= PULL_MAX_TRIES) return rc;
            ms = base << (tries - 1);
            log_warn("pull_retry", "conn=%lld range=%s what=\"%s\" attempt=%d code=%s msg=\"%s\"",
                     (long long)r->c.id, r->cfg->range.text, what, tries, th_err_name(rc),
                     err ? err->msg : "");
        }
        report(r);
        int stopped = nap(r, ms);
        r->prog.wait_s = 0;
        if (stopped) return STOPPED;
    }
}

struct list_arg {
    struct platform_query q;
    struct platform_page pg;
};

static int list_call(struct run *r, void *arg, struct th_err *err)
{
    struct list_arg *la = arg;
    return r->p->orders_page(r->cfg->http, &r->pc, &la->q, &la->pg, err);
}

struct fetch_arg {
    int64_t id;
    struct model_order *o;
};

static int fetch_call(struct run *r, void *arg, struct th_err *err)
{
    struct fetch_arg *fa = arg;
    return r->p->order_fetch(r->cfg->http, &r->pc, fa->id, &fa->o, err);
}

static int save(struct run *r, const char *key, int64_t v, struct th_err *err)
{
    return store_map_put(r->cfg->store, r->c.id, "pull", key, v, err);
}

static int load(struct run *r, const char *key, int64_t *v, struct th_err *err)
{
    int rc = store_map_get(r->cfg->store, r->c.id, "pull", key, v, err);
    if (rc == TH_ENOTFOUND) {
        *v = 0;
        return 0;
    }
    return rc;
}

/* Lists pages from `first` to the end, keeping the orders in the range. */
static int list_all(struct run *r, int first, int *last, struct th_err *err)
{
    struct list_arg la = {
        .q = {.from = r->cfg->range.from, .to = r->cfg->range.to, .by_updated = 0, .page = first}};
    *last = first - 1;
    for (;; la.q.page++) {
        if (stop_asked(r)) return STOPPED;
        if (la.q.page - first >= PULL_MAX_PAGES)
            return th_err_set(err, TH_ELIMIT,
                              "the platform listed more than %d pages of orders created %s "
                              "(PULL_MAX_PAGES); pull shorter ranges",
                              PULL_MAX_PAGES, r->cfg->range.text);
        r->prog.page = la.q.page;
        char what[48];
        snprintf(what, sizeof what, "list page %d", la.q.page);
        int rc = with_retry(r, what, list_call, &la, err);
        if (rc) return rc;
        for (size_t i = 0; i < la.pg.n; i++) {
            const struct platform_order_ref *ref = &la.pg.orders[i];
            /* Salla filters by whole days, Zid by time: keep exactly the
             * range (an order whose list row has no date is kept). */
            if (ref->created_at && !in_range(&r->cfg->range, ref->created_at)) continue;
            if (r->n == PULL_MAX_ORDERS) {
                platform_page_release(&la.pg);
                return th_err_set(err, TH_ELIMIT,
                                  "more than %d orders were created %s (PULL_MAX_ORDERS); pull "
                                  "shorter ranges",
                                  PULL_MAX_ORDERS, r->cfg->range.text);
            }
            if (r->n == r->cap) {
                r->cap = r->cap ? 2 * r->cap : 256;
                r->refs = xrealloc(r->refs, r->cap * sizeof *r->refs);
            }
            r->refs[r->n].ref = *ref;
            r->refs[r->n].page = la.q.page;
            r->n++;
        }
        int more = la.pg.more && la.pg.n > 0;
        platform_page_release(&la.pg);
        *last = la.q.page;
        r->prog.listed = (int64_t)r->n;
        report(r);
        if (!more) return 0;
    }
}

/* Fetches and records one listed order, unless tarheel knows it. */
static int pull_one(struct run *r, const struct platform_order_ref *ref, struct th_err *err)
{
    struct store *s = r->cfg->store;
    struct store_order so = {0};
    int rc = store_order_get(s, r->c.id, ref->id, &so, err);
    store_order_release(&so);
    if (rc == 0) {
        r->prog.known++;
        return 0;
    }
    if (rc != TH_ENOTFOUND) return rc;

    struct fetch_arg fa = {.id = ref->id};
    char what[48];
    snprintf(what, sizeof what, "fetch order %lld", (long long)ref->id);
    struct th_err e = {0};
    rc = with_retry(r, what, fetch_call, &fa, &e);
    if (rc == STOPPED) return STOPPED;
    so.conn_id = r->c.id;
    so.order_id = ref->id;
    so.xfer = STORE_XFER_NOT_TRANSFERRED;
    if (rc == 0) {
        so.number = xstrdup(fa.o->number);
        so.status = fa.o->status;
        so.total = fa.o->total;
        so.tax = fa.o->tax;
        so.created_at = fa.o->created_at;
        so.updated_at = fa.o->updated_at;
    } else if (rc == TH_ENOTFOUND) {
        r->prog.gone++;
        log_info("pull_order_gone", "conn=%lld order=%lld range=%s", (long long)r->c.id,
                 (long long)ref->id, r->cfg->range.text);
        return 0;
    } else if (rc == TH_EPARSE || rc == TH_EMONEY || rc == TH_ETOOBIG || rc == TH_EDEPTH) {
        /* The order exists but cannot be read: list it with the reason, so
         * the merchant sees it; a transfer fetches it again and says why it
         * fails. */
        so.status = ref->status >= 0 ? (enum model_status)ref->status : MODEL_STATUS_OTHER;
        so.created_at = ref->created_at;
        so.updated_at = ref->updated_at;
        so.reason_code = rc;
        so.reason = xstrdup(e.msg);
        log_warn("pull_order_unreadable", "conn=%lld order=%lld code=%s msg=\"%s\"",
                 (long long)r->c.id, (long long)ref->id, th_err_name(rc), e.msg);
    } else {
        if (err) *err = e;
        return rc;
    }
    model_order_free(fa.o);
    int added = 0;
    rc = store_order_add(s, &so, &added, err);
    if (!rc && added) {
        char detail[64];
        snprintf(detail, sizeof detail, "orders created %s", r->cfg->range.text);
        rc = store_order_note(s, r->c.id, ref->id, "pulled", detail, err);
    }
    store_order_release(&so);
    if (rc) return rc;
    if (added)
        r->prog.added++;
    else
        r->prog.known++; /* a webhook or the poll brought it meanwhile */
    return 0;
}

/* The message of a run that stopped on a failure: what failed, how far the
 * pull got, and that running it again continues. */
static int stopped_by(struct run *r, int rc, const struct th_err *e, struct th_err *err)
{
    char got[96];
    if (r->prog.total >= 0)
        snprintf(got, sizeof got, "%lld of %lld orders are pulled", (long long)r->prog.pulled,
                 (long long)r->prog.total);
    else
        snprintf(got, sizeof got, "listing stopped at page %d", r->prog.page);
    log_warn("pull_stopped", "conn=%lld range=%s code=%s pulled=%lld total=%lld msg=\"%s\"",
             (long long)r->c.id, r->cfg->range.text, th_err_name(rc), (long long)r->prog.pulled,
             (long long)r->prog.total, e->msg);
    return th_err_set(err, rc, "%s (%s); %s: run the same pull again to continue", e->msg, got,
                      rc == TH_EAUTH ? "once the store's token works again (`tarheel serve` "
                                       "refreshes it, or reconnect the store)"
                                     : "nothing pulled is lost");
}

static int run_pull(struct run *r, struct th_err *err)
{
    const struct pull_config *cfg = r->cfg;
    struct th_err e = {0};
    int64_t page = 0, seen = 0, done = 0;
    int rc;
    if ((rc = load(r, r->key_page, &page, err)) || (rc = load(r, r->key_seen, &seen, err)) ||
        (rc = load(r, r->key_done, &done, err)))
        return rc;
    if (done && !cfg->again) {
        r->prog.phase = PULL_DONE;
        r->prog.total = r->prog.pulled = seen;
        r->prog.finished_before = 1;
        report(r);
        return 0;
    }
    if (cfg->again && (page || seen || done)) {
        page = seen = 0;
        if ((rc = save(r, r->key_done, 0, err)) || (rc = save(r, r->key_page, 0, err)) ||
            (rc = save(r, r->key_seen, 0, err)))
            return rc;
    }
    r->prog.resumed = page > 0;
    r->prog.phase = PULL_LISTING;
    int last = 0;
    rc = list_all(r, (int)page + 1, &last, &e);
    if (rc == STOPPED) return 0;
    if (rc) return stopped_by(r, rc, &e, err);

    r->prog.phase = PULL_FETCHING;
    r->prog.total = seen + (int64_t)r->n;
    r->prog.pulled = seen;
    report(r);
    int pages = 0;
    for (size_t i = 0; i < r->n;) {
        int pg = r->refs[i].page;
        r->prog.page = pg;
        size_t j = i;
        for (; j < r->n && r->refs[j].page == pg; j++) {
            if (stop_asked(r)) return 0;
            rc = pull_one(r, &r->refs[j].ref, &e);
            if (rc == STOPPED) return 0;
            if (rc) {
                if (rc == TH_EDB || rc == TH_EDISKFULL || rc == TH_EIO) {
                    if (err) *err = e;
                    return rc;
                }
                return stopped_by(r, rc, &e, err);
            }
            r->prog.pulled++;
            report(r);
        }
        seen += (int64_t)(j - i);
        if ((rc = save(r, r->key_seen, seen, err)) || (rc = save(r, r->key_page, pg, err)))
            return rc;
        i = j;
        if (cfg->max_pages > 0 && ++pages >= cfg->max_pages && i < r->n) return 0;
    }
    /* Pages without orders of the range count as done too. */
    if (last > page &&
        ((rc = save(r, r->key_seen, seen, err)) || (rc = save(r, r->key_page, last, err))))
        return rc;
    if ((rc = save(r, r->key_done, (int64_t)time(NULL), err))) return rc;
    r->prog.phase = PULL_DONE;
    report(r);
    log_info("pull_done", "conn=%lld range=%s total=%lld added=%lld known=%lld gone=%lld",
             (long long)r->c.id, cfg->range.text, (long long)r->prog.total,
             (long long)r->prog.added, (long long)r->prog.known, (long long)r->prog.gone);
    return 0;
}

/* The connection and its platform, checked for a pull. */
static int check_conn(struct store *s, int64_t conn_id, struct store_conn *c,
                      const struct platform_ops **p, struct th_err *err)
{
    int rc = store_conn_get(s, conn_id, c, err);
    if (rc == TH_ENOTFOUND)
        return th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)conn_id);
    if (rc) return rc;
    *p = platform_by_id(c->platform);
    if (!*p || !(*p)->orders_page)
        return th_err_set(err, TH_ECONFIG, "tarheel cannot list the orders of a %s store",
                          model_platform_name(c->platform));
    if (c->status && strcmp(c->status, "active") != 0)
        return th_err_set(err, strcmp(c->status, "needs_reinstall") == 0 ? TH_EAUTH : TH_ECONFIG,
                          "%s store %lld is %s, not active: reconnect it before pulling orders",
                          model_platform_name(c->platform), (long long)c->store_id, c->status);
    return 0;
}

int pull_run(const struct pull_config *cfg, struct pull_progress *out, struct th_err *err)
{
    struct run r = {.cfg = cfg, .prog = {.total = -1}};
    if (out) *out = r.prog;
    if (!cfg || !cfg->store || !cfg->http || !cfg->range.text[0])
        return th_err_set(err, TH_EINVAL, "pull_run: no store, HTTP client or range");
    int rc = check_conn(cfg->store, cfg->conn_id, &r.c, &r.p, err);
    if (!rc) {
        r.pc = (struct platform_conn){.store_id = r.c.store_id,
                                      .api_base = r.c.api_base,
                                      .access_token = r.c.access_token,
                                      .manager_token = r.c.manager_token};
        snprintf(r.key_page, sizeof r.key_page, "%s:page", cfg->range.text);
        snprintf(r.key_seen, sizeof r.key_seen, "%s:seen", cfg->range.text);
        snprintf(r.key_done, sizeof r.key_done, "%s:done", cfg->range.text);
        rc = run_pull(&r, err);
    }
    if (out) *out = r.prog;
    free(r.refs);
    store_conn_release(&r.c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Transferring a range                                                     */

struct pick {
    const struct pull_range *r;
    int64_t *ids;
    size_t n, cap, left_out;
};

static void pick_row(void *arg, const struct store_order *o)
{
    struct pick *p = arg;
    if (!in_range(p->r, o->created_at)) return;
    if (o->xfer != STORE_XFER_NOT_TRANSFERRED && o->xfer != STORE_XFER_FAILED) return;
    if (o->status == MODEL_STATUS_CANCELLED || o->status == MODEL_STATUS_REFUNDED) {
        p->left_out++;
        return;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->ids = xrealloc(p->ids, p->cap * sizeof *p->ids);
    }
    p->ids[p->n++] = o->order_id;
}

int pull_range_orders(struct store *s, int64_t conn_id, const struct pull_range *r, int64_t **ids,
                      size_t *n, size_t *left_out, struct th_err *err)
{
    *ids = NULL;
    *n = 0;
    if (left_out) *left_out = 0;
    struct pick p = {.r = r};
    int rc = store_order_list(s, conn_id, -1, pick_row, &p, err);
    if (rc) {
        free(p.ids);
        return rc;
    }
    *ids = p.ids;
    *n = p.n;
    if (left_out) *left_out = p.left_out;
    return 0;
}

int pull_range_transfer(struct store *s, int64_t conn_id, const int64_t *ids, size_t n,
                        const char *who, size_t *queued, struct th_err *err)
{
    if (queued) *queued = 0;
    for (size_t i = 0; i < n; i += MANAGE_MAX_ORDERS) {
        size_t k = n - i < MANAGE_MAX_ORDERS ? n - i : MANAGE_MAX_ORDERS, q = 0;
        int rc = manage_transfer(s, conn_id, ids + i, k, who, &q, err);
        if (queued) *queued += q;
        if (rc) return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Background pulls                                                         */

struct bg {
    struct pull_runs *owner;
    struct pull_status st; /* under owner->mu */
    int again;
    atomic_int stop;
    pthread_t thread;
    int joinable;
};

struct pull_runs {
    struct store *store;
    pthread_mutex_t mu;
    struct bg *v[PULL_MAX_KEPT]; /* NULL: free slot */
    int64_t next_id;
};

const char *pull_state_name(enum pull_state s)
{
    switch (s) {
    case PULL_RUNNING:
        return "running";
    case PULL_FINISHED:
        return "done";
    case PULL_FAILED:
        return "failed";
    }
    return "?";
}

struct pull_runs *pull_runs_new(struct store *s)
{
    struct pull_runs *p = xcalloc(1, sizeof *p);
    p->store = s;
    p->next_id = 1;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

static void bg_progress(void *arg, const struct pull_progress *pr)
{
    struct bg *b = arg;
    pthread_mutex_lock(&b->owner->mu);
    b->st.progress = *pr;
    pthread_mutex_unlock(&b->owner->mu);
}

static void *bg_main(void *arg)
{
    struct bg *b = arg;
    struct httpc *hc = httpc_new(NULL);
    struct pull_config cfg = {.store = b->owner->store,
                              .http = hc,
                              .conn_id = b->st.conn_id,
                              .range = b->st.range,
                              .again = b->again,
                              .progress = bg_progress,
                              .arg = b,
                              .stop = &b->stop};
    struct pull_progress pr;
    struct th_err err = {0};
    int rc = pull_run(&cfg, &pr, &err);
    httpc_free(hc);
    pthread_mutex_lock(&b->owner->mu);
    b->st.progress = pr;
    b->st.finished_at = (int64_t)time(NULL);
    if (!rc && pr.phase == PULL_DONE) {
        b->st.state = PULL_FINISHED;
    } else {
        b->st.state = PULL_FAILED;
        b->st.code = rc ? rc : TH_ELIMIT;
        snprintf(b->st.error, sizeof b->st.error, "%s",
                 rc ? err.msg
                    : "stopped because tarheel is shutting down; start the same pull again to "
                      "continue");
    }
    pthread_mutex_unlock(&b->owner->mu);
    return NULL;
}

/* Frees the slot of the oldest finished pull; -1 when every slot runs.
 * Called with p->mu held; the thread of a finished pull has ended its last
 * use of the lock, so joining it here cannot wait on us. */
static int free_slot(struct pull_runs *p)
{
    int best = -1;
    for (int i = 0; i < PULL_MAX_KEPT; i++) {
        if (!p->v[i]) return i;
        if (p->v[i]->st.state != PULL_RUNNING && (best < 0 || p->v[i]->st.id < p->v[best]->st.id))
            best = i;
    }
    if (best >= 0) {
        if (p->v[best]->joinable) pthread_join(p->v[best]->thread, NULL);
        free(p->v[best]);
        p->v[best] = NULL;
    }
    return best;
}

int pull_runs_start(struct pull_runs *p, int64_t conn_id, const struct pull_range *r, int again,
                    int64_t *id, int *running, struct th_err *err)
{
    if (running) *running = 0;
    struct store_conn c = {0};
    const struct platform_ops *ops;
    int rc = check_conn(p->store, conn_id, &c, &ops, err);
    store_conn_release(&c);
    if (rc) return rc;
    pthread_mutex_lock(&p->mu);
    int nrunning = 0;
    for (int i = 0; i < PULL_MAX_KEPT; i++) {
        struct bg *b = p->v[i];
        if (!b || b->st.state != PULL_RUNNING) continue;
        if (b->st.conn_id == conn_id && strcmp(b->st.range.text, r->text) == 0) {
            *id = b->st.id;
            if (running) *running = 1;
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
        nrunning++;
    }
    if (nrunning >= PULL_MAX_RUNNING) {
        pthread_mutex_unlock(&p->mu);
        return th_err_set(err, TH_ELIMIT,
                          "%d pulls are running (PULL_MAX_RUNNING); start this one when one of "
                          "them is done",
                          nrunning);
    }
    int slot = free_slot(p);
    if (slot < 0) TH_BUG("no free pull slot with %d running", nrunning);
    struct bg *b = xcalloc(1, sizeof *b);
    b->owner = p;
    b->again = again;
    atomic_init(&b->stop, 0);
    b->st.id = p->next_id++;
    b->st.conn_id = conn_id;
    b->st.range = *r;
    b->st.state = PULL_RUNNING;
    b->st.progress.total = -1;
    b->st.started_at = (int64_t)time(NULL);
    if (pthread_create(&b->thread, NULL, bg_main, b) != 0) {
        pthread_mutex_unlock(&p->mu);
        free(b);
        return th_err_set(err, TH_EINTERNAL, "cannot start a thread for the pull");
    }
    b->joinable = 1;
    p->v[slot] = b;
    *id = b->st.id;
    pthread_mutex_unlock(&p->mu);
    log_info("pull_started", "conn=%lld range=%s pull=%lld", (long long)conn_id, r->text,
             (long long)*id);
    return 0;
}

int pull_runs_get(struct pull_runs *p, int64_t id, struct pull_status *out, struct th_err *err)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < PULL_MAX_KEPT; i++) {
        if (p->v[i] && p->v[i]->st.id == id) {
            *out = p->v[i]->st;
            pthread_mutex_unlock(&p->mu);
            return 0;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return th_err_set(err, TH_ENOTFOUND,
                      "no pull %lld (pulls are remembered until tarheel restarts, the last %d)",
                      (long long)id, PULL_MAX_KEPT);
}

void pull_runs_free(struct pull_runs *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < PULL_MAX_KEPT; i++)
        if (p->v[i]) atomic_store(&p->v[i]->stop, 1);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < PULL_MAX_KEPT; i++) {
        if (!p->v[i]) continue;
        if (p->v[i]->joinable) pthread_join(p->v[i]->thread, NULL);
        free(p->v[i]);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
}
