/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Guest memory: memfd + regions + bump allocator with per-area DMA permissions.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_mem.h"

#define GM_REGION_ALIGN 4096ULL /* mmap offsets must be page aligned */

int
gm_create(struct guest_mem *gm, uint64_t size, unsigned int nregions)
{
	uint64_t rsize;
	void *p;

	memset(gm, 0, sizeof(*gm));
	gm->fd = -1;
	if (nregions == 0 || nregions > FE_MAX_REGIONS)
		return -EINVAL;
	rsize = size / nregions;
	if (rsize == 0 || rsize % GM_REGION_ALIGN != 0 || rsize * nregions != size)
		return -EINVAL;
	gm->fd = memfd_create("vhost-frontend-guest", MFD_CLOEXEC);
	if (gm->fd < 0)
		return -errno;
	if (ftruncate(gm->fd, (off_t)size) < 0)
		goto err;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, gm->fd, 0);
	if (p == MAP_FAILED)
		goto err;
	gm->base = p;
	gm->size = size;
	gm->nregions = nregions;
	for (unsigned int i = 0; i < nregions; i++) {
		gm->regions[i].gpa = i * rsize;
		gm->regions[i].size = rsize;
		gm->regions[i].mmap_offset = i * rsize;
	}
	return 0;
err:
	close(gm->fd);
	gm->fd = -1;
	return -errno;
}

void
gm_destroy(struct guest_mem *gm)
{
	if (gm->base != NULL)
		munmap(gm->base, gm->size);
	if (gm->fd >= 0)
		close(gm->fd);
	gm->base = NULL;
	gm->fd = -1;
}

const struct gm_region *
gm_region_of(const struct guest_mem *gm, uint64_t gpa)
{
	for (unsigned int i = 0; i < gm->nregions; i++) {
		const struct gm_region *r = &gm->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

const struct gm_area *
gm_area_of(const struct guest_mem *gm, uint64_t gpa)
{
	for (unsigned int i = 0; i < gm->nareas; i++) {
		const struct gm_area *a = &gm->areas[i];

		if (gpa >= a->gpa && gpa - a->gpa < a->len)
			return a;
	}
	return NULL;
}

static int
add_area(struct guest_mem *gm, uint64_t gpa, uint64_t len, uint8_t perm)
{
	struct gm_area *last = gm->nareas > 0 ? &gm->areas[gm->nareas - 1] : NULL;

	/* Extend the last area when contiguous, same permission and same region. */
	if (last != NULL && last->perm == perm && last->gpa + last->len <= gpa &&
		gm_region_of(gm, last->gpa) == gm_region_of(gm, gpa)) {
		last->len = gpa + len - last->gpa;
		return 0;
	}
	if (gm->nareas == GM_MAX_AREAS)
		return -ENOMEM;
	gm->areas[gm->nareas++] = (struct gm_area){.gpa = gpa, .len = len, .perm = perm};
	return 0;
}

int
gm_alloc(struct guest_mem *gm, uint64_t len, uint64_t align, uint8_t perm, uint64_t *gpa)
{
	uint64_t at = (gm->next + align - 1) & ~(align - 1);
	const struct gm_region *r = gm_region_of(gm, at);

	if (len == 0 || r == NULL)
		return -ENOMEM;
	if (at + len > r->gpa + r->size) {
		/* Never straddle a region: skip to the next one. */
		r = gm_region_of(gm, r->gpa + r->size);
		if (r == NULL || len > r->size)
			return -ENOMEM;
		at = r->gpa;
	}
	if (add_area(gm, at, len, perm) < 0)
		return -ENOMEM;
	gm->next = at + len;
	*gpa = at;
	return 0;
}
