/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_DP_H
#define VHOSTD_DP_H

/**
 * @file
 * The data plane: worker lcores that busy-poll an immutable, published configuration.
 *
 * The control side describes what must be polled as a plan: a list of tasks, each "receive a
 * burst from this endpoint, send it to that endpoint (or drop it)". dp_apply() turns a plan into
 * a new configuration, publishes it with one atomic pointer store, waits with rte_rcu_qsbr until
 * every worker has left the old one, then frees it. After dp_apply() returns, no worker touches
 * an endpoint that is absent from the plan: that is what destroy_device relies on.
 *
 * Counters live in the tasks (one writer: the worker that owns the task) and are folded into
 * per-device totals when a task is retired, so they are exact across reconfiguration.
 */

#include <stdbool.h>
#include <stdint.h>

struct rte_mempool;

enum dp_endpoint_type {
	DP_ENDPOINT_NONE,  /**< no destination: received packets are dropped and counted */
	DP_ENDPOINT_VHOST, /**< a librte_vhost virtqueue: id = vid, queue = vring index */
	DP_ENDPOINT_ETH,   /**< an ethdev queue: id = port id, queue = queue id */
	DP_ENDPOINT_POLL,  /**< rx only: a queue served by its own poll function (blk) */
};

/** A queue served by its own code on a worker: @return the work items it handled. */
typedef unsigned int (*dp_poll_fn)(void *arg);

struct dp_endpoint {
	enum dp_endpoint_type type;
	uint16_t id;
	uint16_t queue;
};

/** Per-device, per-queue counters; one per device, created by dp_stats_create(). */
struct dp_stats;

struct dp_queue_counters {
	uint64_t rx_packets, rx_bytes, rx_drops;
	uint64_t tx_packets, tx_bytes, tx_drops;
	/* Worker cycles in sample windows in which the vring's IOTLB missed (see dp_worker.c). */
	uint64_t rx_iotlb_wait_cycles, tx_iotlb_wait_cycles;
};

struct dp_task_spec {
	struct dp_endpoint rx;
	struct dp_endpoint tx;
	struct dp_stats *rx_stats; /**< the device received from */
	uint16_t rx_stats_queue;
	struct dp_stats *tx_stats; /**< the device sent to (NULL with DP_ENDPOINT_NONE) */
	uint16_t tx_stats_queue;
	uint32_t max_frame; /**< frames longer than this are dropped; 0 = no limit */
	/** For a vhost endpoint that translates through the IOTLB: the index of iotlb_misses in
	 * rte_vhost_vring_stats_get(), so the worker can time translation waits; else -1. */
	int16_t rx_iotlb_stat;
	int16_t tx_iotlb_stat;
	/** With rx.type DP_ENDPOINT_POLL: what the worker calls; tx must be DP_ENDPOINT_NONE. */
	dp_poll_fn poll;
	void *poll_arg;
};

struct dp_worker_info {
	unsigned int lcore;
	unsigned int tasks;
	uint64_t busy_cycles;  /**< cycles spent in polls that moved packets */
	uint64_t total_cycles; /**< cycles since the worker started */
	uint64_t packets;      /**< packets received by this worker */
	uint64_t polls;
};

/**
 * Set up the data plane on @p nb_workers lcores (not launched yet). Packets received from
 * vhost and eth endpoints are allocated from @p pool.
 * @return 0 or -errno.
 */
int dp_init(struct rte_mempool *pool, const unsigned int *worker_lcores, unsigned int nb_workers);

/** Launch the workers on their lcores. @return 0 or -errno. */
int dp_start(void);

/** Ask the workers to stop and wait for them. The published plan must be empty by then. */
void dp_stop(void);

/** Free what dp_init() made. */
void dp_fini(void);

/**
 * Make @p specs the running plan. Tasks identical to running ones keep their counters and
 * worker; others are created (assigned to the least loaded worker) or retired.
 * Returns once no worker uses anything the old plan had and this one lacks.
 * @return 0 or -ENOMEM (the old plan then stays in place).
 */
int dp_apply(const struct dp_task_spec *specs, unsigned int nb_specs);

/** @return counters for a device with @p nb_queues queues, or NULL with errno set. */
struct dp_stats *dp_stats_create(uint16_t nb_queues);

/** Free counters that no task of the running plan uses any more. */
void dp_stats_free(struct dp_stats *stats);

/** Read queue @p queue of @p stats, minus what was reset. */
void dp_stats_read(const struct dp_stats *stats, uint16_t queue, struct dp_queue_counters *out);

/** Start counting from zero again, without writing anything a worker writes. */
void dp_stats_reset(struct dp_stats *stats);

/**
 * Wait until every worker has passed a quiescent point: after it, none still runs a poll that
 * began before. Safe from any thread, including while dp_apply() runs on another.
 */
void dp_synchronize(void);

/** @return the number of workers. */
unsigned int dp_worker_count(void);

/** Fill @p info for worker @p idx. @return 0 or -ENOENT. */
int dp_worker_get(unsigned int idx, struct dp_worker_info *info);

#endif /* VHOSTD_DP_H */
