/*
 * qoyod_sim_query — rendering and the Ransack subset (see qoyod_sim_query.h).
 *
 * Records are filtered in their wire form, so a condition compares what a
 * client would see: decimal fields are compared as exact decimals (parsed at
 * scale 6, never as doubles), ids and flags as integers and booleans, dates
 * and timestamps as instants, everything else as text. Ransack drops
 * conditions with blank values and unknown attributes silently; so do we
 * ([C] PM: "ignore unknown params").
 */
#include "sim/qoyod_sim_query.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/money.h"
#include "core/xmalloc.h"

/* Conditions in one query: a Ransack query from a client uses a handful. */
#define QYQ_MAX_CONDS 32
/* Values of one _in / _not_in condition. */
#define QYQ_MAX_VALUES 64
/* Comparison scale for decimals: every field's scale is <= 4. */
#define QYQ_CMP_SCALE 6
/* Highest page number honoured, so (page - 1) * per_page cannot overflow. */
#define QYQ_MAX_PAGE 1000000L

static const struct {
    const char *key;
    int scale;
} scales[] = {
    {"total", QYQ_MONEY},
    {"due_amount", QYQ_MONEY},
    {"paid_amount", QYQ_MONEY},
    {"buying_price", QYQ_MONEY},
    {"selling_price", QYQ_MONEY},
    {"line_total", QYQ_MONEY},
    {"discount_amount", QYQ_MONEY},
    {"amount", QYQ_MONEY},
    {"total_amount", QYQ_MONEY},
    {"remaining_amount", QYQ_MONEY},
    {"outstanding_amount", QYQ_MONEY},
    {"unit_price", QYQ_MONEY},
    {"inclusive_unit_price", QYQ_MONEY},
    {"price", QYQ_MONEY},
    {"balance", QYQ_MONEY},
    {"unit_selling_price", QYQ_MONEY},
    {"unit_purchase_price", QYQ_MONEY},
    {"inclusive_cd_discount", QYQ_MONEY},
    {"rate", QYQ_PCT},
    {"quantity", QYQ_QTY},
    {"actual_quantity", QYQ_QTY},
    {"previous_quantity", QYQ_QTY},
    {"stock", QYQ_QTY},
    {"unrounded_vat_value", QYQ_VAT},
    {"tax_percent", QYQ_PCT},
    {"discount_percent", QYQ_PCT},
    {"percentage", QYQ_PCT},
};

int qyq_scale_of(const char *key)
{
    for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++)
        if (strcmp(scales[i].key, key) == 0) return scales[i].scale;
    return -1;
}

void qyq_render_numbers(json_t *v)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) qyq_render_numbers(e);
        return;
    }
    if (!json_is_object(v)) return;
    const char *k;
    json_t *e;
    void *tmp;
    json_object_foreach_safe(v, tmp, k, e)
    {
        if (k[0] == '_') {
            json_object_del(v, k);
            continue;
        }
        int sc = qyq_scale_of(k);
        if (sc >= 0 && json_is_integer(e)) {
            char text[MONEY_FMT_MAX];
            money_format_dec((int64_t)json_integer_value(e), sc, 1, text, sizeof text);
            json_object_set_new(v, k, json_string(text));
        } else {
            qyq_render_numbers(e);
        }
    }
}

static int digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i])) return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

int qyq_parse_time(const char *text, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, s = 0, frac = 0;
    const char *p = text;
    while (*p == ' ')
        p++;
    if (strlen(p) < 10 || digits(p, 4, &y) || p[4] != '-' || digits(p + 5, 2, &mo) || p[7] != '-' ||
        digits(p + 8, 2, &d))
        return -1;
    p += 10;
    long zone_s = 3 * 3600; /* Riyadh when no zone is given */
    if (*p == 'T' || (*p == ' ' && isdigit((unsigned char)p[1]))) {
        if (strlen(p) < 9 || digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi) ||
            p[6] != ':' || digits(p + 7, 2, &s))
            return -1;
        p += 9;
        if (*p == '.') {
            p++;
            int n = 0;
            while (isdigit((unsigned char)*p)) {
                if (n < 3) frac = frac * 10 + (*p - '0');
                n++;
                p++;
            }
            for (; n < 3; n++)
                frac *= 10;
        }
        if (*p == 'Z') {
            zone_s = 0;
            p++;
        } else if (*p == '+' || *p == '-' || *p == ' ') {
            int zh, zm;
            int sign = *p == '-' ? -1 : 1;
            if (digits(p + 1, 2, &zh)) return -1;
            p += 3;
            if (*p == ':') p++;
            if (digits(p, 2, &zm)) return -1;
            p += 2;
            zone_s = sign * (zh * 3600L + zm * 60L);
        }
    }
    while (*p == ' ')
        p++;
    if (*p) return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - zone_s) * 1000 + frac;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Conditions                                                               */

