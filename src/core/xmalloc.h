/*
 * xmalloc — allocation that succeeds or does not return.
 *
 * All heap allocation in tarheel goes through here (STYLE C8). On exhaustion
 * it prints one line and aborts; systemd restarts the daemon, which is safe
 * because nothing acknowledged lives only in memory. Callers never check NULL.
 */
#ifndef TH_CORE_XMALLOC_H
#define TH_CORE_XMALLOC_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);                /* new; xstrdup(NULL) returns NULL */
char *xstrndup(const char *s, size_t n);     /* new */
char *xasprintf(const char *fmt, ...) TH_PRINTF(1, 2);  /* new */
char *xvasprintf(const char *fmt, va_list ap);          /* new */

/* Stops the process on a broken invariant (a bug), naming where. */
#define TH_BUG(...) th_bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void th_bug(const char *file, int line, const char *fmt, ...) TH_PRINTF(3, 4);

#endif
