/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The vhost-user session, in the order QEMU 7.2 sends it:
 *   backend init: GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
 *                 SET_BACKEND_REQ_FD, SET_OWNER, kind init (blk: GET_CONFIG)
 *   device plug:  ACCESS_PLATFORM checks (virtio_bus_device_plugged)
 *   start:        SET_FEATURES, SET_VRING_CALL per vring (vhost_virtqueue_init), kind pre-rings
 * (blk: GET/SET_INFLIGHT_FD), SET_MEM_TABLE, per vring NUM/BASE/ADDR/KICK/CALL, IOTLB updates for
 * the used rings (vhost_dev_start), SET_VRING_ENABLE stop:         SET_VRING_ENABLE 0,
 * GET_VRING_BASE per vring Functions return 0 or an FE_EXIT_* code with the reason written to
 * reason[].
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "run.h"

/* Protocol features this frontend implements (and so may ack). */
#define FE_PROTOCOL_SUPPORTED                                       \
	(BIT64(VU_PROTOCOL_F_MQ) | BIT64(VU_PROTOCOL_F_REPLY_ACK) | \
		BIT64(VU_PROTOCOL_F_BACKEND_REQ))
/* Plus the kind's own (blk: CONFIG, INFLIGHT_SHMFD with --inflight). */

static int
say(char *reason, size_t len, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, len, fmt, ap);
	va_end(ap);
	return code;
}

/* Maps a failed vu_* call to an exit code. */
static int
conn_error(struct fe_run *r, int rc, char *reason, size_t len)
{
	snprintf(reason, len, "%s", r->conn.err);
	if (rc == -ECONNRESET)
		return FE_EXIT_BACKEND_GONE;
	if (rc == -EINTR)
		return -EINTR; /* a signal: the caller prints the summary and exits 0 */
	return FE_EXIT_FAIL;
}

static int
negotiate_protocol(struct fe_run *r, char *reason, size_t len)
{
	const struct fe_opts *o = r->o;
	struct vu_conn *c = &r->conn;
	int rc;

	rc = vu_get_u64(c, VU_GET_PROTOCOL_FEATURES, &r->protocol_offered);
	if (rc < 0)
		return conn_error(r, rc, reason, len);
	/* vhost_user_backend_init(): a device with config space needs the CONFIG feature. */
	if (r->kind->needs_config && !(r->protocol_offered & BIT64(VU_PROTOCOL_F_CONFIG)))
		return say(reason, len, FE_EXIT_REFUSED,
			"vhost-user device expecting VHOST_USER_PROTOCOL_F_CONFIG but the vhost-user "
			"backend does not support it.");
	r->protocol_acked =
		r->protocol_offered & FE_PROTOCOL_SUPPORTED & ~o->protocol_features_drop;
	if (r->kind->protocol_features != NULL)
		r->protocol_acked |= r->protocol_offered & r->kind->protocol_features(o) &
				     ~o->protocol_features_drop;
	rc = vu_set_u64(c, VU_SET_PROTOCOL_FEATURES, r->protocol_acked);
	if (rc < 0)
		return conn_error(r, rc, reason, len);
	c->reply_ack = (r->protocol_acked & BIT64(VU_PROTOCOL_F_REPLY_ACK)) != 0;
	r->max_queues = 1;
	if (r->protocol_acked & BIT64(VU_PROTOCOL_F_MQ)) {
		rc = vu_get_u64(c, VU_GET_QUEUE_NUM, &r->max_queues);
		if (rc < 0)
			return conn_error(r, rc, reason, len);
	}
	/* QEMU 7.2 vhost_user_backend_init(): the queue count and the IOMMU prerequisites. */
	if (o->queues > r->max_queues)
		return say(reason, len, FE_EXIT_REFUSED,
			"The maximum number of queues supported by the backend is %llu",
			(unsigned long long)r->max_queues);
	if ((r->features_offered & BIT64(VIRTIO_F_ACCESS_PLATFORM)) &&
		!((r->protocol_acked & BIT64(VU_PROTOCOL_F_BACKEND_REQ)) &&
			(r->protocol_acked & BIT64(VU_PROTOCOL_F_REPLY_ACK))))
		return say(reason, len, FE_EXIT_REFUSED,
			"IOMMU support requires reply-ack and slave-req protocol features.");
	if (r->protocol_acked & BIT64(VU_PROTOCOL_F_BACKEND_REQ)) {
		rc = vu_setup_backend_channel(c);
		if (rc < 0)
			return conn_error(r, rc, reason, len);
	}
	return 0;
}

