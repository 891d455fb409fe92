/*
 * tarheel-sim — runs one emulator: tarheel-sim qoyod|salla|zid|receiver --listen
 * 127.0.0.1:PORT [--seed N] [--state FILE] [emulator options].
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "sim/receiver_sim.h"
#include "sim/salla_sim.h"
#include "sim/sim.h"
#include "sim/zid_sim.h"

static const struct sim_ops *const emulators[] = {&qoyod_sim_ops, &salla_sim_ops, &zid_sim_ops,
                                                  &receiver_sim_ops};
#define NEMULATORS (sizeof emulators / sizeof emulators[0])

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: tarheel-sim qoyod|salla|zid|receiver --listen HOST:PORT [--seed N] "
               "[--state FILE] [options]\n\n"
               "Common options:\n"
               "  --listen HOST:PORT  address to serve on (port 0 picks a free one)\n"
               "  --seed N            seed for fault draws and generated data (default 1)\n"
               "  --state FILE        load state from FILE at start, save it after each write\n\n");
    for (size_t i = 0; i < NEMULATORS; i++)
        fprintf(f, "%s options:\n%s\n", emulators[i]->name,
                emulators[i]->usage ? emulators[i]->usage : "  (none)\n");
    fprintf(f, "Control API on every emulator: see sim/README.md (/_sim/reset, /_sim/faults, "
               "/_sim/requests, /_sim/webhooks).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const struct sim_ops *ops = NULL;
    for (size_t i = 0; i < NEMULATORS; i++)
        if (strcmp(argv[1], emulators[i]->name) == 0) ops = emulators[i];
    if (!ops) {
        fprintf(stderr, "tarheel-sim: unknown emulator '%s' (choose qoyod, salla, zid or receiver)\n",
                argv[1]);
        return 2;
    }

    struct sim_config cfg = {.listen = "127.0.0.1:0", .seed = 1};
    const char **names = xcalloc((size_t)argc, sizeof *names);
    const char **values = xcalloc((size_t)argc, sizeof *values);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "tarheel-sim: expected '--option value', got '%s' (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--listen") == 0) {
            cfg.listen = v;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            cfg.seed = strtoull(v, &end, 10);
            if (*end) {
                fprintf(stderr, "tarheel-sim: --seed takes a number, got '%s'\n", v);
                return 2;
            }
        } else if (strcmp(a, "--state") == 0) {
            cfg.state_file = v;
        } else {
            names[cfg.nopts] = a + 2;
            values[cfg.nopts++] = v;
        }
    }
    cfg.opt_names = names;
    cfg.opt_values = values;

    struct sim *s;
    struct th_err err;
    if (sim_open(&s, ops, &cfg, &err) != 0) {
        fprintf(stderr, "tarheel-sim: %s: %s\n", ops->name, err.msg);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    printf("%s emulator listening on %s\n", ops->name, sim_base_url(s));
    fflush(stdout);
    while (!stop) pause();
    sim_close(s);
    free(names);
    free(values);
    return 0;
}
