/*
 * store — picks a backend from the database URL and checks arguments before
 * dispatching through its struct store_ops (see store.h and store_int.h).
 *
 * Everything a backend may assume (non-NULL out-pointers, zeroed result
 * structs, a bounded event body, a set *duplicate) is established here,
 * once, so backends do not repeat the checks and cannot disagree about them.
 */
#include "store/store.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/xmalloc.h"
#include "store/secret.h"
#include "store/store_int.h"
#include "store/store_pg.h"
#include "store/store_sqlite.h"

/* ---------------------------------------------------------------------- */
/* Clock */

int64_t store_clock_real(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void store_clock_set(struct store *s, int64_t (*fn)(void *arg), void *arg)
{
    s->now_ms = fn ? fn : store_clock_real;
    s->now_arg = fn ? arg : NULL;
}

/* ---------------------------------------------------------------------- */
/* Open and close */

static int has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

int store_open(struct store **out, const char *url, struct th_err *err)
{
    if (!out) return th_err_set(err, TH_EINVAL, "store_open: no place for the handle");
    *out = NULL;
    if (!url || !*url)
        return th_err_set(err, TH_ECONFIG, "no database given (set --db or TARHEEL_DB)");

    const struct store_ops *ops;
    const char *location;
    if (has_prefix(url, "postgres://") || has_prefix(url, "postgresql://")) {
        ops = &store_pg_ops;
        location = url; /* libpq parses the whole URL */
    } else if (has_prefix(url, "sqlite:")) {
        ops = &store_sqlite_ops;
        location = url + strlen("sqlite:");
        /* Accept the common "sqlite:///abs/path" spelling too. */
        if (has_prefix(location, "//")) location += 2;
    } else if (strstr(url, "://")) {
        return th_err_set(err, TH_ECONFIG,
                          "unknown database URL '%s': use sqlite:/path/file.db, a file path or "
                          "postgres://user@host:port/database",
                          url);
    } else {
        ops = &store_sqlite_ops;
        location = url;
    }
    if (!*location) return th_err_set(err, TH_ECONFIG, "database URL '%s' names no file", url);

    struct secret_ring *ring = xcalloc(1, sizeof *ring);
    int rc = secret_ring_load(ring, ops == &store_sqlite_ops ? location : NULL, err);
    if (rc) {
        free(ring);
        return rc;
    }
    struct store *s = NULL;
    rc = ops->open(&s, location, err);
    if (rc) {
        secret_ring_wipe(ring);
        free(ring);
        return rc;
    }
    s->ops = ops;
    s->secrets = ring;
    store_clock_set(s, NULL, NULL);
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (!s) return;
    struct secret_ring *ring = s->secrets;
    s->ops->close(s);
    if (ring) {
        secret_ring_wipe(ring);
        free(ring);
    }
}

/* ---------------------------------------------------------------------- */
/* Secrets at rest: sealed here, so no backend ever holds them in clear. */

struct ids {
    int64_t *v;
    size_t n, cap;
};

static void collect_id(void *arg, const struct store_conn *c)
{
    struct ids *ids = arg;
    if (ids->n == ids->cap) {
        ids->cap = ids->cap ? ids->cap * 2 : 16;
        ids->v = xrealloc(ids->v, ids->cap * sizeof *ids->v);
    }
    ids->v[ids->n++] = c->id;
}

static int conn_get_open(struct store *s, int64_t id, struct store_conn *out,
                         struct th_err *err);

/*
 * Every connection, secrets opened, into *rows (n of them; each to be
 * released, then the array freed), read before anyone sees one, so a caller
 * may call the store per row and a key that cannot open one fails first.
 * The backend's conn_list gives the ids (it lists sealed rows); without
 * one, ids are walked from 1 (see store_ops.conn_get for why that sees
 * every connection). On failure the rows read so far are still returned.
 */
static int conn_rows(struct store *s, struct store_conn **rows, size_t *n, struct th_err *err)
{
    size_t cap = 0;
    *rows = NULL;
    *n = 0;
    struct ids ids = {0};
    int listed = s->ops->conn_list != NULL;
    int rc = listed ? s->ops->conn_list(s, collect_id, &ids, err) : 0;
    for (size_t i = 0; !rc && (listed ? i < ids.n : 1); i++) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *rows = xrealloc(*rows, cap * sizeof **rows);
        }
        rc = conn_get_open(s, listed ? ids.v[i] : (int64_t)i + 1, &(*rows)[*n], err);
        if (rc == TH_ENOTFOUND) {
            rc = 0;
            th_err_clear(err);
            if (listed) continue; /* deleted meanwhile */
            break;                /* the walk's end */
        }
        if (!rc) ++*n;
    }
    free(ids.v);
    return rc;
}

/* The connection fields that are secrets, by the name sealed with them. */
#define SECRET_FIELDS(X)                                                                           \
    X(access_token) X(refresh_token) X(manager_token) X(webhook_secret) X(qoyod_api_key)

/* *out = c with every secret sealed (new strings; release with unseal_free). */
static int seal_conn(struct store *s, const struct store_conn *c, struct store_conn *out,
                     struct th_err *err)
{
    *out = *c;
#define NULL_FIELD(f) out->f = NULL;
    SECRET_FIELDS(NULL_FIELD)
#undef NULL_FIELD
    int rc = 0;
#define SEAL_FIELD(f)                                                                              \
    if (!rc) rc = secret_seal(s->secrets, #f, c->f, &out->f, err);
    SECRET_FIELDS(SEAL_FIELD)
#undef SEAL_FIELD
    return rc;
}

static void sealed_free(struct store_conn *c)
{
#define FREE_FIELD(f)                                                                              \
    free(c->f);                                                                                    \
    c->f = NULL;
    SECRET_FIELDS(FREE_FIELD)
#undef FREE_FIELD
}

void store_secrets_info(const struct store *s, const char **source, const char **file,
                        const char **kid)
{
    *source = s->secrets->source ? s->secrets->source : "?";
    *file = s->secrets->file;
    *kid = s->secrets->kid[0];
}

int store_secrets_rotate(struct store *s, const char *new_key_file, size_t *count,
                         struct th_err *err)
{
    *count = 0;
    struct secret_ring *ring = s->secrets;
    char next[600] = "";
    const char *path = new_key_file;
    if (!path) {
        if (!ring->file[0])
            return th_err_set(err, TH_ECONFIG,
                              "the secret key comes from %s, not a file: give the new key "
                              "with --new-key-file FILE (make one with `openssl rand -hex 32 > "
                              "FILE; chmod 600 FILE`)",
                              ring->source);
        snprintf(next, sizeof next, "%s.next", ring->file);
        int rc = secret_key_create(next, err);
        if (rc && rc != TH_ECONFLICT) return rc;
        th_err_clear(err);
        path = next;
    }
    unsigned char key[SECRET_KEY_LEN];
    int rc = secret_key_read(path, key, err);
    if (rc) return rc;
    /* The new key seals; every key known so far still opens. */
    struct secret_ring nr = *ring;
    nr.nkeys = 0;
    char kid[9];
    secret_kid(key, kid);
    memcpy(nr.key[0], key, SECRET_KEY_LEN);
    memcpy(nr.kid[0], kid, sizeof kid);
    nr.nkeys = 1;
    OPENSSL_cleanse(key, sizeof key);
    for (int i = 0; i < ring->nkeys && nr.nkeys < SECRET_MAX_KEYS; i++) {
        if (strcmp(ring->kid[i], kid) == 0) continue;
        memcpy(nr.key[nr.nkeys], ring->key[i], SECRET_KEY_LEN);
        memcpy(nr.kid[nr.nkeys], ring->kid[i], sizeof kid);
        nr.nkeys++;
    }
    *ring = nr;
    secret_ring_wipe(&nr);

