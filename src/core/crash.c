/* crash — named crash points (crash.h). */
#include "core/crash.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char target[64];
static long nth = 1;
static atomic_long hits;

static void arm_with(const char *v)
{
    target[0] = '\0';
    nth = 1;
    atomic_store(&hits, 0);
    if (!v || !*v) return;
    const char *colon = strchr(v, ':');
    size_t len = colon ? (size_t)(colon - v) : strlen(v);
    if (len >= sizeof target) return;
    memcpy(target, v, len);
    target[len] = '\0';
    if (colon) {
        nth = strtol(colon + 1, NULL, 10);
        if (nth < 1) nth = 1;
    }
}

static void arm(void)
{
    arm_with(getenv("TARHEEL_CRASH_AT"));
}

void th_crash_arm(const char *spec)
{
    pthread_once(&once, arm);
    arm_with(spec);
}

void th_crash_point(const char *name)
{
    pthread_once(&once, arm);
    if (!target[0] || strcmp(name, target) != 0) return;
    if (atomic_fetch_add(&hits, 1) + 1 != nth) return;
    char line[128];
    int n = snprintf(line, sizeof line, "crash point %s reached (hit %ld): SIGKILL\n", name, nth);
    if (n > 0) (void)!write(2, line, (size_t)n);
    kill(getpid(), SIGKILL);
    _exit(137); /* not reached */
}
