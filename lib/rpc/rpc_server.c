/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The JSON-RPC Unix socket server. It owns an epoll set of its own (listener + clients) and
 * exposes that epoll fd, so the control loop polls one fd and calls rpc_server_poll() when it
 * is readable: the server never owns the loop (the libvhost-user lesson in style.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base_limits.h"
#include "rpc.h"

#define READ_CHUNK 65536

struct rpc_client {
	int fd;
	struct rpc_framer *framer;
	char *out;
	size_t out_len; /* bytes queued */
	size_t out_off; /* bytes of it already sent */
	bool close_after_flush;
};

struct rpc_server {
	struct rpc_registry *reg;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char lock_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	int lock_fd;
	int listen_fd;
	int epoll_fd;
	struct rpc_client clients[RPC_CLIENTS_MAX];
};

/* epoll data: client slot index, or this for the listener */
#define LISTENER_TAG UINT32_MAX

static void
client_close(struct rpc_server *srv, struct rpc_client *c)
{
	epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	rpc_framer_destroy(c->framer);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void
client_want_write(struct rpc_server *srv, struct rpc_client *c, bool want)
{
	struct epoll_event ev = {
		.events = EPOLLIN | (want ? EPOLLOUT : 0),
		.data.u32 = (uint32_t)(c - srv->clients),
	};

	epoll_ctl(srv->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* @return false when the client is gone */
static bool
client_flush(struct rpc_server *srv, struct rpc_client *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				client_want_write(srv, c, true);
				return true;
			}
			client_close(srv, c);
			return false;
		}
		c->out_off += (size_t)n;
	}
	c->out_len = c->out_off = 0;
	client_want_write(srv, c, false);
	if (c->close_after_flush) {
		client_close(srv, c);
		return false;
	}
	return true;
}

static int
client_queue(struct rpc_client *c, json_t *reply)
{
	char *text = json_dumps(reply, JSON_COMPACT);
	size_t len, need;
	char *nb;

	if (text == NULL)
		return -ENOMEM;
	len = strlen(text);
	need = c->out_len + len + 1;
	if (need > RPC_REPLY_BACKLOG_MAX) {
		free(text);
		return -ENOBUFS;
	}
	nb = realloc(c->out, need);
	if (nb == NULL) {
		free(text);
		return -ENOMEM;
	}
	c->out = nb;
	memcpy(c->out + c->out_len, text, len);
	c->out[c->out_len + len] = '\n';
	c->out_len = need;
	free(text);
	return 0;
}

static void
client_process(struct rpc_server *srv, struct rpc_client *c)
{
	struct base_error err = {0};
	json_t *req, *reply;
	int rc;

	for (;;) {
		rc = rpc_framer_next(c->framer, &req, &err);
		if (rc == 0)
			break;
		if (rc < 0) {
			/* A byte stream cannot be resynchronised after bad JSON: answer, then
			 * close. */
			reply = rpc_error_response(json_null(), RPC_PARSE_ERROR, &err);
			c->close_after_flush = true;
		} else {
			reply = rpc_process(srv->reg, req);
			json_decref(req);
		}
		if (reply != NULL) {
			if (client_queue(c, reply) < 0)
				c->close_after_flush = true;
			json_decref(reply);
		}
		if (c->close_after_flush)
			break;
	}
	client_flush(srv, c);
}

static void
client_read(struct rpc_server *srv, struct rpc_client *c)
{
	char buf[READ_CHUNK];
	struct base_error err;
	json_t *reply;
	ssize_t n;

	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* Peer finished sending: answer what is complete, then close. */
			c->close_after_flush = true;
			break;
		}
		if (rpc_framer_feed(c->framer, buf, (size_t)n) < 0) {
			base_error_set(&err, EMSGSIZE, NULL, "request larger than %u bytes",
				RPC_REQUEST_MAX);
			reply = rpc_error_response(json_null(), RPC_INVALID_REQUEST, &err);
			client_queue(c, reply);
			json_decref(reply);
			c->close_after_flush = true;
			client_flush(srv, c);
			return;
		}
		/* Serve complete requests as they arrive so a pipelined client is not starved. */
		client_process(srv, c);
		if (c->fd < 0 || c->close_after_flush)
			return;
	}
	client_process(srv, c);
}

