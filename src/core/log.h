/*
 * log — one event per line, key=value, to stderr (or a chosen stream).
 *
 * Line format: `ts=2026-11-23T06:00:00.123Z level=info event=webhook_accepted
 * store=42 order=1001 ...`. The event is a fixed snake_case name; the rest is
 * key=value pairs given by the caller, so `grep order=1001` tells an order's
 * whole story. Safe to call from any thread. Never logs secrets: callers pass
 * ids, not tokens (a test greps the suite's logs for known secrets).
 */
#ifndef TH_CORE_LOG_H
#define TH_CORE_LOG_H

#include <stdio.h>

#include "core/err.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/* Sets the minimum level written (default LOG_INFO; TH_LOG_LEVEL=debug|info|
 * warn|error|off in the environment overrides it at the first log call). */
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/* Sets the stream lines go to (borrowed; default stderr). */
void log_set_stream(FILE *f);

/* Writes one line: event plus the printf-formatted key=value text. */
void log_write(enum log_level lvl, const char *event, const char *fmt, ...) TH_PRINTF(3, 4);

#define log_debug(ev, ...) log_write(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_write(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_write(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_write(LOG_ERROR, ev, __VA_ARGS__)

/* Quotes a value for key=value output when it holds spaces, quotes or
 * non-printable bytes: writes into out (size n) and returns out. */
const char *log_quote(const char *v, char *out, size_t n);

#endif
