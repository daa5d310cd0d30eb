/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Net traffic: test frames (build + verify) and per-queue-pair state.
 *
 * Frame layout (after the virtio-net header):
 *   0  dst MAC, 6 src MAC, 12 ethertype 0x88B5 (IEEE local experimental)
 *   14 struct net_fhdr (32 bytes, little endian)
 *   46 pattern: byte at frame offset i = (uint8_t)(seed + i), seed = low byte of check
 */
#ifndef FE_NET_H
#define FE_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "fe.h"
#include "virtq.h"

#define NET_ETHERTYPE	0x88B5
#define NET_MAGIC	0x56484645u /* "VHFE" */
#define NET_ETH_LEN	14
#define NET_FHDR_OFF	NET_ETH_LEN
#define NET_PATTERN_OFF (NET_ETH_LEN + 32)
#define NET_MAX_STREAMS 64 /* (stream id, queue) pairs tracked for sequence checks */

struct net_fhdr {
	uint32_t magic;
	uint32_t stream;
	uint64_t seq;
	uint64_t ts_ns; /* sender's CLOCK_MONOTONIC, for latency on the same host */
	uint16_t len;	/* frame length */
	uint16_t queue; /* sender's queue pair */
	uint32_t check; /* over the fields above */
} __attribute__((packed));

enum net_verdict {
	NET_OK,
	NET_BAD,
	NET_FOREIGN,
};

/* Per queue pair counters: written by the data thread, read by control (FE_STAT_GET). */
struct net_qstats {
	uint64_t tx_packets; /* completed by the backend (used ring) */
	uint64_t tx_bytes;
	uint64_t tx_submitted;
	uint64_t rx_packets;
	uint64_t rx_bytes;
	uint64_t rx_ok;
	uint64_t rx_bad;
	uint64_t rx_foreign;
	uint64_t echo_drops;
	uint64_t lat_n;
	uint64_t lat_sum_ns;
	uint64_t lat_min_ns;
	uint64_t lat_max_ns;
};

struct net_stream {
	bool used;
	uint32_t stream;
	uint16_t queue;
	uint64_t next_seq;
	uint64_t rx;
	uint64_t gaps;
	uint64_t reorders;
};

struct net_streams {
	struct net_stream s[NET_MAX_STREAMS];
	uint64_t overflow; /* frames of streams beyond the table */
};

struct net_queue {
	unsigned int qp;
	struct virtq rx;
	struct virtq tx;
	struct net_qstats st;
	uint64_t tx_quota;   /* frames this queue sends (UINT64_MAX: unlimited) */
	uint64_t tx_seq;     /* next sequence number */
	uint64_t rate_pps;   /* this queue's share of --rate-pps, 0 = unlimited */
	unsigned int size_i; /* position in --pkt-sizes */
};

/* One device's net state (kpriv of its struct fe_run). */
struct net_ctx {
	struct fe_run *r;
	const struct fe_opts *o;
	unsigned int nq;
	struct net_queue q[FE_MAX_QUEUE_PAIRS];
	struct net_streams streams; /* data thread; read by control after the join */
	bool gen_tx;		    /* generates frames */
	bool do_rx;		    /* receives (verifies, or echoes) */
	uint64_t bad_len;	    /* used len shorter than the header or longer than the buffer */
};

/* Header "queue" field: device 1's queue pairs follow device 0's. */
static inline uint16_t
net_wire_queue(unsigned int dev, unsigned int qp)
{
	return (uint16_t)(dev * FE_MAX_QUEUE_PAIRS + qp);
}

/* Writes a complete test frame of len bytes (len >= FE_MIN_PKT) into f. */
void net_frame_build(uint8_t *f, uint32_t len, const uint8_t dst[6], const uint8_t src[6],
	uint32_t stream, uint16_t queue, uint64_t seq, uint64_t ts_ns);
/* Checks every byte; fills h with the header when the frame is ours. */
enum net_verdict net_frame_verify(const uint8_t *f, uint32_t len, struct net_fhdr *h);
/* Records a verified frame's sequence number. */
void net_streams_record(struct net_streams *t, const struct net_fhdr *h);

/* net_report.c: the kind's progress and summary hooks. */
struct fe_run;
struct fe_json;
void net_totals(struct fe_run *r, uint64_t *tx_packets, uint64_t *rx_packets);
void net_summary(struct fe_run **runs, unsigned int n, struct fe_json *j, double secs);
void net_dev_summary(struct fe_run *r, struct fe_json *j);
/* Share of data-thread passes that found no work (after the thread is joined). */
double net_idle_ratio(void);

#endif /* FE_NET_H */
