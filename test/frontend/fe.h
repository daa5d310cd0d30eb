/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-frontend: a vhost-user frontend (the side QEMU plays) used to test vhostd.
 * Common definitions: limits, options, the run context, logging and time helpers.
 */
#ifndef FE_H
#define FE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* Exit codes (documented in README.md; tests depend on them). */
#define FE_EXIT_OK	     0
#define FE_EXIT_FAIL	     1 /* any other failure, timeout, NACK */
#define FE_EXIT_USAGE	     2 /* bad command line */
#define FE_EXIT_REFUSED	     3 /* backend refused on feature grounds, as QEMU 7.2 would */
#define FE_EXIT_BACKEND_GONE 4 /* backend closed the connection */

/* Limits, each with its reason. */
#define FE_MAX_QUEUE_PAIRS 16 /* enough for MQ tests; 32 vrings */
#define FE_MAX_VRINGS	   (2 * FE_MAX_QUEUE_PAIRS)
#define FE_MAX_REGIONS	   16	 /* to test backends that refuse more than 8 */
#define FE_MAX_RING_SIZE   32768 /* split ring maximum (virtio 1.x 2.7.2) */
#define FE_MAX_PKT_SIZES   16	 /* --pkt-sizes cycle length */
#define FE_MIN_PKT	   64
#define FE_MAX_PKT	   9000
#define FE_MAX_BURST	   512
#define FE_MAX_HOSTILE	   64 /* --blk-hostile kinds in one run */

/* Virtio / vhost-user feature bits used here. */
#define VIRTIO_NET_F_MRG_RXBUF	       15
#define VIRTIO_NET_F_MQ		       22
#define VIRTIO_RING_F_EVENT_IDX	       29
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_VERSION_1	       32
#define VIRTIO_F_ACCESS_PLATFORM       33
#define VIRTIO_F_RING_PACKED	       34

#define BIT64(n) (1ULL << (n))

enum fe_kind {
	FE_KIND_NET,
	FE_KIND_BLK,
};

enum fe_iommu {
	FE_IOMMU_OFF,	   /* iommu_platform=off */
	FE_IOMMU_PLATFORM, /* iommu_platform=on, no vIOMMU (confidential guest) */
	FE_IOMMU_VIOMMU,   /* iommu_platform=on behind a vIOMMU: IOVAs + IOTLB */
};

/* Command line, filled by fe_parse_args(); read-only afterwards. */
struct fe_opts {
	const char *socket_path;
	bool listen;
	const char *socket2_path; /* second device: --socket2 / --listen2 */
	bool listen2;
	bool bidir;
	double connect_timeout_s;
	unsigned int reply_timeout_ms;
	enum fe_kind kind;
	unsigned int queues;
	unsigned int ring_size;
	uint64_t features_add;
	uint64_t features_drop;
	uint64_t protocol_features_drop;
	enum fe_iommu iommu;
	uint64_t iova_offset;
	bool iotlb_prefill;
	unsigned int miss_delay_ms;
	bool miss_never;
	uint64_t iotlb_page_size;
	bool rx_map_readonly;
	unsigned int invalidate_after_ms;
	unsigned int mem_mb;
	unsigned int regions;
	bool tx;
	bool rx;
	bool echo;
	unsigned int pkt_sizes[FE_MAX_PKT_SIZES];
	unsigned int n_pkt_sizes;
	uint64_t count;
	double duration_s;
	double timeout_s;
	uint64_t rate_pps;
	unsigned int burst;
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint32_t stream_id;
	double report_interval_s;
	unsigned int idle_timeout_ms;
	unsigned int drain_ms;
	unsigned int start_delay_ms;
	bool no_graceful_stop;
	bool no_yield;
	unsigned int idle_sleep_us; /* an idle pass sleeps this long instead of yielding */
	int verbose;
	/* --kind blk (blk_cli.c checks them; README "Block device") */
	const char *blk_ops;		 /* --blk-ops script, parsed by blk_ops_parse() */
	uint8_t hostile[FE_MAX_HOSTILE]; /* --blk-hostile kinds (enum blk_hostile_kind) */
	unsigned int n_hostile;
	unsigned int hostile_timeout_ms;
	unsigned int op_timeout_ms;
	bool blk_load;
	unsigned int qd;
	uint64_t bs;
	unsigned int rw_mix;	  /* percent reads */
	unsigned int flush_every; /* load: every Nth request of a queue is a flush; 0: none */
	bool seq;
	uint64_t region_bytes; /* 0: whole disk */
	bool verify;
	bool inflight;
	double reconnect_timeout_s; /* 0: a backend that goes away ends the run */
	const char *ack_log;
};

int fe_parse_args(int argc, char **argv, struct fe_opts *o);

/* Logging: stderr only, and only with -v. */
extern int fe_verbose;
#define fe_log(lvl, ...)                                                 \
	do {                                                             \
		if (fe_verbose >= (lvl))                                 \
			fprintf(stderr, "vhost-frontend: " __VA_ARGS__); \
	} while (0)
#define fe_info(...)  fe_log(1, __VA_ARGS__)
#define fe_debug(...) fe_log(2, __VA_ARGS__)

static inline uint64_t
fe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define NS_PER_MS 1000000ULL
#define NS_PER_S  1000000000ULL

/*
 * Counters written by one thread and read by another (progress reports):
 * single writer, so a relaxed load + store is enough and stays a plain mov on x86.
 */
#define FE_STAT_ADD(field, n) \
	__atomic_store_n(     \
		&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define FE_STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/*
 * json.c: one JSON object per stdout line. Inside an array, pass key NULL.
 * Nesting up to FE_JSON_DEPTH levels.
 */
#define FE_JSON_DEPTH 8
struct fe_json {
	char buf[32768];
	size_t len;
	unsigned int depth;
	bool first[FE_JSON_DEPTH];
	bool overflow;
};

void fe_json_begin(struct fe_json *j, const char *event);
void fe_json_str(struct fe_json *j, const char *key, const char *val);
void fe_json_u64(struct fe_json *j, const char *key, uint64_t val);
void fe_json_hex(struct fe_json *j, const char *key, uint64_t val);
void fe_json_dbl(struct fe_json *j, const char *key, double val);
void fe_json_bool(struct fe_json *j, const char *key, bool val);
void fe_json_null(struct fe_json *j, const char *key);
void fe_json_open(struct fe_json *j, const char *key, char bracket);
void fe_json_close(struct fe_json *j, char bracket);
/* Closes the top-level object and writes the line to stdout (flushed). */
void fe_json_end(struct fe_json *j);

#endif /* FE_H */
