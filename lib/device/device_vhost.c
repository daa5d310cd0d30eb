/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * net (and later blk) devices on librte_vhost: socket registration on the control thread, and
 * the session callbacks, which run on librte_vhost's vhost-events thread. The callbacks record
 * the session, apply the policy, and publish the new plan before they return.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <libgen.h>

#include <rte_vhost.h>

#include "device_internal.h"

/* ---- socket checks (control thread) ---- */

static bool
socket_in_use(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc == 0 || errno != ECONNREFUSED;
}

int
device_vhost_check_socket(const struct device_config *cfg, struct base_errors *errs)
{
	char dir[SOCKET_PATH_MAX + 1];
	struct stat st;

	if (cfg->socket[0] == '\0')
		return 0; /* already reported as missing */
	snprintf(dir, sizeof(dir), "%s", cfg->socket);
	if (stat(dirname(dir), &st) < 0 || !S_ISDIR(st.st_mode))
		return base_errors_add(
			errs, ENOENT, "socket", "the directory of %s does not exist", cfg->socket);
	if (cfg->mode == DEVICE_MODE_CLIENT)
		return 0; /* the frontend listens there; it may not have started yet */
	if (lstat(cfg->socket, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return base_errors_add(
			errs, EEXIST, "socket", "%s exists and is not a socket", cfg->socket);
	if (socket_in_use(cfg->socket))
		return base_errors_add(
			errs, EADDRINUSE, "socket", "%s is in use by another process", cfg->socket);
	return 0;
}

/* ---- session callbacks (vhost-events thread) ---- */

#define TRANSLATION_REFUSED                                                               \
	"the frontend turned on address translation (ACCESS_PLATFORM in SET_FEATURES, a " \
	"vIOMMU) but this device cannot translate; the connection was closed"

static void
clear_vrings(struct device *d)
{
	unsigned int i;

	for (i = 0; i < RTE_DIM(d->vring_enabled); i++) {
		__atomic_store_n(&d->vring_enabled[i], 0, __ATOMIC_RELEASE);
		__atomic_store_n(&d->vring_disabled_by_frontend[i], 0, __ATOMIC_RELEASE);
	}
}

/*
 * The vhost-user message hook. It runs on the vhost-events thread, possibly with every
 * virtqueue lock held, so it takes no lock of ours: counters are atomics.
 *
 * SET_VRING_ENABLE: remembered, so that on_vring_state_changed() can tell the frontend
 * disabling a vring from librte_vhost losing its ring translation.
 *
 * IOTLB_MSG (vhost-user.rst, "IOTLB"): a guest with lazy IOMMU flushing invalidates its whole
 * domain at once, and QEMU 7.2 sends that as ranges whose end is exactly 2^64 (seen:
 * iova=0xfef00000 size=0xffffffff01100000). DPDK 22.11's IOTLB computes iova + size, which
 * wraps to 0, removes nothing, and keeps serving stale translations: the backend then reads and
 * writes guest memory the guest has unmapped. Clamping the end to 2^64 - 1 removes them.
 */
struct vhost_user_msg_head {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __rte_packed;

struct vhost_vring_state_payload {
	uint32_t index;
	uint32_t num;
} __rte_packed;

struct vhost_iotlb_payload {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;
	uint8_t type;
} __rte_packed;

#define VHOST_USER_SET_FEATURES_REQ	2
#define VHOST_USER_SET_VRING_ENABLE_REQ 18
#define VHOST_USER_IOTLB_MSG_REQ	22
#define VHOST_IOTLB_UPDATE_TYPE		2
#define VHOST_IOTLB_INVALIDATE_TYPE	3

static enum rte_vhost_msg_result
on_message(int vid, void *msg)
{
	struct vhost_user_msg_head *h = msg;
	struct vhost_iotlb_payload *p = (void *)(h + 1);
	struct device *d = device_by_vid(vid);

	if (d == NULL)
		return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
	if (h->request == VHOST_USER_SET_FEATURES_REQ && h->size >= sizeof(uint64_t) &&
		(*(const uint64_t *)(h + 1) & POLICY_F_ACCESS_PLATFORM) && !d->caps.can_translate) {
		/* Translation turned on where it cannot be served. Refuse it here, before
		 * librte_vhost records bit 33: without IOTLB support it would divide by zero on
		 * the first IOTLB miss (22.11 iotlb.c), taking every device down. */
		__atomic_store_n(&d->translation_refused, true, __ATOMIC_RELEASE);
		DEVICE_LOG(WARNING, "'%s': frontend refused: %s", d->cfg.name, TRANSLATION_REFUSED);
		return RTE_VHOST_MSG_RESULT_ERR;
	}
	if (h->request == VHOST_USER_IOTLB_MSG_REQ && !d->caps.can_translate)
		return RTE_VHOST_MSG_RESULT_OK; /* nothing here translates: ignore, never crash */
	if (h->request == VHOST_USER_SET_VRING_ENABLE_REQ &&
		h->size >= sizeof(struct vhost_vring_state_payload)) {
		const struct vhost_vring_state_payload *st = (const void *)(h + 1);

		if (st->index < RTE_DIM(d->vring_disabled_by_frontend))
			__atomic_store_n(&d->vring_disabled_by_frontend[st->index], st->num == 0,
				__ATOMIC_RELEASE);
		return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
	}
	if (d->cfg.kind == POLICY_KIND_BLK)
		return device_blk_pre_message(d, msg);
	if (h->request != VHOST_USER_IOTLB_MSG_REQ || h->size < sizeof(*p))
		return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
	if (p->type == VHOST_IOTLB_UPDATE_TYPE) {
		__atomic_fetch_add(&d->iotlb_updates, 1, __ATOMIC_RELAXED);
	} else if (p->type == VHOST_IOTLB_INVALIDATE_TYPE) {
		__atomic_fetch_add(&d->iotlb_invalidations, 1, __ATOMIC_RELAXED);
		if (p->size != 0 && p->size > UINT64_MAX - p->iova) {
			p->size = UINT64_MAX - p->iova;
			__atomic_fetch_add(&d->iotlb_invalidations_clamped, 1, __ATOMIC_RELAXED);
		}
	}
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED; /* librte_vhost applies it */
}

static enum rte_vhost_msg_result
on_message_done(int vid, void *msg)
{
	struct device *d = device_by_vid(vid);

	if (d != NULL && d->cfg.kind == POLICY_KIND_BLK)
		return device_blk_post_message(d, msg);
	return RTE_VHOST_MSG_RESULT_NOT_HANDLED;
}

static const struct rte_vhost_user_extern_ops message_hook = {
	.pre_msg_handle = on_message,
	.post_msg_handle = on_message_done,
};

static int
on_new_connection(int vid)
{
	char path[SOCKET_PATH_MAX + 1];
	struct device *d;
	int rc = 0;

	if (rte_vhost_get_ifname(vid, path, sizeof(path)) < 0)
		return -1;
	device_lock();
	d = device_by_socket(path);
	if (d == NULL || d->detaching) {
		rc = -1;
	} else if (d->vid >= 0) {
		/* One live session per device: librte_vhost closes this connection. */
		d->rejected_connections++;
		DEVICE_LOG(WARNING, "'%s': a second frontend connected while one is; closing it",
			d->cfg.name);
		rc = -1;
	} else {
		d->vid = vid;
		device_set_vid(vid, d);
		d->state = DEVICE_WAITING;
		d->reason[0] = '\0';
		d->refusal_logged = false;
		d->features = d->protocol_features = 0;
		d->session_queues = 0;
		clear_vrings(d);
		if (rte_vhost_extern_callback_register(vid, &message_hook, d) != 0)
			DEVICE_LOG(WARNING, "'%s': cannot hook vhost-user messages", d->cfg.name);
	}
	device_unlock();
	return rc;
}

static void
read_session(int vid, const struct device *d, struct policy_session *s)
{
	uint16_t mtu = 0;
	uint16_t vrings;

	memset(s, 0, sizeof(*s));
	rte_vhost_get_negotiated_features(vid, &s->features);
	rte_vhost_get_negotiated_protocol_features(vid, &s->protocol_features);
	vrings = rte_vhost_get_vring_num(vid);
	s->queues = d->cfg.kind == POLICY_KIND_NET ? (vrings + 1u) / 2 : vrings;
	if (rte_vhost_get_mtu(vid, &mtu) == 0)
		s->mtu = mtu;
}

static int
on_new_device(int vid)
{
	struct policy_session s;
	struct device *d;
	uint16_t i;

	device_lock();
	d = device_by_vid(vid);
	if (d == NULL || d->vid != vid || d->detaching) {
		device_unlock();
		return -1;
	}
	read_session(vid, d, &s);
	d->features = s.features;
	d->protocol_features = s.protocol_features;
	d->session_queues = s.queues;
	if (!policy_check_session(&d->cfg.policy, &d->caps, &s, d->reason, sizeof(d->reason))) {
		/* librte_vhost asks again after every later message: refuse each time, log once. */
		d->state = DEVICE_REFUSED;
		if (!d->refusal_logged) {
			d->refusal_logged = true;
			d->refused_sessions++;
			snprintf(d->last_refusal, sizeof(d->last_refusal), "%s", d->reason);
			DEVICE_LOG(WARNING, "'%s': frontend refused: %s", d->cfg.name, d->reason);
		}
		device_unlock();
		return -1;
	}
	if (d->cfg.kind == POLICY_KIND_BLK && device_blk_session_start(d, vid) < 0) {
		d->state = DEVICE_REFUSED;
		d->refused_sessions++;
		snprintf(d->last_refusal, sizeof(d->last_refusal), "%s", d->reason);
		DEVICE_LOG(ERR, "'%s': %s", d->cfg.name, d->reason);
		device_unlock();
		return -1;
	}
	/* We busy-poll: ask the guest not to kick us. */
	for (i = 0; i < rte_vhost_get_vring_num(vid); i++)
		rte_vhost_enable_guest_notification(vid, i, 0);
	d->state = DEVICE_RUNNING;
	d->reason[0] = '\0';
	d->sessions++;
	device_replan();
	device_unlock();
	DEVICE_LOG(INFO, "'%s': frontend running, features 0x%llx%s", d->cfg.name,
		(unsigned long long)s.features,
		policy_session_translates(&s) ? ", translating through the IOTLB" : "");
	return 0;
}

/*
 * librte_vhost calls this holding every virtqueue lock of the device, while a worker may be
 * spinning on one of them inside rte_vhost_enqueue_burst(): waiting here for device_lock or for
 * the workers (QSBR) could deadlock. So record the state with an atomic store and let the
 * control thread rebuild the plan. Polling a vring that was just disabled is harmless:
 * librte_vhost checks that under its lock.
 */
static int
on_vring_state_changed(int vid, uint16_t vring, int enable)
{
	struct device *d = device_by_vid(vid);

	if (d == NULL || vring >= RTE_DIM(d->vring_enabled))
		return 0;
	/* librte_vhost also reports a vring "disabled" when an IOTLB invalidation unmapped its
	 * rings; it translates them again on the next burst, so such a vring must stay polled.
	 * Only the frontend's own SET_VRING_ENABLE 0 (seen by the message hook) stops polling. */
	if (enable == 0 &&
		!__atomic_load_n(&d->vring_disabled_by_frontend[vring], __ATOMIC_ACQUIRE))
		return 0;
	__atomic_store_n(&d->vring_enabled[vring], enable != 0, __ATOMIC_RELEASE);
	device_request_replan();
	return 0;
}

static void fold_iotlb(struct device *d, int vid);

/* Must not return while a worker still touches @p vid: device_replan() waits for that. */
static void
on_destroy_device(int vid)
{
	struct device *d;

	device_lock();
	d = device_by_vid(vid);
	if (d != NULL && d->vid == vid) {
		fold_iotlb(d, vid);
		d->state = DEVICE_WAITING;
		device_replan();
		if (d->cfg.kind == POLICY_KIND_BLK && d->blk_running)
			device_blk_session_stop(d);
	}
	device_unlock();
}

static void
on_destroy_connection(int vid)
{
	struct device *d;

	device_lock();
	d = device_by_vid(vid);
	device_set_vid(vid, NULL);
	if (d != NULL && d->vid == vid) {
		if (__atomic_exchange_n(&d->translation_refused, false, __ATOMIC_ACQ_REL)) {
			d->refused_sessions++;
			snprintf(d->last_refusal, sizeof(d->last_refusal), "%s",
				TRANSLATION_REFUSED);
		}
		d->vid = -1;
		d->state = DEVICE_WAITING;
		d->reason[0] = '\0';
		clear_vrings(d);
		DEVICE_LOG(
			INFO, "'%s': frontend disconnected; waiting for the next one", d->cfg.name);
	}
	device_unlock();
}

static const struct rte_vhost_device_ops vhost_ops = {
	.new_device = on_new_device,
	.destroy_device = on_destroy_device,
	.vring_state_changed = on_vring_state_changed,
	.new_connection = on_new_connection,
	.destroy_connection = on_destroy_connection,
};

/* ---- registration (control thread) ---- */

int
device_vhost_start(struct device *d, struct base_error *err)
{
	const struct device_config *cfg = &d->cfg;
	uint64_t flags = 0, supported = 0;
	int rc;

	if (cfg->mode == DEVICE_MODE_CLIENT)
		flags |= RTE_VHOST_USER_CLIENT; /* librte_vhost reconnects every second */
	if (cfg->policy.iommu != POLICY_IOMMU_OFF && cfg->kind == POLICY_KIND_NET) {
		/* Offers bit 33 and turns on the IOTLB; per-queue stats count its hits/misses. */
		flags |= RTE_VHOST_USER_IOMMU_SUPPORT | RTE_VHOST_USER_NET_STATS_ENABLE;
	}
	if (cfg->policy.offloads)
		flags |= RTE_VHOST_USER_NET_COMPLIANT_OL_FLAGS;

	/* A stale socket (checked not to be in use) is left over from a crash. */
	if (cfg->mode == DEVICE_MODE_SERVER)
		unlink(cfg->socket);
	if (rte_vhost_driver_register(cfg->socket, flags) != 0)
		return base_error_set(
			err, EIO, "socket", "librte_vhost cannot register %s", cfg->socket);
	if (cfg->kind == POLICY_KIND_BLK)
		supported = device_blk_supported_features(d);
	else if (rte_vhost_driver_get_features(cfg->socket, &supported) != 0)
		goto fail;
	d->features_offered = policy_features_offered(&cfg->policy, cfg->kind, supported);
	/* set_features would turn librte_vhost's builtin net backend off: net only disables. */
	if (cfg->kind == POLICY_KIND_NET)
		rc = rte_vhost_driver_disable_features(
			cfg->socket, supported & ~d->features_offered);
	else
		rc = rte_vhost_driver_set_features(cfg->socket, d->features_offered);
	if (rc == 0 && cfg->kind == POLICY_KIND_BLK)
		rc = device_blk_register(d);
	if (rc != 0 || rte_vhost_driver_callback_register(cfg->socket, &vhost_ops) != 0)
		goto fail;
	if (rte_vhost_driver_start(cfg->socket) != 0) {
		rte_vhost_driver_unregister(cfg->socket);
		return base_error_set(err, EIO, "socket",
			"cannot %s %s (librte_vhost watches at most 1024 descriptors: the "
			"listening sockets and connections of all devices)",
			cfg->mode == DEVICE_MODE_SERVER ? "listen on" : "connect to", cfg->socket);
	}
	return 0;
fail:
	rte_vhost_driver_unregister(cfg->socket);
	return base_error_set(err, EIO, "socket", "librte_vhost cannot set up %s", cfg->socket);
}

void
device_vhost_stop(struct device *d)
{
	/* Closes the connection (destroy_device runs first), and unlinks a server socket. */
	if (rte_vhost_driver_unregister(d->cfg.socket) != 0)
		DEVICE_LOG(ERR, "'%s': librte_vhost did not know %s", d->cfg.name, d->cfg.socket);
}

/* ---- IOTLB counters ---- */

/* Index of iotlb_hits / iotlb_misses in librte_vhost's per-vring stats; found once. */
static int hits_idx = -1, misses_idx = -1;
static unsigned int nb_vring_stats;

/* Find the indexes once: they are fixed for a DPDK build but not part of its API. */
static bool
find_iotlb_stats(int vid, uint16_t vring)
{
	struct rte_vhost_stat_name names[64];
	int n, i;

	if (hits_idx >= 0)
		return true;
	n = rte_vhost_vring_stats_get_names(vid, vring, names, RTE_DIM(names));
	if (n <= 0 || n > (int)RTE_DIM(names))
		return false;
	for (i = 0; i < n; i++) {
		if (strstr(names[i].name, "_iotlb_hits") != NULL)
			hits_idx = i;
		if (strstr(names[i].name, "_iotlb_misses") != NULL)
			misses_idx = i;
	}
	nb_vring_stats = (unsigned int)n;
	return hits_idx >= 0 && misses_idx >= 0;
}

int
device_vhost_misses_index(int vid)
{
	return find_iotlb_stats(vid, 0) ? misses_idx : -1;
}

static bool
vring_iotlb(int vid, uint16_t vring, uint64_t *hits, uint64_t *misses)
{
	struct rte_vhost_stat st[64];
	int n;

	if (!find_iotlb_stats(vid, vring))
		return false;
	n = rte_vhost_vring_stats_get(vid, vring, st, nb_vring_stats);
	if (n <= 0 || n > (int)RTE_DIM(st))
		return false;
	*hits += st[hits_idx].value;
	*misses += st[misses_idx].value;
	return true;
}

/* Hits and misses of queue (pair) @p q in the live session. */
static void
session_iotlb(const struct device *d, int vid, uint32_t q, uint64_t *hits, uint64_t *misses)
{
	*hits = *misses = 0;
	if (vid < 0 || d->cfg.policy.iommu == POLICY_IOMMU_OFF)
		return;
	if (d->cfg.kind == POLICY_KIND_NET) {
		vring_iotlb(vid, (uint16_t)(2 * q), hits, misses);
		vring_iotlb(vid, (uint16_t)(2 * q + 1), hits, misses);
	} else {
		vring_iotlb(vid, (uint16_t)q, hits, misses);
	}
}

static void
fold_iotlb(struct device *d, int vid)
{
	uint64_t hits, misses;
	uint32_t q;

	for (q = 0; q < d->cfg.queues; q++) {
		session_iotlb(d, vid, q, &hits, &misses);
		d->iotlb_hits_done[q] += hits;
		d->iotlb_misses_done[q] += misses;
	}
	if (vid >= 0 && d->cfg.policy.iommu != POLICY_IOMMU_OFF)
		for (q = 0; q < rte_vhost_get_vring_num(vid); q++)
			rte_vhost_vring_stats_reset(vid, (uint16_t)q);
}

void
device_vhost_stats(const struct device *d, json_t *queues)
{
	uint64_t hits, misses;
	json_t *qo;
	size_t q;

	json_array_foreach(queues, q, qo)
	{
		session_iotlb(
			d, d->state == DEVICE_RUNNING ? d->vid : -1, (uint32_t)q, &hits, &misses);
		hits += d->iotlb_hits_done[q] - d->iotlb_hits_base[q];
		misses += d->iotlb_misses_done[q] - d->iotlb_misses_base[q];
		json_object_set_new(qo, "iotlb_hits", json_integer((json_int_t)hits));
		json_object_set_new(qo, "iotlb_misses", json_integer((json_int_t)misses));
	}
}

void
device_vhost_stats_reset(struct device *d)
{
	uint64_t hits, misses;
	uint32_t q;

	for (q = 0; q < d->cfg.queues; q++) {
		session_iotlb(d, d->state == DEVICE_RUNNING ? d->vid : -1, q, &hits, &misses);
		d->iotlb_hits_base[q] = d->iotlb_hits_done[q] + hits;
		d->iotlb_misses_base[q] = d->iotlb_misses_done[q] + misses;
	}
}
