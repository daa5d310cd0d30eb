/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The device registry and what changes it: attach, detach, cross-connects, and the plan of what
 * the workers poll. Runs on the control thread; the session callbacks in device_vhost.c run on
 * the vhost-events thread. Both hold device_lock while they look at or change a device.
 */
#include <errno.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_malloc.h>

#include "device.h"
#include "device_internal.h"
#include "dp.h"

RTE_LOG_REGISTER(device_logtype, vhostd.device, INFO);

static pthread_mutex_t lock;
static struct device *devices[DEVICE_MAX];
static unsigned int nb_devices;
static struct device *by_vid[DEVICE_VID_MAX];
static struct rte_mempool *eth_pool;
static struct dp_task_spec plan[DP_TASKS_PER_WORKER_MAX];
static int replan_fd = -1;
static bool replan_wanted;

void
device_lock(void)
{
	pthread_mutex_lock(&lock);
}

void
device_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

int
device_module_init(struct rte_mempool *pool)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&lock, &attr);
	pthread_mutexattr_destroy(&attr);
	eth_pool = pool;
	replan_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return replan_fd < 0 ? -errno : 0;
}

void
device_request_replan(void)
{
	uint64_t one = 1;

	__atomic_store_n(&replan_wanted, true, __ATOMIC_RELEASE);
	/* Cannot fail but by overflowing the counter, and then the control thread wakes anyway. */
	ssize_t rc = write(replan_fd, &one, sizeof(one));
	(void)rc;
}

int
device_event_fd(void)
{
	return replan_fd;
}

void
device_handle_events(void)
{
	uint64_t n;

	if (read(replan_fd, &n, sizeof(n)) < 0)
		return;
	if (!__atomic_exchange_n(&replan_wanted, false, __ATOMIC_ACQ_REL))
		return;
	device_lock();
	device_replan();
	device_unlock();
}

struct device *
device_by_name(const char *name)
{
	unsigned int i;

	for (i = 0; i < nb_devices; i++)
		if (strcmp(devices[i]->cfg.name, name) == 0)
			return devices[i];
	return NULL;
}

struct device *
device_by_socket(const char *path)
{
	unsigned int i;

	for (i = 0; i < nb_devices; i++)
		if (devices[i]->cfg.kind != POLICY_KIND_ETH &&
			strcmp(devices[i]->cfg.socket, path) == 0)
			return devices[i];
	return NULL;
}

struct device *
device_by_vid(int vid)
{
	if (vid < 0 || vid >= DEVICE_VID_MAX)
		return NULL;
	/* Also read without device_lock by callbacks that must not wait (vring_state_changed). */
	return __atomic_load_n(&by_vid[vid], __ATOMIC_ACQUIRE);
}

void
device_set_vid(int vid, struct device *dev)
{
	if (vid >= 0 && vid < DEVICE_VID_MAX)
		__atomic_store_n(&by_vid[vid], dev, __ATOMIC_RELEASE);
}

const char *
device_state_name(enum device_state s)
{
	switch (s) {
	case DEVICE_RUNNING:
		return "running";
	case DEVICE_REFUSED:
		return "refused";
	default:
		return "waiting";
	}
}

/* ---- the plan: which queues the workers poll, and where the packets go ---- */

static bool
rx_ready(const struct device *d, uint32_t q)
{
	if (d->detaching || d->state != DEVICE_RUNNING)
		return false;
	if (d->cfg.kind == POLICY_KIND_ETH)
		return true;
	return vring_enabled(d, 2 * q + 1); /* odd vrings carry what the guest sends */
}

static bool
tx_ready(const struct device *d, uint32_t q)
{
	if (d->detaching || d->state != DEVICE_RUNNING)
		return false;
	if (d->cfg.kind == POLICY_KIND_ETH)
		return true;
	return vring_enabled(d, 2 * q);
}

static void
endpoint_of(const struct device *d, uint32_t q, bool rx, struct dp_endpoint *ep)
{
	if (d->cfg.kind == POLICY_KIND_ETH) {
		ep->type = DP_ENDPOINT_ETH;
		ep->id = d->eth_port;
		ep->queue = (uint16_t)q;
	} else {
		ep->type = DP_ENDPOINT_VHOST;
		ep->id = (uint16_t)d->vid;
		ep->queue = (uint16_t)(2 * q + (rx ? 1 : 0));
	}
}

/* For a session that translates, where the worker finds its IOTLB miss counter; else -1. */
static int16_t
iotlb_stat_of(const struct device *d)
{
	if (d->cfg.kind != POLICY_KIND_NET || !(d->features & POLICY_F_ACCESS_PLATFORM))
		return -1;
	return (int16_t)device_vhost_misses_index(d->vid);
}

