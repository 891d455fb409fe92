/* err — the error table and the helpers that fill struct th_err. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct errdef {
    int code;
    const char *name, *what, *todo;
};

static const struct errdef table[] = {
#define TH_ERR_ROW(name, num, what, todo) {name, #name, what, todo},
    TH_ERR_TABLE(TH_ERR_ROW)
#undef TH_ERR_ROW
};

static const struct errdef *lookup(int code)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].code == code) return &table[i];
    return NULL;
}

int th_err_set(struct th_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void th_err_clear(struct th_err *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

const char *th_err_name(int code)
{
    const struct errdef *d = lookup(code);
    return code == 0 ? "TH_OK" : d ? d->name : "TH_E?";
}

const char *th_err_what(int code)
{
    const struct errdef *d = lookup(code);
    return code == 0 ? "success" : d ? d->what : "unknown error code";
}

const char *th_err_todo(int code)
{
    const struct errdef *d = lookup(code);
    return code == 0 ? "nothing" : d ? d->todo : "report a bug: this code is not in the table";
}

size_t th_err_count(void)
{
    return sizeof table / sizeof table[0];
}

int th_err_at(size_t i)
{
    return i < th_err_count() ? table[i].code : 0;
}
