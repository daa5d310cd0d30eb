/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_DEVICE_H
#define VHOSTD_DEVICE_H

/**
 * @file
 * Devices (net, blk, eth), their frontend sessions, and the cross-connects between them.
 *
 * A device exists from device_attach to device_detach, whether or not a frontend is connected.
 * Its session (one frontend connection) is driven by librte_vhost callbacks on the vhost-events
 * thread; everything else runs on the control thread. Both take the module's lock, and every
 * change that affects what the workers poll is published through dp_apply() before the lock is
 * released, so destroy_device never returns while a worker still touches that vid.
 *
 * All functions return 0 or a negative errno, with @p err naming the field at fault.
 */

#include <stdbool.h>

#include <jansson.h>

#include "base_error.h"

struct rte_mempool;
struct rpc_registry;

/** Set up the registry; packets of eth devices come from @p pool. @return 0 or -errno. */
int device_module_init(struct rte_mempool *pool);

/**
 * @return an fd that becomes readable when the device module has deferred work (a plan to
 * rebuild after a vring was enabled or disabled): add it to the control loop's epoll and call
 * device_handle_events() when it is readable.
 */
int device_event_fd(void);
void device_handle_events(void);

/** Detach every device (at shutdown): frontends are disconnected, sockets removed. */
void device_detach_all(void);

/**
 * Attach a device described by @p params (the device_attach params). With @p dry_run, only
 * check, and put every problem in @p errs. A refused attach changes nothing.
 * @return 0 with *result = the device object (as device_get), or -errno.
 */
int device_attach(json_t *params, bool dry_run, json_t **result, struct base_errors *errs);

/** Detach device @p name. @return 0, -ENOENT. */
int device_detach(const char *name, struct base_error *err);

/** @return the device object of @p name (new reference), or NULL with @p err filled. */
json_t *device_get(const char *name, struct base_error *err);

/** @return [{name, kind, state}] for all devices (new reference). */
json_t *device_list(void);

/** Cross-connect net/eth devices @p a and @p b both ways. */
int device_xconnect_create(const char *a, const char *b, struct base_error *err);
int device_xconnect_delete(const char *a, const char *b, struct base_error *err);

/** @return {devices: [{name, queues: [...]}]} for @p name, or all devices when NULL. */
json_t *device_stats(const char *name, struct base_error *err);

/** Zero the counters of @p name, or of all devices when NULL. */
int device_stats_reset(const char *name, struct base_error *err);

/** @return the calls that rebuild today's devices and cross-connects (for config_save). */
json_t *device_config_calls(void);

/** Register device_*, xconnect_*, stats_* and worker_list on @p reg. @return 0 or -errno. */
int device_rpc_register(struct rpc_registry *reg);

#endif /* VHOSTD_DEVICE_H */
