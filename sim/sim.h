/*
 * sim — the framework shared by the Qoyod, Salla and Zid emulators.
 *
 * Owns, for one emulator instance: the HTTP server, the state lock, the
 * control API under /_sim/ (reset, request log, faults, webhook log), fault
 * injection on incoming requests and on outgoing webhooks, the deterministic
 * random source (--seed), the rate-limit buckets, the outgoing webhook queue
 * and saving state to --state FILE. An emulator (qoyod_sim.c, salla_sim.c,
 * zid_sim.c) supplies a `struct sim_ops` and knows nothing of faults: the
 * framework applies them around its handler. The emulators are test
 * equipment, so jansson is used freely here; nothing in src/ includes sim/.
 *
 * Request flow:
 *   1. log the request (GET /_sim/requests shows it);
 *   2. /_sim/... goes to the control API (never faulted);
 *   3. faults matching "METHOD /path" are drawn: latency sleeps (outside the
 *      lock) and evaluation continues; reset drops the connection unanswered;
 *      error answers 5xx; rate_limit answers 429 + Retry-After;
 *      commit_then_drop lets the request run, then drops the answer;
 *   4. the emulator's handle() runs with the state lock held;
 *   5. if --state is set and the request was not a GET, state is saved
 *      (tmp file, fsync, rename).
 */
#ifndef TH_SIM_SIM_H
#define TH_SIM_SIM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpd.h"

/* Entries kept in the request log (a ring; older ones are forgotten). */
#define SIM_MAX_LOG 4096
/* Bytes of each request body kept in the log. */
#define SIM_MAX_LOG_BODY (16 * 1024)
/* Faults that can be active at once. */
#define SIM_MAX_FAULTS 64
/* Deliveries waiting in the webhook queue; more are refused (logged). */
#define SIM_MAX_WEBHOOK_QUEUE 10000

struct sim;

/* What an emulator's handler sees. All pointers borrowed for the call. */
struct sim_req {
    const char *method;            /* "GET", "POST", ... */
    const char *path;              /* decoded path, no query: "/2.0/invoices/7" */
    const struct httpd_req *http;  /* headers, query args, peer */
    const char *raw_body;          /* "" when none */
    size_t raw_len;
    json_t *body;                  /* parsed body (borrowed), NULL if none or invalid */
    int body_invalid;              /* 1 when a non-empty body is not valid JSON */
};

struct sim_ops {
    /* Required. The emulator's name on the command line: "qoyod". */
    const char *name;
    /* Required. Creates the emulator's state, seeded with its sample data.
     * Called once, before the server starts. Returns new state. */
    void *(*create)(struct sim *s);
    /* Required. Frees the state. */
    void (*destroy)(void *st);
    /* Required. Returns the state to what create() made (POST /_sim/reset). */
    void (*reset)(void *st);
    /* Required. Serves one platform API request, state lock held. Fills resp
     * (status, JSON body, headers). Must not sleep. */
    void (*handle)(void *st, const struct sim_req *req, struct httpd_resp *resp);
    /* Optional. Serves POST|GET /_sim/<sub> for emulator-specific control
     * (seeding entities, changing order status, installing an app). State
     * lock held. Returns 0 when it handled the request, TH_ENOTFOUND when the
     * path is not one of its own (the framework answers 404). */
    int (*control)(void *st, const char *sub, const struct sim_req *req,
                   struct httpd_resp *resp);
    /* Optional (both or neither). Serialise / restore the whole state for
     * --state FILE. load() receives what save() produced. */
    json_t *(*save)(void *st);
    int (*load)(void *st, const json_t *saved, struct th_err *err);
    /* Optional. One line per option for --help ("--api-key KEY  ..."). */
    const char *usage;
};

struct sim_config {
    const char *listen;        /* "127.0.0.1:0" picks a free port */
    uint64_t seed;             /* fault draws and generated ids; 0 = 1 */
    const char *state_file;    /* NULL = state lives in memory only */
    /* Emulator-specific options as name/value pairs ("api-key", "k1"); a
     * name may repeat. Borrowed for the life of the sim. */
    size_t nopts;
    const char *const *opt_names;
    const char *const *opt_values;
};

/* Creates the state and starts serving. On failure nothing is left. */
int sim_open(struct sim **out, const struct sim_ops *ops, const struct sim_config *cfg,
             struct th_err *err) TH_MUST_CHECK;
/* Stops the server and the webhook sender, frees everything. NULL ok. */
void sim_close(struct sim *s);

uint16_t sim_port(const struct sim *s);
/* "http://127.0.0.1:PORT" (borrowed). */
const char *sim_base_url(const struct sim *s);
/* The emulator's state (for in-process tests; take sim_lock first). */
void *sim_state(struct sim *s);
void sim_lock(struct sim *s);
void sim_unlock(struct sim *s);

