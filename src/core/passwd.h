/*
 * passwd — password hashes for dashboard users: OpenSSL's scrypt (a
 * memory-hard KDF, RFC 7914) with a random salt, in one self-describing text
 * form, and a constant-time check.
 *
 * Owns the hash format and the default cost. It stores nothing and never
 * logs a password or a hash; callers wipe the password they hold.
 *
 * Format: "$scrypt$ln=15,r=8,p=1$<salt, base64>$<key, base64>": N = 2^ln,
 * block size r, parallelism p, a 16-byte salt, a 32-byte key. The cost is
 * read back from each hash, so raising PASSWD_LN later leaves old hashes
 * valid. ln=15, r=8 needs 128 * r * N = 32 MiB of memory and about 0.1 s of
 * one core per hash on the reference VM: cheap for a login, costly for a
 * guesser with a stolen database (OWASP's scrypt minimum is N=2^17 with r=8
 * at 128 MiB; 2^15 keeps a login under the 2-core VM's budget while four
 * logins run at once, and the server also limits login attempts).
 */
#ifndef TH_CORE_PASSWD_H
#define TH_CORE_PASSWD_H

#include <stddef.h>

#include "core/err.h"

#define PASSWD_LN 15
#define PASSWD_R 8
#define PASSWD_P 1
/* Shortest password accepted: 10 characters (NIST SP 800-63B asks 8 at
 * least; the dashboard can move a merchant's books). */
#define PASSWD_MIN_LEN 10
#define PASSWD_MAX_LEN 1024
/* Longest hash text, with its NUL. */
#define PASSWD_HASH_MAX 160

/*
 * Hashes password with a fresh random salt and cost ln (0: PASSWD_LN; tests
 * use a smaller one) into out (PASSWD_HASH_MAX bytes). Returns 0, TH_EINVAL
 * when the password is shorter than PASSWD_MIN_LEN or longer than
 * PASSWD_MAX_LEN (the message says so), or TH_EINTERNAL when OpenSSL fails.
 */
int passwd_hash(const char *password, int ln, char *out, size_t outlen,
                struct th_err *err) TH_MUST_CHECK;

/* 1 when password matches hash (constant-time comparison of the keys), 0
 * when it does not or hash is not in the format above (never a crash). */
int passwd_verify(const char *password, const char *hash);

#endif