enum pred {
    P_NOT_EQ,
    P_NOT_IN,
    P_NOT_NULL,
    P_GTEQ,
    P_LTEQ,
    P_CONT,
    P_START,
    P_END,
    P_NULL,
    P_PRESENT,
    P_BLANK,
    P_EQ,
    P_GT,
    P_LT,
    P_IN,
};

/* Longest suffixes first so "_not_eq" wins over "_eq". */
static const struct {
    const char *suffix;
    enum pred pred;
} preds[] = {
    {"_not_null", P_NOT_NULL},
    {"_not_eq", P_NOT_EQ},
    {"_not_in", P_NOT_IN},
    {"_present", P_PRESENT},
    {"_blank", P_BLANK},
    {"_start", P_START},
    {"_gteq", P_GTEQ},
    {"_lteq", P_LTEQ},
    {"_cont", P_CONT},
    {"_null", P_NULL},
    {"_end", P_END},
    {"_eq", P_EQ},
    {"_gt", P_GT},
    {"_lt", P_LT},
    {"_in", P_IN},
};

struct cond {
    char key[96]; /* the argument name, to merge repeated q[x_in][] */
    char field[80];
    enum pred pred;
    const char *vals[QYQ_MAX_VALUES];
    int nvals;
    int nothing; /* matches no record */
};

static int truthy(const char *v)
{
    return strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "t") == 0;
}

static int is_time_field(const char *field)
{
    size_t n = strlen(field);
    return (n >= 3 && strcmp(field + n - 3, "_at") == 0) || (n >= 4 && strstr(field, "date"));
}

/*
 * Compares the record value v (of field) with query text q. Returns 0 and sets
 * *c (<0, 0, >0) or -1 when they cannot be compared.
 */
static int compare(const char *field, const json_t *v, const char *q, int *c)
{
    if (json_is_integer(v)) {
        char *end;
        long long n = strtoll(q, &end, 10);
        if (end == q || *end) return -1;
        long long x = json_integer_value(v);
        *c = (x > n) - (x < n);
        return 0;
    }
    if (json_is_boolean(v)) {
        int b = json_is_true(v), w = truthy(q);
        if (!w && strcmp(q, "0") != 0 && strcasecmp(q, "false") != 0 && strcasecmp(q, "f") != 0)
            return -1;
        *c = b - w;
        return 0;
    }
    if (!json_is_string(v)) return -1;
    const char *s = json_string_value(v);
    if (qyq_scale_of(field) >= 0) {
        int64_t a, b;
        if (money_parse_dec(s, QYQ_CMP_SCALE, &a, NULL) ||
            money_parse_dec(q, QYQ_CMP_SCALE, &b, NULL))
            return -1;
        *c = (a > b) - (a < b);
        return 0;
    }
    if (is_time_field(field)) {
        int64_t a, b;
        if (qyq_parse_time(s, &a) == 0 && qyq_parse_time(q, &b) == 0) {
            *c = (a > b) - (a < b);
            return 0;
        }
    }
    int r = strcmp(s, q);
    *c = (r > 0) - (r < 0);
    return 0;
}

static int eq(const char *field, const json_t *v, const char *q)
{
    int c;
    return compare(field, v, q, &c) == 0 && c == 0;
}

static char *text_of(const json_t *v, char *buf, size_t n)
{
    if (json_is_string(v)) return (char *)json_string_value(v);
    if (json_is_integer(v))
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
    else
        return NULL;
    return buf;
}