/* Rebuild the plan from the registry and publish it. Caller holds device_lock. */
int
device_replan(void)
{
	unsigned int i, n = 0;
	struct dp_task_spec *s;
	struct device *d, *p;
	uint32_t q, pq;
	int rc;

	for (i = 0; i < nb_devices; i++) {
		d = devices[i];
		if (d->cfg.kind == POLICY_KIND_BLK) {
			/* blk queues are served by lib/blk's poll, nothing is forwarded */
			if (d->state == DEVICE_RUNNING && !d->detaching)
				n += device_blk_plan(d, &plan[n], DP_TASKS_PER_WORKER_MAX - n);
			continue;
		}
		for (q = 0; q < d->cfg.queues; q++) {
			if (!rx_ready(d, q) || n == DP_TASKS_PER_WORKER_MAX)
				continue;
			s = &plan[n++];
			memset(s, 0, sizeof(*s));
			endpoint_of(d, q, true, &s->rx);
			s->rx_iotlb_stat = iotlb_stat_of(d);
			s->tx_iotlb_stat = -1;
			s->rx_stats = d->stats;
			s->rx_stats_queue = (uint16_t)q;
			if (d->cfg.policy.mtu != 0)
				s->max_frame = d->cfg.policy.mtu + 14 /* Ethernet header */;
			p = d->peer;
			pq = p != NULL ? q % p->cfg.queues : 0;
			if (p != NULL && tx_ready(p, pq)) {
				endpoint_of(p, pq, false, &s->tx);
				s->tx_iotlb_stat = iotlb_stat_of(p);
				s->tx_stats = p->stats;
				s->tx_stats_queue = (uint16_t)pq;
			} else {
				s->tx.type = DP_ENDPOINT_NONE;
			}
		}
	}
	rc = dp_apply(plan, n);
	if (rc < 0)
		DEVICE_LOG(ERR, "cannot publish the data-plane plan: %s", strerror(-rc));
	return rc;
}

/* ---- attach / detach ---- */

static int
check_unique(const struct device_config *cfg, struct base_errors *errs)
{
	unsigned int i, before = errs->count + errs->dropped;

	if (device_by_name(cfg->name) != NULL)
		base_errors_add(errs, EEXIST, "name", "a device named '%s' exists", cfg->name);
	for (i = 0; i < nb_devices; i++) {
		const struct device_config *o = &devices[i]->cfg;

		if (cfg->kind != POLICY_KIND_ETH && o->kind != POLICY_KIND_ETH &&
			strcmp(o->socket, cfg->socket) == 0)
			base_errors_add(errs, EEXIST, "socket", "device '%s' already uses %s",
				o->name, cfg->socket);
		if (cfg->kind == POLICY_KIND_ETH && o->kind == POLICY_KIND_ETH &&
			strcspn(o->devargs, ",") == strcspn(cfg->devargs, ",") &&
			strncmp(o->devargs, cfg->devargs, strcspn(o->devargs, ",")) == 0)
			base_errors_add(errs, EEXIST, "devargs",
				"device '%s' already uses that ethdev", o->name);
	}
	if (nb_devices == DEVICE_MAX)
		base_errors_add(errs, ENOSPC, NULL,
			"%u devices are attached, the most vhostd serves", DEVICE_MAX);
	return errs->count + errs->dropped == before ? 0 : -EINVAL;
}

static json_t *device_json(const struct device *d);

static int
first_errno(const struct base_errors *errs)
{
	const struct base_error *e = base_errors_first(errs);

	return e != NULL ? -e->err : -EINVAL;
}

