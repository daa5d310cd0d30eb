/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Command line. Every option is documented in README.md; keep the two in step.
 * Returns 0, 1 for --help, or -EINVAL with the reason printed as a JSON error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk.h"
#include "fe.h"

#define DEFAULT_IOVA_OFFSET 0x10000000000ULL /* 1 TiB: IOVA never equals GPA */
#define DEFAULT_PAGE_SIZE   (2ULL << 20)     /* a huge IOMMU page; 4096 to stress */

enum {
	OPT_SOCKET = 256,
	OPT_LISTEN,
	OPT_CONNECT_TIMEOUT,
	OPT_REPLY_TIMEOUT,
	OPT_KIND,
	OPT_QUEUES,
	OPT_RING_SIZE,
	OPT_FEATURES_ADD,
	OPT_FEATURES_DROP,
	OPT_PROTO_DROP,
	OPT_IOMMU,
	OPT_IOVA_OFFSET,
	OPT_IOTLB_PREFILL,
	OPT_MISS_DELAY,
	OPT_MISS_NEVER,
	OPT_PAGE_SIZE,
	OPT_RX_MAP_RO,
	OPT_INVALIDATE_AFTER,
	OPT_MEM_MB,
	OPT_REGIONS,
	OPT_TX,
	OPT_RX,
	OPT_ECHO,
	OPT_PKT_SIZE,
	OPT_PKT_SIZES,
	OPT_COUNT,
	OPT_DURATION,
	OPT_TIMEOUT,
	OPT_RATE,
	OPT_BURST,
	OPT_SRC_MAC,
	OPT_DST_MAC,
	OPT_STREAM_ID,
	OPT_REPORT,
	OPT_IDLE,
	OPT_DRAIN,
	OPT_START_DELAY,
	OPT_NO_GRACEFUL,
	OPT_NO_YIELD,
	OPT_IDLE_SLEEP,
	OPT_SOCKET2,
	OPT_LISTEN2,
	OPT_BIDIR,
	OPT_BLK_OPS,
	OPT_BLK_HOSTILE,
	OPT_HOSTILE_TIMEOUT,
	OPT_OP_TIMEOUT,
	OPT_BLK_LOAD,
	OPT_QD,
	OPT_BS,
	OPT_RW_MIX,
	OPT_FLUSH_EVERY,
	OPT_RANDOM,
	OPT_SEQ,
	OPT_REGION_BYTES,
	OPT_VERIFY,
	OPT_INFLIGHT,
	OPT_RECONNECT_TIMEOUT,
	OPT_ACK_LOG,
};

