/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * eth devices: any DPDK ethdev given by devargs (net_tap0,iface=x; net_af_packet0,iface=eth0;
 * net_null0; a PCI address when EAL probes PCI). Probed and started at attach; there is no
 * frontend session, so the device runs from attach to detach.
 */
#include <errno.h>
#include <string.h>

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>

#include "device_internal.h"

#define ETH_RING_SIZE 1024

static void
devargs_name(const char *devargs, char *name, size_t size)
{
	size_t len = strcspn(devargs, ",");

	if (len >= size)
		len = size - 1;
	memcpy(name, devargs, len);
	name[len] = '\0';
}

int
device_eth_check(const struct device_config *cfg, struct base_errors *errs)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	uint16_t port;

	if (cfg->devargs[0] == '\0')
		return 0;
	devargs_name(cfg->devargs, name, sizeof(name));
	if (rte_eth_dev_get_port_by_name(name, &port) == 0)
		return base_errors_add(errs, EEXIST, "devargs",
			"ethdev '%s' already exists outside vhostd's devices", name);
	return 0;
}

int
device_eth_start(struct device *d, struct rte_mempool *pool, struct base_error *err)
{
	struct rte_eth_conf conf = {0};
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_eth_dev_info info;
	uint16_t port, q, nq = (uint16_t)d->cfg.queues;
	int rc, socket;

	devargs_name(d->cfg.devargs, name, sizeof(name));
	rc = rte_dev_probe(d->cfg.devargs);
	if (rc < 0)
		return base_error_set(err, -rc == ENOENT ? ENODEV : -rc, "devargs",
			"DPDK cannot probe '%s': %s", d->cfg.devargs, rte_strerror(-rc));
	if (rte_eth_dev_get_port_by_name(name, &port) != 0) {
		rc = base_error_set(err, ENODEV, "devargs",
			"'%s' probed but no ethdev named '%s' appeared", d->cfg.devargs, name);
		goto remove;
	}
	d->eth_port = port;
	rc = rte_eth_dev_info_get(port, &info);
	if (rc == 0 && (nq > info.max_rx_queues || nq > info.max_tx_queues))
		rc = base_error_set(err, ERANGE, "queues", "'%s' has at most %u queues", name,
			RTE_MIN(info.max_rx_queues, info.max_tx_queues));
	if (rc != 0)
		goto close;
	socket = rte_eth_dev_socket_id(port);
	rc = rte_eth_dev_configure(port, nq, nq, &conf);
	for (q = 0; rc == 0 && q < nq; q++) {
		rc = rte_eth_rx_queue_setup(port, q, ETH_RING_SIZE, socket, NULL, pool);
		if (rc == 0)
			rc = rte_eth_tx_queue_setup(port, q, ETH_RING_SIZE, socket, NULL);
	}
	if (rc == 0)
		rc = rte_eth_dev_start(port);
	if (rc != 0) {
		rc = base_error_set(err, -rc > 0 ? -rc : EIO, "devargs", "cannot start '%s': %s",
			name, rte_strerror(-rc));
		goto close;
	}
	rte_eth_promiscuous_enable(port); /* a cross-connect forwards every frame */
	d->state = DEVICE_RUNNING;
	return 0;

close:
	rte_eth_dev_close(port);
remove:
	rte_eal_hotplug_remove("vdev", name);
	return rc;
}

void
device_eth_stop(struct device *d)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	struct rte_eth_dev_info info;
	struct rte_device *dev = NULL;

	devargs_name(d->cfg.devargs, name, sizeof(name));
	if (rte_eth_dev_info_get(d->eth_port, &info) == 0)
		dev = info.device;
	rte_eth_dev_stop(d->eth_port);
	rte_eth_dev_close(d->eth_port);
	if (dev != NULL && rte_dev_remove(dev) != 0)
		DEVICE_LOG(WARNING, "'%s': cannot remove ethdev '%s'", d->cfg.name, name);
}
