/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control loop (main thread, after the devices are up): backend channels
 * (IOTLB misses), delayed answers, --invalidate-after-ms, progress reports,
 * signals, --duration-s / --timeout-s, the data thread's "done", and a backend
 * that closes its socket. Every wait is bounded.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "run.h"

#define CONTROL_MAX_WAIT_MS 200 /* upper bound on one poll(): timers stay accurate enough */

void
fe_run_done(struct fe_shared *sh, enum fe_stop why)
{
	int expected = FE_STOP_NONE;
	uint64_t one = 1;
	ssize_t n;

	atomic_compare_exchange_strong(&sh->done_reason, &expected, (int)why);
	n = write(sh->done_efd, &one, sizeof(one));
	(void)n;
}

static uint64_t
min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

struct progress {
	uint64_t last_ns;
	uint64_t last_tx;
	uint64_t last_rx;
};

static void
print_progress(struct fe_run **runs, unsigned int n, uint64_t now, struct progress *p)
{
	uint64_t tx = 0, rx = 0, misses = 0, updates = 0;
	double dt = (double)(now - p->last_ns) / 1e9;
	struct fe_json j;

	for (unsigned int d = 0; d < n; d++) {
		uint64_t t, r;

		runs[d]->kind->totals(runs[d], &t, &r);
		tx += t;
		rx += r;
		misses += runs[d]->io.st.misses_received;
		updates += runs[d]->io.st.updates_sent;
	}
	fe_json_begin(&j, "progress");
	fe_json_dbl(&j, "t", (double)(now - runs[0]->sh->t_start_ns) / 1e9);
	if (runs[0]->kind->progress != NULL) {
		runs[0]->kind->progress(runs, n, &j, dt);
		fe_json_u64(&j, "iotlb_misses_received", misses);
		fe_json_u64(&j, "iotlb_updates_sent", updates);
		fe_json_end(&j);
		p->last_ns = now;
		return;
	}
	fe_json_dbl(&j, "tx_pps", dt > 0 ? (double)(tx - p->last_tx) / dt : 0);
	fe_json_dbl(&j, "rx_pps", dt > 0 ? (double)(rx - p->last_rx) / dt : 0);
	fe_json_u64(&j, "tx_packets", tx);
	fe_json_u64(&j, "rx_packets", rx);
	fe_json_u64(&j, "iotlb_misses_received", misses);
	fe_json_u64(&j, "iotlb_updates_sent", updates);
	fe_json_end(&j);
	p->last_ns = now;
	p->last_tx = tx;
	p->last_rx = rx;
}

static void
set_reason(struct fe_run *r, unsigned int n, char *reason, size_t len, const char *what)
{
	if (n > 1)
		snprintf(reason, len, "%s: %s", r->path, what);
	else
		snprintf(reason, len, "%s", what);
}

