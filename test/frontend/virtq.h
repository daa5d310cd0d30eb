/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue, driver side (virtio 1.x section 2.7). Descriptor i always points
 * at buffer i (one descriptor per buffer, no chains), so a used id names its buffer.
 * The rings live in guest memory; the driver state is touched by the data thread only.
 */
#ifndef FE_VIRTQ_H
#define FE_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_mem.h"
#include "iommu.h"

#define VRING_DESC_F_NEXT	   1
#define VRING_DESC_F_WRITE	   2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	   1
#define VRING_ALIGN		   4096 /* each ring part on its own page: simple IOTLB pages */

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];
};

struct virtq {
	unsigned int index; /* vring index in vhost-user messages */
	uint16_t size;
	uint16_t mask;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	int kick_fd;
	int call_fd;
	uint32_t buf_size;
	uint8_t **buf; /* our address of buffer i */
	/* Data thread only. */
	uint16_t avail_idx; /* next avail slot (shadow of avail->idx) */
	uint16_t last_used; /* next used slot to read */
	uint16_t *free_ids; /* descriptors the driver owns */
	uint32_t nfree;
	uint8_t *inflight; /* 1 while the device owns descriptor i */
	uint32_t *len;	   /* frame length placed in descriptor i (TX) */
	bool kicked_once;
	uint64_t kicks;	   /* read by control at the end only */
	uint64_t bad_used; /* used ids we never gave out: a backend bug */
};

/* Allocates the three ring parts (DMA permission RW) and the eventfds. */
int virtq_init_rings(struct virtq *vq, unsigned int index, unsigned int size, struct guest_mem *gm);
/*
 * Allocates one buffer per descriptor with DMA permission perm and fills the
 * descriptor table; device_writes marks them VRING_DESC_F_WRITE (RX).
 */
int virtq_init_bufs(struct virtq *vq, struct guest_mem *gm, const struct iommu *io,
	uint32_t buf_size, uint8_t perm, bool device_writes);
void virtq_destroy(struct virtq *vq);
void virtq_kick(struct virtq *vq);

static inline uint16_t
virtq_used_idx(const struct virtq *vq)
{
	/* Acquire: the used elements are read after the index (2.7.8.2 ordering). */
	return __atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE);
}

static inline void
virtq_push(struct virtq *vq, uint16_t id)
{
	vq->avail->ring[vq->avail_idx & vq->mask] = id;
	vq->avail_idx++;
	vq->inflight[id] = 1;
}

/* Makes pushed buffers visible, then kicks when the device wants kicks (or never was). */
static inline void
virtq_publish(struct virtq *vq)
{
	__atomic_store_n(&vq->avail->idx, vq->avail_idx, __ATOMIC_RELEASE);
	if (vq->kicked_once) {
		/* 2.7.13.3.1: a full barrier between the idx store and the flags read. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(&vq->used->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY)
			return;
	}
	virtq_kick(vq);
}

/* Takes back a used element; returns false for an id the device did not own. */
static inline bool
virtq_take_used(struct virtq *vq, uint16_t *id, uint32_t *len)
{
	const struct vring_used_elem *e = &vq->used->ring[vq->last_used & vq->mask];
	uint32_t i = e->id;

	*len = e->len;
	vq->last_used++;
	if (i >= vq->size || !vq->inflight[i]) {
		vq->bad_used++;
		return false;
	}
	vq->inflight[i] = 0;
	*id = (uint16_t)i;
	return true;
}

#endif /* FE_VIRTQ_H */
