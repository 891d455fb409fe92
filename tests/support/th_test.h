/*
 * th_test — helpers shared by tests: in-process emulators, an HTTP call that
 * returns parsed JSON, and a webhook receiver that records what it gets.
 * Test code only; linked into every test binary.
 */
#ifndef TH_TEST_H
#define TH_TEST_H

#include <jansson.h>
#include <stddef.h>

#include "net/httpc.h"
#include "sim/sim.h"

/* Starts an emulator on 127.0.0.1:<free port>. opts is a NULL-terminated
 * list of name, value pairs ("api-key", "k1", NULL) or NULL. Fails the test
 * (cmocka fail_msg) if it cannot start. */
struct sim *tt_sim_start(const struct sim_ops *ops, const char *const *opts);
void tt_sim_stop(struct sim *s);

struct tt_resp {
    int rc;        /* httpc_do's result (0 on 2xx) */
    long status;   /* HTTP status, 0 when none */
    char *body;    /* body text (owned), "" when none */
    json_t *json;  /* parsed body or NULL (owned) */
    long retry_after_s;
    char ratelimit_remaining[32];
};

/* One request with a fresh client (timeout 10 s). headers: NULL-terminated
 * "Name: value" list or NULL. body may be NULL. Fills out; returns out->rc. */
int tt_http(const char *method, const char *url, const char *const *headers, const char *body,
            struct tt_resp *out);
/* Same with an explicit timeout in ms. */
int tt_http_timeout(const char *method, const char *url, const char *const *headers,
                    const char *body, long timeout_ms, struct tt_resp *out);
void tt_resp_release(struct tt_resp *r);

/* printf-style URL builder: returns a static per-thread buffer. */
const char *tt_url(const struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counts entries in the emulator's request log whose method equals method
 * (NULL = any) and whose path matches glob (fnmatch), and whose recorded
 * status equals status (-2 = any; 0 = dropped). */
int tt_count_requests(struct sim *s, const char *method, const char *path_glob, int status);

/* Installs faults: body is the JSON for POST /_sim/faults. Fails the test on
 * a non-201 answer. */
void tt_faults(struct sim *s, const char *json);

/* Waits until the emulator's webhook queue is empty (or timeout_ms passes);
 * returns the number still pending. */
size_t tt_webhooks_drain(struct sim *s, long timeout_ms);

/* ---------------------------------------------------------------------- */
/* A webhook receiver: records every request; answers `status` after
 * sleeping delay_ms. */
struct tt_receiver;
struct tt_received {
    char *method, *path, *body;
    size_t body_len;
    char *headers[8]; /* values of the names given at start, NULL if absent */
};
struct tt_receiver *tt_receiver_start(int status, long delay_ms, const char *const *header_names);
void tt_receiver_stop(struct tt_receiver *r);
const char *tt_receiver_url(const struct tt_receiver *r); /* "http://127.0.0.1:PORT" */
void tt_receiver_set(struct tt_receiver *r, int status, long delay_ms);
size_t tt_receiver_count(struct tt_receiver *r);
/* Copy of the i-th request (owned; tt_received_release). Returns 0 or -1. */
int tt_receiver_get(struct tt_receiver *r, size_t i, struct tt_received *out);
void tt_received_release(struct tt_received *x);
/* Waits until at least n requests arrived; returns the count. */
size_t tt_receiver_wait(struct tt_receiver *r, size_t n, long timeout_ms);

void tt_sleep_ms(long ms);

/* Runs `tarheel` (cli_main) in this process with argv (argv[argc] NULL),
 * its standard output and error captured through files in dir; returns its
 * exit code and sets *out and *err (new strings, free()). */
int tt_cli_run(const char *dir, int argc, char **argv, char **out, char **err);

#endif
