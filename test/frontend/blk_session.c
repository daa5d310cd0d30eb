/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --kind blk, control thread: what QEMU 7.2's vhost-user-blk adds to the session.
 *   realize:  GET_CONFIG (size 60) after vhost_dev_init (vhost_user_blk_realize_connect)
 *   start:    GET_INFLIGHT_FD once, then SET_INFLIGHT_FD with that fd on every start
 *             (vhost_user_blk_start: vhost_dev_get_inflight / vhost_dev_set_inflight)
 *   backend gone: the used index at that moment and a new "epoch", so the data thread
 *             can tell which completions were resubmitted by the next backend.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "blk.h"
#include "run.h"

uint64_t
blk_protocol_features(const struct fe_opts *o)
{
	uint64_t f = BIT64(VU_PROTOCOL_F_CONFIG);

	/*
	 * QEMU acks INFLIGHT_SHMFD whenever offered; we only with --inflight, because a
	 * backend (libvhost-user) that has it acked refuses rings without SET_INFLIGHT_FD.
	 */
	if (o->inflight)
		f |= BIT64(VU_PROTOCOL_F_INFLIGHT_SHMFD);
	return f;
}

static int
call_failed(struct fe_run *r, int rc, char *reason, size_t len)
{
	snprintf(reason, len, "%s", r->conn.err);
	if (rc == -ECONNRESET)
		return FE_EXIT_BACKEND_GONE;
	if (rc == -EINTR)
		return -EINTR;
	return FE_EXIT_FAIL;
}

static struct blk_ctx *
ctx_of(struct fe_run *r)
{
	struct blk_ctx *b = r->kpriv;

	if (b != NULL)
		return b;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	b->r = r;
	b->o = r->o;
	b->nq = r->o->queues;
	b->inflight_fd = -1;
	atomic_init(&b->epoch, 0);
	atomic_init(&b->connected, true);
	r->kpriv = b;
	return b;
}

int
blk_backend_init(struct fe_run *r, char *reason, size_t len)
{
	struct blk_ctx *b = ctx_of(r);
	struct vu_config req = {.offset = 0, .size = BLK_CONFIG_SIZE, .flags = 0};
	struct vu_msg rep;
	int rc;

	if (b == NULL) {
		snprintf(reason, len, "out of memory");
		return FE_EXIT_FAIL;
	}
	/* vhost_user_get_config(): only --protocol-features-drop gets here without it. */
	if (!(r->protocol_acked & BIT64(VU_PROTOCOL_F_CONFIG))) {
		snprintf(reason, len, "VHOST_USER_PROTOCOL_F_CONFIG not supported");
		return FE_EXIT_REFUSED;
	}
	rc = vu_call(
		&r->conn, VU_GET_CONFIG, &req, VU_CONFIG_HDR_SIZE + BLK_CONFIG_SIZE, &rep, NULL);
	if (rc < 0)
		return call_failed(r, rc, reason, len);
	/* A backend that fails GET_CONFIG answers with size 0; QEMU checks the exact size. */
	if (rep.hdr.size != VU_CONFIG_HDR_SIZE + BLK_CONFIG_SIZE) {
		r->conn.failed_request = VU_GET_CONFIG;
		snprintf(reason, len, "GET_CONFIG: Received bad msg size (%u, expected %u)",
			rep.hdr.size, VU_CONFIG_HDR_SIZE + BLK_CONFIG_SIZE);
		return FE_EXIT_FAIL;
	}
	memcpy(&b->cfg, rep.p.config.region, BLK_CONFIG_SIZE);
	b->have_config = true;
	fe_info("config: capacity %llu sectors, seg_max %u, size_max %u, blk_size %u, "
		"num_queues %u\n",
		(unsigned long long)b->cfg.capacity, b->cfg.seg_max, b->cfg.size_max,
		b->cfg.blk_size, b->cfg.num_queues);
	return 0;
}

/* Entries the inflight region marks in flight (split layout of the spec). */
static uint64_t
count_pending(const struct blk_ctx *b)
{
	const struct vu_inflight *in = &b->inflight_info;
	uint64_t per = in->num_queues ? in->mmap_size / in->num_queues : 0, total = 0;

	for (unsigned int q = 0; q < in->num_queues; q++) {
		const uint8_t *base = (const uint8_t *)b->inflight_addr + q * per;
		uint16_t version, desc_num;

		memcpy(&version, base + 8, sizeof(version));
		memcpy(&desc_num, base + 10, sizeof(desc_num));
		if (version == 0 || 16 + 16ULL * desc_num > per)
			continue;
		for (unsigned int d = 0; d < desc_num; d++)
			if (base[16 + 16 * d] == 1)
				total++;
	}
	return total;
}

