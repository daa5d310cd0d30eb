/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_BLK_INTERNAL_H
#define VHOSTD_BLK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <liburing.h>
#include <rte_vhost.h>

#include "blk.h"

#define BLK_SECTOR 512
/* Data descriptors one request may have (the config's seg_max): Linux's default queue limit
 * is 128 segments, and two descriptors carry the header and the status. */
#define BLK_SEG_MAX 126
/* Bytes per data descriptor (size_max): 1 MiB keeps one request's iovecs small. */
#define BLK_SIZE_MAX (1u << 20)
/* A descriptor may span guest memory regions and then needs more than one iovec. */
#define BLK_IOV_MAX (BLK_SEG_MAX * 2)
/* DISCARD/WRITE_ZEROES ranges per request: one, so one request is one fallocate(). */
#define BLK_DWZ_SEG_MAX 1
/* Sectors per DISCARD/WRITE_ZEROES range: 4 GiB - 512. */
#define BLK_DWZ_SECTORS_MAX (UINT32_MAX / BLK_SECTOR)
#define BLK_ID_BYTES	    20
/* An indirect table larger than this is refused (virtio: at most the queue size entries). */
#define BLK_INDIRECT_MAX 1024
/* A write done in place that takes longer than this sends the queue's writes to io_uring... */
#define BLK_INLINE_WRITE_MAX_US 200
/*
 * ...for this many times as long as that write took (at most BLK_ASYNC_WRITES_MAX_MS), before
 * writing in place is tried again: a disk that stays slow costs the worker one part in 65 of its
 * time (for writes up to 150 ms; past that the cap bounds the window).
 */
#define BLK_ASYNC_WRITES_FACTOR 64
#define BLK_ASYNC_WRITES_MAX_MS 10000
/* Queues per blk device (virtio-blk num_queues; QEMU's default is one per vCPU). */
#define BLK_QUEUES_MAX 64

/* virtio 1.2 section 5.2.6 */
#define BLK_T_IN	   0
#define BLK_T_OUT	   1
#define BLK_T_FLUSH	   4
#define BLK_T_GET_ID	   8
#define BLK_T_DISCARD	   11
#define BLK_T_WRITE_ZEROES 13
#define BLK_S_OK	   0
#define BLK_S_IOERR	   1
#define BLK_S_UNSUPP	   2
#define BLK_WZ_F_UNMAP	   1

struct blk_outhdr {
	uint32_t type;
	uint32_t ioprio;
	uint64_t sector;
};

struct blk_dwz_range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* One request, kept in the slot of its head descriptor while it is in flight. */
struct blk_req {
	uint16_t head;
	bool busy;
	uint32_t type;
	uint8_t *status;   /* host address of the status byte, NULL when there is none */
	uint32_t used_len; /* bytes the device writes into device-writable buffers, status included
			    */
	uint64_t offset;   /* byte offset in the backing */
	uint64_t len;	   /* data bytes (or range bytes for DISCARD/WRITE_ZEROES) */
	int falloc_mode;
	unsigned int niov;
	struct iovec iov[BLK_IOV_MAX];
};

/* Limits and capabilities a request is checked against. */
struct blk_limits {
	uint64_t capacity; /* bytes */
	bool readonly;
	bool discard;
	bool write_zeroes;
};

struct blk_queue {
	/* Set by the control side while no worker polls this queue; read by the worker. */
	struct blk_dev *dev;
	int vid;
	uint16_t vring_idx;
	uint16_t size;
	struct rte_vhost_vring vring;
	struct rte_vhost_memory *mem;
	int fd;
	struct blk_limits lim;
	const char *serial;
	bool use_uring;
	struct io_uring ring;
	struct blk_req *reqs; /* size slots, indexed by head */

	/* Worker state (the control side touches it only when quiesced). */
	uint16_t last_avail_idx;
	uint16_t last_used_idx;
	uint16_t *resubmit; /* heads to submit again, oldest first */
	uint16_t nb_resubmit;
	uint16_t resubmit_pos;
	unsigned int to_submit;
	uint64_t async_writes_until; /* tsc: writes go through io_uring until then */
	uint64_t inline_write_max_cycles;
	uint64_t async_writes_max_cycles;
	bool need_call;
	struct blk_queue_stats st; /* written by the worker, read by control (relaxed) */
};

/*
 * Parse the chain at @p head (virtio 1.x: any layout; device-readable bytes first: the 16-byte
 * header then data; device-writable bytes: data then the 1-byte status). Every index, length
 * and address is checked and translated with @p mem.
 *
 * @return BLK_S_OK with @p r ready to execute, BLK_S_IOERR or BLK_S_UNSUPP (r->status set
 *   when the chain has a status byte; r->used_len then counts it).
 */
int blk_parse(const struct vring_desc *desc, uint16_t size, struct rte_vhost_memory *mem,
	const struct blk_limits *lim, uint16_t head, struct blk_req *r);

bool blk_dev_paused(const struct blk_dev *dev);

/* Control side, with no worker polling @p q: wait for and complete everything in flight. */
void blk_queue_drain(struct blk_queue *q);

/* Relaxed counter update, single writer. */
static inline void
blk_ctr_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

#endif /* VHOSTD_BLK_INTERNAL_H */
