/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vIOMMU model, as QEMU 7.2 drives a vhost-user backend behind intel-iommu:
 * IOVA = GPA + iova_offset (non-identity on purpose), mappings of at most one
 * "IOMMU page" clipped to the area (same DMA permission) and region that hold it,
 * IOTLB_UPDATE / IOTLB_INVALIDATE on the main socket (with REPLY_ACK), IOTLB_MISS
 * received on the backend channel. Runs on the control thread only.
 */
#ifndef FE_IOMMU_H
#define FE_IOMMU_H

#include <stdbool.h>
#include <stdint.h>

#include "guest_mem.h"
#include "vu_client.h"

#define IOMMU_MAX_PENDING 4096 /* delayed miss answers; DPDK dedups misses, few are live */

struct iommu_pending {
	uint64_t due_ns;
	uint64_t recv_ns;
	uint64_t iova;
	uint8_t perm;
	bool need_reply;
	uint32_t request; /* backend request code, for the reply */
};

struct iommu_stats {
	uint64_t misses_received;
	uint64_t misses_answered;
	uint64_t misses_unmapped; /* no mapping for that IOVA: no answer, like QEMU */
	uint64_t misses_denied;	  /* mapping lacks the permission asked for: no answer */
	uint64_t misses_ignored;  /* --miss-never */
	uint64_t updates_sent;	  /* every IOTLB_UPDATE: pushes, prefill, answers */
	uint64_t invalidations_sent;
	uint64_t backend_other; /* other backend-channel requests */
	uint64_t answer_ns_total;
	uint64_t answer_ns_max;
};

struct iommu {
	bool translate;	      /* ACCESS_PLATFORM in SET_FEATURES: IOVAs everywhere */
	uint64_t iova_offset; /* IOVA = GPA + iova_offset */
	uint64_t page_size;   /* granularity of the mappings we send */
	unsigned int miss_delay_ms;
	bool miss_never;
	struct guest_mem *gm;
	struct vu_conn *conn;
	unsigned int head;
	unsigned int count;
	struct iommu_pending pending[IOMMU_MAX_PENDING];
	struct iommu_stats st;
};

/* Address the device sees for a buffer (descriptor addr): IOVA or GPA. */
static inline uint64_t
iommu_dma_addr(const struct iommu *io, uint64_t gpa)
{
	return io->translate ? gpa + io->iova_offset : gpa;
}

/* Address for SET_VRING_ADDR: IOVA with translation, else our virtual address. */
static inline uint64_t
iommu_ring_addr(const struct iommu *io, uint64_t gpa)
{
	return io->translate ? gpa + io->iova_offset : gm_uaddr(io->gm, gpa);
}

/* Sends the IOTLB_UPDATE for the IOMMU page that holds iova (QEMU: vhost_device_iotlb_miss). */
int iommu_map_page(struct iommu *io, uint64_t iova);
/* --iotlb-prefill: updates for every allocated area, page by page. */
int iommu_prefill(struct iommu *io);
/* IOTLB_INVALIDATE for every area. */
int iommu_invalidate_all(struct iommu *io);
/* A request read from the backend channel: answers now or queues it. */
int iommu_backend_request(struct iommu *io, const struct vu_msg *m);
/* Sends the delayed answers that are due. */
int iommu_run_due(struct iommu *io, uint64_t now_ns);
/* When the next delayed answer is due; UINT64_MAX when none. */
uint64_t iommu_next_due(const struct iommu *io);

#endif /* FE_IOMMU_H */
