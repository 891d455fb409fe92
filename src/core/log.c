/* log — key=value event lines (see log.h). */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level level = LOG_INFO;
static int level_from_env_done;
static FILE *stream;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const names[] = {"debug", "info", "warn", "error", "off"};

static void env_level(void)
{
    if (level_from_env_done) return;
    level_from_env_done = 1;
    const char *e = getenv("TH_LOG_LEVEL");
    if (!e) return;
    for (int i = 0; i <= LOG_OFF; i++)
        if (strcasecmp(e, names[i]) == 0) level = (enum log_level)i;
}

void log_set_level(enum log_level lvl)
{
    pthread_mutex_lock(&lock);
    level_from_env_done = 1;
    level = lvl;
    pthread_mutex_unlock(&lock);
}

enum log_level log_get_level(void)
{
    pthread_mutex_lock(&lock);
    env_level();
    enum log_level l = level;
    pthread_mutex_unlock(&lock);
    return l;
}

void log_set_stream(FILE *f)
{
    pthread_mutex_lock(&lock);
    stream = f;
    pthread_mutex_unlock(&lock);
}

void log_write(enum log_level lvl, const char *event, const char *fmt, ...)
{
    if (lvl < log_get_level()) return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[lvl], event);
    if (fmt && *fmt && n > 0 && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0) n += m;
    }
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2; /* truncated */
    line[n++] = '\n';
    pthread_mutex_lock(&lock);
    FILE *f = stream ? stream : stderr;
    fwrite(line, 1, (size_t)n, f);
    fflush(f);
    pthread_mutex_unlock(&lock);
}

const char *log_quote(const char *v, char *out, size_t n)
{
    if (n == 0) return out;
    if (!v) v = "";
    int needs = *v == '\0';
    for (const char *p = v; *p && !needs; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20) needs = 1;
    if (!needs) {
        snprintf(out, n, "%s", v);
        return out;
    }
    size_t o = 0;
    out[o++] = '"';
    for (const char *p = v; *p && o + 3 < n; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    if (o + 1 < n) out[o++] = '"';
    out[o] = '\0';
    return out;
}