/* Case-insensitive substring tests for _cont/_start/_end (SQL LIKE). */
static int like(const char *s, const char *q, enum pred p)
{
    size_t ls = strlen(s), lq = strlen(q);
    if (lq > ls) return 0;
    if (p == P_START) return strncasecmp(s, q, lq) == 0;
    if (p == P_END) return strcasecmp(s + ls - lq, q) == 0;
    for (size_t i = 0; i + lq <= ls; i++)
        if (strncasecmp(s + i, q, lq) == 0) return 1;
    return 0;
}

static int matches(const struct cond *c, const json_t *rec)
{
    if (c->nothing) return 0;
    const json_t *v = json_object_get(rec, c->field);
    int isnull = v == NULL || json_is_null(v);
    const char *q = c->vals[0];
    char buf[64];
    int r;
    switch (c->pred) {
    case P_NULL:
        return isnull == truthy(q);
    case P_NOT_NULL:
        return isnull != truthy(q);
    case P_PRESENT:
    case P_BLANK: {
        int present = !isnull && !(json_is_string(v) && json_string_value(v)[0] == '\0');
        return (c->pred == P_PRESENT ? present : !present) == truthy(q);
    }
    case P_EQ:
        return !isnull && eq(c->field, v, q);
    case P_NOT_EQ:
        return isnull || !eq(c->field, v, q);
    case P_IN:
    case P_NOT_IN: {
        int any = 0;
        for (int i = 0; i < c->nvals && !any; i++)
            any = !isnull && eq(c->field, v, c->vals[i]);
        return c->pred == P_IN ? any : !any;
    }
    case P_CONT:
    case P_START:
    case P_END: {
        const char *s = isnull ? NULL : text_of(v, buf, sizeof buf);
        return s && like(s, q, c->pred);
    }
    case P_GT:
    case P_GTEQ:
    case P_LT:
    case P_LTEQ:
        if (isnull || compare(c->field, v, q, &r) != 0) return 0;
        if (c->pred == P_GT) return r > 0;
        if (c->pred == P_GTEQ) return r >= 0;
        if (c->pred == P_LT) return r < 0;
        return r <= 0;
    }
    return 0;
}

static int field_listed(const char *field, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(*list, field) == 0) return 1;
    return 0;
}

/* Parses the q[...] arguments into conds; returns the count. */
static int parse_conds(const struct httpd_req *http, const struct qyq_opts *o, struct cond *cs,
                       const char **sort)
{
    int n = 0;
    *sort = NULL;
    for (size_t i = 0; i < httpd_req_nargs(http); i++) {
        const char *k, *v;
        httpd_req_arg_at(http, i, &k, &v);
        if (strncmp(k, "q[", 2) != 0 || !v) continue;
        char inner[96];
        const char *close = strchr(k + 2, ']');
        if (!close || (size_t)(close - (k + 2)) >= sizeof inner) continue;
        memcpy(inner, k + 2, (size_t)(close - (k + 2)));
        inner[close - (k + 2)] = '\0';
        if (strcmp(inner, "s") == 0 || strcmp(inner, "sorts") == 0) {
            if (!*sort) *sort = v;
            continue;
        }
        while (*v == ' ')
            v++;
        if (!*v) continue; /* Ransack drops blank values */
        struct cond *c = NULL;
        for (int j = 0; j < n; j++)
            if (strcmp(cs[j].key, inner) == 0) c = &cs[j];
        if (c) {
            if (c->nvals < QYQ_MAX_VALUES) c->vals[c->nvals++] = v;
            continue;
        }
        size_t li = strlen(inner);
        int p;
        for (p = 0; p < (int)(sizeof preds / sizeof preds[0]); p++) {
            size_t ls = strlen(preds[p].suffix);
            if (li > ls && strcmp(inner + li - ls, preds[p].suffix) == 0) break;
        }
        if (p == (int)(sizeof preds / sizeof preds[0]) || n == QYQ_MAX_CONDS) continue;
        c = &cs[n];
        memset(c, 0, sizeof *c);
        snprintf(c->key, sizeof c->key, "%s", inner);
        size_t lf = li - strlen(preds[p].suffix);
        if (lf >= sizeof c->field) continue;
        memcpy(c->field, inner, lf);
        c->field[lf] = '\0';
        c->pred = preds[p].pred;
        c->vals[c->nvals++] = v;
        if (field_listed(c->field, o->ignored)) continue;
        if (o->nothing_prefix &&
            strncmp(c->field, o->nothing_prefix, strlen(o->nothing_prefix)) == 0)
            c->nothing = 1;
        n++;
    }
    /* Receipts: kind filters take numeric codes 0 (received) and 1 (paid). */
    for (int j = 0; j < n && o->kind_codes; j++) {
        if (strcmp(cs[j].field, "kind") != 0) continue;
        for (int i = 0; i < cs[j].nvals; i++) {
            if (strcmp(cs[j].vals[i], "0") == 0)
                cs[j].vals[i] = "received";
            else if (strcmp(cs[j].vals[i], "1") == 0)
                cs[j].vals[i] = "paid";
        }
    }
    return n;
}

