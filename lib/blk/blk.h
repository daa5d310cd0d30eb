/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_BLK_H
#define VHOSTD_BLK_H

/**
 * @file
 * vhost-user-blk: a backing file or block device served to a frontend's virtio-blk queues.
 *
 * The control side (blk_dev.c) opens the backing, probes what it supports (DISCARD,
 * WRITE_ZEROES), answers GET_CONFIG, and sets a session's queues up and down. The worker side
 * (blk_worker.c) walks the split virtqueues itself, checks every guest index, length and
 * address, and submits I/O with io_uring straight on guest memory (or preadv/pwritev when
 * io_uring is unavailable): no payload copy in vhostd.
 */

#include <stdbool.h>
#include <stdint.h>

#include "base_error.h"

struct blk_dev;
struct blk_queue;

/* virtio-blk feature bits (virtio 1.2 section 5.2.3). */
#define BLK_F_SIZE_MAX	   1
#define BLK_F_SEG_MAX	   2
#define BLK_F_RO	   5
#define BLK_F_BLK_SIZE	   6
#define BLK_F_FLUSH	   9
#define BLK_F_TOPOLOGY	   10
#define BLK_F_MQ	   12
#define BLK_F_DISCARD	   13
#define BLK_F_WRITE_ZEROES 14

struct blk_queue_stats {
	uint64_t requests;  /**< requests taken from the avail ring */
	uint64_t completed; /**< requests put in the used ring */
	uint64_t read_ops, write_ops, flush_ops, discard_ops, write_zeroes_ops, get_id_ops;
	uint64_t read_bytes, write_bytes;
	uint64_t io_errors;    /**< completed with VIRTIO_BLK_S_IOERR (backing failed, bad range) */
	uint64_t unsupported;  /**< completed with VIRTIO_BLK_S_UNSUPP */
	uint64_t bad_requests; /**< malformed chains refused (a subset of io_errors + no-status) */
	uint64_t resubmitted;  /**< in-flight requests of a previous backend, submitted again */
	uint64_t slow_inline_writes; /**< in-place writes that were slow: writes then went async */
	uint64_t inflight;	     /**< submitted to the backing, not yet completed (a gauge) */
};

/**
 * Open @p backing for a device with @p queues queues. The serial (GET_ID) is @p serial.
 * @return the device, or NULL with @p err filled (field "backing").
 */
struct blk_dev *blk_dev_open(const char *backing, bool readonly, uint32_t block_size,
	uint32_t queues, const char *serial, struct base_error *err);
void blk_dev_close(struct blk_dev *dev);

/** @return the virtio feature bits this device supports (RO, DISCARD... as probed). */
uint64_t blk_dev_features(const struct blk_dev *dev);

/** @return the capacity in bytes. */
uint64_t blk_dev_capacity(const struct blk_dev *dev);

/**
 * Copy @p size bytes of the virtio_blk_config space from @p offset into @p buf (GET_CONFIG).
 * @return 0 or -EINVAL when the range is outside the config space.
 */
int blk_dev_config(const struct blk_dev *dev, void *buf, uint32_t offset, uint32_t size);

/**
 * Set up the queues of session @p vid: rings, memory table, inflight resubmission, io_uring.
 * @return the number of queues, or -errno with @p err filled.
 */
int blk_dev_start(struct blk_dev *dev, int vid, struct base_error *err);

/** @return queue @p q of the running session (for the worker's poll), or NULL. */
struct blk_queue *blk_dev_queue(struct blk_dev *dev, unsigned int q);

/**
 * Quiesce the session: the caller has made sure no worker polls its queues any more. Waits
 * for the I/O in flight, completes it into the used rings, and tells librte_vhost where each
 * ring stopped (for GET_VRING_BASE). With @p release, frees the queues (session over);
 * otherwise blk_dev_resume() picks the queues up again after a vhost-user message changed
 * memory or vrings.
 */
void blk_dev_quiesce(struct blk_dev *dev, bool release);

/** Re-read vrings and the memory table after a change; the queues may then be polled again. */
int blk_dev_resume(struct blk_dev *dev);

/**
 * Stop (or let again) the workers touch the queues: blk_queue_poll() returns at once while
 * paused. After pausing, wait for a QSBR grace period before changing anything they use.
 */
void blk_dev_set_paused(struct blk_dev *dev, bool paused);

/** Add the counters of queue @p q (running session plus past ones) into @p out. */
void blk_dev_stats(const struct blk_dev *dev, unsigned int q, struct blk_queue_stats *out);

/** Worker side: serve what queue @p arg has. @return requests handled. */
unsigned int blk_queue_poll(void *arg);

#endif /* VHOSTD_BLK_H */
