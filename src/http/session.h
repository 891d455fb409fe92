/*
 * session — dashboard logins: session ids with expiry and their CSRF
 * tokens, and the login attempt limit.
 *
 * Owns the in-memory session table and the failed-login counters. Session
 * ids and CSRF tokens are 256-bit random values (hex); only the SHA-256 of a
 * session id is kept, so a memory dump does not yield usable cookies. The
 * table lives in memory on purpose: a restart of `tarheel serve` logs
 * everyone out (they log in again), and nothing about sessions reaches the
 * database. It knows nothing about HTTP or users: api.c checks passwords
 * (core/passwd.h) and sets cookies. Every function is thread-safe; `now` is
 * unix seconds, passed in so tests drive the clock.
 */
#ifndef TH_HTTP_SESSION_H
#define TH_HTTP_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* A session ends after SESSION_IDLE_S without a request, and SESSION_MAX_S
 * after the login whatever happens: a working day, then log in again. */
#define SESSION_IDLE_S (2 * 3600)
#define SESSION_MAX_S (12 * 3600)
/* Sessions at once: a shop has a handful of admins; past this the oldest
 * session is ended to make room. */
#define SESSION_MAX 256
/* Failed logins: after SESSION_FAIL_MAX failures for one key (the peer
 * address, or the user name) within SESSION_FAIL_WINDOW_S, that key may not
 * try again until the window of its first failure is over. 5 per 15 minutes
 * allows typos and makes guessing a 10-character password hopeless. */
#define SESSION_FAIL_MAX 5
#define SESSION_FAIL_WINDOW_S (15 * 60)
#define SESSION_FAIL_KEYS 512
/* Hex text of an id or token, with its NUL. */
#define SESSION_TOKEN_LEN 65
#define SESSION_USER_MAX 65

struct sessions;

struct sessions *sessions_new(void);
/* Frees the table (wiping it). NULL is a no-op. */
void sessions_free(struct sessions *t);

/* Starts a session for user: fills id (the cookie value) and csrf (the
 * token state-changing requests must echo in X-CSRF-Token). */
void sessions_start(struct sessions *t, const char *user, int64_t now,
                    char id[SESSION_TOKEN_LEN], char csrf[SESSION_TOKEN_LEN]);

/* The same, with a stamp kept for the session (up to SESSION_TOKEN_LEN - 1
 * characters; NULL or "": none): api.c stamps a session with a digest of
 * the user's password hash (sessions_stamp), so a new password ends the
 * sessions started under the old one. */
void sessions_start_as(struct sessions *t, const char *user, const char *stamp, int64_t now,
                       char id[SESSION_TOKEN_LEN], char csrf[SESSION_TOKEN_LEN]);

/* The stamp of a credential: the hex SHA-256 of text. */
void sessions_stamp(const char *text, char out[SESSION_TOKEN_LEN]);

/* 1 when id names a live session (then its idle time restarts, and user
 * and csrf, each may be NULL, are filled); 0 when unknown or expired (an
 * expired session is removed). */
int sessions_check(struct sessions *t, const char *id, int64_t now, char user[SESSION_USER_MAX],
                   char csrf[SESSION_TOKEN_LEN]);
/* The same, also filling stamp (may be NULL) with the session's stamp. */
int sessions_check_as(struct sessions *t, const char *id, int64_t now,
                      char user[SESSION_USER_MAX], char csrf[SESSION_TOKEN_LEN],
                      char stamp[SESSION_TOKEN_LEN]);

/* Ends the session id names (logout). Unknown ids are ignored. */
void sessions_end(struct sessions *t, const char *id);

/* How many sessions are live (expired ones are not counted). */
size_t sessions_count(struct sessions *t, int64_t now);

/* Login limit. sessions_login_wait returns 0 when key may try now, else the
 * seconds until it may. sessions_login_failed counts a failure of key;
 * sessions_login_ok forgets key's failures. */
int64_t sessions_login_wait(struct sessions *t, const char *key, int64_t now);
void sessions_login_failed(struct sessions *t, const char *key, int64_t now);
void sessions_login_ok(struct sessions *t, const char *key);

#endif
