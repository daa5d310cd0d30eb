/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * "Guest memory": one memfd mapped shared, split into regions at GPA 0.., passed to
 * the backend with SET_MEM_TABLE. A bump allocator hands out ring and buffer memory;
 * an allocation never straddles a region. Each allocation has a DMA permission
 * (what the device may do with it); consecutive allocations of the same permission
 * form an "area", which is what the vIOMMU model maps.
 */
#ifndef FE_GUEST_MEM_H
#define FE_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "fe.h"

#define GM_MAX_AREAS 64 /* rings, TX buffers, RX buffers per region: few */

struct gm_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t mmap_offset;
};

struct gm_area {
	uint64_t gpa;
	uint64_t len;
	uint8_t perm; /* VU_ACCESS_* */
};

struct guest_mem {
	int fd;
	uint8_t *base; /* our virtual address of GPA 0 */
	uint64_t size;
	unsigned int nregions;
	struct gm_region regions[FE_MAX_REGIONS];
	uint64_t next; /* bump pointer (GPA) */
	unsigned int nareas;
	struct gm_area areas[GM_MAX_AREAS];
};

/* Creates the memfd and the regions; region size must be a multiple of 4 KiB. */
int gm_create(struct guest_mem *gm, uint64_t size, unsigned int nregions);
void gm_destroy(struct guest_mem *gm);

/* Allocates len bytes aligned to align with DMA permission perm; 0 or -ENOMEM. */
int gm_alloc(struct guest_mem *gm, uint64_t len, uint64_t align, uint8_t perm, uint64_t *gpa);

static inline void *
gm_va(const struct guest_mem *gm, uint64_t gpa)
{
	return gm->base + gpa;
}

/* Our virtual address as a number: userspace_addr in SET_MEM_TABLE, uaddr in IOTLB. */
static inline uint64_t
gm_uaddr(const struct guest_mem *gm, uint64_t gpa)
{
	return (uint64_t)(uintptr_t)(gm->base + gpa);
}

const struct gm_region *gm_region_of(const struct guest_mem *gm, uint64_t gpa);
const struct gm_area *gm_area_of(const struct guest_mem *gm, uint64_t gpa);

#endif /* FE_GUEST_MEM_H */
