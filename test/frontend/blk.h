/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --kind blk: a vhost-user-blk frontend (QEMU's vhost-user-blk-pci role).
 * Spec: virtio 1.2 section 5.2 (block device), QEMU docs/interop/vhost-user.rst
 * (GET_CONFIG, GET/SET_INFLIGHT_FD, "Inflight I/O tracking").
 *
 * One vring per queue (vring index = queue index). Requests are descriptor chains
 * taken from a FIFO free list (a descriptor comes back into use as late as possible,
 * so a backend that re-fetches old avail entries after a crash finds them unchanged).
 * Call eventfds are given to the backend and the avail ring never asks for
 * NO_INTERRUPT (QEMU guests rely on interrupts), but completions are found by polling
 * the used ring from the one data thread; the eventfds are read at the end
 * (calls_received).
 *
 * Files: blk.c (kind hooks, rings, submit/poll, data thread), blk_session.c
 * (GET_CONFIG, inflight, reconnect hooks), blk_ops.c (--blk-ops, options),
 * blk_hostile.c (--blk-hostile), blk_load.c (--blk-load), blk_report.c (summary).
 */
#ifndef FE_BLK_H
#define FE_BLK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "fe.h"
#include "virtq.h"
#include "vu_client.h"

/* Device feature bits (virtio 1.2 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX	    1
#define VIRTIO_BLK_F_SEG_MAX	    2
#define VIRTIO_BLK_F_GEOMETRY	    4
#define VIRTIO_BLK_F_RO		    5
#define VIRTIO_BLK_F_BLK_SIZE	    6
#define VIRTIO_BLK_F_FLUSH	    9
#define VIRTIO_BLK_F_TOPOLOGY	    10
#define VIRTIO_BLK_F_CONFIG_WCE	    11
#define VIRTIO_BLK_F_MQ		    12
#define VIRTIO_BLK_F_DISCARD	    13
#define VIRTIO_BLK_F_WRITE_ZEROES   14
#define VIRTIO_RING_F_INDIRECT_DESC 28

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK		  0
#define VIRTIO_BLK_S_IOERR	  1
#define VIRTIO_BLK_S_UNSUPP	  2
#define VIRTIO_BLK_WZ_F_UNMAP	  1
#define VIRTIO_BLK_ID_BYTES	  20

#define VRING_DESC_F_INDIRECT 4

#define BLK_SECTOR	   512
#define BLK_CONFIG_SIZE	   60		      /* sizeof(struct virtio_blk_config) in QEMU 7.2 */
#define BLK_MAX_SEGS	   512		      /* data descriptors of one --blk-ops request */
#define BLK_ITABLE_MAX	   (BLK_MAX_SEGS + 4) /* entries of one indirect table */
#define BLK_SCRIPT_REQS	   64  /* script (ops / hostile) requests that may be outstanding */
#define BLK_MAX_OPS	   256 /* --blk-ops entries */
#define BLK_MAX_OP_LEN	   (256ULL << 20)
#define BLK_MAX_BS	   (16ULL << 20)
#define BLK_MAX_TRACKED	   (16ULL << 20) /* blocks a --verify / --ack-log load can track */
#define BLK_HIST_SUB_BITS  5		 /* 32 sub-buckets per power of two: < 3.2 % error */
#define BLK_HIST_BUCKETS   (64 << BLK_HIST_SUB_BITS)
#define BLK_MAX_VERIFY_EVT 10	/* blk_verify_error lines printed per run */
#define BLK_POISON	   0xA5 /* read buffers and the gaps between segments */
#define BLK_SEG_GAP	   64	/* bytes between the data segments of one op */

struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct virtio_blk_dwz {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* struct virtio_blk_config as the device fills it (little endian, we run on x86). */
struct virtio_blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t wce;
	uint8_t unused0;
	uint16_t num_queues;
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));

_Static_assert(sizeof(struct virtio_blk_config) == BLK_CONFIG_SIZE, "virtio_blk_config");

