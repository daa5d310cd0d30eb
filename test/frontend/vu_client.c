/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-user frontend protocol client. Every wait is bounded by c->timeout_ms
 * and can be cut short by c->abort_fd (a signal arrived).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fe.h"
#include "vu_client.h"

#define VU_CONNECT_RETRY_MS 50

static const char *const request_names[VU_REQUEST_MAX] = {
	[VU_GET_FEATURES] = "GET_FEATURES",
	[VU_SET_FEATURES] = "SET_FEATURES",
	[VU_SET_OWNER] = "SET_OWNER",
	[VU_RESET_OWNER] = "RESET_OWNER",
	[VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
	[VU_SET_VRING_NUM] = "SET_VRING_NUM",
	[VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
	[VU_SET_VRING_BASE] = "SET_VRING_BASE",
	[VU_GET_VRING_BASE] = "GET_VRING_BASE",
	[VU_SET_VRING_KICK] = "SET_VRING_KICK",
	[VU_SET_VRING_CALL] = "SET_VRING_CALL",
	[VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
	[VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
	[VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
	[VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
	[VU_SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
	[VU_IOTLB_MSG] = "IOTLB_MSG",
	[VU_GET_CONFIG] = "GET_CONFIG",
	[VU_SET_CONFIG] = "SET_CONFIG",
	[VU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
	[VU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
};

const char *
vu_request_name(uint32_t req)
{
	if (req < VU_REQUEST_MAX && request_names[req] != NULL)
		return request_names[req];
	return "UNKNOWN";
}

static int
fail(struct vu_conn *c, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	if (err == -ECONNRESET)
		c->closed = true;
	c->last_error = err;
	c->failed_request = c->in_request;
	fe_info("%s\n", c->err);
	return err;
}

/* Waits until fd is readable; 0, -ETIMEDOUT, -EINTR (abort_fd fired) or -errno. */
static int
wait_readable(struct vu_conn *c, int fd, uint64_t deadline_ns)
{
	for (;;) {
		struct pollfd pfd[2] = {
			{.fd = fd, .events = POLLIN},
			{.fd = c->abort_fd, .events = POLLIN},
		};
		uint64_t now = fe_now_ns();
		int ms, n;

		if (now >= deadline_ns)
			return -ETIMEDOUT;
		ms = (int)((deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS);
		n = poll(pfd, c->abort_fd >= 0 ? 2 : 1, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0 && c->abort_fd >= 0 && (pfd[1].revents & POLLIN))
			return -EINTR;
		if (n > 0 && pfd[0].revents != 0)
			return 0;
	}
}

/*
 * Reads exactly len bytes. File descriptors that come along are closed, except the
 * first one when fd_out is given (and *fd_out is still -1): that one is kept there.
 */
static int
read_full(struct vu_conn *c, int fd, void *buf, size_t len, uint64_t deadline_ns, int *fd_out)
{
	size_t got = 0;

	while (got < len) {
		char cbuf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
		struct iovec iov = {.iov_base = (char *)buf + got, .iov_len = len - got};
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf,
			.msg_controllen = sizeof(cbuf),
		};
		struct cmsghdr *cm;
		ssize_t n;
		int rc;

		rc = wait_readable(c, fd, deadline_ns);
		if (rc < 0)
			return rc;
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno == ECONNRESET ? -ECONNRESET : -errno;
		if (n == 0)
			return -ECONNRESET;
		for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
				int fds[VU_MAX_FDS];

				if (nfd > VU_MAX_FDS)
					nfd = VU_MAX_FDS;
				memcpy(fds, CMSG_DATA(cm), nfd * sizeof(int));
				for (size_t i = 0; i < nfd; i++) {
					if (fd_out != NULL && *fd_out < 0)
						*fd_out = fds[i];
					else
						close(fds[i]);
				}
			}
		}
		got += (size_t)n;
	}
	return 0;
}

static int
recv_msg(struct vu_conn *c, int fd, struct vu_msg *m, int *fd_out)
{
	uint64_t deadline = fe_now_ns() + (uint64_t)c->timeout_ms * NS_PER_MS;
	int rc;

	rc = read_full(c, fd, &m->hdr, sizeof(m->hdr), deadline, fd_out);
	if (rc < 0)
		return rc;
	if (m->hdr.size > sizeof(m->p))
		return -EPROTO;
	if (m->hdr.size == 0)
		return 0;
	return read_full(c, fd, &m->p, m->hdr.size, deadline, fd_out);
}

static int
send_msg(int fd, const struct vu_hdr *hdr, const void *payload, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
	struct iovec iov[2] = {
		{.iov_base = (void *)hdr, .iov_len = sizeof(*hdr)},
		{.iov_base = (void *)payload, .iov_len = hdr->size},
	};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = hdr->size != 0 ? 2 : 1};
	size_t total = sizeof(*hdr) + hdr->size;
	ssize_t n;

	if (nfds > VU_MAX_FDS)
		return -EINVAL;
	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, (size_t)nfds * sizeof(int));
	}
	do {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return (errno == EPIPE || errno == ECONNRESET) ? -ECONNRESET : -errno;
	/* A unix stream socket takes a message this small whole; anything else is an error. */
	if ((size_t)n != total)
		return -EIO;
	return 0;
}

static int
request(struct vu_conn *c, uint32_t req, uint32_t flags, const void *payload, uint32_t size,
	const int *fds, int nfds)
{
	struct vu_hdr hdr = {.request = req, .flags = VU_VERSION | flags, .size = size};
	int rc;

	c->in_request = req;
	if (c->closed)
		return fail(c, -ECONNRESET, "backend closed the connection before %s",
			vu_request_name(req));
	rc = send_msg(c->fd, &hdr, payload, fds, nfds);
	if (rc < 0)
		return fail(c, rc, "sending %s: %s", vu_request_name(req), strerror(-rc));
	c->messages_sent++;
	fe_debug(
		"sent %s size %u flags 0x%x fds %d\n", vu_request_name(req), size, hdr.flags, nfds);
	return 0;
}

/* Reads the reply to req; size UINT32_MAX accepts any size. */
static int
reply_fd(struct vu_conn *c, uint32_t req, struct vu_msg *m, uint32_t size, int *fd_out)
{
	int rc = recv_msg(c, c->fd, m, fd_out);

	if (rc == -ECONNRESET)
		return fail(c, rc,
			"backend closed the connection while we waited for the reply to %s",
			vu_request_name(req));
	if (rc == -ETIMEDOUT)
		return fail(
			c, rc, "no reply to %s within %u ms", vu_request_name(req), c->timeout_ms);
	if (rc == -EINTR)
		return fail(c, rc, "interrupted while waiting for the reply to %s",
			vu_request_name(req));
	if (rc < 0)
		return fail(
			c, rc, "reading the reply to %s: %s", vu_request_name(req), strerror(-rc));
	if (m->hdr.request != req || !(m->hdr.flags & VU_FLAG_REPLY) ||
		(size != UINT32_MAX && m->hdr.size != size))
		return fail(c, -EPROTO,
			"bad reply to %s: request %u flags 0x%x size %u (expected request %u, "
			"REPLY flag, size %u)",
			vu_request_name(req), m->hdr.request, m->hdr.flags, m->hdr.size, req, size);
	return 0;
}

static int
reply(struct vu_conn *c, uint32_t req, struct vu_msg *m, uint32_t size)
{
	return reply_fd(c, req, m, size, NULL);
}

int
vu_call(struct vu_conn *c, uint32_t req, const void *payload, uint32_t size, struct vu_msg *rep,
	int *fd_out)
{
	int rc;

	if (fd_out != NULL)
		*fd_out = -1;
	rc = request(c, req, 0, payload, size, NULL, 0);
	if (rc == 0)
		rc = reply_fd(c, req, rep, UINT32_MAX, fd_out);
	if (rc < 0 && fd_out != NULL && *fd_out >= 0) {
		close(*fd_out);
		*fd_out = -1;
	}
	c->in_request = 0;
	return rc;
}

int
vu_get_u64(struct vu_conn *c, uint32_t req, uint64_t *val)
{
	struct vu_msg m;
	int rc;

	rc = request(c, req, 0, NULL, 0, NULL, 0);
	if (rc == 0)
		rc = reply(c, req, &m, sizeof(m.p.u64));
	if (rc == 0)
		*val = m.p.u64;
	c->in_request = 0;
	return rc;
}

int
vu_get_vring_base(struct vu_conn *c, unsigned int index, uint32_t *num)
{
	struct vu_vring_state st = {.index = index, .num = 0};
	struct vu_msg m;
	int rc;

	rc = request(c, VU_GET_VRING_BASE, 0, &st, sizeof(st), NULL, 0);
	if (rc == 0)
		rc = reply(c, VU_GET_VRING_BASE, &m, sizeof(m.p.state));
	if (rc == 0)
		*num = m.p.state.num;
	c->in_request = 0;
	return rc;
}

int
vu_set(struct vu_conn *c, uint32_t req, const void *payload, uint32_t size, const int *fds,
	int nfds)
{
	struct vu_msg m;
	int rc;

	rc = request(c, req, c->reply_ack ? VU_FLAG_NEED_REPLY : 0, payload, size, fds, nfds);
	if (rc == 0 && c->reply_ack) {
		/* Spec "REPLY_ACK": u64 zero for success, non-zero for failure. */
		rc = reply(c, req, &m, sizeof(m.p.u64));
		if (rc == 0 && m.p.u64 != 0)
			rc = fail(c, -EREMOTEIO, "backend NACKed %s (ack payload %llu)",
				vu_request_name(req), (unsigned long long)m.p.u64);
	}
	c->in_request = 0;
	return rc;
}

int
vu_set_u64(struct vu_conn *c, uint32_t req, uint64_t val)
{
	return vu_set(c, req, &val, sizeof(val), NULL, 0);
}

int
vu_setup_backend_channel(struct vu_conn *c)
{
	int sv[2];
	int rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return fail(c, -errno, "socketpair: %s", strerror(errno));
	rc = vu_set(c, VU_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
	close(sv[1]);
	if (rc < 0) {
		close(sv[0]);
		return rc;
	}
	c->backend_fd = sv[0];
	return 0;
}

int
vu_backend_recv(struct vu_conn *c, struct vu_msg *m)
{
	int rc = recv_msg(c, c->backend_fd, m, NULL);

	if (rc == -ECONNRESET)
		return fail(c, rc, "backend closed the backend channel");
	if (rc < 0)
		return fail(c, rc, "reading the backend channel: %s", strerror(-rc));
	return 0;
}

int
vu_backend_reply(struct vu_conn *c, const struct vu_msg *req, uint64_t val)
{
	struct vu_hdr hdr = {
		.request = req->hdr.request,
		.flags = VU_VERSION | VU_FLAG_REPLY,
		.size = sizeof(val),
	};

	return send_msg(c->backend_fd, &hdr, &val, NULL, 0);
}

static int
connect_client(struct vu_conn *c, const struct sockaddr_un *sa, double timeout_s)
{
	uint64_t deadline = fe_now_ns() + (uint64_t)(timeout_s * NS_PER_S);

	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int rc;

		if (fd < 0)
			return fail(c, -errno, "socket: %s", strerror(errno));
		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
			c->fd = fd;
			return 0;
		}
		rc = -errno;
		close(fd);
		if (rc != -ENOENT && rc != -ECONNREFUSED && rc != -EAGAIN)
			return fail(c, rc, "connect %s: %s", sa->sun_path, strerror(-rc));
		/* The backend may not listen yet: retry until the deadline. */
		rc = wait_readable(c, -1, fe_now_ns() + VU_CONNECT_RETRY_MS * NS_PER_MS);
		if (rc == -EINTR)
			return fail(c, rc, "interrupted while connecting to %s", sa->sun_path);
		if (fe_now_ns() >= deadline)
			return fail(c, -ETIMEDOUT, "could not connect to %s within %.1f s",
				sa->sun_path, timeout_s);
	}
}

static int
accept_backend(struct vu_conn *c, const struct sockaddr_un *sa, double timeout_s)
{
	uint64_t deadline = fe_now_ns() + (uint64_t)(timeout_s * NS_PER_S);
	struct stat st;
	int lfd, rc;

	/* Remove a stale socket left by an earlier run, never any other kind of file. */
	if (lstat(sa->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(sa->sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return fail(c, -errno, "socket: %s", strerror(errno));
	if (bind(lfd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 || listen(lfd, 1) < 0) {
		rc = -errno;
		close(lfd);
		return fail(c, rc, "listen on %s: %s", sa->sun_path, strerror(-rc));
	}
	rc = wait_readable(c, lfd, deadline);
	if (rc == 0) {
		c->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c->fd < 0)
			rc = -errno;
	}
	close(lfd);
	unlink(sa->sun_path);
	if (rc == -ETIMEDOUT)
		return fail(
			c, rc, "no backend connected to %s within %.1f s", sa->sun_path, timeout_s);
	if (rc < 0)
		return fail(c, rc, "accept on %s: %s", sa->sun_path, strerror(-rc));
	return 0;
}

int
vu_open(struct vu_conn *c, const char *path, bool listen, double timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	c->fd = -1;
	c->backend_fd = -1;
	c->closed = false;
	if (strlen(path) >= sizeof(sa.sun_path))
		return fail(c, -ENAMETOOLONG, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	return listen ? accept_backend(c, &sa, timeout_s) : connect_client(c, &sa, timeout_s);
}

void
vu_close(struct vu_conn *c)
{
	if (c->backend_fd >= 0)
		close(c->backend_fd);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->backend_fd = -1;
}
