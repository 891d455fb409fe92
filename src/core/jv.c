/*
 * jv — tolerant JSON getters (see jv.h).
 *
 * JSON numbers with a fraction reach us as doubles (jansson has no raw-text
 * mode). A double is turned into the shortest decimal text that reads back
 * as the same double ("%.15g", then 16, then 17 digits), and that text is
 * parsed exactly by money_parse_dec. For every amount written with at most
 * 15 significant digits — all real prices — the text is exactly what the
 * sender wrote, so no binary rounding reaches a halala. This file is the
 * only place where a double touches money, and only to print it.
 */
#include "core/jv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/money.h"
#include "core/xmalloc.h"

json_t *jv_parse(const char *buf, size_t len, int max_depth, struct th_err *err)
{
    /* Pre-scan nesting so jansson's recursion never sees a hostile depth. */
    int depth = 0, in_str = 0, esc = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') in_str = 0;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth) {
                th_err_set(err, TH_EDEPTH, "JSON nested deeper than %d levels", max_depth);
                return NULL;
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    json_error_t je;
    json_t *v = json_loadb(buf, len, 0, &je);
    if (!v) {
        th_err_set(err, TH_EPARSE, "malformed JSON at line %d column %d: %s", je.line, je.column,
                   je.text);
        return NULL;
    }
    return v;
}

char *jv_dump(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    return s ? s : xstrdup("null");
}

/* Shortest text that reads back as d. */
static void real_text(double d, char *out, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, d);
        if (strtod(out, NULL) == d) return;
    }
}

static json_t *member(const json_t *obj, const char *key)
{
    if (!json_is_object(obj)) return NULL;
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

int jv_to_id(const json_t *v, int64_t *out, struct th_err *err)
{
    if (!v || json_is_null(v)) return TH_ENOTFOUND;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= -9.2e18 && d <= 9.2e18 && d == (double)(int64_t)d) {
            *out = (int64_t)d;
            return 0;
        }
        return th_err_set(err, TH_EPARSE, "id is not a whole number");
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        const char *p = s;
        if (*p == '-') p++;
        if (!*p || strspn(p, "0123456789") != strlen(p) || strlen(p) > 19)
            return th_err_set(err, TH_EPARSE, "id '%.40s' is not a number", s);
        char *end;
        long long x = strtoll(s, &end, 10);
        *out = x;
        return 0;
    }
    return th_err_set(err, TH_EPARSE, "id has the wrong JSON type");
}

int jv_to_dec(const json_t *v, int scale, int64_t *out, struct th_err *err)
{
    if (!v || json_is_null(v)) return TH_ENOTFOUND;
    if (json_is_object(v)) return jv_to_dec(member(v, "amount"), scale, out, err);
    char text[64];
    if (json_is_integer(v)) {
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        real_text(json_real_value(v), text, sizeof text);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strlen(s) >= sizeof text)
            return th_err_set(err, TH_EPARSE, "number '%.40s...' is too long", s);
        snprintf(text, sizeof text, "%s", s);
    } else {
        return th_err_set(err, TH_EPARSE, "expected a number, got another JSON type");
    }
    return money_parse_dec(text, scale, out, err);
}

int jv_get_id(const json_t *obj, const char *key, int64_t *out, struct th_err *err)
{
    int rc = jv_to_id(member(obj, key), out, err);
    if (rc && rc != TH_ENOTFOUND && err) {
        char m[TH_ERR_MSG_MAX];
        snprintf(m, sizeof m, "%s", err->msg);
        th_err_set(err, rc, "field \"%s\": %s", key, m);
    }
    return rc;
}

int jv_get_dec(const json_t *obj, const char *key, int scale, int64_t *out, struct th_err *err)
{
    int rc = jv_to_dec(member(obj, key), scale, out, err);
    if (rc && rc != TH_ENOTFOUND && err) {
        char m[TH_ERR_MSG_MAX];
        snprintf(m, sizeof m, "%s", err->msg);
        th_err_set(err, rc, "field \"%s\": %s", key, m);
    }
    return rc;
}

int jv_get_money(const json_t *obj, const char *key, int64_t *halalas, struct th_err *err)
{
    return jv_get_dec(obj, key, 2, halalas, err);
}

int jv_get_bool(const json_t *obj, const char *key, int *out, struct th_err *err)
{
    json_t *v = member(obj, key);
    if (!v) return TH_ENOTFOUND;
    if (json_is_boolean(v)) *out = json_is_true(v);
    else if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
        *out = (int)json_integer_value(v);
    else if (json_is_string(v) && (!strcmp(json_string_value(v), "1") ||
                                   !strcmp(json_string_value(v), "true")))
        *out = 1;
    else if (json_is_string(v) && (!strcmp(json_string_value(v), "0") ||
                                   !strcmp(json_string_value(v), "false")))
        *out = 0;
    else
        return th_err_set(err, TH_EPARSE, "field \"%s\" is not a boolean", key);
    return 0;
}

const char *jv_get_str(const json_t *obj, const char *key)
{
    json_t *v = member(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *jv_get_text(const json_t *obj, const char *key, char *out, size_t n)
{
    json_t *v = member(obj, key);
    if (json_is_string(v)) snprintf(out, n, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(out, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) real_text(json_real_value(v), out, n);
    else return NULL;
    return out;
}

json_t *jv_path(const json_t *root, const char *path)
{
    const json_t *cur = root;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        char key[128];
        if (len >= sizeof key) return NULL;
        memcpy(key, p, len);
        key[len] = '\0';
        if (json_is_array(cur) && len && strspn(key, "0123456789") == len)
            cur = json_array_get(cur, strtoul(key, NULL, 10));
        else
            cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
        p += len + (dot ? 1 : 0);
    }
    return (json_t *)cur;
}

json_t *jv_money_number(int64_t halalas)
{
    char text[MONEY_FMT_MAX];
    money_format_dec(halalas, 2, 0, text, sizeof text);
    if (!strchr(text, '.')) return json_integer(halalas / 100);
    return json_real(strtod(text, NULL));
}

json_t *jv_money_string(int64_t halalas)
{
    char text[MONEY_FMT_MAX];
    return json_string(money_format(halalas, text, sizeof text));
}

json_t *jv_dec_string(int64_t v, int scale, int min_frac)
{
    char text[MONEY_FMT_MAX];
    return json_string(money_format_dec(v, scale, min_frac, text, sizeof text));
}