/*
 * Data pattern (README "Data pattern"): every aligned 8-byte word at absolute disk
 * byte offset A holds, little endian, A ^ K with K = (seed + 1) * 0x9E3779B97F4A7C15
 * mod 2^64. Byte B of the disk is byte (B mod 8) of word (B & ~7).
 */
#define BLK_PATTERN_MUL 0x9E3779B97F4A7C15ULL
void blk_pattern_fill(uint8_t *buf, uint64_t disk_off, uint64_t len, uint64_t seed);
/* Offset of the first byte that differs from the pattern, or -1. */
int64_t blk_pattern_check(const uint8_t *buf, uint64_t disk_off, uint64_t len, uint64_t seed);
/* Offset of the first byte that is not zero, or -1. */
int64_t blk_zero_check(const uint8_t *buf, uint64_t len);

/* --blk-ops */
enum blk_op_type {
	BLK_OP_WRITE,
	BLK_OP_READ,
	BLK_OP_READ_ZERO,
	BLK_OP_FLUSH,
	BLK_OP_GETID,
	BLK_OP_DISCARD,
	BLK_OP_WZEROES,
};

struct blk_op {
	uint8_t type;
	bool has_seed;
	bool indirect;
	bool unmap;
	uint32_t segs;
	uint64_t off;
	uint64_t len;
	uint64_t seed;
};

/* --blk-hostile */
enum blk_hostile_kind {
	BLK_H_LOOP,
	BLK_H_INDIRECT_LOOP,
	BLK_H_OOB_ADDR,
	BLK_H_OOB_LEN,
	BLK_H_SHORT_HEADER,
	BLK_H_NO_STATUS,
	BLK_H_STATUS_IN_READABLE,
	BLK_H_TOO_MANY_SEGS,
	BLK_H_BEYOND_CAPACITY,
	BLK_H_UNALIGNED_LEN,
	BLK_H_BAD_TYPE,
	BLK_H_WRITE_RO,
	BLK_H_HEAD_OOB,
	BLK_H_NESTED_INDIRECT,
	BLK_H_COUNT,
};

/* Parsers used by the command line (usage errors are reported there). */
int blk_ops_parse(const char *s, struct blk_op *ops, unsigned int max, unsigned int *n, char *err,
	size_t errlen);
int blk_hostile_parse(const char *arg, struct fe_opts *o, char *err, size_t errlen);
const char *blk_hostile_name(unsigned int kind);
/* Checks and defaults of the blk options; 0 or -EINVAL with err filled. */
int blk_check_opts(struct fe_opts *o, char *err, size_t errlen);

enum blk_origin {
	BLK_ORIGIN_LOAD,
	BLK_ORIGIN_SCRIPT,
};

struct blk_queue;

/* One request: its guest memory (header, status, data) and the chain it used. */
struct blk_req {
	struct blk_queue *q;
	uint8_t origin;
	bool outstanding; /* the device owns it */
	bool done;	  /* completion seen (script requests) */
	bool is_read;
	bool is_flush;	 /* a --flush-every load request: no block, no data */
	bool owns_descs; /* its descriptors return to the free list at completion */
	uint8_t status;
	uint16_t head;
	uint16_t ndesc;
	uint32_t epoch; /* disconnects seen at submit */
	uint32_t used_len;
	uint64_t len;
	uint64_t off;
	uint64_t seed;
	uint64_t block;
	uint64_t submit_ns;
	uint64_t done_ns;
	struct virtio_blk_outhdr *hdr; /* 64 bytes, device-readable: header + dwz segment */
	uint64_t hdr_gpa;
	uint8_t *st; /* 64 bytes, device-writable: status byte */
	uint64_t st_gpa;
	uint8_t *data;
	uint64_t data_gpa;
	uint16_t *chain; /* ring descriptors it holds (ndesc): chain3, or BLK_ITABLE_MAX */
	uint16_t chain3[3];
};

/* Latency histogram: log-linear buckets of nanoseconds. */
struct blk_hist {
	uint64_t n;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t b[BLK_HIST_BUCKETS];
};

