/*
 * qoyod_sim — the Qoyod API emulator (see ../shared/api/qoyod.md and sim/README.md).
 *
 * Owns the emulated Qoyod tenants and everything in them; is reached only
 * through the sim framework (sim.h), which applies faults around it.
 */
#ifndef TH_SIM_QOYOD_SIM_H
#define TH_SIM_QOYOD_SIM_H

#include "sim/sim.h"

extern const struct sim_ops qoyod_sim_ops;

#endif
