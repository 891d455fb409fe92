/*
 * err — tarheel's one error vocabulary.
 *
 * Owns the TH_E* codes and their operator-facing text. Codes are negative,
 * 0 is success; a code is never renumbered or reused, because codes are stored
 * next to failed transfers. The table below also generates docs/ERRORS.md
 * (`tarheel errors --markdown`). This module must not log: the layer that
 * decides what to do with a failure logs it, once.
 */
#ifndef TH_CORE_ERR_H
#define TH_CORE_ERR_H

#include <stddef.h>

#define TH_MUST_CHECK __attribute__((warn_unused_result))
#define TH_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* X(name, number, what happened, what the operator should do) */
#define TH_ERR_TABLE(X)                                                                            \
    X(TH_EINTERNAL, 1, "internal error (a bug in tarheel)",                                        \
      "report it with the log lines around it; the input that caused it is kept")                 \
    X(TH_EINVAL, 2, "invalid argument or option",                                                  \
      "check the command line or configuration value named in the message")                       \
    X(TH_EPARSE, 3, "malformed input (not valid JSON, or the wrong shape)",                        \
      "the sender must fix its payload; the message names the field")                             \
    X(TH_ETOOBIG, 4, "input exceeds a size limit",                                                 \
      "the limit and its reason are in the message; raise it only if the input is legitimate")    \
    X(TH_EDEPTH, 5, "JSON nested deeper than allowed",                                             \
      "genuine platform payloads are shallow; treat the sender as broken or hostile")             \
    X(TH_ENOTFOUND, 6, "the requested record does not exist",                                      \
      "check the id; it may belong to another store or have been deleted")                        \
    X(TH_EIO, 7, "file or disk I/O failed",                                                        \
      "check free space and permissions on the path in the message")                              \
    X(TH_ETEMP, 8, "temporary failure of a remote service (unreachable, 429, 503)",               \
      "nothing to do: tarheel retries with backoff; if it persists, check the service's status")  \
    X(TH_EPERM, 9, "the remote service refused the request permanently",                           \
      "read the service's answer in the message, fix the data or settings, then retry")           \
    X(TH_EUNKNOWN, 10, "a request was sent but its outcome is unknown (timeout, lost answer)",    \
      "nothing to do: tarheel looks the record up before it retries, so no duplicate is made")    \
    X(TH_EAUTH, 11, "authentication failed (bad API key, token or signature)",                    \
      "re-enter the credential, or reconnect the store; for webhooks check the secret")           \
    X(TH_EMONEY, 12, "an amount could not be represented exactly in halalas",                     \
      "the message shows the amount; amounts must be decimal numbers within range")               \
    X(TH_ERATE, 13, "a rate limit was reached",                                                   \
      "the service waits and retries by itself; a command that stopped on it: run it again in "    \
      "a few minutes")                                                                             \
    X(TH_EDB, 14, "the database could not be read or written",                                    \
      "check the database file or server named in the message; tarheel retries on its own")       \
    X(TH_EDISKFULL, 15, "the disk is (nearly) full", "free space; intake resumes by itself")        \
    X(TH_ECONFIG, 16, "the configuration is incomplete or inconsistent",                          \
      "set the option named in the message (see `tarheel --help`)")                               \
    X(TH_ECONFLICT, 17, "the record already exists or changed concurrently",                      \
      "retry; if it repeats, look at the record named in the message")                            \
    X(TH_ELIMIT, 18, "an internal limit was reached (queue, connections, items)",                 \
      "the message names the limit; wait, or raise it if the load is legitimate")                 \
    X(TH_ELISTEN, 19, "cannot listen on the address asked for (port in use, or not permitted)",   \
      "pick another port with --listen HOST:PORT (--redirect-uri for connect --oauth), or stop "  \
      "the process holding the port named in the message (`ss -ltnp` shows it); ports below "    \
      "1024 need privileges")

enum th_errcode {
    TH_OK = 0,
#define TH_ERR_ENUM(name, num, what, todo) name = -(num),
    TH_ERR_TABLE(TH_ERR_ENUM)
#undef TH_ERR_ENUM
};

#define TH_ERR_MSG_MAX 512

/* The detail of a failure, filled by the function that detects it. */
struct th_err {
    int code;                  /* 0 or a TH_E* value */
    char msg[TH_ERR_MSG_MAX];  /* specifics: which order, field, status, SKU */
};

/* Sets err (which may be NULL) and returns code, so callers write
 * `return th_err_set(err, TH_EPARSE, "field %s", name);`. */
int th_err_set(struct th_err *err, int code, const char *fmt, ...) TH_PRINTF(3, 4);

/* Clears err to success. err may be NULL. */
void th_err_clear(struct th_err *err);

/* Static strings for a code: its name ("TH_EPARSE"), what it means and what to
 * do. Unknown codes get "TH_E?" and generic text; never NULL. */
const char *th_err_name(int code);
const char *th_err_what(int code);
const char *th_err_todo(int code);

/* Iteration over every defined code, for docs and tests: returns the number of
 * codes and stores the i-th code in *code. */
size_t th_err_count(void);
int th_err_at(size_t i);

#endif
