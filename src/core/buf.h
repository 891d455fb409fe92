/*
 * buf — a growable byte buffer with a hard cap.
 *
 * Every buffer fed by outside input is created with a cap (STYLE C12), so a
 * hostile or broken peer becomes TH_ETOOBIG, never unbounded memory. The data
 * is always NUL-terminated so text can be used as a C string. Embedded in the
 * caller's memory: buf_init() / buf_release().
 */
#ifndef TH_CORE_BUF_H
#define TH_CORE_BUF_H

#include <stddef.h>

#include "core/err.h"

struct buf {
    char *data;    /* NUL-terminated when non-NULL; owned */
    size_t len;    /* bytes used, excluding the NUL */
    size_t alloc;  /* bytes allocated */
    size_t max;    /* cap on len; 0 = no cap (only for data we generate) */
};

/* Initialises an empty buffer that may hold at most max bytes (0 = no cap).
 * Allocates nothing and cannot fail. */
void buf_init(struct buf *b, size_t max);

/* Frees the contents; the buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);

/* Empties the buffer, keeping its memory. */
void buf_reset(struct buf *b);

/* Appends n bytes. Returns 0, or TH_ETOOBIG (buffer unchanged) past the cap. */
int buf_append(struct buf *b, const void *p, size_t n) TH_MUST_CHECK;
int buf_puts(struct buf *b, const char *s) TH_MUST_CHECK;
int buf_printf(struct buf *b, const char *fmt, ...) TH_PRINTF(2, 3) TH_MUST_CHECK;

/* The contents as a C string (borrowed until the next change); "" if empty. */
const char *buf_cstr(const struct buf *b);

/* Hands the contents to the caller (new, free with free()) and empties b. */
char *buf_detach(struct buf *b, size_t *len);

#endif
