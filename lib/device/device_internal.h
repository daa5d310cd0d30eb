/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_DEVICE_INTERNAL_H
#define VHOSTD_DEVICE_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <rte_log.h>
#include <rte_vhost.h>

#include "base_error.h"
#include "base_limits.h"
#include "policy.h"

extern int device_logtype;
#define DEVICE_LOG(level, fmt, ...) \
	rte_log(RTE_LOG_##level, device_logtype, "vhostd.device: " fmt "\n", ##__VA_ARGS__)

#define DEVICE_DEVARGS_MAX 255
/* librte_vhost 22.11 numbers connections 0..1023 (MAX_VHOST_DEVICE). */
#define DEVICE_VID_MAX 1024

enum device_mode {
	DEVICE_MODE_SERVER,
	DEVICE_MODE_CLIENT,
};

/* What device_attach was asked for, decoded and checked (pure: see device_params.c). */
struct device_config {
	char name[DEVICE_NAME_MAX + 1];
	int kind; /* enum policy_kind */
	char socket[SOCKET_PATH_MAX + 1];
	int mode; /* enum device_mode */
	uint32_t queues;
	struct policy policy;
	json_t *policy_obj; /* borrowed from the request while decoding */
	char backing[PATH_MAX];
	bool readonly;
	uint32_t block_size;
	char devargs[DEVICE_DEVARGS_MAX + 1];
};

enum device_state {
	DEVICE_WAITING, /* no frontend, or one that has not finished setting up */
	DEVICE_RUNNING,
	DEVICE_REFUSED, /* the frontend negotiated something the policy forbids */
};

struct dp_stats;
struct dp_task_spec;
struct rte_mempool;
struct blk_dev;

struct device {
	/* Set at attach, then read-only. */
	struct device_config cfg;
	struct policy_caps caps;
	struct dp_stats *stats;
	uint16_t eth_port;
	struct blk_dev *blk; /* kind blk: the backing and the session's queues */
	uint64_t features_offered;

	/* Everything below: written under device_lock, by the control thread or the vhost-events
	 * thread (session callbacks); read under device_lock. */
	bool detaching;
	struct device *peer; /* cross-connect */
	int vid;	     /* the live connection, -1 if none */
	enum device_state state;
	char reason[BASE_ERROR_REASON_MAX];
	char last_refusal[BASE_ERROR_REASON_MAX];
	bool refusal_logged;
	uint64_t features;
	uint64_t protocol_features;
	uint32_t session_queues;
	/* Written by vring_state_changed without device_lock (librte_vhost calls it holding every
	 * virtqueue lock, so it must not wait for anything): atomic, read with vring_enabled(). */
	uint8_t vring_enabled[DEVICE_QUEUES_MAX * 2];
	/* The frontend's own SET_VRING_ENABLE 0, seen by the message hook (atomic, no lock). */
	uint8_t vring_disabled_by_frontend[DEVICE_QUEUES_MAX * 2];
	uint64_t sessions; /* frontends that got a running session */
	uint64_t refused_sessions;
	uint64_t rejected_connections; /* extra frontends turned away while one was connected */
	/* blk: a session's queues are set up (atomic: read by the message hook without a lock),
	 * and paused by the message hook around a message that changes them (vhost-events only). */
	bool blk_running;
	bool blk_paused;
	/* Set by the message hook when it refused SET_FEATURES with bit 33 on a device that cannot
	 * translate (atomic); turned into last_refusal when that connection closes. */
	bool translation_refused;
	/* IOTLB messages seen by the message hook (vhost-events thread, no lock: atomics). */
	uint64_t iotlb_updates;
	uint64_t iotlb_invalidations;
	uint64_t iotlb_invalidations_clamped; /* ranges ending at 2^64, see device_vhost.c */
	/* IOTLB counters of sessions that ended, and what stats_reset saw, per queue pair. */
	uint64_t iotlb_hits_done[DEVICE_QUEUES_MAX];
	uint64_t iotlb_misses_done[DEVICE_QUEUES_MAX];
	uint64_t iotlb_hits_base[DEVICE_QUEUES_MAX];
	uint64_t iotlb_misses_base[DEVICE_QUEUES_MAX];
};

/* Serialises the control thread and the vhost-events callbacks. Recursive: librte_vhost may
 * call destroy_device from inside rte_vhost_driver_unregister on the calling thread. */
void device_lock(void);
void device_unlock(void);

static inline bool
vring_enabled(const struct device *d, unsigned int vring)
{
	return __atomic_load_n(&d->vring_enabled[vring], __ATOMIC_ACQUIRE) != 0;
}

/* Ask the control thread to rebuild the plan soon; safe from any thread, takes no lock. */
void device_request_replan(void);

/* Caller holds device_lock. */
struct device *device_by_name(const char *name);
struct device *device_by_socket(const char *path);
struct device *device_by_vid(int vid);
void device_set_vid(int vid, struct device *dev);
int device_replan(void);
const char *device_state_name(enum device_state s);
const char *device_kind_name(int kind);

/* device_params.c: pure decoding and per-kind checks of the attach params. */
int device_config_decode(json_t *params, struct device_config *cfg, struct base_errors *errs);
json_t *device_config_to_json(const struct device_config *cfg);
void device_caps_of(const struct device_config *cfg, struct policy_caps *caps);

/* device_vhost.c: net and blk devices on librte_vhost. */
int device_vhost_check_socket(const struct device_config *cfg, struct base_errors *errs);
int device_vhost_start(struct device *dev, struct base_error *err);
void device_vhost_stop(struct device *dev);
/* Add iotlb_hits/iotlb_misses of the live session to the queue objects of @p queues. */
void device_vhost_stats(const struct device *dev, json_t *queues);
void device_vhost_stats_reset(struct device *dev);
/* Index of iotlb_misses in rte_vhost_vring_stats_get() of a session with stats on, or -1. */
int device_vhost_misses_index(int vid);

/* device_blk.c: blk devices (lib/blk) on librte_vhost. */
int device_blk_check(const struct device_config *cfg, struct base_errors *errs);
int device_blk_open(struct device *d, struct base_error *err);
void device_blk_close(struct device *d);
uint64_t device_blk_supported_features(const struct device *d);
int device_blk_register(const struct device *d);
int device_blk_session_start(struct device *d, int vid);
void device_blk_session_stop(struct device *d);
unsigned int device_blk_plan(struct device *d, struct dp_task_spec *specs, unsigned int room);
enum rte_vhost_msg_result device_blk_pre_message(struct device *d, void *msg);
enum rte_vhost_msg_result device_blk_post_message(struct device *d, void *msg);
json_t *device_blk_queue_stats(const struct device *d, unsigned int q);

/* device_eth.c: any DPDK ethdev given by devargs. */
int device_eth_check(const struct device_config *cfg, struct base_errors *errs);
int device_eth_start(struct device *dev, struct rte_mempool *pool, struct base_error *err);
void device_eth_stop(struct device *dev);

#endif /* VHOSTD_DEVICE_INTERNAL_H */
