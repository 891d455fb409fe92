/* buf — growable, capped byte buffer (see buf.h). */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

void buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = b->alloc = 0;
    b->max = max;
}

void buf_release(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

static int grow(struct buf *b, size_t extra)
{
    if (b->max && (extra > b->max || b->len > b->max - extra))
        return TH_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->alloc) return 0;
    size_t n = b->alloc ? b->alloc : 64;
    while (n < need) n *= 2;
    b->data = xrealloc(b->data, n);
    b->alloc = n;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int rc = grow(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap, cp;
    va_start(ap, fmt);
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0) {
        va_end(ap);
        return TH_EINVAL;
    }
    int rc = grow(b, (size_t)n);
    if (rc == 0) {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
    }
    va_end(ap);
    return rc;
}

const char *buf_cstr(const struct buf *b)
{
    return b->data ? b->data : "";
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *d = b->data ? b->data : xstrdup("");
    if (len) *len = b->len;
    b->data = NULL;
    b->len = b->alloc = 0;
    return d;
}
