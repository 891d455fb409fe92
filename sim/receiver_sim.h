/*
 * receiver_sim — a webhook receiver for trying the emulators by hand: it
 * records and prints every delivery and checks Salla signatures and Zid
 * Basic credentials. Not an emulator of any service.
 */
#ifndef TH_SIM_RECEIVER_SIM_H
#define TH_SIM_RECEIVER_SIM_H

#include "sim/sim.h"

extern const struct sim_ops receiver_sim_ops;

#endif
