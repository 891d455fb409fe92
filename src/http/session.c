/*
 * session — dashboard sessions and the login limit (see session.h).
 *
 * Both tables are small fixed arrays searched linearly under one mutex: at
 * most a few hundred entries, looked up once per dashboard request, which
 * costs far less than the request's JSON. Session ids are compared as
 * SHA-256 digests with CRYPTO_memcmp, against every slot.
 */
#include "http/session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/xmalloc.h"

#define DIGEST_LEN 32

struct slot {
    int used;
    unsigned char digest[DIGEST_LEN];
    char user[SESSION_USER_MAX];
    char csrf[SESSION_TOKEN_LEN];
    char stamp[SESSION_TOKEN_LEN];
    int64_t started, seen;
};

struct fails {
    char key[80];
    int count;
    int64_t first;
};

struct sessions {
    pthread_mutex_t mu;
    struct slot s[SESSION_MAX];
    struct fails f[SESSION_FAIL_KEYS];
};

struct sessions *sessions_new(void)
{
    struct sessions *t = xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void sessions_free(struct sessions *t)
{
    if (!t) return;
    pthread_mutex_destroy(&t->mu);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

static void random_hex(char out[SESSION_TOKEN_LEN])
{
    unsigned char b[32];
    if (RAND_bytes(b, sizeof b) != 1) TH_BUG("RAND_bytes failed");
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    OPENSSL_cleanse(b, sizeof b);
}

static void digest(const char *id, unsigned char out[DIGEST_LEN])
{
    unsigned int n = 0;
    if (!EVP_Digest(id, strlen(id), out, &n, EVP_sha256(), NULL) || n != DIGEST_LEN)
        TH_BUG("SHA-256 failed");
}

static int expired(const struct slot *s, int64_t now)
{
    return now - s->seen >= SESSION_IDLE_S || now - s->started >= SESSION_MAX_S || now < s->started;
}

void sessions_stamp(const char *text, char out[SESSION_TOKEN_LEN])
{
    unsigned char d[DIGEST_LEN];
    digest(text, d);
    for (size_t i = 0; i < DIGEST_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void sessions_start(struct sessions *t, const char *user, int64_t now,
                    char id[SESSION_TOKEN_LEN], char csrf[SESSION_TOKEN_LEN])
{
    sessions_start_as(t, user, NULL, now, id, csrf);
}

void sessions_start_as(struct sessions *t, const char *user, const char *stamp, int64_t now,
                       char id[SESSION_TOKEN_LEN], char csrf[SESSION_TOKEN_LEN])
{
    random_hex(id);
    random_hex(csrf);
    pthread_mutex_lock(&t->mu);
    /* A free or expired slot, else the least recently used one. */
    struct slot *pick = NULL;
    for (size_t i = 0; i < SESSION_MAX && !pick; i++)
        if (!t->s[i].used || expired(&t->s[i], now)) pick = &t->s[i];
    if (!pick) {
        pick = &t->s[0];
        for (size_t i = 1; i < SESSION_MAX; i++)
            if (t->s[i].seen < pick->seen) pick = &t->s[i];
    }
    memset(pick, 0, sizeof *pick);
    pick->used = 1;
    digest(id, pick->digest);
    snprintf(pick->user, sizeof pick->user, "%s", user);
    snprintf(pick->csrf, sizeof pick->csrf, "%s", csrf);
    snprintf(pick->stamp, sizeof pick->stamp, "%s", stamp ? stamp : "");
    pick->started = pick->seen = now;
    pthread_mutex_unlock(&t->mu);
}

/* The slot whose digest matches d, or NULL; every slot is compared. */
static struct slot *find(struct sessions *t, const unsigned char d[DIGEST_LEN])
{
    struct slot *hit = NULL;
    for (size_t i = 0; i < SESSION_MAX; i++)
        if (CRYPTO_memcmp(t->s[i].digest, d, DIGEST_LEN) == 0 && t->s[i].used) hit = &t->s[i];
    return hit;
}

int sessions_check(struct sessions *t, const char *id, int64_t now, char user[SESSION_USER_MAX],
                   char csrf[SESSION_TOKEN_LEN])
{
    return sessions_check_as(t, id, now, user, csrf, NULL);
}

int sessions_check_as(struct sessions *t, const char *id, int64_t now,
                      char user[SESSION_USER_MAX], char csrf[SESSION_TOKEN_LEN],
                      char stamp[SESSION_TOKEN_LEN])
{
    if (!id || strlen(id) != SESSION_TOKEN_LEN - 1) return 0;
    unsigned char d[DIGEST_LEN];
    digest(id, d);
    pthread_mutex_lock(&t->mu);
    struct slot *s = find(t, d);
    int ok = 0;
    if (s && expired(s, now)) {
        memset(s, 0, sizeof *s);
    } else if (s) {
        s->seen = now;
        if (user) snprintf(user, SESSION_USER_MAX, "%s", s->user);
        if (csrf) snprintf(csrf, SESSION_TOKEN_LEN, "%s", s->csrf);
        if (stamp) snprintf(stamp, SESSION_TOKEN_LEN, "%s", s->stamp);
        ok = 1;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void sessions_end(struct sessions *t, const char *id)
{
    if (!id) return;
    unsigned char d[DIGEST_LEN];
    digest(id, d);
    pthread_mutex_lock(&t->mu);
    struct slot *s = find(t, d);
    if (s) memset(s, 0, sizeof *s);
    pthread_mutex_unlock(&t->mu);
}

size_t sessions_count(struct sessions *t, int64_t now)
{
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < SESSION_MAX; i++)
        n += t->s[i].used && !expired(&t->s[i], now);
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* The entry for key, or NULL (create: a free, stale or the oldest slot). */
static struct fails *fail_slot(struct sessions *t, const char *key, int64_t now, int create)
{
    struct fails *free_one = NULL, *oldest = NULL;
    for (size_t i = 0; i < SESSION_FAIL_KEYS; i++) {
        struct fails *f = &t->f[i];
        if (f->count && strcmp(f->key, key) == 0) return f;
        if (!f->count || now - f->first >= SESSION_FAIL_WINDOW_S) {
            if (!free_one) free_one = f;
        } else if (!oldest || f->first < oldest->first) {
            oldest = f;
        }
    }
    if (!create) return NULL;
    struct fails *f = free_one ? free_one : oldest;
    memset(f, 0, sizeof *f);
    snprintf(f->key, sizeof f->key, "%s", key);
    f->first = now;
    return f;
}

int64_t sessions_login_wait(struct sessions *t, const char *key, int64_t now)
{
    pthread_mutex_lock(&t->mu);
    struct fails *f = fail_slot(t, key, now, 0);
    int64_t wait = 0;
    if (f && now - f->first >= SESSION_FAIL_WINDOW_S)
        memset(f, 0, sizeof *f);
    else if (f && f->count >= SESSION_FAIL_MAX)
        wait = f->first + SESSION_FAIL_WINDOW_S - now;
    pthread_mutex_unlock(&t->mu);
    return wait;
}

void sessions_login_failed(struct sessions *t, const char *key, int64_t now)
{
    pthread_mutex_lock(&t->mu);
    struct fails *f = fail_slot(t, key, now, 1);
    if (now - f->first >= SESSION_FAIL_WINDOW_S) {
        f->first = now;
        f->count = 0;
    }
    f->count++;
    pthread_mutex_unlock(&t->mu);
}

void sessions_login_ok(struct sessions *t, const char *key)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < SESSION_FAIL_KEYS; i++)
        if (t->f[i].count && strcmp(t->f[i].key, key) == 0) memset(&t->f[i], 0, sizeof t->f[i]);
    pthread_mutex_unlock(&t->mu);
}
