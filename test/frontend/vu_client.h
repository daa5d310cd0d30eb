/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user frontend protocol client: message framing on the main socket
 * (requests from us, replies from the backend) and on the backend channel
 * (requests from the backend, replies from us). Spec: QEMU docs/interop/vhost-user.rst.
 */
#ifndef FE_VU_CLIENT_H
#define FE_VU_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

/* Front-end message types (spec "Front-end message types"). */
enum vu_request {
	VU_GET_FEATURES = 1,
	VU_SET_FEATURES = 2,
	VU_SET_OWNER = 3,
	VU_RESET_OWNER = 4,
	VU_SET_MEM_TABLE = 5,
	VU_SET_VRING_NUM = 8,
	VU_SET_VRING_ADDR = 9,
	VU_SET_VRING_BASE = 10,
	VU_GET_VRING_BASE = 11,
	VU_SET_VRING_KICK = 12,
	VU_SET_VRING_CALL = 13,
	VU_GET_PROTOCOL_FEATURES = 15,
	VU_SET_PROTOCOL_FEATURES = 16,
	VU_GET_QUEUE_NUM = 17,
	VU_SET_VRING_ENABLE = 18,
	VU_SET_BACKEND_REQ_FD = 21, /* SET_SLAVE_REQ_FD in older text */
	VU_IOTLB_MSG = 22,
	VU_GET_CONFIG = 24,
	VU_SET_CONFIG = 25,
	VU_GET_INFLIGHT_FD = 31,
	VU_SET_INFLIGHT_FD = 32,
	VU_REQUEST_MAX = 64,
};

/* Back-end message types, on the backend channel. */
enum vu_backend_request {
	VU_BACKEND_IOTLB_MSG = 1,
	VU_BACKEND_CONFIG_CHANGE_MSG = 2,
	VU_BACKEND_VRING_HOST_NOTIFIER_MSG = 3,
};

/* Protocol feature bits. */
#define VU_PROTOCOL_F_MQ		  0
#define VU_PROTOCOL_F_REPLY_ACK		  3
#define VU_PROTOCOL_F_BACKEND_REQ	  5 /* SLAVE_REQ */
#define VU_PROTOCOL_F_CONFIG		  9
#define VU_PROTOCOL_F_INFLIGHT_SHMFD	  12
#define VU_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15

#define VU_VERSION	   0x1
#define VU_FLAG_REPLY	   (1u << 2)
#define VU_FLAG_NEED_REPLY (1u << 3)
#define VU_VRING_NOFD	   (1u << 8)

/* struct vhost_iotlb_msg: type and perm values. */
#define VU_IOTLB_MISS	    1
#define VU_IOTLB_UPDATE	    2
#define VU_IOTLB_INVALIDATE 3
#define VU_ACCESS_RO	    0x1
#define VU_ACCESS_WO	    0x2
#define VU_ACCESS_RW	    0x3

#define VU_MAX_FDS 16 /* one per memory region, FE_MAX_REGIONS */

struct vu_hdr {
	uint32_t request;
	uint32_t flags;
	uint32_t size;
} __attribute__((packed));

struct vu_vring_state {
	uint32_t index;
	uint32_t num;
};

struct vu_vring_addr {
	uint32_t index;
	uint32_t flags;
	uint64_t desc_user_addr;
	uint64_t used_user_addr;
	uint64_t avail_user_addr;
	uint64_t log_guest_addr;
};

struct vu_mem_region {
	uint64_t guest_phys_addr;
	uint64_t memory_size;
	uint64_t userspace_addr;
	uint64_t mmap_offset;
};

struct vu_memory {
	uint32_t nregions;
	uint32_t padding;
	struct vu_mem_region regions[VU_MAX_FDS];
};

struct vu_iotlb {
	uint64_t iova;
	uint64_t size;
	uint64_t uaddr;
	uint8_t perm;
	uint8_t type;
	uint8_t pad[6];
};

/* GET_CONFIG / SET_CONFIG payload: header then the config bytes. */
#define VU_CONFIG_HDR_SIZE 12
#define VU_CONFIG_MAX	   256
struct vu_config {
	uint32_t offset;
	uint32_t size;
	uint32_t flags;
	uint8_t region[VU_CONFIG_MAX];
};

/* GET_INFLIGHT_FD / SET_INFLIGHT_FD payload (24 bytes with its tail padding, as QEMU sends). */
struct vu_inflight {
	uint64_t mmap_size;
	uint64_t mmap_offset;
	uint16_t num_queues;
	uint16_t queue_size;
};

struct vu_msg {
	struct vu_hdr hdr;
	union {
		uint64_t u64;
		struct vu_vring_state state;
		struct vu_vring_addr addr;
		struct vu_memory memory;
		struct vu_iotlb iotlb;
		struct vu_config config;
		struct vu_inflight inflight;
		uint8_t raw[1024];
	} p;
};

/* One connection to a backend. Used by one thread at a time (setup, then control). */
struct vu_conn {
	int fd;		/* main socket */
	int backend_fd; /* our end of the backend channel, -1 if none */
	int abort_fd;	/* readable when the run must stop (signal); -1 if none */
	unsigned int timeout_ms;
	bool reply_ack; /* REPLY_ACK negotiated: set NEED_REPLY and check the ack */
	bool closed;	/* the backend closed the main socket */
	uint64_t messages_sent;
	uint32_t in_request;	 /* request waiting for its reply, 0 if none */
	uint32_t failed_request; /* request of the last failure, 0 if not a request */
	int last_error;		 /* -errno of the last failure, 0 if none */
	char err[256];		 /* why the last call failed */
};

const char *vu_request_name(uint32_t req);

/* Connects to (or, with listen, accepts from) the backend; retries until timeout. */
int vu_open(struct vu_conn *c, const char *path, bool listen, double timeout_s);
void vu_close(struct vu_conn *c);

/*
 * Every call returns 0 or -errno and fills c->err:
 * -ECONNRESET the backend closed the socket, -ETIMEDOUT no reply in time,
 * -EPROTO a malformed reply, -EREMOTEIO a NACK (REPLY_ACK u64 != 0), -EINTR aborted.
 */
int vu_get_u64(struct vu_conn *c, uint32_t req, uint64_t *val);
/* Sends a request; with REPLY_ACK negotiated it asks for and checks the ack. */
int vu_set(struct vu_conn *c, uint32_t req, const void *payload, uint32_t size, const int *fds,
	int nfds);
int vu_set_u64(struct vu_conn *c, uint32_t req, uint64_t val);
int vu_get_vring_base(struct vu_conn *c, unsigned int index, uint32_t *num);
/*
 * A request with its own reply (GET_CONFIG, GET_INFLIGHT_FD): sent without NEED_REPLY,
 * the reply (same request code, REPLY flag, any size) lands in *rep. With fd_out, the
 * first file descriptor that came with the reply is returned there (-1 if none).
 */
int vu_call(struct vu_conn *c, uint32_t req, const void *payload, uint32_t size, struct vu_msg *rep,
	int *fd_out);

/* Backend channel: creates the socketpair and sends SET_BACKEND_REQ_FD. */
int vu_setup_backend_channel(struct vu_conn *c);
/* Reads one backend request (non-blocking caller: poll says it is readable). */
int vu_backend_recv(struct vu_conn *c, struct vu_msg *m);
/* Replies to a backend request that carried NEED_REPLY. */
int vu_backend_reply(struct vu_conn *c, const struct vu_msg *req, uint64_t val);

#endif /* FE_VU_CLIENT_H */
