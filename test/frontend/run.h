/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One run of the frontend: one or two devices (vhost-user connections), each with
 * its guest memory, vIOMMU model and negotiated features, and the device kind that
 * owns the virtqueues and the one data thread.
 *
 * Threads: the main thread negotiates, then runs the control loop (backend channels,
 * IOTLB answers, timers, progress, signals) and owns the main sockets. The kind's data
 * thread busy-polls the rings of every device; it reads only sh->stop and writes its
 * own counters, sh->done_reason and sh->done_efd.
 */
#ifndef FE_RUN_H
#define FE_RUN_H

#include <stdatomic.h>
#include <stdint.h>

#include "fe.h"
#include "guest_mem.h"
#include "iommu.h"
#include "virtq.h"
#include "vu_client.h"

struct fe_run;
struct fe_json;

#define FE_MAX_DEVS 2 /* --socket and --socket2: one generator driving both ends */

/* What a device kind (net, blk) provides. Hooks marked optional may be NULL. */
struct fe_kind_ops {
	const char *name;
	/* Device feature bit that multi-queue needs (--queues > 1). */
	unsigned int mq_bit;
	/* The backend must offer the CONFIG protocol feature (QEMU's supports_config). */
	bool needs_config;
	/* Optional: protocol features this kind can ack besides MQ, REPLY_ACK, BACKEND_REQ. */
	uint64_t (*protocol_features)(const struct fe_opts *o);
	/* Optional: after SET_OWNER of the first connection (blk: GET_CONFIG). */
	int (*backend_init)(struct fe_run *r, char *reason, size_t len);
	/* Optional: after SET_FEATURES, before SET_MEM_TABLE (blk: inflight); again on reconnect.
	 */
	int (*pre_rings)(struct fe_run *r, bool restart, char *reason, size_t len);
	/* Whether the control loop ends the run at --duration-s (else the data thread ends it). */
	bool (*control_timed)(const struct fe_opts *o);
	/* Optional: kind fields of a progress event (replaces the net fields). */
	void (*progress)(struct fe_run **runs, unsigned int n, struct fe_json *j, double dt);
	/* Optional: the backend went away (control thread, before any reconnect attempt). */
	void (*disconnected)(struct fe_run *r);
	/* Optional: the rings run again after a reconnect. */
	void (*reconnected)(struct fe_run *r);
	/* Optional: after the data thread stopped: 0, or an FE_EXIT_* code with the reason. */
	int (*verdict)(struct fe_run **runs, unsigned int n, char *reason, size_t len);
	/* Device feature bits the driver asks for (besides VERSION_1 and ACCESS_PLATFORM). */
	uint64_t (*features)(const struct fe_opts *o);
	/* Number of vrings for --queues. */
	unsigned int (*num_vrings)(const struct fe_opts *o);
	/* Allocates rings and buffers in guest memory (features are known); fills r->vq. */
	int (*init)(struct fe_run *r);
	/* Every device's rings are enabled: prefill, start the one data thread. */
	int (*start)(struct fe_run **runs, unsigned int n);
	/* Stops and joins the data thread (idempotent). */
	void (*stop)(struct fe_run **runs, unsigned int n);
	/* One device's totals, for progress events. */
	void (*totals)(struct fe_run *r, uint64_t *tx_packets, uint64_t *rx_packets);
	/* Kind fields of the summary, summed over the devices. */
	void (*summary)(struct fe_run **runs, unsigned int n, struct fe_json *j, double secs);
	/* Kind fields of one device, for the summary's "devices" array. */
	void (*dev_summary)(struct fe_run *r, struct fe_json *j);
	void (*destroy)(struct fe_run *r);
};

extern const struct fe_kind_ops fe_net_ops;
extern const struct fe_kind_ops fe_blk_ops;

/* Why the run stopped (summary "stop_reason"). */
enum fe_stop {
	FE_STOP_NONE,
	FE_STOP_COUNT,
	FE_STOP_DURATION,
	FE_STOP_IDLE,
	FE_STOP_SIGNAL,
	FE_STOP_TIMEOUT,
	FE_STOP_BACKEND_CLOSED,
	FE_STOP_REFUSED,
	FE_STOP_ERROR,
	FE_STOP_DONE, /* blk: the --blk-ops / --blk-hostile script ran to its end */
};

/* State shared by the devices of one process and its data thread. */
struct fe_shared {
	const struct fe_opts *o;
	atomic_bool stop;	/* control asks the data thread to stop */
	atomic_int done_reason; /* enum fe_stop, set by the data thread */
	int done_efd;		/* written by the data thread when it is done */
	int sig_efd;		/* written by the signal handler */
	uint64_t t_start_ns;	/* traffic start (data thread launch) */
	uint64_t t_stop_ns;	/* data thread joined */
	bool started;		/* data thread launched */
};

/* One device: one vhost-user connection and everything behind it. */
struct fe_run {
	const struct fe_opts *o;
	struct fe_shared *sh;
	unsigned int dev; /* 0 (--socket) or 1 (--socket2) */
	const char *path;
	bool listen;
	bool role_tx;	   /* this device generates frames */
	bool role_rx;	   /* this device receives and verifies (or echoes) */
	uint64_t tx_count; /* frames this device sends when --count is set */
	uint64_t rate_pps; /* this device's share of --rate-pps */
	const struct fe_kind_ops *kind;
	void *kpriv;
	struct vu_conn conn;
	struct guest_mem gm;
	struct iommu io;
	unsigned int nvrings;
	struct virtq *vq[FE_MAX_VRINGS];

	/* Negotiation results (main thread). */
	uint64_t features_offered;
	uint64_t features_requested;
	uint64_t features_guest; /* what the guest driver would have acked */
	uint64_t features_acked; /* what went into SET_FEATURES */
	uint64_t protocol_offered;
	uint64_t protocol_acked;
	uint64_t max_queues;
	bool have_protocol;
	uint32_t vring_base[FE_MAX_VRINGS]; /* GET_VRING_BASE at stop */
	bool vring_base_valid;
	unsigned int hdr_len;  /* virtio-net header: 12 (VERSION_1 / MRG_RXBUF) or 10 */
	bool running;	       /* rings enabled */
	bool invalidated;      /* --invalidate-after-ms done */
	char kind_reason[256]; /* why kind->init failed, when it says */
	unsigned int reconnects;
};

/* session.c */
/* restart: a reconnect; the first connection's feature choice is sent again. */
int fe_negotiate(struct fe_run *r, bool restart, char *reason, size_t len);
int fe_start_device(struct fe_run *r, char *reason, size_t len);
/*
 * Programs the backend with the rings that exist (SET_MEM_TABLE, vrings, IOTLB pushes,
 * enable). restart: after a reconnect, SET_VRING_BASE is the used index in the ring.
 */
int fe_program_device(struct fe_run *r, bool restart, char *reason, size_t len);
/* Graceful stop (SET_VRING_ENABLE 0, GET_VRING_BASE); the data thread is stopped. */
void fe_stop_device(struct fe_run *r);

/* reconnect.c: --reconnect-timeout-s; FE_STOP_NONE once the rings run again. */
enum fe_stop fe_reconnect(struct fe_run *r, char *reason, size_t len);

/* control.c */
enum fe_stop fe_control_loop(struct fe_run **runs, unsigned int n, uint64_t until_ns,
	uint64_t deadline_ns, char *reason, size_t len);
/* Called by the data thread when it is done. */
void fe_run_done(struct fe_shared *sh, enum fe_stop why);

#endif /* FE_RUN_H */