static void
accept_clients(struct rpc_server *srv)
{
	struct epoll_event ev;
	unsigned int i;
	int fd;

	for (;;) {
		fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		for (i = 0; i < RPC_CLIENTS_MAX && srv->clients[i].fd >= 0; i++)
			;
		if (i == RPC_CLIENTS_MAX) {
			close(fd); /* full: the client sees the connection close */
			continue;
		}
		srv->clients[i].fd = fd;
		srv->clients[i].framer = rpc_framer_create(RPC_REQUEST_MAX);
		ev.events = EPOLLIN;
		ev.data.u32 = i;
		if (srv->clients[i].framer == NULL ||
			epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
			client_close(srv, &srv->clients[i]);
	}
}

void
rpc_server_poll(struct rpc_server *srv)
{
	struct epoll_event evs[16];
	struct rpc_client *c;
	int n, i;

	n = epoll_wait(srv->epoll_fd, evs, 16, 0);
	for (i = 0; i < n; i++) {
		if (evs[i].data.u32 == LISTENER_TAG) {
			accept_clients(srv);
			continue;
		}
		c = &srv->clients[evs[i].data.u32];
		if (c->fd < 0)
			continue;
		if (evs[i].events & EPOLLOUT) {
			if (!client_flush(srv, c))
				continue;
		}
		if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			client_read(srv, c);
	}
}

int
rpc_server_fd(const struct rpc_server *srv)
{
	return srv->epoll_fd;
}

/* A socket file nobody listens on is left over from a crash: connecting to it is refused. */
static bool
socket_is_stale(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return rc < 0 && errno == ECONNREFUSED;
}

static bool
same_file(int fd, const struct stat *st)
{
	struct stat fst;

	return fstat(fd, &fst) == 0 && fst.st_ino == st->st_ino && fst.st_dev == st->st_dev;
}

struct rpc_server *
rpc_server_create(
	const struct rpc_server_opts *opts, struct rpc_registry *reg, struct base_error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = LISTENER_TAG};
	struct rpc_server *srv;
	struct stat st;
	unsigned int i;
	int e;

	if (strlen(opts->path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		base_error_set(err, errno, "rpc_socket", "socket path longer than %zu bytes",
			sizeof(sa.sun_path) - 1);
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return NULL;
	srv->reg = reg;
	srv->listen_fd = srv->epoll_fd = -1;
	for (i = 0; i < RPC_CLIENTS_MAX; i++)
		srv->clients[i].fd = -1;
	snprintf(srv->path, sizeof(srv->path), "%s", opts->path);
	snprintf(srv->lock_path, sizeof(srv->lock_path), "%s.lock", opts->path);

	/* The lock first: only its holder may touch the socket file. */
	srv->lock_fd = open(srv->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (srv->lock_fd < 0) {
		e = errno;
		base_error_set(err, e, "rpc_socket", "cannot open lock file %s: %s", srv->lock_path,
			strerror(e));
		goto fail_free;
	}
	if (flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		e = errno == EWOULDBLOCK ? EADDRINUSE : errno;
		base_error_set(err, e, "rpc_socket", "another vhostd holds %s and serves %s",
			srv->lock_path, srv->path);
		goto fail_lock;
	}
	/* A daemon that is exiting unlinks the lock file it held: make sure ours is still the one
	 * at lock_path, or a third daemon could lock a fresh file beside us. */
	if (stat(srv->lock_path, &st) < 0 || !same_file(srv->lock_fd, &st)) {
		e = EADDRINUSE;
		base_error_set(err, e, "rpc_socket", "%s changed while locking; try again",
			srv->lock_path);
		goto fail_lock;
	}
	if (lstat(srv->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			e = EEXIST;
			base_error_set(
				err, e, "rpc_socket", "%s exists and is not a socket", srv->path);
			goto fail_locked;
		}
		if (!socket_is_stale(srv->path)) {
			e = EADDRINUSE;
			base_error_set(
				err, e, "rpc_socket", "%s is in use by another process", srv->path);
			goto fail_locked;
		}
		unlink(srv->path);
	}

	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0) {
		e = errno;
		base_error_set(err, e, "rpc_socket", "socket: %s", strerror(e));
		goto fail_locked;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", srv->path);
	if (bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		listen(srv->listen_fd, 64) < 0) {
		e = errno;
		base_error_set(
			err, e, "rpc_socket", "cannot listen on %s: %s", srv->path, strerror(e));
		goto fail_socket;
	}
	if (chmod(srv->path, opts->mode) < 0 ||
		((opts->owner != (uid_t)-1 || opts->group != (gid_t)-1) &&
			chown(srv->path, opts->owner, opts->group) < 0)) {
		e = errno;
		base_error_set(err, e, "rpc_socket", "cannot set mode/owner of %s: %s", srv->path,
			strerror(e));
		goto fail_bound;
	}
	srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (srv->epoll_fd < 0 || epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, srv->listen_fd, &ev) < 0) {
		e = errno;
		base_error_set(err, e, "rpc_socket", "epoll: %s", strerror(e));
		goto fail_bound;
	}
	return srv;

fail_bound:
	if (srv->epoll_fd >= 0)
		close(srv->epoll_fd);
	unlink(srv->path);
fail_socket:
	close(srv->listen_fd);
fail_locked:
	unlink(srv->lock_path);
fail_lock:
	close(srv->lock_fd);
fail_free:
	free(srv);
	errno = e;
	return NULL;
}

void
rpc_server_destroy(struct rpc_server *srv)
{
	unsigned int i;

	if (srv == NULL)
		return;
	for (i = 0; i < RPC_CLIENTS_MAX; i++)
		if (srv->clients[i].fd >= 0)
			client_close(srv, &srv->clients[i]);
	close(srv->epoll_fd);
	close(srv->listen_fd);
	unlink(srv->path);
	/* Unlink before unlocking, so no second daemon can lock a file that is going away. */
	unlink(srv->lock_path);
	close(srv->lock_fd);
	free(srv);
}
