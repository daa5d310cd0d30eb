/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * --reconnect-timeout-s: what QEMU's vhost-user-blk does when its backend goes away
 * (vhost_user_blk_event CLOSED, then vhost_user_blk_connect on the next OPENED).
 * Guest memory, rings and the inflight region stay; the connection is made again
 * (retrying until the timeout), the session is negotiated again with the features
 * the guest already acked, SET_INFLIGHT_FD passes the saved region, SET_VRING_BASE is
 * the used index found in the ring (virtio_queue_restore_last_avail_idx), and the
 * ring addresses are the same. Requests the backend took and did not complete stay
 * outstanding: an inflight-capable backend resubmits them, others fetch them again
 * from the avail ring. Runs on the control thread; the data thread keeps polling.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

#define RECONNECT_PAUSE_MS 50 /* between attempts that got a connection but failed later */

static void
reset_conn(struct vu_conn *c)
{
	vu_close(c);
	c->closed = false;
	c->reply_ack = false;
	c->in_request = 0;
	c->failed_request = 0;
	c->last_error = 0;
	c->err[0] = '\0';
}

/* Sleeps ms unless a signal arrives (returns true then). */
static bool
pause_or_signal(int sig_efd, unsigned int ms)
{
	struct pollfd pfd = {.fd = sig_efd, .events = POLLIN};

	return poll(&pfd, 1, (int)ms) > 0 && (pfd.revents & POLLIN);
}

enum fe_stop
fe_reconnect(struct fe_run *r, char *reason, size_t len)
{
	const struct fe_opts *o = r->o;
	uint64_t t0 = fe_now_ns();
	uint64_t deadline = t0 + (uint64_t)(o->reconnect_timeout_s * NS_PER_S);
	char last[256] = "backend closed the connection";
	unsigned int attempts = 0;

	fe_info("%s: backend went away; reconnecting for up to %.1f s\n", r->path,
		o->reconnect_timeout_s);
	if (r->kind->disconnected != NULL)
		r->kind->disconnected(r);
	r->io.count = 0; /* delayed miss answers belonged to the old connection */
	for (;;) {
		uint64_t now = fe_now_ns();
		int rc;

		reset_conn(&r->conn);
		if (now >= deadline) {
			r->conn.closed = true;
			snprintf(reason, len,
				"backend closed the connection and no reconnect succeeded within "
				"%.1f s (%u attempts; last: %s)",
				o->reconnect_timeout_s, attempts, last);
			return FE_STOP_BACKEND_CLOSED;
		}
		attempts++;
		rc = vu_open(&r->conn, r->path, r->listen, (double)(deadline - now) / 1e9);
		if (rc == -EINTR)
			return FE_STOP_SIGNAL;
		if (rc < 0) {
			snprintf(last, sizeof(last), "%s", r->conn.err);
			continue; /* vu_open retried until the deadline: the loop ends above */
		}
		rc = fe_negotiate(r, true, reason, len);
		if (rc == 0)
			rc = fe_program_device(r, true, reason, len);
		if (rc == 0)
			break;
		if (rc == -EINTR)
			return FE_STOP_SIGNAL;
		if (rc == FE_EXIT_REFUSED) {
			r->conn.closed = true;
			return FE_STOP_REFUSED;
		}
		/* The new backend died or misbehaved during setup: try again. */
		snprintf(last, sizeof(last), "%s", reason);
		reason[0] = '\0';
		if (pause_or_signal(r->sh->sig_efd, RECONNECT_PAUSE_MS))
			return FE_STOP_SIGNAL;
	}
	r->reconnects++;
	/*
	 * Requests the guest queued while the backend was away, and the backend's used-ring
	 * NO_NOTIFY flag left behind by the dead process: kick every ring once, as the
	 * guest's next request would.
	 */
	for (unsigned int i = 0; i < r->nvrings; i++) {
		uint64_t one = 1;

		if (write(r->vq[i]->kick_fd, &one, sizeof(one)) != sizeof(one))
			fe_info("kick after reconnect: %s\n", strerror(errno));
	}
	if (r->kind->reconnected != NULL)
		r->kind->reconnected(r);
	fe_info("%s: reconnected after %.3f s (%u attempts)\n", r->path,
		(double)(fe_now_ns() - t0) / 1e9, attempts);
	return FE_STOP_NONE;
}