int
device_attach(json_t *params, bool dry_run, json_t **result, struct base_errors *errs)
{
	struct device_config cfg;
	struct base_error err = {0};
	struct device *d;
	int rc;

	*result = NULL;
	device_config_decode(params, &cfg, errs);

	device_lock();
	if (errs->count == 0 || cfg.name[0] != '\0')
		check_unique(&cfg, errs);
	if (cfg.kind == POLICY_KIND_NET || cfg.kind == POLICY_KIND_BLK)
		device_vhost_check_socket(&cfg, errs);
	else if (cfg.kind == POLICY_KIND_ETH)
		device_eth_check(&cfg, errs);
	if (cfg.kind == POLICY_KIND_BLK)
		device_blk_check(&cfg, errs);
	if (errs->count > 0 || dry_run) {
		device_unlock();
		return errs->count > 0 ? first_errno(errs) : 0;
	}

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		device_unlock();
		return base_errors_add(errs, ENOMEM, NULL, "out of memory");
	}
	d->cfg = cfg;
	device_caps_of(&d->cfg, &d->caps);
	d->vid = -1;
	d->state = DEVICE_WAITING;
	d->stats = dp_stats_create((uint16_t)cfg.queues);
	if (d->stats == NULL) {
		rc = base_errors_add(errs, ENOMEM, NULL, "out of memory for counters");
		goto fail;
	}
	devices[nb_devices++] = d;
	if (cfg.kind == POLICY_KIND_ETH) {
		rc = device_eth_start(d, eth_pool, &err);
	} else {
		rc = cfg.kind == POLICY_KIND_BLK ? device_blk_open(d, &err) : 0;
		if (rc == 0)
			rc = device_vhost_start(d, &err);
		if (rc < 0 && d->blk != NULL)
			device_blk_close(d);
	}
	if (rc < 0) {
		nb_devices--;
		errs->list[errs->count++] = err;
		goto fail;
	}
	if (cfg.kind == POLICY_KIND_ETH)
		device_replan();
	*result = device_json(d);
	device_unlock();
	DEVICE_LOG(INFO, "attached %s device '%s'%s%s", device_kind_name(cfg.kind), cfg.name,
		cfg.kind == POLICY_KIND_ETH ? "" : " on ",
		cfg.kind == POLICY_KIND_ETH ? "" : cfg.socket);
	return 0;

fail:
	dp_stats_free(d->stats);
	free(d);
	device_unlock();
	return rc;
}

static void
unlink_device(struct device *d)
{
	unsigned int i;

	for (i = 0; i < nb_devices; i++) {
		if (devices[i] == d) {
			devices[i] = devices[--nb_devices];
			devices[nb_devices] = NULL;
			return;
		}
	}
}

/*
 * Detach in three steps so that no callback can deadlock against us: take the device off the
 * plan and mark it (under the lock), stop it (without the lock: rte_vhost_driver_unregister
 * waits for a running callback, which may be waiting for the lock), then forget it.
 */
static void
detach_one(struct device *d)
{
	device_lock();
	d->detaching = true;
	if (d->peer != NULL) {
		d->peer->peer = NULL;
		d->peer = NULL;
	}
	device_replan();
	device_unlock();

	if (d->cfg.kind == POLICY_KIND_ETH)
		device_eth_stop(d);
	else
		device_vhost_stop(d);
	if (d->blk != NULL)
		device_blk_close(d);

	device_lock();
	/* unregister freed the vid without destroy_connection; it may already be reused. */
	if (d->vid >= 0 && device_by_vid(d->vid) == d)
		device_set_vid(d->vid, NULL);
	unlink_device(d);
	dp_stats_free(d->stats);
	device_unlock();
	DEVICE_LOG(INFO, "detached device '%s'", d->cfg.name);
	free(d);
}

int
device_detach(const char *name, struct base_error *err)
{
	struct device *d;

	device_lock();
	d = device_by_name(name);
	if (d == NULL || d->detaching) {
		device_unlock();
		return base_error_set(err, ENOENT, "name", "no device named '%s'", name);
	}
	d->detaching = true; /* a second detach of the same name now finds nothing */
	device_unlock();
	detach_one(d);
	return 0;
}

void
device_detach_all(void)
{
	struct device *d;

	for (;;) {
		device_lock();
		d = nb_devices > 0 ? devices[nb_devices - 1] : NULL;
		device_unlock();
		if (d == NULL)
			return;
		detach_one(d);
	}
}

/* ---- cross-connects ---- */

static int
xconnect_pair(const char *a, const char *b, struct device **da, struct device **db,
	struct base_error *err)
{
	*da = device_by_name(a);
	*db = device_by_name(b);
	if (*da == NULL || (*da)->detaching)
		return base_error_set(err, ENOENT, "a", "no device named '%s'", a);
	if (*db == NULL || (*db)->detaching)
		return base_error_set(err, ENOENT, "b", "no device named '%s'", b);
	if ((*da)->cfg.kind == POLICY_KIND_BLK)
		return base_error_set(err, EINVAL, "a",
			"'%s' is a blk device; only net and eth "
			"devices forward packets",
			a);
	if ((*db)->cfg.kind == POLICY_KIND_BLK)
		return base_error_set(err, EINVAL, "b",
			"'%s' is a blk device; only net and eth "
			"devices forward packets",
			b);
	return 0;
}