static const struct option long_opts[] = {
	{"socket", required_argument, NULL, OPT_SOCKET},
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"socket2", required_argument, NULL, OPT_SOCKET2},
	{"listen2", required_argument, NULL, OPT_LISTEN2},
	{"bidir", no_argument, NULL, OPT_BIDIR},
	{"connect-timeout-s", required_argument, NULL, OPT_CONNECT_TIMEOUT},
	{"reply-timeout-ms", required_argument, NULL, OPT_REPLY_TIMEOUT},
	{"kind", required_argument, NULL, OPT_KIND},
	{"queues", required_argument, NULL, OPT_QUEUES},
	{"ring-size", required_argument, NULL, OPT_RING_SIZE},
	{"features-add", required_argument, NULL, OPT_FEATURES_ADD},
	{"features-drop", required_argument, NULL, OPT_FEATURES_DROP},
	{"protocol-features-drop", required_argument, NULL, OPT_PROTO_DROP},
	{"iommu", required_argument, NULL, OPT_IOMMU},
	{"iova-offset", required_argument, NULL, OPT_IOVA_OFFSET},
	{"iotlb-prefill", no_argument, NULL, OPT_IOTLB_PREFILL},
	{"miss-delay-ms", required_argument, NULL, OPT_MISS_DELAY},
	{"miss-never", no_argument, NULL, OPT_MISS_NEVER},
	{"iotlb-page-size", required_argument, NULL, OPT_PAGE_SIZE},
	{"rx-map-readonly", no_argument, NULL, OPT_RX_MAP_RO},
	{"invalidate-after-ms", required_argument, NULL, OPT_INVALIDATE_AFTER},
	{"mem-mb", required_argument, NULL, OPT_MEM_MB},
	{"regions", required_argument, NULL, OPT_REGIONS},
	{"tx", no_argument, NULL, OPT_TX},
	{"rx", no_argument, NULL, OPT_RX},
	{"echo", no_argument, NULL, OPT_ECHO},
	{"pkt-size", required_argument, NULL, OPT_PKT_SIZE},
	{"pkt-sizes", required_argument, NULL, OPT_PKT_SIZES},
	{"count", required_argument, NULL, OPT_COUNT},
	{"duration-s", required_argument, NULL, OPT_DURATION},
	{"timeout-s", required_argument, NULL, OPT_TIMEOUT},
	{"rate-pps", required_argument, NULL, OPT_RATE},
	{"burst", required_argument, NULL, OPT_BURST},
	{"src-mac", required_argument, NULL, OPT_SRC_MAC},
	{"dst-mac", required_argument, NULL, OPT_DST_MAC},
	{"stream-id", required_argument, NULL, OPT_STREAM_ID},
	{"report-interval-s", required_argument, NULL, OPT_REPORT},
	{"idle-timeout-ms", required_argument, NULL, OPT_IDLE},
	{"drain-ms", required_argument, NULL, OPT_DRAIN},
	{"start-delay-ms", required_argument, NULL, OPT_START_DELAY},
	{"no-graceful-stop", no_argument, NULL, OPT_NO_GRACEFUL},
	{"no-yield", no_argument, NULL, OPT_NO_YIELD},
	{"idle-sleep-us", required_argument, NULL, OPT_IDLE_SLEEP},
	{"blk-ops", required_argument, NULL, OPT_BLK_OPS},
	{"blk-hostile", required_argument, NULL, OPT_BLK_HOSTILE},
	{"hostile-timeout-ms", required_argument, NULL, OPT_HOSTILE_TIMEOUT},
	{"op-timeout-ms", required_argument, NULL, OPT_OP_TIMEOUT},
	{"blk-load", no_argument, NULL, OPT_BLK_LOAD},
	{"qd", required_argument, NULL, OPT_QD},
	{"bs", required_argument, NULL, OPT_BS},
	{"rw-mix", required_argument, NULL, OPT_RW_MIX},
	{"flush-every", required_argument, NULL, OPT_FLUSH_EVERY},
	{"random", no_argument, NULL, OPT_RANDOM},
	{"seq", no_argument, NULL, OPT_SEQ},
	{"region-bytes", required_argument, NULL, OPT_REGION_BYTES},
	{"verify", no_argument, NULL, OPT_VERIFY},
	{"inflight", no_argument, NULL, OPT_INFLIGHT},
	{"reconnect-timeout-s", required_argument, NULL, OPT_RECONNECT_TIMEOUT},
	{"ack-log", required_argument, NULL, OPT_ACK_LOG},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static void
usage(FILE *f)
{
	fputs("usage: vhost-frontend (--socket PATH | --listen PATH) [options]\n"
	      "  connection: --connect-timeout-s S --reply-timeout-ms MS\n"
	      "  2nd device: --socket2 PATH | --listen2 PATH, --bidir\n"
	      "  device:     --kind net|blk --queues N --ring-size N --features-add HEX\n"
	      "              --features-drop HEX --protocol-features-drop HEX\n"
	      "  memory:     --mem-mb N --regions N\n"
	      "  iommu:      --iommu off|platform|viommu --iova-offset HEX --iotlb-prefill\n"
	      "              --miss-delay-ms N --miss-never --iotlb-page-size BYTES\n"
	      "              --rx-map-readonly --invalidate-after-ms N\n"
	      "  traffic:    --tx --rx --echo --pkt-size N --pkt-sizes A,B,.. --count N\n"
	      "              --duration-s S --rate-pps R --burst B --src-mac M --dst-mac M\n"
	      "              --stream-id N --start-delay-ms N --drain-ms N --idle-timeout-ms N\n"
	      "  blk:        --blk-ops \"OP;OP\" --op-timeout-ms N --blk-hostile KIND[,KIND]\n"
	      "              --hostile-timeout-ms N --blk-load --qd N --bs BYTES --rw-mix P\n"
	      "              --flush-every N --random|--seq --region-bytes B --verify --count N\n"
	      "              --duration-s S --inflight --reconnect-timeout-s S --ack-log FILE\n"
	      "  run:        --timeout-s S --report-interval-s S --no-graceful-stop --no-yield\n"
	      "              --idle-sleep-us N -v\n"
	      "JSON lines on stdout; see README.md.\n",
		f);
}