/* Per queue counters: the data thread writes, control reads (FE_STAT_GET). */
struct blk_qstats {
	uint64_t submitted;
	uint64_t completed;
	uint64_t reads;
	uint64_t writes;
	uint64_t flushes; /* load flushes (--flush-every) */
	uint64_t other;	  /* --blk-ops and hostile: flush, getid, discard, write zeroes */
	uint64_t bytes_read;
	uint64_t bytes_written;
	uint64_t errors; /* load requests with status != OK */
	uint64_t verify_errors;
	uint64_t reads_verified;
	uint64_t resubmitted; /* submitted before a disconnect, completed after it */
	uint64_t bad_used;    /* used ids we did not give out (or not outstanding) */
};

struct blk_queue {
	unsigned int qi;
	struct virtq vq;
	uint16_t *fifo; /* free descriptor ids */
	uint32_t fhead;
	uint32_t ftail;
	struct blk_req **by_head; /* outstanding request per head descriptor */
	struct blk_req *slots;	  /* load requests (--qd) */
	unsigned int nslots;
	uint32_t outstanding;
	bool need_publish;
	uint64_t rng;
	uint64_t seq_next;
	uint64_t load_n;      /* load requests submitted on this queue */
	uint32_t last_bad_id; /* last used element with an id we did not give out */
	uint32_t last_bad_len;
	_Atomic uint16_t disc_used; /* used index when the backend went away (control) */
	struct blk_qstats st;
	struct blk_hist hist;
};

static inline uint32_t
blk_nfree(const struct blk_queue *q)
{
	return q->ftail - q->fhead;
}

/* --blk-load state (data thread). */
struct blk_load {
	uint64_t bs;
	uint64_t nblocks;
	bool track;	   /* per block state: --verify or --ack-log */
	uint64_t *gen;	   /* seed of the last acknowledged write, 0: none or unknown */
	uint8_t *busy;	   /* a request on this block is outstanding */
	uint32_t *written; /* blocks with an acknowledged write, for verified reads */
	uint64_t nwritten;
	uint64_t gen_base; /* seed of a load write = gen_base + n (n = 1, 2, ...) */
	uint64_t gen_next;
	uint64_t submitted;
	uint64_t completed;
	bool submitting;
	uint64_t t_start;
	uint64_t t_end;
	uint64_t unacked_writes; /* writes outstanding when the run ended */
	uint64_t outstanding_at_exit;
	unsigned int verify_events;
};

/* One device's blk state (kpriv of its struct fe_run). */
struct blk_ctx {
	struct fe_run *r;
	const struct fe_opts *o;
	unsigned int nq;
	struct blk_queue q[FE_MAX_QUEUE_PAIRS];

	/* GET_CONFIG (control thread, before the data thread starts) */
	bool have_config;
	struct virtio_blk_config cfg;

	/* inflight region (control thread) */
	bool inflight; /* GET/SET_INFLIGHT_FD done */
	int inflight_fd;
	void *inflight_addr;
	struct vu_inflight inflight_info;
	uint64_t inflight_pending; /* entries marked in flight at the last reconnect */

	/* disconnects (control writes, the data thread reads) */
	atomic_uint epoch;
	atomic_bool connected;

	/* --blk-ops */
	struct blk_op ops[BLK_MAX_OPS];
	unsigned int nops;

	/* script requests and their guest memory */
	struct blk_req script[BLK_SCRIPT_REQS];
	uint64_t itable_gpa[3]; /* indirect tables, BLK_ITABLE_MAX entries each */
	uint8_t *op_buf;	/* --blk-ops data */
	uint64_t op_buf_gpa;
	uint64_t op_buf_len;
	uint8_t *h_buf; /* --blk-hostile data */
	uint64_t h_buf_gpa;
	uint64_t h_buf_len;

	/* results of the script (data thread; read after the join) */
	uint64_t ops_run;
	uint64_t ops_status_nonzero;
	uint64_t ops_not_completed;
	uint64_t ops_verify_errors;
	uint64_t hostile_run;
	uint64_t hostile_completed;
	uint64_t hostile_alive;

