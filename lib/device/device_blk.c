/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * blk devices on librte_vhost as an external backend: the vhost-user side (features, protocol
 * features, GET_CONFIG, the session's queues) around lib/blk, which serves the queues.
 *
 * Messages that change memory or vrings while the session runs (SET_MEM_TABLE on memory
 * hotplug, SET_VRING_CALL when QEMU masks an MSI-X vector, ...) arrive on the vhost-events
 * thread with librte_vhost holding the virtqueue locks, which our workers never take for blk.
 * The pre-message hook pauses the device's queues (a flag the poll checks, then a QSBR grace
 * period), finishes the I/O in flight, and the post-message hook picks the new rings up.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_vhost.h>

#include "blk.h"
#include "device_internal.h"
#include "dp.h"

/* vhost-user protocol features a blk device offers (vhost-user.rst, "Protocol features"). */
#define PF(bit) (1ULL << (bit))
#define BLK_PROTOCOL_FEATURES                                                                    \
	(PF(0) /* MQ */ | PF(3) /* REPLY_ACK */ | PF(5) /* BACKEND_REQ */ | PF(9) /* CONFIG */ | \
		PF(12) /* INFLIGHT_SHMFD */)

#define VHOST_USER_SET_FEATURES_REQ    2
#define VHOST_USER_SET_MEM_TABLE_REQ   5
#define VHOST_USER_SET_VRING_NUM_REQ   8
#define VHOST_USER_SET_VRING_ADDR_REQ  9
#define VHOST_USER_SET_VRING_BASE_REQ  10
#define VHOST_USER_SET_VRING_KICK_REQ  12
#define VHOST_USER_SET_VRING_CALL_REQ  13
#define VHOST_USER_GET_CONFIG_REQ      24
#define VHOST_USER_SET_CONFIG_REQ      25
#define VHOST_USER_SET_INFLIGHT_FD_REQ 32
#define CONFIG_SPACE_MAX	       256

struct config_msg {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
	uint32_t offset;
	uint32_t cfg_size;
	uint32_t cfg_flags;
	uint8_t region[CONFIG_SPACE_MAX];
} __rte_packed;