int
device_xconnect_create(const char *a, const char *b, struct base_error *err)
{
	struct device *da, *db;
	int rc;

	device_lock();
	rc = xconnect_pair(a, b, &da, &db, err);
	if (rc == 0 && da == db)
		rc = base_error_set(
			err, EINVAL, "b", "a device cannot be cross-connected to itself");
	if (rc == 0 && da->peer != NULL)
		rc = base_error_set(err, EBUSY, "a", "'%s' is already cross-connected to '%s'", a,
			da->peer->cfg.name);
	if (rc == 0 && db->peer != NULL)
		rc = base_error_set(err, EBUSY, "b", "'%s' is already cross-connected to '%s'", b,
			db->peer->cfg.name);
	if (rc == 0) {
		da->peer = db;
		db->peer = da;
		rc = device_replan();
		if (rc < 0) {
			da->peer = db->peer = NULL;
			base_error_set(err, -rc, NULL, "cannot publish the new forwarding plan");
		}
	}
	device_unlock();
	if (rc == 0)
		DEVICE_LOG(INFO, "cross-connected '%s' and '%s'", a, b);
	return rc;
}

int
device_xconnect_delete(const char *a, const char *b, struct base_error *err)
{
	struct device *da, *db;
	int rc;

	device_lock();
	rc = xconnect_pair(a, b, &da, &db, err);
	if (rc == 0 && da->peer != db)
		rc = base_error_set(
			err, ENOENT, "b", "'%s' and '%s' are not cross-connected", a, b);
	if (rc == 0) {
		da->peer = db->peer = NULL;
		device_replan();
	}
	device_unlock();
	if (rc == 0)
		DEVICE_LOG(INFO, "removed the cross-connect of '%s' and '%s'", a, b);
	return rc;
}

/* ---- views ---- */

static json_t *
hex(uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%llx", (unsigned long long)v);
	return json_string(buf);
}

static json_t *
queues_json(const struct device *d)
{
	json_t *list = json_array();
	uint32_t q;

	for (q = 0; q < d->cfg.queues; q++) {
		bool vhost = d->cfg.kind != POLICY_KIND_ETH;

		json_array_append_new(list,
			json_pack("{s:i, s:b, s:b}", "id", (json_int_t)q, "rx_enabled",
				vhost ? vring_enabled(d, 2 * q + 1) : d->state == DEVICE_RUNNING,
				"tx_enabled",
				vhost ? vring_enabled(d, 2 * q) : d->state == DEVICE_RUNNING));
	}
	return list;
}

static json_t *
device_json(const struct device *d)
{
	json_t *o = device_config_to_json(&d->cfg);

	json_object_set_new(o, "nb_queues", json_integer(d->cfg.queues));
	json_object_set_new(o, "queues", queues_json(d));
	json_object_set_new(o, "state", json_string(device_state_name(d->state)));
	json_object_set_new(o, "reason", json_string(d->reason));
	json_object_set_new(o, "last_refusal", json_string(d->last_refusal));
	json_object_set_new(o, "connected", json_boolean(d->vid >= 0));
	json_object_set_new(o, "features", hex(d->features));
	json_object_set_new(o, "protocol_features", hex(d->protocol_features));
	json_object_set_new(o, "features_offered", hex(d->features_offered));
	json_object_set_new(o, "iommu",
		json_pack("{s:s, s:b, s:b}", "mode", policy_iommu_name(d->cfg.policy.iommu),
			"offered", (d->features_offered & POLICY_F_ACCESS_PLATFORM) != 0,
			"translating",
			d->state == DEVICE_RUNNING &&
				(d->features & POLICY_F_ACCESS_PLATFORM) != 0));
	json_object_set_new(json_object_get(o, "iommu"), "iotlb_messages",
		json_pack("{s:I, s:I, s:I}", "updates",
			(json_int_t)__atomic_load_n(&d->iotlb_updates, __ATOMIC_RELAXED),
			"invalidations",
			(json_int_t)__atomic_load_n(&d->iotlb_invalidations, __ATOMIC_RELAXED),
			"invalidations_clamped",
			(json_int_t)__atomic_load_n(
				&d->iotlb_invalidations_clamped, __ATOMIC_RELAXED)));
	json_object_set_new(o, "xconnect", d->peer ? json_string(d->peer->cfg.name) : json_null());
	json_object_set_new(o, "sessions", json_integer((json_int_t)d->sessions));
	json_object_set_new(o, "refused_sessions", json_integer((json_int_t)d->refused_sessions));
	json_object_set_new(
		o, "rejected_connections", json_integer((json_int_t)d->rejected_connections));
	return o;
}