    struct store_conn *rows = NULL;
    size_t n = 0;
    rc = conn_rows(s, &rows, &n, err);
    for (size_t i = 0; i < n; i++) {
        if (!rc) rc = store_conn_put(s, &rows[i], err);
        if (!rc) ++*count;
        store_conn_release(&rows[i]);
    }
    free(rows);
    if (rc || !next[0]) return rc;
    if (rename(next, ring->file) != 0)
        return th_err_set(err, TH_EIO, "every secret is sealed with the key in %s, but it could "
                                       "not replace %s: move it there by hand",
                          next, ring->file);
    return 0;
}

/* Opens c's sealed secrets in place. On failure c is released. */
static int unseal_conn(struct store *s, struct store_conn *c, struct th_err *err)
{
    int rc = 0;
#define OPEN_FIELD(f)                                                                              \
    if (!rc && c->f) {                                                                             \
        char *plain = NULL;                                                                        \
        rc = secret_open(s->secrets, #f, c->f, &plain, err);                                       \
        free(c->f);                                                                                \
        c->f = plain;                                                                              \
    }
    SECRET_FIELDS(OPEN_FIELD)
#undef OPEN_FIELD
    if (rc) store_conn_release(c);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Connections */

static void xfree(char **p)
{
    free(*p);
    *p = NULL;
}

void store_conn_release(struct store_conn *c)
{
    if (!c) return;
    xfree(&c->name);
    xfree(&c->access_token);
    xfree(&c->refresh_token);
    xfree(&c->manager_token);
    xfree(&c->webhook_secret);
    xfree(&c->webhook_strategy);
    xfree(&c->api_base);
    xfree(&c->status);
    xfree(&c->qoyod_base);
    xfree(&c->qoyod_api_key);
    xfree(&c->ref_prefix);
    memset(c, 0, sizeof *c);
}

/* ---- field-sync settings, kept beside the connection row ---- */

static int sources_pack(const struct store_conn *c)
{
    int v = 0;
    for (int f = 0; f < STORE_NFIELDS; f++) {
        int src = c->field_source[f];
        if (src < STORE_SRC_DEFAULT || src > STORE_SRC_QOYOD) src = STORE_SRC_DEFAULT;
        v |= src << (2 * f);
    }
    return v;
}

static int fields_cfg_write(struct store *s, const struct store_conn *c, struct th_err *err)
{
    return s->ops->fields_cfg_put(s, c->id, c->fields_sync != 0, sources_pack(c), err);
}

static int fields_cfg_read(struct store *s, struct store_conn *c, struct th_err *err)
{
    int sync = 0, sources = 0;
    int rc = s->ops->fields_cfg_get(s, c->id, &sync, &sources, err);
    if (rc) return rc;
    c->fields_sync = sync;
    for (int f = 0; f < STORE_NFIELDS; f++)
        c->field_source[f] = (sources >> (2 * f)) & 3;
    return 0;
}

int store_conn_put(struct store *s, struct store_conn *c, struct th_err *err)
{
    if (!s || !c) return th_err_set(err, TH_EINVAL, "store_conn_put: no store or connection");
    if (c->platform != MODEL_PLATFORM_SALLA && c->platform != MODEL_PLATFORM_ZID)
        return th_err_set(err, TH_EINVAL, "connection has an unknown platform %d",
                          (int)c->platform);
    if (c->tenant_id < 0)
        return th_err_set(err, TH_EINVAL, "connection has a negative tenant id");
    struct store_tenant t;
    int rc = c->tenant_id ? s->ops->tenant_get(s, c->tenant_id, NULL, &t, err) : 0;
    if (rc) return rc;
    struct store_conn sealed;
    rc = seal_conn(s, c, &sealed, err);
    if (!rc) rc = s->ops->conn_put(s, &sealed, err);
    if (!rc) c->id = sealed.id;
    sealed_free(&sealed);
    /* c->ref_prefix is left as it was (callers copy connections around
     * shallowly): store_conn_get shows the prefix given. */
    char *prefix = NULL;
    if (!rc) rc = s->ops->conn_prefix_assign(s, c->id, &prefix, err);
    free(prefix);
    if (!rc) rc = fields_cfg_write(s, c, err);
    return rc;
}

int store_conn_put_tokens(struct store *s, const struct store_conn *c, struct th_err *err)
{
    if (!s || !c || !c->id)
        return th_err_set(err, TH_EINVAL, "store_conn_put_tokens: no store or saved connection");
    struct store_conn sealed;
    int rc = seal_conn(s, c, &sealed, err);
    if (!rc) rc = s->ops->conn_put_tokens(s, &sealed, err);
    sealed_free(&sealed);
    return rc;
}

int store_conn_put_settings(struct store *s, const struct store_conn *c, struct th_err *err)
{
    if (!s || !c || !c->id)
        return th_err_set(err, TH_EINVAL, "store_conn_put_settings: no store or saved connection");
    int rc = 0;
    if (c->ref_prefix) {
        /* The prefix first: when it is refused, nothing is written. */
        struct store_conn now = {0};
        if ((rc = s->ops->conn_get(s, c->id, &now, err)) != 0) return rc;
        const char *from = now.ref_prefix ? now.ref_prefix : "";
        if (strcmp(from, c->ref_prefix) != 0) {
            int64_t sent = 0, other = 0;
            rc = s->ops->conn_prefix_set(s, c->id, from, c->ref_prefix, &sent, &other, err);
            if (!rc && sent)
                rc = th_err_set(err, TH_ECONFLICT,
                                "the reference prefix of connection %lld stays \"%s\": %lld of "
                                "its orders were already sent to Qoyod with it (a prefix changes "
                                "only before the first transfer)",
                                (long long)c->id, from, (long long)sent);
            else if (!rc && other)
                rc = th_err_set(err, TH_ECONFLICT,
                                "connection %lld on the same Qoyod account already uses the "
                                "reference prefix \"%s\"%s: choose another",
                                (long long)other, c->ref_prefix,
                                c->ref_prefix[0] ? "" : " (none; only one store of an account "
                                                        "goes without a prefix)");
        }
        /* The secrets are sealed: conn_get without unseal_conn; free all. */
        store_conn_release(&now);
        if (rc) return rc;
    }
    struct store_conn sealed;
    rc = seal_conn(s, c, &sealed, err);
    if (!rc) rc = s->ops->conn_put_settings(s, &sealed, err);
    sealed_free(&sealed);
    char *prefix = NULL;
    if (!rc) rc = s->ops->conn_prefix_assign(s, c->id, &prefix, err);
    free(prefix);
    if (!rc) rc = fields_cfg_write(s, c, err);
    return rc;
}

static int conn_get_open(struct store *s, int64_t id, struct store_conn *out,
                         struct th_err *err)
{
    memset(out, 0, sizeof *out);
    int rc = s->ops->conn_get(s, id, out, err);
    if (!rc) rc = unseal_conn(s, out, err);
    return rc ? rc : fields_cfg_read(s, out, err);
}

int store_conn_get(struct store *s, int64_t id, struct store_conn *out, struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_conn_get: no store or result");
    return conn_get_open(s, id, out, err);
}

int store_conn_find(struct store *s, enum model_platform p, int64_t store_id,
                    struct store_conn *out, struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_conn_find: no store or result");
    memset(out, 0, sizeof *out);
    int rc = s->ops->conn_find(s, p, store_id, out, err);
    if (!rc) rc = unseal_conn(s, out, err);
    return rc ? rc : fields_cfg_read(s, out, err);
}

/* The backend's conn_list, or a walk of ids from 1 (see store_ops.conn_get
 * for why that sees every connection). Rows are copied out first, so fn may
 * call the store. */
int store_conn_list(struct store *s, void (*fn)(void *arg, const struct store_conn *c), void *arg,
                    struct th_err *err)
{
    return store_conn_list_in(s, 0, fn, arg, err);
}

int store_conn_list_in(struct store *s, int64_t tenant,
                       void (*fn)(void *arg, const struct store_conn *c), void *arg,
                       struct th_err *err)
{
    if (!s || !fn) return th_err_set(err, TH_EINVAL, "store_conn_list: no store or callback");
    struct store_conn *rows = NULL;
    size_t n = 0;
    int rc = conn_rows(s, &rows, &n, err);
    for (size_t i = 0; i < n; i++) {
        if (!rc && (!tenant || rows[i].tenant_id == tenant)) fn(arg, &rows[i]);
        store_conn_release(&rows[i]);
    }
    free(rows);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Intake */

/* The argument checks both ingest calls make (store_int.h promises them). */
static int ingest_check(int64_t conn_id, const char *dedupe_key, const char *event,
                        const char *body, size_t len, struct th_err *err)
{
    if (!dedupe_key || !*dedupe_key)
        return th_err_set(err, TH_EINVAL, "event for connection %lld has no dedupe key",
                          (long long)conn_id);
    if (!event || !*event)
        return th_err_set(err, TH_EINVAL, "event for connection %lld has no name",
                          (long long)conn_id);
    if (len > 0 && !body) return th_err_set(err, TH_EINVAL, "event %s has no body", dedupe_key);
    if (len > STORE_MAX_EVENT_BODY)
        return th_err_set(err, TH_ETOOBIG,
                          "event %s body is %zu bytes; the store keeps at most %u (the intake's "
                          "body cap)",
                          dedupe_key, len, STORE_MAX_EVENT_BODY);
    return 0;
}

int store_event_ingest(struct store *s, int64_t conn_id, const char *dedupe_key, const char *event,
                       int64_t order_id, const char *body, size_t len, int *duplicate,
                       struct th_err *err)
{
    if (!s || !duplicate)
        return th_err_set(err, TH_EINVAL, "store_event_ingest: no store or duplicate flag");
    *duplicate = 0;
    int rc = ingest_check(conn_id, dedupe_key, event, body, len, err);
    if (rc) return rc;
    return s->ops->event_ingest(s, conn_id, dedupe_key, event, order_id, body ? body : "", len,
                                duplicate, err);
}

int store_event_ingest_async(struct store *s, int64_t conn_id, const char *dedupe_key,
                             const char *event, int64_t order_id, const char *body, size_t len,
                             store_ingest_done_fn done, void *arg, struct th_err *err)
{
    if (!s || !done)
        return th_err_set(err, TH_EINVAL, "store_event_ingest_async: no store or callback");
    int rc = ingest_check(conn_id, dedupe_key, event, body, len, err);
    if (rc) return rc;
    if (s->ops->event_ingest_async)
        return s->ops->event_ingest_async(s, conn_id, dedupe_key, event, order_id, body ? body : "",
                                          len, done, arg, err);
    /* A backend without a queue: do it now, answer now. */
    struct th_err e = {0};
    int dup = 0;
    rc = s->ops->event_ingest(s, conn_id, dedupe_key, event, order_id, body ? body : "", len, &dup,
                              &e);
    done(arg, rc, dup, &e);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Jobs */

int store_job_claim(struct store *s, const char *worker, int64_t lease_ms, struct store_job *out,
                    struct th_err *err)
{
    return store_job_claim_except(s, worker, lease_ms, NULL, 0, out, err);
}

int store_job_claim_except(struct store *s, const char *worker, int64_t lease_ms,
                           const int64_t *except, size_t nexcept, struct store_job *out,
                           struct th_err *err)
{
    return store_job_claim_limited(s, worker, lease_ms, NULL, except, nexcept, out, err);
}

int store_job_claim_limited(struct store *s, const char *worker, int64_t lease_ms,
                            const struct store_claim_limits *lim, const int64_t *except,
                            size_t nexcept, struct store_job *out, struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_job_claim: no store or result");
    memset(out, 0, sizeof *out);
    if (!worker || !*worker) return th_err_set(err, TH_EINVAL, "a job claim needs a worker name");
    if (lease_ms <= 0)
        return th_err_set(err, TH_EINVAL, "lease of %lld ms for worker %s: must be positive",
                          (long long)lease_ms, worker);
    if (nexcept > STORE_MAX_CLAIM_EXCEPT)
        return th_err_set(err, TH_ELIMIT, "%zu connections to skip in one claim; at most %d",
                          nexcept, STORE_MAX_CLAIM_EXCEPT);
    return s->ops->job_claim(s, worker, lease_ms, lim, nexcept ? except : NULL, nexcept, out, err);
}

int store_job_done(struct store *s, int64_t job_id, struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_job_done: no store");
    return s->ops->job_done(s, job_id, NULL, err);
}

int store_job_retry(struct store *s, int64_t job_id, int64_t run_after, const char *error,
                    struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_job_retry: no store");
    return s->ops->job_retry(s, job_id, NULL, run_after, error, 0, err);
}

int store_job_done_as(struct store *s, int64_t job_id, const char *worker, struct th_err *err)
{
    if (!s || !worker || !*worker)
        return th_err_set(err, TH_EINVAL, "store_job_done_as: no store or worker");
    return s->ops->job_done(s, job_id, worker, err);
}

int store_job_retry_as(struct store *s, int64_t job_id, const char *worker, int64_t run_after,
                       const char *error, struct th_err *err)
{
    if (!s || !worker || !*worker)
        return th_err_set(err, TH_EINVAL, "store_job_retry_as: no store or worker");
    return s->ops->job_retry(s, job_id, worker, run_after, error, 0, err);
}

int store_job_defer_as(struct store *s, int64_t job_id, const char *worker, int64_t run_after,
                       const char *error, struct th_err *err)
{
    if (!s || !worker || !*worker)
        return th_err_set(err, TH_EINVAL, "store_job_defer_as: no store or worker");
    return s->ops->job_retry(s, job_id, worker, run_after, error, 1, err);
}

int store_job_renew(struct store *s, int64_t job_id, const char *worker, int64_t lease_ms,
                    struct th_err *err)
{
    if (!s || !worker || !*worker)
        return th_err_set(err, TH_EINVAL, "store_job_renew: no store or worker");
    if (lease_ms <= 0)
        return th_err_set(err, TH_EINVAL, "lease of %lld ms for job %lld: must be positive",
                          (long long)lease_ms, (long long)job_id);
    return s->ops->job_renew(s, job_id, worker, lease_ms, err);
}

int store_job_enqueue(struct store *s, int64_t conn_id, int64_t order_id, struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_job_enqueue: no store");
    return s->ops->job_enqueue(s, conn_id, order_id, err);
}

int store_job_enqueue_many(struct store *s, int64_t conn_id, const int64_t *order_ids, size_t n,
                           const char *what, const char *detail, struct th_err *err)
{
    if (!s || (n && !order_ids))
        return th_err_set(err, TH_EINVAL, "store_job_enqueue_many: no store or order ids");
    if (n == 0 || n > STORE_MAX_ENQUEUE)
        return th_err_set(err, TH_EINVAL,
                          "store_job_enqueue_many: %zu orders; 1 to %d in one call", n,
                          STORE_MAX_ENQUEUE);
    for (size_t i = 0; i < n; i++)
        if (order_ids[i] <= 0)
            return th_err_set(err, TH_EINVAL, "store_job_enqueue_many: order id %lld",
                              (long long)order_ids[i]);
    return s->ops->job_enqueue_many(s, conn_id, order_ids, n, what, detail, err);
}

int store_job_count(struct store *s, int64_t *n, struct th_err *err)
{
    if (!s || !n) return th_err_set(err, TH_EINVAL, "store_job_count: no store or result");
    *n = 0;
    return s->ops->job_count(s, n, err);
}

/* ---------------------------------------------------------------------- */
/* Shared limits and leases */

int store_shared(struct store *s)
{
    return s && s->ops->shared;
}

int store_account_pause(struct store *s, int64_t conn_id, int64_t until_ms, struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_account_pause: no store");
    return s->ops->account_pause(s, conn_id, until_ms, err);
}

int store_account_take(struct store *s, int64_t conn_id, int per_min, int burst, int64_t *wait_ms,
                       struct th_err *err)
{
    if (!s || !wait_ms) return th_err_set(err, TH_EINVAL, "store_account_take: no store or result");
    *wait_ms = 0;
    if (per_min <= 0 || burst <= 0)
        return th_err_set(err, TH_EINVAL, "a call budget of %d a minute, burst %d: both must be "
                                          "positive", per_min, burst);
    return s->ops->account_take(s, conn_id, per_min, burst, wait_ms, err);
}

int64_t store_bucket_take(int64_t *milli_tokens, int64_t *refilled_ms, int64_t paused_until_ms,
                          int per_min, int burst, int64_t now_ms)
{
    if (paused_until_ms > now_ms) return paused_until_ms - now_ms;
    int64_t cap = (int64_t)burst * 1000;
    if (*refilled_ms < 0)
        *milli_tokens = cap;
    else if (now_ms > *refilled_ms)
        *milli_tokens += (now_ms - *refilled_ms) * per_min / 60;
    if (*milli_tokens > cap) *milli_tokens = cap;
    if (*refilled_ms < now_ms) *refilled_ms = now_ms;
    if (*milli_tokens >= 1000) {
        *milli_tokens -= 1000;
        return 0;
    }
    return ((1000 - *milli_tokens) * 60 + per_min - 1) / per_min;
}

static int lease_check(const char *name, const char *owner, struct th_err *err)
{
    if (!name || !*name || !owner || !*owner)
        return th_err_set(err, TH_EINVAL, "a lease needs a name and an owner");
    return 0;
}

int store_lease_take(struct store *s, const char *name, const char *owner, int64_t ttl_ms,
                     int *held, struct th_err *err)
{
    if (!s || !held) return th_err_set(err, TH_EINVAL, "store_lease_take: no store or result");
    *held = 0;
    int rc = lease_check(name, owner, err);
    if (rc) return rc;
    if (ttl_ms <= 0)
        return th_err_set(err, TH_EINVAL, "lease %s for %lld ms: must be positive", name,
                          (long long)ttl_ms);
    return s->ops->lease_take(s, name, owner, ttl_ms, held, err);
}

int store_lease_drop(struct store *s, const char *name, const char *owner, struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_lease_drop: no store");
    int rc = lease_check(name, owner, err);
    return rc ? rc : s->ops->lease_drop(s, name, owner, err);
}

/* ---------------------------------------------------------------------- */
/* Orders */

void store_order_release(struct store_order *o)
{
    if (!o) return;
    xfree(&o->number);
    xfree(&o->reason);
    xfree(&o->qoyod_reference);
    memset(o, 0, sizeof *o);
}

int store_order_get(struct store *s, int64_t conn_id, int64_t order_id, struct store_order *out,
                    struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_order_get: no store or result");
    memset(out, 0, sizeof *out);
    return s->ops->order_get(s, conn_id, order_id, out, err);
}

int store_order_put(struct store *s, const struct store_order *o, struct th_err *err)
{
    if (!s || !o) return th_err_set(err, TH_EINVAL, "store_order_put: no store or order");
    return s->ops->order_put(s, o, 0, NULL, err);
}

int store_stale_writer(struct th_err *err, const struct store_order *o, int64_t job_id,
                       const char *owner, int rc)
{
    if (rc != TH_ECONFLICT && rc != TH_ENOTFOUND) return rc;
    return th_err_set(err, TH_ECONFLICT,
                      "order %lld of connection %lld not saved: job %lld %s, so %s no longer "
                      "runs it (its lease ran out) and the holder's record stands",
                      (long long)o->order_id, (long long)o->conn_id, (long long)job_id,
                      rc == TH_ECONFLICT ? "was taken over by another worker"
                                         : "was finished by another worker",
                      owner);
}

int store_order_put_as(struct store *s, const struct store_order *o, int64_t job_id,
                       const char *worker, struct th_err *err)
{
    if (!s || !o || !worker || !*worker)
        return th_err_set(err, TH_EINVAL, "store_order_put_as: no store, order or worker");
    return s->ops->order_put(s, o, job_id, worker, err);
}

int store_order_add(struct store *s, const struct store_order *o, int *added,
                    struct th_err *err)
{
    if (!s || !o || !added)
        return th_err_set(err, TH_EINVAL, "store_order_add: no store, order or result");
    *added = 0;
    return s->ops->order_add(s, o, added, err);
}

int store_order_note(struct store *s, int64_t conn_id, int64_t order_id, const char *what,
                     const char *detail, struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_order_note: no store");
    if (!what || !*what)
        return th_err_set(err, TH_EINVAL, "history note for order %lld says nothing",
                          (long long)order_id);
    return s->ops->order_note(s, conn_id, order_id, what, detail, err);
}

int store_order_list(struct store *s, int64_t conn_id, int xfer,
                     void (*fn)(void *arg, const struct store_order *o), void *arg,
                     struct th_err *err)
{
    return store_order_list_in(s, 0, conn_id, xfer, fn, arg, err);
}

int store_order_list_in(struct store *s, int64_t tenant, int64_t conn_id, int xfer,
                        void (*fn)(void *arg, const struct store_order *o), void *arg,
                        struct th_err *err)
{
    if (!s || !fn) return th_err_set(err, TH_EINVAL, "store_order_list: no store or callback");
    struct store_order_query q = {
        .tenant = tenant < 0 ? 0 : tenant, .conn_id = conn_id, .xfer = xfer, .from = INT64_MIN};
    return s->ops->order_list(s, &q, fn, arg, err);
}

int store_order_page(struct store *s, const struct store_order_query *q,
                     void (*fn)(void *arg, const struct store_order *o), void *arg,
                     struct th_err *err)
{
    if (!s || !q || !fn) return th_err_set(err, TH_EINVAL, "store_order_page: no store, query or callback");
    if (q->limit < 1 || q->limit > STORE_ORDER_PAGE_MAX)
        return th_err_set(err, TH_EINVAL, "a page of %d orders: 1 to %d", q->limit,
                          STORE_ORDER_PAGE_MAX);
    struct store_order_query c = *q;
    if (c.tenant < 0) c.tenant = 0;
    return s->ops->order_list(s, &c, fn, arg, err);
}

void store_order_bounds(const struct store_order_query *q, int64_t *lo, int64_t *hi)
{
    *lo = q->from;
    *hi = q->to ? q->to - 1 : INT64_MAX;
    if (!q->has_after) return;
    if (q->newest) {
        if (q->after.created_at < *hi) *hi = q->after.created_at;
    } else if (q->after.created_at > *lo) {
        *lo = q->after.created_at;
    }
}

static const char *const xfer_names[] = {"not_transferred", "transferring", "transferred",
                                         "failed", "skipped"};

const char *store_xfer_name(enum store_xfer x)
{
    return (unsigned)x < sizeof xfer_names / sizeof xfer_names[0] ? xfer_names[x] : "?";
}

const char *store_credit_name(enum store_credit c)
{
    static const char *const names[] = {"none", "pending", "credited", "failed", "review"};
    return (unsigned)c < sizeof names / sizeof names[0] ? names[c] : "?";
}

int store_xfer_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof xfer_names / sizeof xfer_names[0]; i++)
        if (strcmp(name, xfer_names[i]) == 0) return (int)i;
    return -1;
}

int store_order_history(struct store *s, int64_t conn_id, int64_t order_id,
                        void (*fn)(void *arg, int64_t ts_ms, const char *what, const char *detail),
                        void *arg, struct th_err *err)
{
    if (!s || !fn) return th_err_set(err, TH_EINVAL, "store_order_history: no store or callback");
    if (!s->ops->order_history)
        return th_err_set(err, TH_ECONFIG, "the %s store cannot list order history", s->ops->name);
    return s->ops->order_history(s, conn_id, order_id, fn, arg, err);
}

/* ---------------------------------------------------------------------- */
/* Mappings */

int store_map_get(struct store *s, int64_t conn_id, const char *kind, const char *key,
                  int64_t *qoyod_id, struct th_err *err)
{
    if (!s || !qoyod_id) return th_err_set(err, TH_EINVAL, "store_map_get: no store or result");
    *qoyod_id = 0;
    if (!kind || !*kind || !key || !*key)
        return th_err_set(err, TH_EINVAL, "mapping lookup needs a kind and a key");
    return s->ops->map_get(s, conn_id, kind, key, qoyod_id, err);
}

int store_map_put(struct store *s, int64_t conn_id, const char *kind, const char *key,
                  int64_t qoyod_id, struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_map_put: no store");
    if (!kind || !*kind || !key || !*key)
        return th_err_set(err, TH_EINVAL, "mapping needs a kind and a key");
    return s->ops->map_put(s, conn_id, kind, key, qoyod_id, err);
}

/* ---------------------------------------------------------------------- */
/* Stock */

static int sku_ok(const char *sku)
{
    return sku && *sku && strlen(sku) < STORE_MAX_SKU;
}

int store_stock_load(struct store *s, int64_t conn_id, struct store_stock *rows, size_t n,
                     int64_t before_ms, struct th_err *err)
{
    if (!s || (n && !rows)) return th_err_set(err, TH_EINVAL, "store_stock_load: no store or rows");
    if (n > STORE_STOCK_MAX_BATCH)
        return th_err_set(err, TH_ELIMIT, "at most %d SKUs a stock read", STORE_STOCK_MAX_BATCH);
    for (size_t i = 0; i < n; i++) {
        if (!sku_ok(rows[i].sku))
            return th_err_set(err, TH_EINVAL, "a stock row needs a SKU of 1 to %d bytes",
                              STORE_MAX_SKU - 1);
        char sku[STORE_MAX_SKU];
        memcpy(sku, rows[i].sku, sizeof sku);
        memset(&rows[i], 0, sizeof rows[i]);
        memcpy(rows[i].sku, sku, sizeof sku);
    }
    return n ? s->ops->stock_load(s, conn_id, rows, n, before_ms, err) : 0;
}

int store_stock_save(struct store *s, int64_t conn_id, const struct store_stock *rows, size_t n,
                     struct th_err *err)
{
    if (!s || (n && !rows)) return th_err_set(err, TH_EINVAL, "store_stock_save: no store or rows");
    if (n > STORE_STOCK_MAX_BATCH)
        return th_err_set(err, TH_ELIMIT, "at most %d SKUs a stock write", STORE_STOCK_MAX_BATCH);
    for (size_t i = 0; i < n; i++)
        if (!sku_ok(rows[i].sku))
            return th_err_set(err, TH_EINVAL, "a stock row needs a SKU of 1 to %d bytes",
                              STORE_MAX_SKU - 1);
    return n ? s->ops->stock_save(s, conn_id, rows, n, err) : 0;
}

int store_stock_untracked(struct store *s, int64_t conn_id, const char *sku, int untracked,
                          struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_stock_untracked: no store");
    if (!sku_ok(sku))
        return th_err_set(err, TH_EINVAL, "a stock row needs a SKU of 1 to %d bytes",
                          STORE_MAX_SKU - 1);
    return s->ops->stock_untracked(s, conn_id, sku, untracked != 0, err);
}

int store_stock_own_begin(struct store *s, int64_t conn_id, const char *ref,
                          const char *const *skus, const int64_t *deltas, size_t n,
                          int64_t origin_s, struct th_err *err)
{
    if (!s || (n && (!skus || !deltas)))
        return th_err_set(err, TH_EINVAL, "store_stock_own_begin: no store or movements");
    if (!ref || !*ref) return th_err_set(err, TH_EINVAL, "own stock movements need a reference");
    if (n > STORE_STOCK_MAX_BATCH)
        return th_err_set(err, TH_ELIMIT, "at most %d SKUs a document", STORE_STOCK_MAX_BATCH);
    for (size_t i = 0; i < n; i++)
        if (!sku_ok(skus[i]))
            return th_err_set(err, TH_EINVAL, "a stock movement needs a SKU of 1 to %d bytes",
                              STORE_MAX_SKU - 1);
    return s->ops->stock_own_begin(s, conn_id, ref, skus, deltas, n, origin_s, err);
}

int store_stock_own_settle(struct store *s, int64_t conn_id, const char *ref, int applied,
                           struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_stock_own_settle: no store");
    if (!ref || !*ref) return th_err_set(err, TH_EINVAL, "own stock movements need a reference");
    return s->ops->stock_own_settle(s, conn_id, ref, applied != 0, err);
}

int store_stock_lines_note(struct store *s, int64_t conn_id, int64_t order_id, int64_t created_s,
                           const char *const *skus, const int64_t *units, size_t n,
                           struct th_err *err)
{
    if (!s || (n && (!skus || !units)))
        return th_err_set(err, TH_EINVAL, "store_stock_lines_note: no store or lines");
    if (n > STORE_STOCK_MAX_BATCH)
        return th_err_set(err, TH_ELIMIT, "at most %d SKUs an order", STORE_STOCK_MAX_BATCH);
    for (size_t i = 0; i < n; i++)
        if (!sku_ok(skus[i]))
            return th_err_set(err, TH_EINVAL, "an order line needs a SKU of 1 to %d bytes",
                              STORE_MAX_SKU - 1);
    return n ? s->ops->stock_lines_note(s, conn_id, order_id, created_s, skus, units, n, err) : 0;
}

int store_stock_lines_open(struct store *s, int64_t conn_id, const char *sku, int64_t before_ms,
                           int64_t *units, struct th_err *err)
{
    if (!s || !units) return th_err_set(err, TH_EINVAL, "store_stock_lines_open: no store");
    *units = 0;
    if (!sku_ok(sku))
        return th_err_set(err, TH_EINVAL, "an order line needs a SKU of 1 to %d bytes",
                          STORE_MAX_SKU - 1);
    return s->ops->stock_lines_open(s, conn_id, sku, before_ms, units, err);
}

int store_stock_line_get(struct store *s, int64_t conn_id, int64_t order_id, const char *sku,
                         struct store_stock_line *out, struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_stock_line_get: no store");
    if (!sku_ok(sku))
        return th_err_set(err, TH_EINVAL, "an order line needs a SKU of 1 to %d bytes",
                          STORE_MAX_SKU - 1);
    memset(out, 0, sizeof *out);
    out->order_id = order_id;
    snprintf(out->sku, sizeof out->sku, "%s", sku);
    return s->ops->stock_line_get(s, conn_id, order_id, sku, out, err);
}

int store_stock_line_put(struct store *s, int64_t conn_id, const struct store_stock_line *l,
                         struct th_err *err)
{
    if (!s || !l) return th_err_set(err, TH_EINVAL, "store_stock_line_put: no store or line");
    if (!sku_ok(l->sku))
        return th_err_set(err, TH_EINVAL, "an order line needs a SKU of 1 to %d bytes",
                          STORE_MAX_SKU - 1);
    if (l->mark < STORE_OPEN_NONE || l->mark > STORE_OPEN_FIXING)
        return th_err_set(err, TH_EINVAL, "unknown opening mark %d", l->mark);
    return s->ops->stock_line_put(s, conn_id, l, err);
}

int store_stock_lines_forget(struct store *s, int64_t conn_id, int64_t order_id,
                             struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_stock_lines_forget: no store");
    return s->ops->stock_lines_forget(s, conn_id, order_id, err);
}

/* ---------------------------------------------------------------------- */
/* Dashboard users */

/* Names of users and tenants: 1 to max characters of A-Z a-z 0-9 . _ @ -. */
static int name_ok(const char *what, size_t max, const char *name, struct th_err *err)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > max ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-") != n)
        return th_err_set(err, TH_EINVAL,
                          "a %s name is 1 to %zu characters of A-Z a-z 0-9 . _ @ -, not \"%.80s\"",
                          what, max, name ? name : "");
    return 0;
}

static int user_name_ok(const char *name, struct th_err *err)
{
    return name_ok("user", STORE_USER_NAME_MAX, name, err);
}

int store_user_put(struct store *s, const char *name, const char *hash, struct th_err *err)
{
    return store_user_put_in(s, name, hash, 0, err);
}

int store_user_put_in(struct store *s, const char *name, const char *hash, int64_t tenant,
                      struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_user_put: no store");
    int rc = user_name_ok(name, err);
    if (rc) return rc;
    if (!hash || !*hash) return th_err_set(err, TH_EINVAL, "store_user_put: no password hash");
    if (!s->ops->user_put)
        return th_err_set(err, TH_ECONFIG, "the %s store cannot keep dashboard users",
                          s->ops->name);
    if (tenant < 0) return th_err_set(err, TH_EINVAL, "store_user_put: negative tenant id");
    struct store_tenant t;
    if (tenant && (rc = s->ops->tenant_get(s, tenant, NULL, &t, err)) != 0) return rc;
    return s->ops->user_put(s, name, hash, tenant, err);
}

int store_user_get(struct store *s, const char *name, char **hash, struct th_err *err)
{
    int64_t tenant;
    return store_user_get_in(s, name, hash, &tenant, err);
}

int store_user_get_in(struct store *s, const char *name, char **hash, int64_t *tenant,
                      struct th_err *err)
{
    if (!s || !hash || !tenant)
        return th_err_set(err, TH_EINVAL, "store_user_get: no store or result");
    *hash = NULL;
    *tenant = 0;
    int rc = user_name_ok(name, err);
    if (rc) return rc;
    if (!s->ops->user_get)
        return th_err_set(err, TH_ECONFIG, "the %s store cannot keep dashboard users",
                          s->ops->name);
    return s->ops->user_get(s, name, hash, tenant, err);
}

int store_user_count(struct store *s, int64_t *n, struct th_err *err)
{
    if (!s || !n) return th_err_set(err, TH_EINVAL, "store_user_count: no store or result");
    *n = 0;
    if (!s->ops->user_count) return 0;
    return s->ops->user_count(s, n, err);
}

int store_user_list(struct store *s, int64_t tenant,
                    void (*fn)(void *arg, const char *name, int64_t tenant, int64_t set_ms),
                    void *arg, struct th_err *err)
{
    if (!s || !fn) return th_err_set(err, TH_EINVAL, "store_user_list: no store or callback");
    if (!s->ops->user_list) return th_err_set(err, TH_ECONFIG, "this store keeps no users");
    return s->ops->user_list(s, tenant < 0 ? 0 : tenant, fn, arg, err);
}

int store_user_delete(struct store *s, const char *name, struct th_err *err)
{
    if (!s || !name) return th_err_set(err, TH_EINVAL, "store_user_delete: no store or name");
    if (!s->ops->user_delete) return th_err_set(err, TH_ECONFIG, "this store keeps no users");
    return s->ops->user_delete(s, name, err);
}

/* ---------------------------------------------------------------------- */
/* Tenants and their API tokens */

int store_tenant_add(struct store *s, const char *name, int64_t *id, struct th_err *err)
{
    if (!s || !id) return th_err_set(err, TH_EINVAL, "store_tenant_add: no store or result");
    *id = 0;
    int rc = name_ok("tenant", STORE_TENANT_NAME_MAX, name, err);
    return rc ? rc : s->ops->tenant_add(s, name, id, err);
}

int store_tenant_find(struct store *s, const char *name, struct store_tenant *out,
                      struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_tenant_find: no store or result");
    memset(out, 0, sizeof *out);
    int rc = name_ok("tenant", STORE_TENANT_NAME_MAX, name, err);
    return rc ? rc : s->ops->tenant_get(s, 0, name, out, err);
}

int store_tenant_get(struct store *s, int64_t id, struct store_tenant *out, struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_tenant_get: no store or result");
    memset(out, 0, sizeof *out);
    if (id <= 0) return th_err_set(err, TH_ENOTFOUND, "no tenant %lld", (long long)id);
    return s->ops->tenant_get(s, id, NULL, out, err);
}

int store_tenant_list(struct store *s, void (*fn)(void *arg, const struct store_tenant *t),
                      void *arg, struct th_err *err)
{
    if (!s || !fn) return th_err_set(err, TH_EINVAL, "store_tenant_list: no store or callback");
    return s->ops->tenant_list(s, fn, arg, err);
}

static int digest_ok(const char *d, struct th_err *err)
{
    if (!d || strlen(d) != STORE_TOKEN_DIGEST_HEX ||
        strspn(d, "0123456789abcdef") != STORE_TOKEN_DIGEST_HEX)
        return th_err_set(err, TH_EINVAL,
                          "a token digest is %d lower-case hex digits (SHA-256)",
                          STORE_TOKEN_DIGEST_HEX);
    return 0;
}

int store_token_add(struct store *s, int64_t tenant, const char *digest_hex, const char *label,
                    int64_t *id, struct th_err *err)
{
    if (!s || !id) return th_err_set(err, TH_EINVAL, "store_token_add: no store or result");
    *id = 0;
    int rc = digest_ok(digest_hex, err);
    if (rc) return rc;
    if (!label) label = "";
    size_t n = strlen(label), printable = 0;
    while (printable < n && label[printable] >= 0x20 && label[printable] <= 0x7e)
        printable++;
    if (n > STORE_TOKEN_LABEL_MAX || printable != n)
        return th_err_set(err, TH_EINVAL,
                          "a token label is 0 to %d printable ASCII characters, not \"%.80s\"",
                          STORE_TOKEN_LABEL_MAX, label);
    struct store_tenant t;
    if (tenant <= 0) return th_err_set(err, TH_ENOTFOUND, "no tenant %lld", (long long)tenant);
    if ((rc = s->ops->tenant_get(s, tenant, NULL, &t, err)) != 0) return rc;
    return s->ops->token_add(s, tenant, digest_hex, label, id, err);
}

int store_token_find(struct store *s, const char *digest_hex, struct store_token *out,
                     struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_token_find: no store or result");
    memset(out, 0, sizeof *out);
    int rc = digest_ok(digest_hex, err);
    return rc ? rc : s->ops->token_find(s, digest_hex, out, err);
}

int store_token_list(struct store *s, int64_t tenant,
                     void (*fn)(void *arg, const struct store_token *t), void *arg,
                     struct th_err *err)
{
    if (!s || !fn) return th_err_set(err, TH_EINVAL, "store_token_list: no store or callback");
    return s->ops->token_list(s, tenant < 0 ? 0 : tenant, fn, arg, err);
}

int store_token_revoke(struct store *s, int64_t id, struct th_err *err)
{
    if (!s) return th_err_set(err, TH_EINVAL, "store_token_revoke: no store");
    return s->ops->token_revoke(s, id, err);
}

int store_token_count(struct store *s, int64_t *n, struct th_err *err)
{
    if (!s || !n) return th_err_set(err, TH_EINVAL, "store_token_count: no store or result");
    *n = 0;
    return s->ops->token_count(s, n, err);
}

/* ---------------------------------------------------------------------- */
/* Product fields                                                           */

static const char *const field_names[STORE_NFIELDS] = {"name", "price", "cost"};

const char *store_field_name(int field)
{
    return field >= 0 && field < STORE_NFIELDS ? field_names[field] : "?";
}

int store_field_from_name(const char *name)
{
    for (int f = 0; name && f < STORE_NFIELDS; f++)
        if (strcmp(name, field_names[f]) == 0) return f;
    return -1;
}

const char *store_src_name(int src)
{
    return src == STORE_SRC_STORE ? "store" : src == STORE_SRC_QOYOD ? "qoyod" : "?";
}

int store_src_from_name(const char *name)
{
    if (name && strcmp(name, "store") == 0) return STORE_SRC_STORE;
    if (name && strcmp(name, "qoyod") == 0) return STORE_SRC_QOYOD;
    return -1;
}

int store_field_source(const struct store_conn *c, int field)
{
    int src = c && field >= 0 && field < STORE_NFIELDS ? c->field_source[field] : 0;
    if (src == STORE_SRC_STORE || src == STORE_SRC_QOYOD) return src;
    return field == STORE_FIELD_COST ? STORE_SRC_QOYOD : STORE_SRC_STORE;
}

static int fields_rows_check(const struct store_field_state *rows, size_t n, struct th_err *err)
{
    if (n > STORE_FIELDS_MAX_BATCH)
        return th_err_set(err, TH_ELIMIT, "at most %d field rows a call", STORE_FIELDS_MAX_BATCH);
    for (size_t i = 0; i < n; i++)
        if (!rows[i].sku[0] || rows[i].field < 0 || rows[i].field >= STORE_NFIELDS)
            return th_err_set(err, TH_EINVAL, "a field row needs a SKU and a field");
    return 0;
}

int store_fields_load(struct store *s, int64_t conn_id, struct store_field_state *rows, size_t n,
                      struct th_err *err)
{
    if (!s || (n && !rows)) return th_err_set(err, TH_EINVAL, "store_fields_load: no store or rows");
    int rc = fields_rows_check(rows, n, err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        rows[i].store_value[0] = rows[i].qoyod_value[0] = rows[i].store_ref[0] = '\0';
        rows[i].qoyod_id = 0;
        rows[i].synced_ms = 0;
        rows[i].known = 0;
    }
    return n ? s->ops->fields_load(s, conn_id, rows, n, err) : 0;
}

int store_fields_save(struct store *s, int64_t conn_id, const struct store_field_state *rows,
                      size_t n, struct th_err *err)
{
    if (!s || (n && !rows)) return th_err_set(err, TH_EINVAL, "store_fields_save: no store or rows");
    int rc = fields_rows_check(rows, n, err);
    if (rc) return rc;
    return n ? s->ops->fields_save(s, conn_id, rows, n, err) : 0;
}

int store_conflict_add(struct store *s, struct store_conflict *c, struct th_err *err)
{
    if (!s || !c) return th_err_set(err, TH_EINVAL, "store_conflict_add: no store or conflict");
    if (!c->sku[0] || c->field < 0 || c->field >= STORE_NFIELDS ||
        (c->winner != STORE_SRC_STORE && c->winner != STORE_SRC_QOYOD))
        return th_err_set(err, TH_EINVAL, "a conflict needs a SKU, a field and the side that won");
    c->resolved_ms = 0;
    c->resolution[0] = '\0';
    c->at_ms = store_now_ms(s);
    return s->ops->conflict_add(s, c, err);
}

int store_conflict_get(struct store *s, int64_t id, struct store_conflict *out,
                       struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "store_conflict_get: no store or result");
    memset(out, 0, sizeof *out);
    return s->ops->conflict_get(s, id, out, err);
}

int store_conflict_list(struct store *s, int64_t conn_id, int open_only, int limit,
                        void (*fn)(void *arg, const struct store_conflict *c), void *arg,
                        struct th_err *err)
{
    if (!s || !fn) return th_err_set(err, TH_EINVAL, "store_conflict_list: no store or callback");
    return s->ops->conflict_list(s, conn_id, open_only, limit, fn, arg, err);
}

int store_conflict_resolve(struct store *s, int64_t id, const char *resolution,
                           struct th_err *err)
{
    if (!s || !resolution || !*resolution)
        return th_err_set(err, TH_EINVAL, "store_conflict_resolve: no store or resolution");
    return s->ops->conflict_resolve(s, id, resolution, err);
}