	struct blk_load ld;
	FILE *ack; /* --ack-log */

	/* data thread */
	pthread_t thread;
	bool running;
	uint64_t polls;
	uint64_t idle_polls;
	int fail_code; /* FE_EXIT_* the data thread wants, with fail_reason */
	char fail_reason[256];
};

/* blk.c: rings and requests (data thread unless noted). */
bool blk_stopping(const struct blk_ctx *b);
bool blk_desc_alloc(struct blk_queue *q, unsigned int n, uint16_t *ids);
void blk_set_desc(const struct blk_ctx *b, struct blk_queue *q, uint16_t id, uint64_t gpa,
	uint32_t len, uint16_t flags, uint16_t next);
/* Fills an indirect-table entry (table in guest memory at table_gpa). */
void blk_set_idesc(const struct blk_ctx *b, uint64_t table_gpa, unsigned int i, uint64_t gpa,
	uint32_t len, uint16_t flags, uint16_t next);
/*
 * Hands a request to the device: avail entry head; req->chain[0..ndesc) are the ring
 * descriptors it holds (freed at completion; 0 for none).
 */
void blk_submit(struct blk_ctx *b, struct blk_queue *q, struct blk_req *req, uint16_t head,
	unsigned int ndesc, uint64_t now);
/* Pushes a raw avail entry (no request behind it: --blk-hostile head-oob). */
void blk_push_raw(struct blk_queue *q, uint16_t value);
/* Publishes pushed entries (and kicks when the device wants it). */
void blk_publish(struct blk_queue *q);
/* Takes every completion of every queue; returns the count. */
unsigned int blk_poll_all(struct blk_ctx *b, uint64_t now);
/* Waits for a script request: 0, -ETIMEDOUT or -EINTR (run stopping). */
int blk_wait(struct blk_ctx *b, struct blk_req *req, unsigned int timeout_ms);
/* A pass that did nothing: sleeps --idle-sleep-us, else yields (unless --no-yield). */
void blk_idle(struct blk_ctx *b, unsigned int work);
/* A free script request with its header and status memory; NULL when all are out. */
struct blk_req *blk_script_req(struct blk_ctx *b);
/* Prepares header and status of a request. */
void blk_req_prepare(struct blk_req *req, uint32_t type, uint64_t sector);
/* --ack-log line for a write the device completed with OK. */
void blk_ack(struct blk_ctx *b, uint64_t off, uint64_t len, uint64_t seed);
uint64_t blk_disk_bytes(const struct blk_ctx *b);

/* blk_ops.c, blk_hostile.c, blk_load.c: the three parts of a run. */
void blk_ops_run(struct blk_ctx *b);
void blk_hostile_run(struct blk_ctx *b);
int blk_load_init(struct blk_ctx *b);
enum fe_stop blk_load_run(struct blk_ctx *b);
void blk_load_complete(struct blk_ctx *b, struct blk_queue *q, struct blk_req *req, uint64_t now);
void blk_load_finish(struct blk_ctx *b);

/* blk_session.c: control-thread hooks. */
uint64_t blk_protocol_features(const struct fe_opts *o);
int blk_backend_init(struct fe_run *r, char *reason, size_t len);
int blk_pre_rings(struct fe_run *r, bool restart, char *reason, size_t len);
void blk_disconnected(struct fe_run *r);
void blk_reconnected(struct fe_run *r);
void blk_inflight_release(struct blk_ctx *b);

/* blk_report.c */
void blk_hist_add(struct blk_hist *h, uint64_t ns);
void blk_summary(struct fe_run **runs, unsigned int n, struct fe_json *j, double secs);
void blk_dev_summary(struct fe_run *r, struct fe_json *j);
void blk_totals(struct fe_run *r, uint64_t *writes, uint64_t *reads);
void blk_progress(struct fe_run **runs, unsigned int n, struct fe_json *j, double dt);
int blk_verdict(struct fe_run **runs, unsigned int n, char *reason, size_t len);

#endif /* FE_BLK_H */