/* Emulator-specific option values (see sim_config). sim_opt returns the
 * last value given for name, or NULL; sim_opt_at the i-th (NULL past end). */
const char *sim_opt(const struct sim *s, const char *name);
const char *sim_opt_at(const struct sim *s, const char *name, size_t i);

/* Deterministic random source (splitmix64 seeded by --seed). Thread-safe. */
uint64_t sim_rand(struct sim *s);

/* The next id of a kind from the counters object `next` (an emulator's
 * state), starting at base; ids grow by 1 + a random step below `spread`,
 * so they look like a busy platform's. */
long long sim_next_id(struct sim *s, json_t *next, const char *kind, long long base,
                      unsigned spread);

/* prefix + 32 random hex digits (tokens, codes): a new string. */
char *sim_token(struct sim *s, const char *prefix);

/* Replaces resp's body with the compact dump of v (takes v) and sets
 * status and Content-Type: application/json. */
void sim_json(struct httpd_resp *resp, int status, json_t *v);

/* Current time as "2024-02-02T02:22:04.000+03:00" (Riyadh, as Qoyod and
 * Salla print it) and as "YYYY-MM-DD HH:MM:SS" (Riyadh); out size >= 40. */
char *sim_now_riyadh_iso(char *out, size_t n);
char *sim_now_riyadh_plain(char *out, size_t n);

/*
 * Rate limiting: a fixed window per key. Takes one request from key's
 * budget of `limit` per `window_s` seconds. Returns 0 when allowed, else the
 * seconds until the window resets (for Retry-After). *remaining and *reset_s
 * (may be NULL) report the bucket after this request, for X-RateLimit-*.
 * limit <= 0 means unlimited.
 */
long sim_rate_take(struct sim *s, const char *key, long limit, long window_s, long *remaining,
                   long *reset_s);

/*
 * Outgoing webhooks. The delivery is copied and queued; a sender thread
 * POSTs it to url with the given headers, retrying non-2xx answers up to
 * max_attempts times, retry_delay_ms apart. When sign_header is set, the
 * sender adds `sign_header: hex(HMAC-SHA256(sign_key, body))`; when
 * auth_header is set it is sent verbatim ("Authorization: Basic ..."). Faults
 * matching "webhook <event>" apply: duplicate (delivered twice), out_of_order
 * (held until the next delivery went out), bad_signature (signature, or
 * auth_header when unsigned, is corrupted), slow_receiver (the attempt times
 * out after latency_ms, default 50, as a platform gives up on a slow app),
 * lose (never delivered, as when a platform suspends an endpoint).
 * Safe to call with the state lock held.
 */
struct sim_webhook {
    const char *url;
    const char *event;          /* "order.created": for faults and the log */
    const char *body;
    size_t body_len;            /* 0 = strlen(body) */
    const char *const *headers; /* NULL-terminated "Name: value" list, may be NULL */
    const char *sign_header;    /* e.g. "X-Salla-Signature", or NULL */
    const char *sign_key;
    const char *auth_header;    /* full header line, or NULL */
    int max_attempts;           /* 0 = 4 (one try + 3 retries, Salla's policy) */
    long retry_delay_ms;        /* 0 = 300000 (five minutes) */
    long timeout_ms;            /* 0 = 30000 */
    /* Optional: told the outcome of every attempt (ok = 2xx; status 0 when no
     * answer), from the sender thread with no lock held (it may take
     * sim_lock), so an emulator can keep per-subscription health (Zid's
     * circuit breaker). Returning non-zero discards the delivery instead of
     * retrying it. `tag` is copied and identifies the subscription for
     * sim_webhook_cancel. */
    int (*on_result)(void *arg, const char *tag, int ok, long status);
    void *result_arg;
    const char *tag;
};
void sim_webhook_send(struct sim *s, const struct sim_webhook *w);

/* Discards every queued delivery carrying `tag` (marked "discarded" in the
 * log); returns how many. It takes only the queue lock, so it is safe from
 * handlers and from on_result callbacks. */
size_t sim_webhook_cancel(struct sim *s, const char *tag);

/* Number of webhook deliveries not yet finished (sent OK or given up). */
size_t sim_webhook_pending(struct sim *s);

/*
 * A request field however the client sent it: a JSON body's string or
 * number member, an application/x-www-form-urlencoded body, or a
 * multipart/form-data part (the docs' cURL examples use --form). Decoded
 * into out (truncated to n - 1 bytes). Returns out, or NULL when absent.
 */
const char *sim_body_field(const struct sim_req *req, const char *name, char *out, size_t n);

/* The same for an x-www-form-urlencoded string only. */
const char *sim_form_field(const char *body, const char *name, char *out, size_t n);

/* base64 of data into a new string. */
char *sim_base64(const void *data, size_t len);

/* hex(HMAC-SHA256(key, data)) into out (65 bytes). */
void sim_hmac_sha256_hex(const char *key, const void *data, size_t len, char out[65]);

#endif
