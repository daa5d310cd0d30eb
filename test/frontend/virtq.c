/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Split virtqueue setup in guest memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "virtq.h"

#define BUF_ALIGN 64 /* one cache line: no false sharing between buffers */

int
virtq_init_rings(struct virtq *vq, unsigned int index, unsigned int size, struct guest_mem *gm)
{
	uint64_t desc_len = sizeof(struct vring_desc) * size;
	/* + used_event / avail_event, present even without EVENT_IDX */
	uint64_t avail_len = sizeof(struct vring_avail) + sizeof(uint16_t) * size + 2;
	uint64_t used_len = sizeof(struct vring_used) + sizeof(struct vring_used_elem) * size + 2;
	int rc;

	memset(vq, 0, sizeof(*vq));
	vq->kick_fd = -1;
	vq->call_fd = -1;
	vq->index = index;
	vq->size = (uint16_t)size;
	vq->mask = (uint16_t)(size - 1);
	rc = gm_alloc(gm, desc_len, VRING_ALIGN, VU_ACCESS_RW, &vq->desc_gpa);
	if (rc == 0)
		rc = gm_alloc(gm, avail_len, VRING_ALIGN, VU_ACCESS_RW, &vq->avail_gpa);
	if (rc == 0)
		rc = gm_alloc(gm, used_len, VRING_ALIGN, VU_ACCESS_RW, &vq->used_gpa);
	if (rc < 0)
		return rc;
	vq->desc = gm_va(gm, vq->desc_gpa);
	vq->avail = gm_va(gm, vq->avail_gpa);
	vq->used = gm_va(gm, vq->used_gpa);
	memset(vq->desc, 0, desc_len);
	memset(vq->avail, 0, avail_len);
	memset(vq->used, 0, used_len);
	/* We poll the used ring (like DPDK's virtio-user): no interrupts please. */
	vq->avail->flags = VRING_AVAIL_F_NO_INTERRUPT;
	vq->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vq->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vq->kick_fd < 0 || vq->call_fd < 0)
		return -errno;
	return 0;
}

int
virtq_init_bufs(struct virtq *vq, struct guest_mem *gm, const struct iommu *io, uint32_t buf_size,
	uint8_t perm, bool device_writes)
{
	vq->buf_size = buf_size;
	vq->buf = calloc(vq->size, sizeof(*vq->buf));
	vq->free_ids = calloc(vq->size, sizeof(*vq->free_ids));
	vq->inflight = calloc(vq->size, sizeof(*vq->inflight));
	vq->len = calloc(vq->size, sizeof(*vq->len));
	if (vq->buf == NULL || vq->free_ids == NULL || vq->inflight == NULL || vq->len == NULL)
		return -ENOMEM;
	for (unsigned int i = 0; i < vq->size; i++) {
		uint64_t gpa;
		int rc = gm_alloc(gm, buf_size, BUF_ALIGN, perm, &gpa);

		if (rc < 0)
			return rc;
		vq->buf[i] = gm_va(gm, gpa);
		vq->desc[i].addr = iommu_dma_addr(io, gpa);
		vq->desc[i].len = buf_size;
		vq->desc[i].flags = device_writes ? VRING_DESC_F_WRITE : 0;
		vq->free_ids[vq->nfree++] = (uint16_t)(vq->size - 1 - i);
	}
	return 0;
}

void
virtq_destroy(struct virtq *vq)
{
	if (vq->size == 0)
		return; /* never initialised */
	if (vq->kick_fd >= 0)
		close(vq->kick_fd);
	if (vq->call_fd >= 0)
		close(vq->call_fd);
	vq->kick_fd = -1;
	vq->call_fd = -1;
	free(vq->buf);
	free(vq->free_ids);
	free(vq->inflight);
	free(vq->len);
	vq->buf = NULL;
	vq->free_ids = NULL;
	vq->inflight = NULL;
	vq->len = NULL;
}

void
virtq_kick(struct virtq *vq)
{
	uint64_t one = 1;

	if (write(vq->kick_fd, &one, sizeof(one)) == sizeof(one))
		vq->kicks++;
	vq->kicked_once = true;
}