/* What the guest would negotiate and what QEMU passes on in SET_FEATURES. */
static int
choose_features(struct fe_run *r, char *reason, size_t len)
{
	const struct fe_opts *o = r->o;
	uint64_t offered = r->features_offered;
	uint64_t want = BIT64(VIRTIO_F_VERSION_1) | r->kind->features(o) | o->features_add;

	if (o->iommu != FE_IOMMU_OFF)
		want |= BIT64(VIRTIO_F_ACCESS_PLATFORM);
	else
		want &= ~BIT64(VIRTIO_F_ACCESS_PLATFORM);
	want &= ~o->features_drop;
	r->features_requested = want;

	if ((want & BIT64(VIRTIO_F_VERSION_1)) && !(offered & BIT64(VIRTIO_F_VERSION_1)))
		return say(reason, len, FE_EXIT_REFUSED,
			"backend does not offer VIRTIO_F_VERSION_1 (a modern virtio-pci device needs "
			"it)");
	if (o->queues > 1 && !(offered & BIT64(r->kind->mq_bit)))
		return say(reason, len, FE_EXIT_REFUSED,
			"--queues %u needs %s, which the backend does not offer", o->queues,
			o->kind == FE_KIND_BLK ? "VIRTIO_BLK_F_MQ" : "VIRTIO_NET_F_MQ");
	/* virtio_bus_device_plugged(): a PCI device's DMA space is never plain memory. */
	if (o->iommu != FE_IOMMU_OFF && !(offered & BIT64(VIRTIO_F_ACCESS_PLATFORM)))
		return say(reason, len, FE_EXIT_REFUSED,
			"iommu_platform=true is not supported by the device");
	if (o->iommu == FE_IOMMU_VIOMMU && !(r->conn.reply_ack && r->conn.backend_fd >= 0))
		return say(reason, len, FE_EXIT_REFUSED,
			"IOMMU support requires reply-ack and slave-req protocol features.");

	r->features_guest = offered & want;
	r->features_acked = r->features_guest;
	/* vhost_dev_set_features(): without a vIOMMU there is nothing to translate. */
	if (o->iommu != FE_IOMMU_VIOMMU)
		r->features_acked &= ~BIT64(VIRTIO_F_ACCESS_PLATFORM);
	if (offered & BIT64(VHOST_USER_F_PROTOCOL_FEATURES))
		r->features_acked |= BIT64(VHOST_USER_F_PROTOCOL_FEATURES);
	r->io.translate = (r->features_acked & BIT64(VIRTIO_F_ACCESS_PLATFORM)) != 0;
	if (o->kind == FE_KIND_BLK)
		r->hdr_len = 16; /* struct virtio_blk_outhdr */
	else
		r->hdr_len = (r->features_acked &
				     (BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_NET_F_MRG_RXBUF)))
				     ? 12
				     : 10;
	return 0;
}

int
fe_negotiate(struct fe_run *r, bool restart, char *reason, size_t len)
{
	struct vu_conn *c = &r->conn;
	int rc;

	rc = vu_get_u64(c, VU_GET_FEATURES, &r->features_offered);
	if (rc < 0)
		return conn_error(r, rc, reason, len);
	r->have_protocol = (r->features_offered & BIT64(VHOST_USER_F_PROTOCOL_FEATURES)) != 0;
	r->max_queues = 1;
	if (r->have_protocol) {
		rc = negotiate_protocol(r, reason, len);
		if (rc != 0)
			return rc;
	} else if (r->o->queues > 1) {
		return say(reason, len, FE_EXIT_REFUSED,
			"The maximum number of queues supported by the backend is 1");
	}
	rc = vu_set(c, VU_SET_OWNER, NULL, 0, NULL, 0);
	if (rc < 0)
		return conn_error(r, rc, reason, len);
	if (restart) {
		/* vhost_user_blk_connect(): the guest's features stay what they were. */
		rc = vu_set_u64(c, VU_SET_FEATURES, r->features_acked);
		return rc < 0 ? conn_error(r, rc, reason, len) : 0;
	}
	if (r->kind->backend_init != NULL) {
		rc = r->kind->backend_init(r, reason, len);
		if (rc != 0)
			return rc;
	}
	rc = choose_features(r, reason, len);
	if (rc != 0)
		return rc;
	rc = vu_set_u64(c, VU_SET_FEATURES, r->features_acked);
	if (rc < 0)
		return conn_error(r, rc, reason, len);
	return 0;
}

static int
set_mem_table(struct fe_run *r)
{
	struct vu_memory mem = {.nregions = r->gm.nregions};
	int fds[FE_MAX_REGIONS];

	/* More than 8 regions is sent as is: a test of backends that must refuse it. */
	for (unsigned int i = 0; i < r->gm.nregions; i++) {
		const struct gm_region *g = &r->gm.regions[i];

		mem.regions[i] = (struct vu_mem_region){
			.guest_phys_addr = g->gpa,
			.memory_size = g->size,
			.userspace_addr = gm_uaddr(&r->gm, g->gpa),
			.mmap_offset = g->mmap_offset,
		};
		fds[i] = r->gm.fd;
	}
	return vu_set(&r->conn, VU_SET_MEM_TABLE, &mem,
		(uint32_t)(8 + r->gm.nregions * sizeof(struct vu_mem_region)), fds,
		(int)r->gm.nregions);
}