int
device_blk_check(const struct device_config *cfg, struct base_errors *errs)
{
	struct stat st;

	if (cfg->backing[0] == '\0')
		return 0; /* reported as missing already */
	if (stat(cfg->backing, &st) < 0)
		return base_errors_add(
			errs, ENOENT, "backing", "%s: %s", cfg->backing, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return base_errors_add(errs, EINVAL, "backing",
			"%s is not a regular file or block device", cfg->backing);
	if (access(cfg->backing, cfg->readonly ? R_OK : R_OK | W_OK) < 0)
		return base_errors_add(errs, EACCES, "backing", "%s cannot be opened %s: %s",
			cfg->backing, cfg->readonly ? "for reading" : "for reading and writing",
			strerror(errno));
	if (S_ISREG(st.st_mode) && st.st_size < 512)
		return base_errors_add(errs, EINVAL, "backing",
			"%s is smaller than one 512-byte sector", cfg->backing);
	return 0;
}

int
device_blk_open(struct device *d, struct base_error *err)
{
	d->blk = blk_dev_open(d->cfg.backing, d->cfg.readonly, d->cfg.block_size, d->cfg.queues,
		d->cfg.name, err);
	return d->blk != NULL ? 0 : -err->err;
}

void
device_blk_close(struct device *d)
{
	blk_dev_close(d->blk);
	d->blk = NULL;
}

uint64_t
device_blk_supported_features(const struct device *d)
{
	/* VERSION_1, INDIRECT_DESC, PROTOCOL_FEATURES; no EVENT_IDX: we kick by avail flags. */
	return (1ULL << 32) | (1ULL << 28) | (1ULL << 30) | blk_dev_features(d->blk);
}

int
device_blk_register(const struct device *d)
{
	return rte_vhost_driver_set_protocol_features(d->cfg.socket, BLK_PROTOCOL_FEATURES);
}

/* new_device, with device_lock held. @return 0, or -1 with d->reason filled. */
int
device_blk_session_start(struct device *d, int vid)
{
	struct base_error err = {0};
	int n = blk_dev_start(d->blk, vid, &err);

	if (n < 0) {
		snprintf(d->reason, sizeof(d->reason), "cannot start the queues: %.200s",
			err.reason);
		return -1;
	}
	__atomic_store_n(&d->blk_running, true, __ATOMIC_RELEASE);
	return 0;
}

/* destroy_device, with device_lock held and the queues already off the plan. */
void
device_blk_session_stop(struct device *d)
{
	__atomic_store_n(&d->blk_running, false, __ATOMIC_RELEASE);
	blk_dev_quiesce(d->blk, true);
}

unsigned int
device_blk_plan(struct device *d, struct dp_task_spec *specs, unsigned int room)
{
	struct blk_queue *q;
	unsigned int i, n = 0;

	for (i = 0; n < room && (q = blk_dev_queue(d->blk, i)) != NULL; i++) {
		memset(&specs[n], 0, sizeof(specs[n]));
		specs[n].rx.type = DP_ENDPOINT_POLL;
		specs[n].rx.id = (uint16_t)d->vid;
		specs[n].rx.queue = (uint16_t)i;
		specs[n].tx.type = DP_ENDPOINT_NONE;
		specs[n].rx_iotlb_stat = specs[n].tx_iotlb_stat = -1;
		specs[n].poll = blk_queue_poll;
		specs[n].poll_arg = q;
		n++;
	}
	return n;
}

static bool
changes_rings(uint32_t request)
{
	switch (request) {
	case VHOST_USER_SET_FEATURES_REQ:
	case VHOST_USER_SET_MEM_TABLE_REQ:
	case VHOST_USER_SET_VRING_NUM_REQ:
	case VHOST_USER_SET_VRING_ADDR_REQ:
	case VHOST_USER_SET_VRING_BASE_REQ:
	case VHOST_USER_SET_VRING_KICK_REQ:
	case VHOST_USER_SET_VRING_CALL_REQ:
	case VHOST_USER_SET_INFLIGHT_FD_REQ:
		return true;
	default:
		return false;
	}
}

/* The pre-message hook for blk devices: vhost-events thread, no lock of ours. */
enum rte_vhost_msg_result
device_blk_pre_message(struct device *d, void *msg)
{
	struct config_msg *m = msg;

	if (m->request == VHOST_USER_GET_CONFIG_REQ) {
		/* vhost-user.rst: the reply carries the config space in the same layout. */
		if (m->size < offsetof(struct config_msg, region) - 12 ||
			m->cfg_size > CONFIG_SPACE_MAX ||
			blk_dev_config(d->blk, m->region, m->offset, m->cfg_size) < 0)
			return RTE_VHOST_MSG_RESULT_ERR;
		m->size = (uint32_t)(offsetof(struct config_msg, region) - 12 + m->cfg_size);
		return RTE_VHOST_MSG_RESULT_REPLY;
	}
	if (m->request == VHOST_USER_SET_CONFIG_REQ)
		return RTE_VHOST_MSG_RESULT_ERR; /* nothing in our config space is writable */
	if (changes_rings(m->request) && __atomic_load_n(&d->blk_running, __ATOMIC_ACQUIRE) &&
		!d->blk_paused) {
		blk_dev_set_paused(d->blk, true);
		dp_synchronize(); /* no worker is inside this device's polls any more */
		blk_dev_quiesce(d->blk, false);
		d->blk_paused = true;
	}
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

enum rte_vhost_msg_result
device_blk_post_message(struct device *d, void *msg)
{
	(void)msg;
	if (d->blk_paused) {
		if (blk_dev_resume(d->blk) < 0)
			DEVICE_LOG(ERR,
				"'%s': cannot pick the vrings up again; the queues stay "
				"stopped until the frontend reconnects",
				d->cfg.name);
		else
			blk_dev_set_paused(d->blk, false);
		d->blk_paused = false;
	}
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

json_t *
device_blk_queue_stats(const struct device *d, unsigned int q)
{
	struct blk_queue_stats s;

	memset(&s, 0, sizeof(s));
	blk_dev_stats(d->blk, q, &s);
	/* The contract's fields: requests in (rx) and completed (tx); bytes guest->disk (rx) and
	 * disk->guest (tx); malformed requests as rx_drops. Then the blk ones. */
	return json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I,"
			 " s:I, s:I, s:I, s:I, s:I, s:I}",
		"id", (json_int_t)q, "rx_packets", (json_int_t)s.requests, "rx_bytes",
		(json_int_t)s.write_bytes, "tx_packets", (json_int_t)s.completed, "tx_bytes",
		(json_int_t)s.read_bytes, "rx_drops", (json_int_t)s.bad_requests, "tx_drops", 0,
		"iotlb_hits", 0, "iotlb_misses", 0, "read_ops", (json_int_t)s.read_ops, "write_ops",
		(json_int_t)s.write_ops, "flush_ops", (json_int_t)s.flush_ops, "discard_ops",
		(json_int_t)s.discard_ops, "write_zeroes_ops", (json_int_t)s.write_zeroes_ops,
		"io_errors", (json_int_t)s.io_errors, "unsupported", (json_int_t)s.unsupported,
		"bad_requests", (json_int_t)s.bad_requests, "resubmitted",
		(json_int_t)s.resubmitted, "inflight", (json_int_t)s.inflight, "slow_inline_writes",
		(json_int_t)s.slow_inline_writes);
}