json_t *
device_get(const char *name, struct base_error *err)
{
	struct device *d;
	json_t *o = NULL;

	device_lock();
	d = device_by_name(name);
	if (d == NULL || d->detaching)
		base_error_set(err, ENOENT, "name", "no device named '%s'", name);
	else
		o = device_json(d);
	device_unlock();
	return o;
}

json_t *
device_list(void)
{
	json_t *list = json_array();
	unsigned int i;

	device_lock();
	for (i = 0; i < nb_devices; i++) {
		const struct device *d = devices[i];

		if (d->detaching)
			continue;
		json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "name", d->cfg.name,
						    "kind", device_kind_name(d->cfg.kind), "state",
						    device_state_name(d->state)));
	}
	device_unlock();
	return list;
}

/* ---- counters and configuration ---- */

static json_t *
device_stats_json(const struct device *d)
{
	struct dp_queue_counters c;
	json_t *queues = json_array();
	uint16_t q;

	if (d->cfg.kind == POLICY_KIND_BLK) {
		for (q = 0; q < d->cfg.queues; q++)
			json_array_append_new(queues, device_blk_queue_stats(d, q));
		return json_pack("{s:s, s:o}", "name", d->cfg.name, "queues", queues);
	}
	for (q = 0; q < d->cfg.queues; q++) {
		dp_stats_read(d->stats, q, &c);
		uint64_t wait = c.rx_iotlb_wait_cycles + c.tx_iotlb_wait_cycles;

		json_array_append_new(queues,
			json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "id",
				(json_int_t)q, "rx_packets", (json_int_t)c.rx_packets, "rx_bytes",
				(json_int_t)c.rx_bytes, "tx_packets", (json_int_t)c.tx_packets,
				"tx_bytes", (json_int_t)c.tx_bytes, "rx_drops",
				(json_int_t)c.rx_drops, "tx_drops", (json_int_t)c.tx_drops,
				"iotlb_hits", (json_int_t)0, "iotlb_misses", (json_int_t)0,
				"iotlb_wait_cycles", (json_int_t)wait, "iotlb_wait_us",
				(double)wait * 1e6 / (double)rte_get_tsc_hz()));
	}
	device_vhost_stats(d, queues);
	return json_pack("{s:s, s:o}", "name", d->cfg.name, "queues", queues);
}

json_t *
device_stats(const char *name, struct base_error *err)
{
	json_t *list = json_array();
	struct device *d;
	unsigned int i;

	device_lock();
	if (name != NULL) {
		d = device_by_name(name);
		if (d == NULL || d->detaching) {
			device_unlock();
			json_decref(list);
			base_error_set(err, ENOENT, "name", "no device named '%s'", name);
			return NULL;
		}
		json_array_append_new(list, device_stats_json(d));
	} else {
		for (i = 0; i < nb_devices; i++)
			if (!devices[i]->detaching)
				json_array_append_new(list, device_stats_json(devices[i]));
	}
	device_unlock();
	return json_pack("{s:o}", "devices", list);
}

int
device_stats_reset(const char *name, struct base_error *err)
{
	struct device *d;
	unsigned int i;

	device_lock();
	if (name != NULL) {
		d = device_by_name(name);
		if (d == NULL || d->detaching) {
			device_unlock();
			return base_error_set(err, ENOENT, "name", "no device named '%s'", name);
		}
		dp_stats_reset(d->stats);
		device_vhost_stats_reset(d);
	} else {
		for (i = 0; i < nb_devices; i++) {
			dp_stats_reset(devices[i]->stats);
			device_vhost_stats_reset(devices[i]);
		}
	}
	device_unlock();
	return 0;
}

json_t *
device_config_calls(void)
{
	json_t *calls = json_array();
	unsigned int i;
	struct device *d;

	device_lock();
	for (i = 0; i < nb_devices; i++) {
		d = devices[i];
		if (!d->detaching)
			json_array_append_new(
				calls, json_pack("{s:s, s:o}", "method", "device_attach", "params",
					       device_config_to_json(&d->cfg)));
	}
	/* Each cross-connect once: from the device that comes first in the list. */
	for (i = 0; i < nb_devices; i++) {
		d = devices[i];
		if (d->detaching || d->peer == NULL || strcmp(d->cfg.name, d->peer->cfg.name) > 0)
			continue;
		json_array_append_new(
			calls, json_pack("{s:s, s:{s:s, s:s}}", "method", "xconnect_create",
				       "params", "a", d->cfg.name, "b", d->peer->cfg.name));
	}
	device_unlock();
	return calls;
}