static int
get_inflight(struct fe_run *r, struct blk_ctx *b, char *reason, size_t len)
{
	struct vu_inflight in = {
		.mmap_size = 0,
		.mmap_offset = 0,
		.num_queues = (uint16_t)b->nq,
		.queue_size = (uint16_t)r->o->ring_size,
	};
	struct vu_msg rep;
	void *addr;
	int fd, rc;

	rc = vu_call(&r->conn, VU_GET_INFLIGHT_FD, &in, sizeof(in), &rep, &fd);
	if (rc < 0)
		return call_failed(r, rc, reason, len);
	r->conn.failed_request = VU_GET_INFLIGHT_FD;
	if (rep.hdr.size != sizeof(in)) {
		if (fd >= 0)
			close(fd);
		snprintf(reason, len, "GET_INFLIGHT_FD: Received bad msg size (%u, expected %zu)",
			rep.hdr.size, sizeof(in));
		return FE_EXIT_FAIL;
	}
	if (rep.p.inflight.mmap_size == 0) {
		/* vhost_user_get_inflight_fd(): the backend needs no region. */
		if (fd >= 0)
			close(fd);
		r->conn.failed_request = 0;
		return 0;
	}
	if (fd < 0) {
		snprintf(reason, len, "GET_INFLIGHT_FD: reply without a file descriptor");
		return FE_EXIT_FAIL;
	}
	addr = mmap(NULL, rep.p.inflight.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		(off_t)rep.p.inflight.mmap_offset);
	if (addr == MAP_FAILED) {
		snprintf(reason, len, "GET_INFLIGHT_FD: mmap of %llu bytes: %s",
			(unsigned long long)rep.p.inflight.mmap_size, strerror(errno));
		close(fd);
		return FE_EXIT_FAIL;
	}
	r->conn.failed_request = 0;
	b->inflight_fd = fd;
	b->inflight_addr = addr;
	b->inflight_info = rep.p.inflight;
	b->inflight_info.num_queues = in.num_queues;
	b->inflight_info.queue_size = in.queue_size;
	fe_info("inflight region: %llu bytes at offset %llu\n",
		(unsigned long long)b->inflight_info.mmap_size,
		(unsigned long long)b->inflight_info.mmap_offset);
	return 0;
}

int
blk_pre_rings(struct fe_run *r, bool restart, char *reason, size_t len)
{
	struct blk_ctx *b = r->kpriv;
	int rc;

	/* vhost_user_{get,set}_inflight_fd() do nothing without the protocol feature. */
	if (!r->o->inflight || !(r->protocol_acked & BIT64(VU_PROTOCOL_F_INFLIGHT_SHMFD)))
		return 0;
	if (b->inflight_fd < 0) {
		rc = get_inflight(r, b, reason, len);
		if (rc != 0 || b->inflight_fd < 0)
			return rc;
	} else if (restart) {
		b->inflight_pending = count_pending(b);
		fe_info("inflight region lists %llu requests to resubmit\n",
			(unsigned long long)b->inflight_pending);
	}
	rc = vu_set(&r->conn, VU_SET_INFLIGHT_FD, &b->inflight_info, sizeof(b->inflight_info),
		&b->inflight_fd, 1);
	if (rc < 0)
		return call_failed(r, rc, reason, len);
	b->inflight = true;
	return 0;
}

void
blk_inflight_release(struct blk_ctx *b)
{
	if (b->inflight_addr != NULL)
		munmap(b->inflight_addr, b->inflight_info.mmap_size);
	if (b->inflight_fd >= 0)
		close(b->inflight_fd);
	b->inflight_addr = NULL;
	b->inflight_fd = -1;
}

void
blk_disconnected(struct fe_run *r)
{
	struct blk_ctx *b = r->kpriv;

	if (b == NULL)
		return;
	/* The backend is gone: nothing moves the used indexes until the next one runs. */
	for (unsigned int i = 0; i < b->nq; i++)
		atomic_store_explicit(
			&b->q[i].disc_used, virtq_used_idx(&b->q[i].vq), memory_order_relaxed);
	atomic_fetch_add_explicit(&b->epoch, 1, memory_order_release);
	atomic_store(&b->connected, false);
}

void
blk_reconnected(struct fe_run *r)
{
	struct blk_ctx *b = r->kpriv;

	if (b != NULL)
		atomic_store(&b->connected, true);
}