static int __attribute__((format(printf, 1, 2))) bad(const char *fmt, ...)
{
	char msg[256];
	struct fe_json j;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fe_json_begin(&j, "error");
	fe_json_str(&j, "reason", msg);
	fe_json_u64(&j, "exit_code", FE_EXIT_USAGE);
	fe_json_end(&j);
	fprintf(stderr, "vhost-frontend: %s\n", msg);
	usage(stderr);
	return -EINVAL;
}

static bool
parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s == '-' || *s == '\0')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 0);
	return errno == 0 && *end == '\0';
}

static bool
parse_uint(const char *s, unsigned int *v, unsigned int min, unsigned int max)
{
	uint64_t x;

	if (!parse_u64(s, &x) || x < min || x > max)
		return false;
	*v = (unsigned int)x;
	return true;
}

static bool
parse_dbl(const char *s, double *v)
{
	char *end;

	errno = 0;
	*v = strtod(s, &end);
	return errno == 0 && *end == '\0' && end != s && *v >= 0;
}

static bool
parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int b[6];
	char tail;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
		return false;
	for (int i = 0; i < 6; i++) {
		if (b[i] > 0xff)
			return false;
		mac[i] = (uint8_t)b[i];
	}
	return true;
}

static bool
parse_sizes(const char *s, struct fe_opts *o)
{
	char buf[256], *save = NULL, *tok;

	if (strlen(s) >= sizeof(buf))
		return false;
	strcpy(buf, s);
	o->n_pkt_sizes = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (o->n_pkt_sizes == FE_MAX_PKT_SIZES ||
			!parse_uint(tok, &o->pkt_sizes[o->n_pkt_sizes], FE_MIN_PKT, FE_MAX_PKT))
			return false;
		o->n_pkt_sizes++;
	}
	return o->n_pkt_sizes > 0;
}

static void
defaults(struct fe_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_s = 10;
	o->reply_timeout_ms = 5000;
	o->kind = FE_KIND_NET;
	o->queues = 1;
	o->ring_size = 256;
	o->iommu = FE_IOMMU_OFF;
	o->iova_offset = DEFAULT_IOVA_OFFSET;
	o->iotlb_page_size = DEFAULT_PAGE_SIZE;
	o->mem_mb = 64;
	o->regions = 1;
	o->pkt_sizes[0] = 64;
	o->n_pkt_sizes = 1;
	o->burst = 32;
	o->stream_id = (uint32_t)getpid();
	o->drain_ms = 1000;
	o->timeout_s = -1;
	memset(o->dst_mac, 0xff, 6);
	o->hostile_timeout_ms = 500;
	o->op_timeout_ms = 5000;
	o->qd = 1;
	o->bs = 4096;
	o->rw_mix = 100;
}

static int
check(struct fe_opts *o, bool have_src)
{
	uint64_t mem = (uint64_t)o->mem_mb << 20;
	char err[256];

	if (o->socket_path == NULL)
		return bad("exactly one of --socket or --listen is required");
	if (o->socket2_path != NULL && strcmp(o->socket2_path, o->socket_path) == 0)
		return bad("--socket2 must name another socket than --socket");
	if (o->bidir && o->socket2_path == NULL)
		return bad("--bidir needs --socket2 or --listen2");
	if (blk_check_opts(o, err, sizeof(err)) < 0)
		return bad("%s", err);
	if (o->ring_size < 2 || (o->ring_size & (o->ring_size - 1)) != 0)
		return bad("--ring-size must be a power of two in 2..32768");
	if (o->burst > o->ring_size)
		return bad("--burst must not exceed --ring-size");
	if (o->echo && o->tx)
		return bad("--echo and --tx are exclusive (--echo transmits what it receives)");
	if (o->iotlb_page_size < 4096 || (o->iotlb_page_size & (o->iotlb_page_size - 1)) != 0)
		return bad("--iotlb-page-size must be a power of two >= 4096");
	if (o->iommu == FE_IOMMU_VIOMMU && (o->iova_offset & (o->iotlb_page_size - 1)) != 0)
		return bad("--iova-offset must be a multiple of --iotlb-page-size");
	if (o->iova_offset + mem < o->iova_offset)
		return bad("--iova-offset too large");
	if (mem % o->regions != 0 || (mem / o->regions) % 4096 != 0)
		return bad("--mem-mb must split into --regions regions of whole 4 KiB pages");
	if (o->features_add & BIT64(VIRTIO_F_RING_PACKED))
		return bad("VIRTIO_F_RING_PACKED cannot be added: split ring only");
	if (o->miss_never && o->miss_delay_ms != 0)
		return bad("--miss-never and --miss-delay-ms are exclusive");
	if (!have_src) {
		/* Locally administered, unique per stream: learning bridges see distinct MACs. */
		o->src_mac[0] = 0x02;
		o->src_mac[1] = 0xfe;
		o->src_mac[2] = (uint8_t)(o->stream_id >> 24);
		o->src_mac[3] = (uint8_t)(o->stream_id >> 16);
		o->src_mac[4] = (uint8_t)(o->stream_id >> 8);
		o->src_mac[5] = (uint8_t)o->stream_id;
	}
	if (o->timeout_s < 0)
		o->timeout_s = o->duration_s > 0 ? o->duration_s + 30 : 60;
	return 0;
}

