/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_CONFIG_H
#define VHOSTD_CONFIG_H

/**
 * @file
 * The configuration file is the list of RPC calls that rebuild the daemon's state:
 * `[{"method": "device_attach", "params": {...}}, ...]`. Loading replays them through the same
 * dispatcher the socket uses, so the file and the API cannot drift apart; saving writes the
 * calls atomically (temporary file, fsync, rename, fsync of the directory).
 */

#include <jansson.h>

#include "base_error.h"

struct rpc_registry;

/** @return the calls that rebuild the current state (new reference). */
typedef json_t *(*config_calls_fn)(void);

/**
 * Replay the calls in @p path through @p reg, in order. Stops at the first refused call.
 * @return 0, or -errno with @p err naming the entry ("config[3].params.name") and the reason.
 */
int config_load(const char *path, struct rpc_registry *reg, struct base_error *err);

/** Check that @p calls has the shape of a configuration. @return 0 or -EINVAL with @p err. */
int config_check(json_t *calls, struct base_error *err);

/** Write @p calls to @p path atomically. @return 0 or -errno with @p err. */
int config_save(const char *path, json_t *calls, struct base_error *err);

/**
 * Register config_save on @p reg. Without a path param it writes @p default_path (the file
 * given with -c), or is refused when there is none. @p calls produces what to write.
 * @return 0 or -errno.
 */
int config_rpc_register(struct rpc_registry *reg, const char *default_path, config_calls_fn calls);

#endif /* VHOSTD_CONFIG_H */
