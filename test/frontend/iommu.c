/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vIOMMU model and IOTLB message handling (control thread).
 */
#include <errno.h>
#include <string.h>

#include "fe.h"
#include "iommu.h"

struct iommu_entry {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;
};

/*
 * Resolves iova to the mapping that holds it: the IOMMU page clipped to the area
 * (one DMA permission) and the region, so that the backend can translate it with
 * one SET_MEM_TABLE region. -ENOENT when nothing is mapped there.
 */
static int
resolve(const struct iommu *io, uint64_t iova, struct iommu_entry *e)
{
	const struct gm_area *a;
	const struct gm_region *r;
	uint64_t gpa, page, start, end;

	if (!io->translate || iova < io->iova_offset)
		return -ENOENT;
	gpa = iova - io->iova_offset;
	a = gm_area_of(io->gm, gpa);
	r = gm_region_of(io->gm, gpa);
	if (a == NULL || r == NULL)
		return -ENOENT;
	page = gpa & ~(io->page_size - 1);
	start = page;
	if (start < a->gpa)
		start = a->gpa;
	if (start < r->gpa)
		start = r->gpa;
	end = page + io->page_size;
	if (end > a->gpa + a->len)
		end = a->gpa + a->len;
	if (end > r->gpa + r->size)
		end = r->gpa + r->size;
	e->iova = start + io->iova_offset;
	e->size = end - start;
	e->uaddr = gm_uaddr(io->gm, start);
	e->perm = a->perm;
	return 0;
}

static int
send_iotlb(
	struct iommu *io, uint8_t type, uint64_t iova, uint64_t size, uint64_t uaddr, uint8_t perm)
{
	struct vu_iotlb m = {
		.iova = iova,
		.size = size,
		.uaddr = uaddr,
		.perm = perm,
		.type = type,
	};
	int rc;

	/* QEMU sends IOTLB messages with NEED_REPLY and waits for the ack. */
	rc = vu_set(io->conn, VU_IOTLB_MSG, &m, sizeof(m), NULL, 0);
	if (rc < 0)
		return rc;
	if (type == VU_IOTLB_UPDATE)
		io->st.updates_sent++;
	else
		io->st.invalidations_sent++;
	fe_debug("IOTLB %s iova 0x%llx size 0x%llx uaddr 0x%llx perm %u\n",
		type == VU_IOTLB_UPDATE ? "update" : "invalidate", (unsigned long long)iova,
		(unsigned long long)size, (unsigned long long)uaddr, perm);
	return 0;
}

int
iommu_map_page(struct iommu *io, uint64_t iova)
{
	struct iommu_entry e;

	if (resolve(io, iova, &e) < 0)
		return -ENOENT;
	return send_iotlb(io, VU_IOTLB_UPDATE, e.iova, e.size, e.uaddr, e.perm);
}

int
iommu_prefill(struct iommu *io)
{
	for (unsigned int i = 0; i < io->gm->nareas; i++) {
		const struct gm_area *a = &io->gm->areas[i];
		uint64_t iova = a->gpa + io->iova_offset;
		uint64_t end = iova + a->len;

		while (iova < end) {
			struct iommu_entry e;
			int rc;

			if (resolve(io, iova, &e) < 0)
				return -ENOENT;
			rc = send_iotlb(io, VU_IOTLB_UPDATE, e.iova, e.size, e.uaddr, e.perm);
			if (rc < 0)
				return rc;
			iova = e.iova + e.size;
		}
	}
	return 0;
}

int
iommu_invalidate_all(struct iommu *io)
{
	for (unsigned int i = 0; i < io->gm->nareas; i++) {
		const struct gm_area *a = &io->gm->areas[i];
		int rc =
			send_iotlb(io, VU_IOTLB_INVALIDATE, a->gpa + io->iova_offset, a->len, 0, 0);

		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Answers one miss: an update when mapped with enough permission, else nothing (as QEMU). */
static int
answer_miss(struct iommu *io, const struct iommu_pending *p)
{
	struct iommu_entry e;
	uint8_t want = p->perm != 0 ? p->perm : VU_ACCESS_RO;
	uint64_t took;
	int rc;

	if (resolve(io, p->iova, &e) < 0) {
		io->st.misses_unmapped++;
		fe_info("IOTLB miss for unmapped iova 0x%llx: not answered\n",
			(unsigned long long)p->iova);
		rc = -ENOENT;
	} else if ((want & e.perm) != want) {
		io->st.misses_denied++;
		fe_info("IOTLB miss for iova 0x%llx perm %u, mapping allows %u: not answered\n",
			(unsigned long long)p->iova, want, e.perm);
		rc = -EACCES;
	} else {
		rc = send_iotlb(io, VU_IOTLB_UPDATE, e.iova, e.size, e.uaddr, e.perm);
		if (rc < 0)
			return rc; /* the main socket failed: fatal for the run */
		io->st.misses_answered++;
		took = fe_now_ns() - p->recv_ns;
		io->st.answer_ns_total += took;
		if (took > io->st.answer_ns_max)
			io->st.answer_ns_max = took;
	}
	if (p->need_reply) {
		struct vu_msg req = {.hdr = {.request = p->request}};

		vu_backend_reply(io->conn, &req, rc == 0 ? 0 : 1);
	}
	return 0;
}

int
iommu_backend_request(struct iommu *io, const struct vu_msg *m)
{
	bool need_reply = (m->hdr.flags & VU_FLAG_NEED_REPLY) != 0;
	struct iommu_pending p = {
		.recv_ns = fe_now_ns(),
		.need_reply = need_reply,
		.request = m->hdr.request,
	};

	if (m->hdr.request != VU_BACKEND_IOTLB_MSG || m->hdr.size < sizeof(m->p.iotlb) ||
		m->p.iotlb.type != VU_IOTLB_MISS) {
		/* Not something we implement: say so when asked, as the spec allows. */
		io->st.backend_other++;
		fe_info("backend request %u (size %u) not handled\n", m->hdr.request, m->hdr.size);
		if (need_reply)
			vu_backend_reply(io->conn, m, 1);
		return 0;
	}
	io->st.misses_received++;
	p.iova = m->p.iotlb.iova;
	p.perm = m->p.iotlb.perm;
	fe_debug("IOTLB miss iova 0x%llx perm %u\n", (unsigned long long)p.iova, p.perm);
	if (io->miss_never) {
		io->st.misses_ignored++;
		return 0;
	}
	if (io->miss_delay_ms == 0 || io->count == IOMMU_MAX_PENDING)
		return answer_miss(io, &p);
	p.due_ns = p.recv_ns + io->miss_delay_ms * NS_PER_MS;
	io->pending[(io->head + io->count) % IOMMU_MAX_PENDING] = p;
	io->count++;
	return 0;
}

int
iommu_run_due(struct iommu *io, uint64_t now_ns)
{
	/* One fixed delay for all: the queue is ordered by due time. */
	while (io->count > 0 && io->pending[io->head].due_ns <= now_ns) {
		struct iommu_pending p = io->pending[io->head];
		int rc;

		io->head = (io->head + 1) % IOMMU_MAX_PENDING;
		io->count--;
		rc = answer_miss(io, &p);
		if (rc < 0)
			return rc;
	}
	return 0;
}

uint64_t
iommu_next_due(const struct iommu *io)
{
	return io->count > 0 ? io->pending[io->head].due_ns : UINT64_MAX;
}