/* The main socket became readable while idle: the backend closed it, or sent junk. */
static enum fe_stop
main_socket_event(struct fe_run *r, unsigned int n, char *reason, size_t len)
{
	char buf[256];
	ssize_t got = recv(r->conn.fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (got > 0) {
		fe_info("%s: ignored %zd unexpected bytes on the main socket\n", r->path, got);
		return FE_STOP_NONE;
	}
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return FE_STOP_NONE;
	r->conn.closed = true;
	set_reason(r, n, reason, len, "backend closed the connection");
	return FE_STOP_BACKEND_CLOSED;
}

static enum fe_stop
iommu_failed(struct fe_run *r, unsigned int n, char *reason, size_t len)
{
	if (r->conn.last_error == -EINTR)
		return FE_STOP_SIGNAL; /* a signal cut an ack wait short */
	set_reason(r, n, reason, len, r->conn.err);
	return r->conn.closed ? FE_STOP_BACKEND_CLOSED : FE_STOP_ERROR;
}

static enum fe_stop
backend_channel_event(struct fe_run *r, unsigned int n, char *reason, size_t len)
{
	struct vu_msg m;
	int rc = vu_backend_recv(&r->conn, &m);

	if (rc == -ECONNRESET) {
		/* The main socket tells whether the backend is gone; stop polling this one. */
		close(r->conn.backend_fd);
		r->conn.backend_fd = -1;
		return FE_STOP_NONE;
	}
	if (rc == 0 && iommu_backend_request(&r->io, &m) == 0)
		return FE_STOP_NONE;
	return iommu_failed(r, n, reason, len);
}

/* IOTLB timers of one device: delayed answers and the invalidation. */
static enum fe_stop
iommu_timers(struct fe_run *r, unsigned int n, uint64_t now, uint64_t invalidate_at, char *reason,
	size_t len)
{
	if (iommu_run_due(&r->io, now) < 0)
		return iommu_failed(r, n, reason, len);
	if (now >= invalidate_at && r->io.translate && !r->invalidated) {
		r->invalidated = true;
		if (iommu_invalidate_all(&r->io) < 0)
			return iommu_failed(r, n, reason, len);
	}
	return FE_STOP_NONE;
}

/* The backend closed the connection: reconnect (--reconnect-timeout-s), else stop. */
static enum fe_stop
backend_gone(struct fe_run *r, char *reason, size_t len)
{
	if (r->o->reconnect_timeout_s > 0)
		return fe_reconnect(r, reason, len);
	if (r->kind->disconnected != NULL)
		r->kind->disconnected(r);
	return FE_STOP_BACKEND_CLOSED;
}

/*
 * Runs until the run must stop (returns why) or, when until_ns is not 0, until then
 * (returns FE_STOP_NONE). deadline_ns is the --timeout-s bound of the whole run.
 */
enum fe_stop
fe_control_loop(struct fe_run **runs, unsigned int n, uint64_t until_ns, uint64_t deadline_ns,
	char *reason, size_t len)
{
	struct fe_shared *sh = runs[0]->sh;
	const struct fe_opts *o = sh->o;
	uint64_t report_ns = (uint64_t)(o->report_interval_s * NS_PER_S);
	uint64_t end_ns = UINT64_MAX, next_report = UINT64_MAX, invalidate_at = UINT64_MAX;
	struct progress prog = {.last_ns = sh->t_start_ns};

	if (sh->started) {
		if (runs[0]->kind->control_timed(o))
			end_ns = sh->t_start_ns + (uint64_t)(o->duration_s * NS_PER_S);
		if (report_ns > 0)
			next_report = sh->t_start_ns + report_ns;
		if (o->invalidate_after_ms > 0)
			invalidate_at = sh->t_start_ns + o->invalidate_after_ms * NS_PER_MS;
	}
	for (;;) {
		struct pollfd pfd[2 + 2 * FE_MAX_DEVS] = {
			{.fd = sh->sig_efd, .events = POLLIN},
			{.fd = sh->done_efd, .events = POLLIN},
		};
		uint64_t now = fe_now_ns(), next;
		enum fe_stop why;
		int got;

		if (until_ns != 0 && now >= until_ns)
			return FE_STOP_NONE;
		if (now >= deadline_ns) {
			snprintf(reason, len, "timeout: --timeout-s %.3g reached", o->timeout_s);
			return FE_STOP_TIMEOUT;
		}
		if (now >= end_ns)
			return FE_STOP_DURATION;
		next = min_u64(min_u64(deadline_ns, end_ns), min_u64(next_report, invalidate_at));
		if (until_ns != 0)
			next = min_u64(next, until_ns);
		for (unsigned int d = 0; d < n; d++) {
			why = iommu_timers(runs[d], n, now, invalidate_at, reason, len);
			if (why == FE_STOP_BACKEND_CLOSED)
				why = backend_gone(runs[d], reason, len);
			if (why != FE_STOP_NONE)
				return why;
			next = min_u64(next, iommu_next_due(&runs[d]->io));
			pfd[2 + 2 * d] = (struct pollfd){
				.fd = runs[d]->conn.fd, .events = POLLIN | POLLRDHUP};
			pfd[3 + 2 * d] =
				(struct pollfd){.fd = runs[d]->conn.backend_fd, .events = POLLIN};
		}
		if (now >= invalidate_at)
			invalidate_at = UINT64_MAX;
		if (now >= next_report) {
			print_progress(runs, n, now, &prog);
			while (next_report <= now) /* the loop may have been held (reconnect) */
				next_report += report_ns;
		}
		got = poll(pfd, 2 + 2 * n,
			(int)min_u64((next > now ? next - now : 0) / NS_PER_MS + 1,
				CONTROL_MAX_WAIT_MS));
		if (got < 0 && errno != EINTR) {
			snprintf(reason, len, "poll: %s", strerror(errno));
			return FE_STOP_ERROR;
		}
		if (got <= 0)
			continue;
		if (pfd[0].revents & POLLIN)
			return FE_STOP_SIGNAL;
		if (pfd[1].revents & POLLIN)
			return (enum fe_stop)atomic_load(&sh->done_reason);
		for (unsigned int d = 0; d < n; d++) {
			why = FE_STOP_NONE;
			if (pfd[3 + 2 * d].revents != 0)
				why = backend_channel_event(runs[d], n, reason, len);
			if (why == FE_STOP_NONE && pfd[2 + 2 * d].revents != 0)
				why = main_socket_event(runs[d], n, reason, len);
			if (why == FE_STOP_BACKEND_CLOSED)
				why = backend_gone(runs[d], reason, len);
			if (why != FE_STOP_NONE)
				return why;
		}
	}
}
