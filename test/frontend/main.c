/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * vhost-frontend: main thread. Connects the device(s), negotiates, starts the data
 * thread, runs the control loop (control.c), stops gracefully and reports.
 * Prints exactly one summary line at the end of every run that got past the
 * command line, preceded by an error line when the run failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "run.h"

int fe_verbose;
static int sig_efd = -1;

static const char *const stop_names[] = {
	[FE_STOP_NONE] = "none",
	[FE_STOP_COUNT] = "count",
	[FE_STOP_DURATION] = "duration",
	[FE_STOP_IDLE] = "idle",
	[FE_STOP_SIGNAL] = "signal",
	[FE_STOP_TIMEOUT] = "timeout",
	[FE_STOP_BACKEND_CLOSED] = "backend_closed",
	[FE_STOP_REFUSED] = "refused",
	[FE_STOP_ERROR] = "error",
	[FE_STOP_DONE] = "done",
};

static void
on_signal(int sig)
{
	uint64_t one = 1;
	ssize_t n;

	(void)sig;
	n = write(sig_efd, &one, sizeof(one)); /* async-signal-safe */
	(void)n;
}

static int
setup_signals(void)
{
	struct sigaction sa;

	sig_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sig_efd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static const char *const iommu_names[] = {"off", "platform", "viommu"};

struct iommu_totals {
	struct iommu_stats st;
	uint64_t pending;
};

static void
iommu_fields(struct fe_json *j, const struct iommu_stats *s, uint64_t pending)
{
	fe_json_u64(j, "iotlb_misses_received", s->misses_received);
	fe_json_u64(j, "iotlb_misses_answered", s->misses_answered);
	fe_json_u64(j, "iotlb_misses_unmapped", s->misses_unmapped);
	fe_json_u64(j, "iotlb_misses_denied", s->misses_denied);
	fe_json_u64(j, "iotlb_misses_ignored", s->misses_ignored);
	fe_json_u64(j, "iotlb_misses_pending", pending);
	fe_json_u64(j, "iotlb_updates_sent", s->updates_sent);
	fe_json_u64(j, "iotlb_invalidations_sent", s->invalidations_sent);
	fe_json_dbl(j, "iotlb_answer_avg_ms",
		s->misses_answered ? (double)s->answer_ns_total / s->misses_answered / 1e6 : 0);
	fe_json_dbl(j, "iotlb_answer_max_ms", (double)s->answer_ns_max / 1e6);
	fe_json_u64(j, "backend_requests_other", s->backend_other);
}

static void
iommu_add(struct iommu_stats *t, const struct iommu_stats *s)
{
	t->misses_received += s->misses_received;
	t->misses_answered += s->misses_answered;
	t->misses_unmapped += s->misses_unmapped;
	t->misses_denied += s->misses_denied;
	t->misses_ignored += s->misses_ignored;
	t->updates_sent += s->updates_sent;
	t->invalidations_sent += s->invalidations_sent;
	t->backend_other += s->backend_other;
	t->answer_ns_total += s->answer_ns_total;
	if (s->answer_ns_max > t->answer_ns_max)
		t->answer_ns_max = s->answer_ns_max;
}

/* Negotiation fields of one device. */
static void
device_fields(struct fe_json *j, const struct fe_run *r)
{
	fe_json_str(j, "socket", r->path);
	fe_json_str(j, "mode", r->listen ? "listen" : "connect");
	fe_json_bool(j, "translating", r->io.translate);
	fe_json_hex(j, "iova_offset", r->io.translate ? r->io.iova_offset : 0);
	fe_json_hex(j, "features_offered", r->features_offered);
	fe_json_hex(j, "features_requested", r->features_requested);
	fe_json_hex(j, "features_guest", r->features_guest);
	fe_json_hex(j, "features_acked", r->features_acked);
	fe_json_hex(j, "protocol_features_offered", r->protocol_offered);
	fe_json_hex(j, "protocol_features", r->protocol_acked);
	fe_json_u64(j, "max_queues", r->max_queues);
	fe_json_u64(j, "hdr_len", r->hdr_len);
}

static uint64_t
calls_received(const struct fe_run *r)
{
	uint64_t calls = 0;

	for (unsigned int i = 0; i < r->nvrings; i++) {
		uint64_t v;

		if (r->vq[i] != NULL && r->vq[i]->call_fd >= 0 &&
			read(r->vq[i]->call_fd, &v, sizeof(v)) == sizeof(v))
			calls += v;
	}
	return calls;
}

static void
print_summary(struct fe_run **runs, unsigned int n, enum fe_stop why, int code)
{
	const struct fe_shared *sh = runs[0]->sh;
	const struct fe_opts *o = sh->o;
	uint64_t calls[FE_MAX_DEVS], end = sh->t_stop_ns ? sh->t_stop_ns : fe_now_ns();
	double secs = sh->t_start_ns ? (double)(end - sh->t_start_ns) / 1e9 : 0;
	struct iommu_stats iot = {0};
	uint64_t pending = 0, calls_total = 0;
	struct fe_json j;

	for (unsigned int d = 0; d < n; d++) {
		iommu_add(&iot, &runs[d]->io.st);
		pending += runs[d]->io.count;
		calls[d] = calls_received(runs[d]);
		calls_total += calls[d];
	}
	fe_json_begin(&j, "summary");
	fe_json_str(&j, "kind", runs[0]->kind->name);
	fe_json_str(&j, "iommu", iommu_names[o->iommu]);
	fe_json_u64(&j, "queues", o->queues);
	fe_json_u64(&j, "ring_size", o->ring_size);
	fe_json_u64(&j, "regions", o->regions);
	fe_json_u64(&j, "stream_id", o->stream_id);
	device_fields(&j, runs[0]);
	runs[0]->kind->summary(runs, n, &j, secs);
	iommu_fields(&j, &iot, pending);
	fe_json_u64(&j, "calls_received", calls_total);
	if (runs[0]->vring_base_valid) {
		fe_json_open(&j, "vring_bases", '[');
		for (unsigned int i = 0; i < runs[0]->nvrings; i++)
			fe_json_u64(&j, NULL, runs[0]->vring_base[i]);
		fe_json_close(&j, ']');
	}
	if (n > 1) {
		fe_json_open(&j, "devices", '[');
		for (unsigned int d = 0; d < n; d++) {
			const struct fe_run *r = runs[d];

			fe_json_open(&j, NULL, '{');
			fe_json_u64(&j, "device", d);
			device_fields(&j, r);
			fe_json_bool(&j, "tx", r->role_tx);
			fe_json_bool(&j, "rx", r->role_rx);
			r->kind->dev_summary(runs[d], &j);
			iommu_fields(&j, &r->io.st, r->io.count);
			fe_json_u64(&j, "calls_received", calls[d]);
			fe_json_close(&j, '}');
		}
		fe_json_close(&j, ']');
	}
	fe_json_dbl(&j, "duration_s", secs);
	fe_json_str(&j, "stop_reason", stop_names[why]);
	fe_json_u64(&j, "exit_code", (uint64_t)code);
	fe_json_end(&j);
}

static void
print_error(const struct fe_run *r, unsigned int n, const char *reason, int code)
{
	struct fe_json j;

	fe_json_begin(&j, "error");
	fe_json_str(&j, "reason", reason);
	fe_json_u64(&j, "exit_code", (uint64_t)code);
	if (n > 1)
		fe_json_str(&j, "socket", r->path);
	if (r->conn.failed_request != 0)
		fe_json_str(&j, "request", vu_request_name(r->conn.failed_request));
	if (r->features_offered != 0)
		fe_json_hex(&j, "features_offered", r->features_offered);
	if (r->have_protocol)
		fe_json_hex(&j, "protocol_features_offered", r->protocol_offered);
	fe_json_end(&j);
}

static int
exit_code(enum fe_stop why)
{
	switch (why) {
	case FE_STOP_BACKEND_CLOSED:
		return FE_EXIT_BACKEND_GONE;
	case FE_STOP_REFUSED:
		return FE_EXIT_REFUSED;
	case FE_STOP_TIMEOUT:
	case FE_STOP_ERROR:
		return FE_EXIT_FAIL;
	default:
		return FE_EXIT_OK;
	}
}

/* Connects, negotiates and starts one device; 0, an FE_EXIT_* code, or -EINTR. */
static int
bring_up(struct fe_run *r, char *reason, size_t len)
{
	const struct fe_opts *o = r->o;
	int rc;

	rc = gm_create(&r->gm, (uint64_t)o->mem_mb << 20, o->regions);
	if (rc < 0) {
		snprintf(reason, len, "guest memory: %s", strerror(-rc));
		return FE_EXIT_FAIL;
	}
	rc = vu_open(&r->conn, r->path, r->listen, o->connect_timeout_s);
	if (rc < 0) {
		snprintf(reason, len, "%s", r->conn.err);
		return rc == -EINTR ? -EINTR : FE_EXIT_FAIL;
	}
	rc = fe_negotiate(r, false, reason, len);
	if (rc == 0)
		rc = fe_start_device(r, reason, len);
	return rc;
}

/* Splits a total between the devices that send (the first ones get the remainder). */
static uint64_t
share(uint64_t total, unsigned int senders, unsigned int rank)
{
	return senders == 0 ? 0 : total / senders + (rank < total % senders ? 1 : 0);
}

static void
init_run(struct fe_run *r, struct fe_shared *sh, unsigned int dev, unsigned int ndev)
{
	const struct fe_opts *o = sh->o;
	bool bidir = ndev == 1 || o->bidir;
	unsigned int senders = o->tx ? (bidir ? ndev : 1) : 0;

	r->o = o;
	r->sh = sh;
	r->dev = dev;
	r->path = dev == 0 ? o->socket_path : o->socket2_path;
	r->listen = dev == 0 ? o->listen : o->listen2;
	/* One device: all roles. Two: --tx on device 0, --rx on device 1 (both with --bidir). */
	r->role_tx = o->tx && !o->echo && (dev == 0 || bidir);
	r->role_rx = (o->rx || o->echo) && (dev == ndev - 1 || bidir);
	r->tx_count = r->role_tx ? share(o->count, senders, dev) : 0;
	r->rate_pps = r->role_tx ? share(o->rate_pps, senders, dev) : 0;
	r->kind = o->kind == FE_KIND_BLK ? &fe_blk_ops : &fe_net_ops;
	r->conn.fd = r->conn.backend_fd = -1;
	r->conn.abort_fd = sh->sig_efd;
	r->conn.timeout_ms = o->reply_timeout_ms;
	r->gm.fd = -1;
	r->io = (struct iommu){
		.iova_offset = o->iova_offset,
		.page_size = o->iotlb_page_size,
		.miss_delay_ms = o->miss_delay_ms,
		.miss_never = o->miss_never,
		.gm = &r->gm,
		.conn = &r->conn,
	};
}

static enum fe_stop
stop_of(int rc)
{
	if (rc == -EINTR)
		return FE_STOP_SIGNAL;
	if (rc == FE_EXIT_BACKEND_GONE)
		return FE_STOP_BACKEND_CLOSED;
	if (rc == FE_EXIT_REFUSED)
		return FE_STOP_REFUSED;
	return FE_STOP_ERROR;
}

int
main(int argc, char **argv)
{
	static struct fe_opts o;
	static struct fe_shared sh;
	static struct fe_run devs[FE_MAX_DEVS];
	struct fe_run *runs[FE_MAX_DEVS];
	unsigned int n, failed = 0;
	char reason[512] = "";
	enum fe_stop why = FE_STOP_NONE;
	uint64_t deadline;
	int rc = 0, code;

	rc = fe_parse_args(argc, argv, &o);
	if (rc != 0)
		return rc > 0 ? FE_EXIT_OK : FE_EXIT_USAGE;
	fe_verbose = o.verbose;
	deadline = fe_now_ns() + (uint64_t)(o.timeout_s * NS_PER_S);
	sh.o = &o;
	sh.done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (setup_signals() < 0 || sh.done_efd < 0) {
		perror("eventfd");
		return FE_EXIT_FAIL;
	}
	sh.sig_efd = sig_efd;
	n = o.socket2_path != NULL ? 2 : 1;
	for (unsigned int d = 0; d < n; d++) {
		runs[d] = &devs[d];
		init_run(runs[d], &sh, d, n);
	}
	for (unsigned int d = 0; d < n && rc == 0; d++) {
		rc = bring_up(runs[d], reason, sizeof(reason));
		failed = d;
	}
	if (rc == 0 && o.start_delay_ms > 0)
		why = fe_control_loop(runs, n, fe_now_ns() + o.start_delay_ms * NS_PER_MS, deadline,
			reason, sizeof(reason));
	if (rc == 0 && why == FE_STOP_NONE) {
		rc = runs[0]->kind->start(runs, n);
		if (rc < 0) {
			snprintf(reason, sizeof(reason), "starting the data thread: %s",
				strerror(-rc));
			rc = FE_EXIT_FAIL;
		} else {
			why = fe_control_loop(runs, n, 0, deadline, reason, sizeof(reason));
		}
	}
	if (rc != 0) {
		why = stop_of(rc);
	} else {
		for (unsigned int d = n; d-- > 0;)
			if (runs[d]->conn.closed || runs[d]->conn.err[0] != '\0')
				failed = d;
	}
	code = rc > 0 ? rc : exit_code(why);
	/* A signal must not cut the graceful stop short: consume it (a second one will). */
	if (why == FE_STOP_SIGNAL) {
		uint64_t v;
		ssize_t got = read(sig_efd, &v, sizeof(v));

		(void)got;
	}
	runs[0]->kind->stop(runs, n);
	for (unsigned int d = 0; d < n; d++)
		fe_stop_device(runs[d]);
	if (code == FE_EXIT_OK && runs[0]->kind->verdict != NULL) {
		/* The kind's own failures: e.g. blk data that did not verify. */
		code = runs[0]->kind->verdict(runs, n, reason, sizeof(reason));
		failed = 0;
	}
	if (code != FE_EXIT_OK)
		print_error(runs[failed], n, reason, code);
	print_summary(runs, n, why, code);
	for (unsigned int d = 0; d < n; d++) {
		runs[d]->kind->destroy(runs[d]);
		vu_close(&runs[d]->conn);
		gm_destroy(&runs[d]->gm);
	}
	return code;
}