struct sortkey {
    char field[80];
    int desc;
};

static int cmp_rows(const void *a, const void *b, void *arg)
{
    const struct sortkey *k = arg;
    const json_t *ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
    int c = 0;
    if (k->field[0]) {
        const json_t *va = json_object_get(ra, k->field), *vb = json_object_get(rb, k->field);
        int na = !va || json_is_null(va), nb = !vb || json_is_null(vb);
        char buf[64];
        if (na || nb) {
            c = na - nb; /* nulls first in ascending order (MySQL) */
        } else {
            const char *tb = text_of(vb, buf, sizeof buf);
            if (!tb || compare(k->field, va, tb, &c) != 0) c = 0;
        }
        if (k->desc) c = -c;
    }
    if (c == 0) {
        json_int_t ia = json_integer_value(json_object_get(ra, "id"));
        json_int_t ib = json_integer_value(json_object_get(rb, "id"));
        c = (ia > ib) - (ia < ib);
    }
    return c;
}

static long arg_long(const struct httpd_req *http, const char *name, long dflt)
{
    const char *v = httpd_req_arg(http, name);
    if (!v || !*v) return dflt;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n <= 0 ? dflt : n;
}

json_t *qyq_apply(json_t *rows, const struct httpd_req *http, const struct qyq_opts *o, long *total,
                  long *page, long *per_page)
{
    struct cond *cs = xcalloc(QYQ_MAX_CONDS, sizeof *cs);
    const char *sort;
    int n = parse_conds(http, o, cs, &sort);

    size_t cap = json_array_size(rows), nk = 0;
    json_t **kept = xcalloc(cap ? cap : 1, sizeof *kept);
    size_t i;
    json_t *rec;
    json_array_foreach(rows, i, rec)
    {
        int ok = 1;
        for (int j = 0; j < n && ok; j++)
            ok = matches(&cs[j], rec);
        if (ok) kept[nk++] = rec;
    }

    struct sortkey key = {{0}, 0};
    if (sort) {
        while (*sort == ' ')
            sort++;
        size_t fl = strcspn(sort, " +");
        if (fl < sizeof key.field) {
            memcpy(key.field, sort, fl);
            key.field[fl] = '\0';
            const char *dir = sort + fl;
            while (*dir == ' ' || *dir == '+')
                dir++;
            key.desc = strncasecmp(dir, "desc", 4) == 0;
        }
    }
    qsort_r(kept, nk, sizeof *kept, cmp_rows, &key);

    size_t from = 0, to = nk;
    if (o->paged) {
        long pp = arg_long(http, "per_page", 25);
        if (o->max_per_page > 0 && pp > o->max_per_page) pp = o->max_per_page;
        long pg = arg_long(http, "page", 1);
        if (pg > QYQ_MAX_PAGE) pg = QYQ_MAX_PAGE;
        *total = (long)nk;
        *page = pg;
        *per_page = pp;
        from = (size_t)((pg - 1) * pp);
        if (from > nk) from = nk;
        to = from + (size_t)pp < nk ? from + (size_t)pp : nk;
    }
    json_t *out = json_array();
    for (size_t j = from; j < to; j++)
        json_array_append(out, kept[j]);
    free(kept);
    free(cs);
    json_decref(rows);
    return out;
}