static int
start_vring(struct fe_run *r, const struct virtq *vq, bool restart)
{
	struct vu_conn *c = &r->conn;
	struct vu_vring_state num = {.index = vq->index, .num = vq->size};
	/*
	 * After a backend crash QEMU cannot GET_VRING_BASE and restores last_avail_idx from
	 * the used index in guest memory (virtio_queue_restore_last_avail_idx).
	 */
	struct vu_vring_state base = {
		.index = vq->index,
		.num = restart ? virtq_used_idx(vq) : 0,
	};
	struct vu_vring_addr addr = {
		.index = vq->index,
		.flags = 0,
		.desc_user_addr = iommu_ring_addr(&r->io, vq->desc_gpa),
		.used_user_addr = iommu_ring_addr(&r->io, vq->used_gpa),
		.avail_user_addr = iommu_ring_addr(&r->io, vq->avail_gpa),
		.log_guest_addr = iommu_dma_addr(&r->io, vq->used_gpa),
	};
	int rc;

	rc = vu_set(c, VU_SET_VRING_NUM, &num, sizeof(num), NULL, 0);
	if (rc == 0)
		rc = vu_set(c, VU_SET_VRING_BASE, &base, sizeof(base), NULL, 0);
	if (rc == 0)
		rc = vu_set(c, VU_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0);
	if (rc == 0)
		rc = vu_set(c, VU_SET_VRING_KICK, &(uint64_t){vq->index}, sizeof(uint64_t),
			&vq->kick_fd, 1);
	if (rc == 0)
		rc = vu_set(c, VU_SET_VRING_CALL, &(uint64_t){vq->index}, sizeof(uint64_t),
			&vq->call_fd, 1);
	return rc;
}

int
fe_start_device(struct fe_run *r, char *reason, size_t len)
{
	int rc;

	rc = r->kind->init(r);
	if (rc < 0 && r->kind_reason[0] != '\0')
		return say(reason, len, FE_EXIT_USAGE, "%s", r->kind_reason);
	if (rc < 0)
		return say(reason, len, FE_EXIT_USAGE,
			"cannot lay out rings and buffers in guest memory (%s): raise --mem-mb or "
			"lower --ring-size/--queues/--regions",
			strerror(-rc));
	return fe_program_device(r, false, reason, len);
}

int
fe_program_device(struct fe_run *r, bool restart, char *reason, size_t len)
{
	struct vu_conn *c = &r->conn;
	int rc;

	/*
	 * vhost_dev_init() -> vhost_virtqueue_init(): QEMU sends SET_VRING_CALL for every
	 * virtqueue when the device is set up, long before SET_INFLIGHT_FD. Backends rely on it:
	 * librte_vhost attaches the inflight region only to virtqueues that exist by then.
	 */
	for (unsigned int i = 0; i < r->nvrings; i++) {
		rc = vu_set(c, VU_SET_VRING_CALL, &(uint64_t){r->vq[i]->index}, sizeof(uint64_t),
			&r->vq[i]->call_fd, 1);
		if (rc < 0)
			return conn_error(r, rc, reason, len);
	}
	if (r->kind->pre_rings != NULL) {
		rc = r->kind->pre_rings(r, restart, reason, len);
		if (rc != 0)
			return rc;
	}
	rc = set_mem_table(r);
	if (rc < 0)
		return conn_error(r, rc, reason, len);
	for (unsigned int i = 0; i < r->nvrings; i++) {
		rc = start_vring(r, r->vq[i], restart);
		if (rc < 0)
			return conn_error(r, rc, reason, len);
	}
	if (r->io.translate) {
		/* vhost_dev_start(): "Update used ring information for IOTLB to work correctly". */
		for (unsigned int i = 0; i < r->nvrings; i++) {
			rc = iommu_map_page(&r->io, iommu_dma_addr(&r->io, r->vq[i]->used_gpa));
			if (rc < 0)
				return conn_error(r, rc, reason, len);
		}
		if (r->o->iotlb_prefill) {
			rc = iommu_prefill(&r->io);
			if (rc < 0)
				return conn_error(r, rc, reason, len);
		}
	}
	if (r->have_protocol) {
		for (unsigned int i = 0; i < r->nvrings; i++) {
			struct vu_vring_state st = {.index = r->vq[i]->index, .num = 1};

			rc = vu_set(c, VU_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0);
			if (rc < 0)
				return conn_error(r, rc, reason, len);
		}
	}
	r->running = true;
	return 0;
}

void
fe_stop_device(struct fe_run *r)
{
	struct vu_conn *c = &r->conn;

	if (!r->running || c->closed || r->o->no_graceful_stop)
		return;
	if (r->have_protocol) {
		for (unsigned int i = 0; i < r->nvrings; i++) {
			struct vu_vring_state st = {.index = r->vq[i]->index, .num = 0};

			if (vu_set(c, VU_SET_VRING_ENABLE, &st, sizeof(st), NULL, 0) < 0)
				return;
		}
	}
	for (unsigned int i = 0; i < r->nvrings; i++)
		if (vu_get_vring_base(c, r->vq[i]->index, &r->vring_base[i]) < 0)
			return;
	r->vring_base_valid = true;
}
