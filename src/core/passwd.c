/*
 * passwd — scrypt password hashes (see passwd.h).
 *
 * EVP_PBE_scrypt is OpenSSL's scrypt; its maxmem argument must cover
 * 128 * r * N (plus a little) or it refuses, so it is computed from the
 * parameters, with a cap (PASSWD_MAXMEM) so a hash text from elsewhere cannot
 * make a login allocate gigabytes.
 */
#include "core/passwd.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SALT_LEN 16
#define KEY_LEN 32
/* The largest cost a stored hash may ask: ln=20 with r=8 is 1 GiB. */
#define PASSWD_MAXMEM (1024ull * 1024 * 1024 + 65536)

static int derive(const char *pw, const unsigned char *salt, size_t saltlen, int ln, int r, int p,
                  unsigned char *key)
{
    uint64_t n = 1ull << ln;
    uint64_t need = 128ull * (uint64_t)r * n + 128ull * (uint64_t)r * (uint64_t)p + 65536;
    if (need > PASSWD_MAXMEM) return -1;
    return EVP_PBE_scrypt(pw, strlen(pw), salt, saltlen, n, (uint64_t)r, (uint64_t)p, need, key,
                          KEY_LEN) == 1
               ? 0
               : -1;
}

static size_t b64(const unsigned char *in, size_t n, char *out)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

/* Decodes base64 of exactly want bytes. Returns 0 or -1. */
static int unb64(const char *in, size_t len, unsigned char *out, size_t want)
{
    unsigned char tmp[128];
    if (len == 0 || len % 4 || len / 4 * 3 > sizeof tmp) return -1;
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    if (n < 0) return -1;
    size_t pad = (in[len - 1] == '=') + (len > 1 && in[len - 2] == '=');
    if ((size_t)n - pad != want) return -1;
    memcpy(out, tmp, want);
    return 0;
}

int passwd_hash(const char *password, int ln, char *out, size_t outlen, struct th_err *err)
{
    if (!password) return th_err_set(err, TH_EINVAL, "no password given");
    size_t len = strlen(password);
    if (len < PASSWD_MIN_LEN || len > PASSWD_MAX_LEN)
        return th_err_set(err, TH_EINVAL, "a password must be %d to %d characters, not %zu",
                          PASSWD_MIN_LEN, PASSWD_MAX_LEN, len);
    if (ln <= 0) ln = PASSWD_LN;
    if (ln > 20 || outlen < PASSWD_HASH_MAX)
        return th_err_set(err, TH_EINVAL, "passwd_hash: cost %d or buffer too large/small", ln);
    unsigned char salt[SALT_LEN], key[KEY_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1 ||
        derive(password, salt, sizeof salt, ln, PASSWD_R, PASSWD_P, key))
        return th_err_set(err, TH_EINTERNAL, "OpenSSL could not compute scrypt");
    char s64[32], k64[64];
    s64[b64(salt, sizeof salt, s64)] = '\0';
    k64[b64(key, sizeof key, k64)] = '\0';
    OPENSSL_cleanse(key, sizeof key);
    snprintf(out, outlen, "$scrypt$ln=%d,r=%d,p=%d$%s$%s", ln, PASSWD_R, PASSWD_P, s64, k64);
    return 0;
}

int passwd_verify(const char *password, const char *hash)
{
    if (!password || !hash || strlen(password) > PASSWD_MAX_LEN) return 0;
    int ln, r, p, n = 0;
    if (sscanf(hash, "$scrypt$ln=%d,r=%d,p=%d$%n", &ln, &r, &p, &n) != 3 || n == 0) return 0;
    if (ln < 1 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16) return 0;
    const char *salt = hash + n, *dollar = strchr(salt, '$');
    if (!dollar) return 0;
    unsigned char sbin[SALT_LEN], want[KEY_LEN], got[KEY_LEN];
    if (unb64(salt, (size_t)(dollar - salt), sbin, SALT_LEN) ||
        unb64(dollar + 1, strlen(dollar + 1), want, KEY_LEN))
        return 0;
    if (derive(password, sbin, SALT_LEN, ln, r, p, got)) return 0;
    int ok = CRYPTO_memcmp(got, want, KEY_LEN) == 0;
    OPENSSL_cleanse(got, sizeof got);
    return ok;
}
