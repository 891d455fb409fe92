/* secret — secrets sealed at rest (secret.h). */
#include "store/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xmalloc.h"

#define PREFIX "enc1:"
#define NONCE_LEN 12
#define TAG_LEN 16
/* Longest secret sealed (tokens are < 2 KiB; JWTs can be long). */
#define PLAIN_MAX 8192

void secret_kid(const unsigned char key[SECRET_KEY_LEN], char out[9])
{
    unsigned char in[12 + SECRET_KEY_LEN], d[EVP_MAX_MD_SIZE];
    memcpy(in, "tarheel-kid:", 12);
    memcpy(in + 12, key, SECRET_KEY_LEN);
    unsigned dn = 0;
    if (EVP_Digest(in, sizeof in, d, &dn, EVP_sha256(), NULL) != 1 || dn < 4) memset(d, 0, 4);
    OPENSSL_cleanse(in, sizeof in);
    snprintf(out, 9, "%02x%02x%02x%02x", d[0], d[1], d[2], d[3]);
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* 64 hex digits (surrounding blanks ignored) into key. */
static int parse_key(const char *text, unsigned char key[SECRET_KEY_LEN])
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r') text++;
    for (int i = 0; i < SECRET_KEY_LEN; i++) {
        int hi = hexval((unsigned char)text[2 * i]), lo = hi < 0 ? -1 : hexval((unsigned char)text[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    for (const char *p = text + 2 * SECRET_KEY_LEN; *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') return -1;
    return 0;
}

int secret_key_read(const char *path, unsigned char key[SECRET_KEY_LEN], struct th_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return th_err_set(err, errno == ENOENT ? TH_ENOTFOUND : TH_EIO,
                          "cannot read the secret key file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return th_err_set(err, TH_ECONFIG, "the secret key file %s is not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return th_err_set(err, TH_ECONFIG,
                          "the secret key file %s can be read by other users (mode %03o): run "
                          "chmod 600 %s",
                          path, (unsigned)(st.st_mode & 0777), path);
    }
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) return th_err_set(err, TH_EIO, "cannot read %s: %s", path, strerror(errno));
    buf[n] = '\0';
    int bad = parse_key(buf, key);
    OPENSSL_cleanse(buf, sizeof buf);
    if (bad)
        return th_err_set(err, TH_ECONFIG,
                          "the secret key file %s must hold 64 hex digits (32 random bytes), as "
                          "`openssl rand -hex 32` prints",
                          path);
    return 0;
}

int secret_key_create(const char *path, struct th_err *err)
{
    unsigned char key[SECRET_KEY_LEN];
    if (RAND_bytes(key, sizeof key) != 1)
        return th_err_set(err, TH_EINTERNAL, "no random bytes for a secret key");
    char hex[2 * SECRET_KEY_LEN + 2];
    for (int i = 0; i < SECRET_KEY_LEN; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    hex[2 * SECRET_KEY_LEN] = '\n';
    hex[2 * SECRET_KEY_LEN + 1] = '\0';
    OPENSSL_cleanse(key, sizeof key);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        OPENSSL_cleanse(hex, sizeof hex);
        return th_err_set(err, errno == EEXIST ? TH_ECONFLICT : TH_EIO,
                          "cannot create the secret key file %s: %s", path, strerror(errno));
    }
    ssize_t w = write(fd, hex, 2 * SECRET_KEY_LEN + 1);
    OPENSSL_cleanse(hex, sizeof hex);
    if (w != 2 * SECRET_KEY_LEN + 1 || fsync(fd) != 0) {
        close(fd);
        unlink(path);
        return th_err_set(err, TH_EIO, "cannot write the secret key file %s", path);
    }
    close(fd);
    return 0;
}

static int add_key(struct secret_ring *r, const unsigned char key[SECRET_KEY_LEN])
{
    char kid[9];
    secret_kid(key, kid);
    for (int i = 0; i < r->nkeys; i++)
        if (strcmp(r->kid[i], kid) == 0) return 0;
    if (r->nkeys == SECRET_MAX_KEYS) return -1;
    memcpy(r->key[r->nkeys], key, SECRET_KEY_LEN);
    memcpy(r->kid[r->nkeys], kid, sizeof kid);
    r->nkeys++;
    return 0;
}

/* "$HOME/.config/tarheel/secret.key", creating the directories (0700). */
static int default_pg_file(char *out, size_t n, struct th_err *err)
{
    const char *home = getenv("HOME");
    if (!home || !*home)
        return th_err_set(err, TH_ECONFIG,
                          "no secret key: set TARHEEL_SECRET_KEY_FILE (the same key on every host "
                          "sharing the database)");
    char dir[480];
    snprintf(dir, sizeof dir, "%s/.config", home);
    mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/.config/tarheel", home);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return th_err_set(err, TH_EIO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(out, n, "%s/secret.key", dir);
    return 0;
}

int secret_ring_load(struct secret_ring *r, const char *sqlite_path, struct th_err *err)
{
    memset(r, 0, sizeof *r);
    unsigned char key[SECRET_KEY_LEN];
    int rc = 0;
    const char *env = getenv("TARHEEL_SECRET_KEY");
    const char *file = getenv("TARHEEL_SECRET_KEY_FILE");
    if (env && *env) {
        if (parse_key(env, key) != 0)
            return th_err_set(err, TH_ECONFIG,
                              "TARHEEL_SECRET_KEY must be 64 hex digits (32 random bytes), as "
                              "`openssl rand -hex 32` prints");
        r->source = "TARHEEL_SECRET_KEY";
    } else {
        if (file && *file) {
            snprintf(r->file, sizeof r->file, "%s", file);
            r->source = "TARHEEL_SECRET_KEY_FILE";
        } else if (sqlite_path) {
            if (strcmp(sqlite_path, ":memory:") == 0) {
                /* A throwaway database: a throwaway key. */
                if (RAND_bytes(key, sizeof key) != 1)
                    return th_err_set(err, TH_EINTERNAL, "no random bytes for a secret key");
                r->source = "in memory";
                add_key(r, key);
                OPENSSL_cleanse(key, sizeof key);
                return 0;
            }
            snprintf(r->file, sizeof r->file, "%s.key", sqlite_path);
            r->source = "default file";
        } else {
            if ((rc = default_pg_file(r->file, sizeof r->file, err)) != 0) return rc;
            r->source = "default file";
        }
        rc = secret_key_read(r->file, key, err);
        if (rc == TH_ENOTFOUND && strcmp(r->source, "default file") == 0) {
            /* First use: make one. Another process may race us: then read theirs. */
            rc = secret_key_create(r->file, err);
            if (rc == TH_ECONFLICT) rc = 0;
            if (rc == 0) rc = secret_key_read(r->file, key, err);
        }
        if (rc) return rc;
    }
    add_key(r, key);
    OPENSSL_cleanse(key, sizeof key);

    /* Decrypt-only keys, for a rotation under way. */
    if (r->file[0]) {
        char next[600];
        snprintf(next, sizeof next, "%s.next", r->file);
        struct th_err e2;
        if (secret_key_read(next, key, &e2) == 0) add_key(r, key);
        else if (e2.code != TH_ENOTFOUND) {
            *err = e2;
            secret_ring_wipe(r);
            return e2.code;
        }
        OPENSSL_cleanse(key, sizeof key);
    }
    const char *old = getenv("TARHEEL_SECRET_KEY_OLD");
    if (old && *old) {
        if (parse_key(old, key) != 0) {
            secret_ring_wipe(r);
            return th_err_set(err, TH_ECONFIG, "TARHEEL_SECRET_KEY_OLD must be 64 hex digits");
        }
        add_key(r, key);
        OPENSSL_cleanse(key, sizeof key);
    }
    return 0;
}

void secret_ring_wipe(struct secret_ring *r)
{
    OPENSSL_cleanse(r->key, sizeof r->key);
    r->nkeys = 0;
}

int secret_is_sealed(const char *v)
{
    return v && strncmp(v, PREFIX, strlen(PREFIX)) == 0;
}

static void aad_for(const char *field, char *out, size_t n)
{
    snprintf(out, n, "tarheel-secret:v1:%s", field);
}

int secret_seal(const struct secret_ring *r, const char *field, const char *plain, char **out,
                struct th_err *err)
{
    *out = NULL;
    if (!plain) return 0;
    if (r->nkeys < 1) return th_err_set(err, TH_ECONFIG, "no secret key loaded");
    size_t len = strlen(plain);
    if (len > PLAIN_MAX) return th_err_set(err, TH_ETOOBIG, "a %s longer than %d bytes", field, PLAIN_MAX);
    unsigned char *raw = xmalloc(NONCE_LEN + len + TAG_LEN);
    /* A synthetic nonce (as in AES-GCM-SIV): HMAC-SHA256 of the field and
     * the plaintext under the key. The same secret in the same field seals
     * to the same text, which the backends rely on to group connections
     * of one Qoyod account by their sealed key (limits, pauses, budgets);
     * two different plaintexts share a nonce only if HMAC collides in 96
     * bits, so GCM's rule (never one nonce for two messages) holds. What
     * it shows: that two rows hold the same secret. */
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    size_t flen = strlen(field);
    unsigned char *msg = xmalloc(flen + 1 + len);
    memcpy(msg, field, flen);
    msg[flen] = 0;
    memcpy(msg + flen + 1, plain, len);
    int hok = HMAC(EVP_sha256(), r->key[0], SECRET_KEY_LEN, msg, flen + 1 + len, mac, &maclen) != NULL;
    OPENSSL_cleanse(msg, flen + 1 + len);
    free(msg);
    if (!hok || maclen < NONCE_LEN) {
        free(raw);
        return th_err_set(err, TH_EINTERNAL, "no nonce for sealing the %s (OpenSSL)", field);
    }
    memcpy(raw, mac, NONCE_LEN);
    char aad[96];
    aad_for(field, aad, sizeof aad);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
             EVP_EncryptInit_ex(c, NULL, NULL, r->key[0], raw) == 1;
    int n = 0, fin = 0;
    ok = ok && EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1;
    ok = ok && EVP_EncryptUpdate(c, raw + NONCE_LEN, &n, (const unsigned char *)plain, (int)len) == 1;
    ok = ok && EVP_EncryptFinal_ex(c, raw + NONCE_LEN + n, &fin) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        free(raw);
        return th_err_set(err, TH_EINTERNAL, "sealing the %s failed (OpenSSL)", field);
    }
    size_t rawlen = NONCE_LEN + len + TAG_LEN;
    size_t cap = strlen(PREFIX) + 9 + 4 * ((rawlen + 2) / 3) + 1;
    char *s = xmalloc(cap);
    int head = snprintf(s, cap, PREFIX "%s:", r->kid[0]);
    EVP_EncodeBlock((unsigned char *)s + head, raw, (int)rawlen);
    free(raw);
    *out = s;
    return 0;
}

int secret_open(const struct secret_ring *r, const char *field, const char *sealed, char **out,
                struct th_err *err)
{
    *out = NULL;
    if (!sealed) return 0;
    if (!secret_is_sealed(sealed)) {
        *out = xstrdup(sealed);
        return 0;
    }
    const char *kid = sealed + strlen(PREFIX);
    const char *b64 = strchr(kid, ':');
    if (!b64 || b64 - kid != 8)
        return th_err_set(err, TH_ECONFIG, "a sealed %s is damaged (no key id)", field);
    int k = -1;
    for (int i = 0; i < r->nkeys; i++)
        if (strncmp(r->kid[i], kid, 8) == 0) k = i;
    if (k < 0)
        return th_err_set(err, TH_ECONFIG,
                          "the %s was sealed with secret key %.8s, which this process does not "
                          "have (it has %s): give tarheel the key the database was written with "
                          "(TARHEEL_SECRET_KEY_FILE, the same on every host)",
                          field, kid, r->nkeys ? r->kid[0] : "none");
    b64++;
    size_t blen = strlen(b64);
    if (blen % 4 != 0 || blen < 4)
        return th_err_set(err, TH_ECONFIG, "a sealed %s is damaged (bad base64)", field);
    unsigned char *raw = xmalloc(blen / 4 * 3 + 1);
    int rawlen = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
    if (rawlen >= 0) {
        if (blen >= 1 && b64[blen - 1] == '=') rawlen--;
        if (blen >= 2 && b64[blen - 2] == '=') rawlen--;
    }
    if (rawlen < NONCE_LEN + TAG_LEN) {
        free(raw);
        return th_err_set(err, TH_ECONFIG, "a sealed %s is damaged (too short)", field);
    }
    size_t len = (size_t)rawlen - NONCE_LEN - TAG_LEN;
    char *plain = xmalloc(len + 1);
    char aad[96];
    aad_for(field, aad, sizeof aad);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    int ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
             EVP_DecryptInit_ex(c, NULL, NULL, r->key[k], raw) == 1;
    ok = ok && EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1;
    ok = ok && EVP_DecryptUpdate(c, (unsigned char *)plain, &n, raw + NONCE_LEN, (int)len) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                   raw + NONCE_LEN + len) == 1;
    ok = ok && EVP_DecryptFinal_ex(c, (unsigned char *)plain + n, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    free(raw);
    if (!ok) {
        OPENSSL_cleanse(plain, len + 1);
        free(plain);
        return th_err_set(err, TH_ECONFIG,
                          "the sealed %s does not authenticate under key %.8s (damaged, or moved "
                          "from another field)",
                          field, kid);
    }
    plain[len] = '\0';
    *out = plain;
    return 0;
}
