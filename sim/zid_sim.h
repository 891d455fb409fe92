/*
 * zid_sim — the Zid API emulator (see ../shared/api/zid.md and sim/README.md).
 *
 * Owns the emulated Zid tenants and everything in them; is reached only
 * through the sim framework (sim.h), which applies faults around it.
 */
#ifndef TH_SIM_ZID_SIM_H
#define TH_SIM_ZID_SIM_H

#include "sim/sim.h"

extern const struct sim_ops zid_sim_ops;

#endif
