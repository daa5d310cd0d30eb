/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base_limits.h"
#include "rpc.h"

int
rpc_client_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, e;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static int
send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
rpc_client_call(int fd, json_t *request, int timeout_ms, json_t **response)
{
	struct rpc_framer *fr;
	struct base_error err;
	long long deadline = now_ms() + timeout_ms;
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char buf[65536];
	char *text;
	ssize_t n;
	int rc;

	*response = NULL;
	text = json_dumps(request, JSON_COMPACT);
	if (text == NULL)
		return -ENOMEM;
	rc = send_all(fd, text, strlen(text));
	free(text);
	if (rc < 0)
		return rc;
	if (send_all(fd, "\n", 1) < 0)
		return -errno;

	fr = rpc_framer_create(RPC_REPLY_BACKLOG_MAX);
	if (fr == NULL)
		return -ENOMEM;
	for (;;) {
		rc = rpc_framer_next(fr, response, &err);
		if (rc != 0)
			break;
		long long left = deadline - now_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		rc = poll(&pfd, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0) {
			rc = rc < 0 ? -errno : -ETIMEDOUT;
			break;
		}
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -ECONNRESET;
			break;
		}
		rc = rpc_framer_feed(fr, buf, (size_t)n);
		if (rc < 0)
			break;
	}
	rpc_framer_destroy(fr);
	return rc == 1 ? 0 : rc;
}