int
fe_parse_args(int argc, char **argv, struct fe_opts *o)
{
	bool have_src = false;
	uint64_t u = 0;
	int c, idx = 0;

	defaults(o);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "vh", long_opts, &idx)) != -1) {
		bool ok = true;

		switch (c) {
		case OPT_SOCKET:
			if (o->socket_path != NULL)
				return bad("exactly one of --socket or --listen is required");
			o->socket_path = optarg;
			break;
		case OPT_LISTEN:
			if (o->socket_path != NULL)
				return bad("exactly one of --socket or --listen is required");
			o->socket_path = optarg;
			o->listen = true;
			break;
		case OPT_SOCKET2:
		case OPT_LISTEN2:
			if (o->socket2_path != NULL)
				return bad("at most one of --socket2 or --listen2");
			o->socket2_path = optarg;
			o->listen2 = c == OPT_LISTEN2;
			break;
		case OPT_BIDIR:
			o->bidir = true;
			break;
		case OPT_CONNECT_TIMEOUT:
			ok = parse_dbl(optarg, &o->connect_timeout_s);
			break;
		case OPT_REPLY_TIMEOUT:
			ok = parse_uint(optarg, &o->reply_timeout_ms, 1, 3600000);
			break;
		case OPT_KIND:
			if (strcmp(optarg, "net") == 0)
				o->kind = FE_KIND_NET;
			else if (strcmp(optarg, "blk") == 0)
				o->kind = FE_KIND_BLK;
			else
				ok = false;
			break;
		case OPT_QUEUES:
			ok = parse_uint(optarg, &o->queues, 1, FE_MAX_QUEUE_PAIRS);
			break;
		case OPT_RING_SIZE:
			ok = parse_uint(optarg, &o->ring_size, 2, FE_MAX_RING_SIZE);
			break;
		case OPT_FEATURES_ADD:
			ok = parse_u64(optarg, &o->features_add);
			break;
		case OPT_FEATURES_DROP:
			ok = parse_u64(optarg, &o->features_drop);
			break;
		case OPT_PROTO_DROP:
			ok = parse_u64(optarg, &o->protocol_features_drop);
			break;
		case OPT_IOMMU:
			if (strcmp(optarg, "off") == 0)
				o->iommu = FE_IOMMU_OFF;
			else if (strcmp(optarg, "platform") == 0)
				o->iommu = FE_IOMMU_PLATFORM;
			else if (strcmp(optarg, "viommu") == 0)
				o->iommu = FE_IOMMU_VIOMMU;
			else
				ok = false;
			break;
		case OPT_IOVA_OFFSET:
			ok = parse_u64(optarg, &o->iova_offset);
			break;
		case OPT_IOTLB_PREFILL:
			o->iotlb_prefill = true;
			break;
		case OPT_MISS_DELAY:
			ok = parse_uint(optarg, &o->miss_delay_ms, 0, 3600000);
			break;
		case OPT_MISS_NEVER:
			o->miss_never = true;
			break;
		case OPT_PAGE_SIZE:
			ok = parse_u64(optarg, &o->iotlb_page_size);
			break;
		case OPT_RX_MAP_RO:
			o->rx_map_readonly = true;
			break;
		case OPT_INVALIDATE_AFTER:
			ok = parse_uint(optarg, &o->invalidate_after_ms, 1, 3600000);
			break;
		case OPT_MEM_MB:
			ok = parse_uint(optarg, &o->mem_mb, 1, 65536);
			break;
		case OPT_REGIONS:
			ok = parse_uint(optarg, &o->regions, 1, FE_MAX_REGIONS);
			break;
		case OPT_TX:
			o->tx = true;
			break;
		case OPT_RX:
			o->rx = true;
			break;
		case OPT_ECHO:
			o->echo = true;
			break;
		case OPT_PKT_SIZE:
			o->n_pkt_sizes = 1;
			ok = parse_uint(optarg, &o->pkt_sizes[0], FE_MIN_PKT, FE_MAX_PKT);
			break;
		case OPT_PKT_SIZES:
			ok = parse_sizes(optarg, o);
			break;
		case OPT_COUNT:
			ok = parse_u64(optarg, &o->count);
			break;
		case OPT_DURATION:
			ok = parse_dbl(optarg, &o->duration_s);
			break;
		case OPT_TIMEOUT:
			ok = parse_dbl(optarg, &o->timeout_s) && o->timeout_s > 0;
			break;
		case OPT_RATE:
			ok = parse_u64(optarg, &o->rate_pps);
			break;
		case OPT_BURST:
			ok = parse_uint(optarg, &o->burst, 1, FE_MAX_BURST);
			break;
		case OPT_SRC_MAC:
			ok = parse_mac(optarg, o->src_mac);
			have_src = true;
			break;
		case OPT_DST_MAC:
			ok = parse_mac(optarg, o->dst_mac);
			break;
		case OPT_STREAM_ID:
			ok = parse_u64(optarg, &u) && u <= UINT32_MAX;
			o->stream_id = (uint32_t)u;
			break;
		case OPT_REPORT:
			ok = parse_dbl(optarg, &o->report_interval_s);
			break;
		case OPT_IDLE:
			ok = parse_uint(optarg, &o->idle_timeout_ms, 0, 3600000);
			break;
		case OPT_DRAIN:
			ok = parse_uint(optarg, &o->drain_ms, 0, 3600000);
			break;
		case OPT_START_DELAY:
			ok = parse_uint(optarg, &o->start_delay_ms, 0, 3600000);
			break;
		case OPT_NO_GRACEFUL:
			o->no_graceful_stop = true;
			break;
		case OPT_NO_YIELD:
			o->no_yield = true;
			break;
		case OPT_IDLE_SLEEP:
			ok = parse_uint(optarg, &o->idle_sleep_us, 0, 100000);
			break;
		case OPT_BLK_OPS:
			o->blk_ops = optarg;
			break;
		case OPT_BLK_HOSTILE: {
			char err[256];

			if (blk_hostile_parse(optarg, o, err, sizeof(err)) < 0)
				return bad("%s", err);
			break;
		}
		case OPT_HOSTILE_TIMEOUT:
			ok = parse_uint(optarg, &o->hostile_timeout_ms, 1, 3600000);
			break;
		case OPT_OP_TIMEOUT:
			ok = parse_uint(optarg, &o->op_timeout_ms, 1, 3600000);
			break;
		case OPT_BLK_LOAD:
			o->blk_load = true;
			break;
		case OPT_QD:
			ok = parse_uint(optarg, &o->qd, 1, FE_MAX_RING_SIZE);
			break;
		case OPT_BS:
			ok = parse_u64(optarg, &o->bs);
			break;
		case OPT_RW_MIX:
			ok = parse_uint(optarg, &o->rw_mix, 0, 100);
			break;
		case OPT_FLUSH_EVERY:
			ok = parse_uint(optarg, &o->flush_every, 0, 1000000);
			break;
		case OPT_RANDOM:
			o->seq = false;
			break;
		case OPT_SEQ:
			o->seq = true;
			break;
		case OPT_REGION_BYTES:
			ok = parse_u64(optarg, &o->region_bytes);
			break;
		case OPT_VERIFY:
			o->verify = true;
			break;
		case OPT_INFLIGHT:
			o->inflight = true;
			break;
		case OPT_RECONNECT_TIMEOUT:
			ok = parse_dbl(optarg, &o->reconnect_timeout_s);
			break;
		case OPT_ACK_LOG:
			o->ack_log = optarg;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return bad("unknown option or missing argument: %s", argv[optind - 1]);
		}
		if (!ok)
			return bad("bad value for --%s: '%s'", long_opts[idx].name, optarg);
	}
	if (optind < argc)
		return bad("unexpected argument: %s", argv[optind]);
	return check(o, have_src);
}
