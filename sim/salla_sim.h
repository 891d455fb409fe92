/*
 * salla_sim — the Salla API emulator (see ../shared/api/salla.md and sim/README.md).
 *
 * Owns the emulated Salla tenants and everything in them; is reached only
 * through the sim framework (sim.h), which applies faults around it.
 */
#ifndef TH_SIM_SALLA_SIM_H
#define TH_SIM_SALLA_SIM_H

#include "sim/sim.h"

extern const struct sim_ops salla_sim_ops;

#endif
