/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef VHOSTD_BASE_LIMITS_H
#define VHOSTD_BASE_LIMITS_H

/**
 * @file
 * Every limit vhostd enforces, in one place, each with the reason for its value.
 */

/* Device names are used in socket file names and log lines: keep them short and safe. */
#define DEVICE_NAME_MAX 32

/* sun_path is 108 bytes including the terminating NUL. */
#define SOCKET_PATH_MAX 107

/* librte_vhost 22.11 numbers at most 1024 connections (MAX_VHOST_DEVICE) and watches at most
 * 1024 descriptors (MAX_FDS): a server device uses one to listen and one per connection, so
 * 1024 attached devices leave room for few connected ones; attach then fails with a reason. */
#define DEVICE_MAX 1024

/* Queue pairs per net device: librte_vhost 22.11 supports 128 (VHOST_MAX_QUEUE_PAIRS). */
#define DEVICE_QUEUES_MAX 128

/* One JSON-RPC request larger than this is refused: a config of 1024 devices fits easily. */
#define RPC_REQUEST_MAX (4u << 20)

/* Bytes queued to one slow client before it is disconnected rather than grow without bound. */
#define RPC_REPLY_BACKLOG_MAX (16u << 20)

/* Concurrent control connections: the control plane is for operators and tools, not tenants. */
#define RPC_CLIENTS_MAX 64

/* Packets moved per burst: DPDK's usual 32 amortises the ring access without hurting latency. */
#define DP_BURST 32

/* How long a burst that the destination did not take is offered again before it is dropped:
 * a full ring drains within microseconds at line rate; an IOTLB miss waits for the frontend's
 * main loop (QEMU under TCG took milliseconds here). */
#define DP_HOLD_US	       1000
#define DP_HOLD_TRANSLATING_US 20000

/* Poll entries one worker can own: every queue of every device may land on one worker. */
#define DP_TASKS_PER_WORKER_MAX (DEVICE_MAX * 2)

/* MTU bounds accepted in policy.mtu: IPv4's minimum to librte_vhost's largest frame (9702). */
#define POLICY_MTU_MIN 68
#define POLICY_MTU_MAX 9702

/* Device kinds whose queues a single attach may ask for. */
#define POLICY_QUEUES_MAX DEVICE_QUEUES_MAX

/* Validation reports this many problems at most; beyond that the request is hopeless anyway. */
#define POLICY_PROBLEMS_MAX 16

#endif /* VHOSTD_BASE_LIMITS_H */
