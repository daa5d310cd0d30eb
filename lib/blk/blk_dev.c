/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Control side of a blk device: the backing, its capabilities, the config space, and setting
 * a session's queues up and down. Runs on the control thread or the vhost-events thread, never
 * while a worker polls the queues it touches.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_lcore.h>

#include "blk_internal.h"

/* virtio 1.2 section 5.2.4, little-endian (x86). */
struct blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	struct {
		uint16_t cylinders;
		uint8_t heads;
		uint8_t sectors;
	} geometry;
	uint32_t blk_size;
	struct {
		uint8_t physical_block_exp;
		uint8_t alignment_offset;
		uint16_t min_io_size;
		uint32_t opt_io_size;
	} topology;
	uint8_t writeback;
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

struct blk_dev {
	bool paused; /* written by control/vhost-events (release), read by workers (acquire) */
	int fd;
	struct blk_limits lim;
	uint32_t block_size;
	uint32_t nb_queues;
	char serial[BLK_ID_BYTES + 1];
	struct blk_config config;
	/* The running session, if any. */
	int vid;
	unsigned int nb_active;
	struct rte_vhost_memory *mem;
	struct blk_queue *queues[BLK_QUEUES_MAX];
	struct blk_queue_stats past[BLK_QUEUES_MAX]; /* of sessions that ended */
};

/* fallocate() the given mode on a range past the end, where KEEP_SIZE changes nothing. */
static bool
supports(int fd, int mode, uint64_t capacity, bool blockdev)
{
	if (blockdev)
		return fallocate(fd, mode | FALLOC_FL_KEEP_SIZE, 0, 0) == 0 || errno == EINVAL;
	return fallocate(fd, mode | FALLOC_FL_KEEP_SIZE, (off_t)capacity + (1 << 20), 4096) == 0;
}

struct blk_dev *
blk_dev_open(const char *backing, bool readonly, uint32_t block_size, uint32_t queues,
	const char *serial, struct base_error *err)
{
	struct blk_dev *dev;
	struct stat st;
	uint64_t size = 0;
	bool blockdev;
	int fd, e;

	if (queues == 0 || queues > BLK_QUEUES_MAX) {
		base_error_set(
			err, ERANGE, "queues", "a blk device has 1 to %d queues", BLK_QUEUES_MAX);
		return NULL;
	}
	fd = open(backing, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		base_error_set(err, e, "backing", "cannot open %s%s: %s", backing,
			readonly ? " read-only" : " read-write", strerror(e));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
		base_error_set(err, EINVAL, "backing", "%s is not a regular file or block device",
			backing);
		goto fail;
	}
	blockdev = S_ISBLK(st.st_mode);
	if (blockdev ? ioctl(fd, BLKGETSIZE64, &size) < 0 : (size = (uint64_t)st.st_size, 0))
		size = 0;
	size -= size % BLK_SECTOR;
	if (size == 0) {
		base_error_set(err, EINVAL, "backing",
			"%s is empty: a disk needs at least %d bytes", backing, BLK_SECTOR);
		goto fail;
	}
	dev = calloc(1, sizeof(*dev));
	if (dev == NULL) {
		base_error_set(err, ENOMEM, NULL, "out of memory");
		goto fail;
	}
	dev->fd = fd;
	dev->vid = -1;
	dev->block_size = block_size;
	dev->nb_queues = queues;
	snprintf(dev->serial, sizeof(dev->serial), "%s", serial);
	dev->lim.capacity = size;
	dev->lim.readonly = readonly;
	dev->lim.discard = !readonly && supports(fd, FALLOC_FL_PUNCH_HOLE, size, blockdev);
	dev->lim.write_zeroes = !readonly && supports(fd, FALLOC_FL_ZERO_RANGE, size, blockdev);

	dev->config.capacity = size / BLK_SECTOR;
	dev->config.size_max = BLK_SIZE_MAX;
	dev->config.seg_max = BLK_SEG_MAX;
	dev->config.blk_size = block_size;
	dev->config.topology.min_io_size = 1;
	dev->config.num_queues = (uint16_t)queues;
	dev->config.max_discard_sectors = BLK_DWZ_SECTORS_MAX;
	dev->config.max_discard_seg = BLK_DWZ_SEG_MAX;
	dev->config.discard_sector_alignment = block_size / BLK_SECTOR;
	dev->config.max_write_zeroes_sectors = BLK_DWZ_SECTORS_MAX;
	dev->config.max_write_zeroes_seg = BLK_DWZ_SEG_MAX;
	dev->config.write_zeroes_may_unmap = dev->lim.discard;
	return dev;
fail:
	close(fd);
	return NULL;
}

void
blk_dev_close(struct blk_dev *dev)
{
	if (dev == NULL)
		return;
	blk_dev_quiesce(dev, true);
	close(dev->fd);
	free(dev);
}

uint64_t
blk_dev_features(const struct blk_dev *dev)
{
	uint64_t f = (1ULL << BLK_F_SIZE_MAX) | (1ULL << BLK_F_SEG_MAX) | (1ULL << BLK_F_BLK_SIZE) |
		     (1ULL << BLK_F_FLUSH) | (1ULL << BLK_F_TOPOLOGY) | (1ULL << BLK_F_MQ);

	if (dev->lim.readonly)
		f |= 1ULL << BLK_F_RO;
	if (dev->lim.discard)
		f |= 1ULL << BLK_F_DISCARD;
	if (dev->lim.write_zeroes)
		f |= 1ULL << BLK_F_WRITE_ZEROES;
	return f;
}

uint64_t
blk_dev_capacity(const struct blk_dev *dev)
{
	return dev->lim.capacity;
}

int
blk_dev_config(const struct blk_dev *dev, void *buf, uint32_t offset, uint32_t size)
{
	if (offset > sizeof(dev->config) || size > sizeof(dev->config) - offset)
		return -EINVAL;
	memcpy(buf, (const uint8_t *)&dev->config + offset, size);
	return 0;
}

static void
queue_free(struct blk_queue *q)
{
	if (q == NULL)
		return;
	if (q->use_uring)
		io_uring_queue_exit(&q->ring);
	free(q->resubmit);
	free(q->reqs);
	free(q);
}

/* The resubmission list librte_vhost built from the inflight region, oldest first. */
static int
load_resubmit(struct blk_queue *q)
{
	struct rte_vhost_ring_inflight inf;
	struct rte_vhost_resubmit_info *rs;
	uint16_t i;

	if (rte_vhost_get_vhost_ring_inflight(q->vid, q->vring_idx, &inf) != 0)
		return 0; /* the frontend does not track inflight I/O */
	rs = inf.resubmit_inflight;
	if (rs == NULL || rs->resubmit_num == 0)
		return 0;
	q->resubmit = calloc(rs->resubmit_num, sizeof(q->resubmit[0]));
	if (q->resubmit == NULL)
		return -ENOMEM;
	for (i = 0; i < rs->resubmit_num; i++)
		q->resubmit[i] = rs->resubmit_list[i].index;
	q->nb_resubmit = (uint16_t)rs->resubmit_num;
	return 0;
}

/*
 * io_uring runs what cannot complete inline (buffered writes, fsync, fallocate) on io-wq
 * kernel threads. Left anywhere, they land on the workers' cores and fight the busy-polling
 * workers for them; keep them on the control thread's cores, which are idle.
 */
static void
pin_helpers(struct io_uring *ring)
{
	rte_cpuset_t cpus = rte_lcore_cpuset(rte_get_main_lcore());

	io_uring_register_iowq_aff(ring, sizeof(cpus), &cpus);
}

static int
queue_setup(struct blk_dev *dev, unsigned int idx, struct blk_queue **out, struct base_error *err)
{
	struct blk_queue *q = calloc(1, sizeof(*q));
	uint16_t last_avail, last_used;

	if (q == NULL)
		return base_error_set(err, ENOMEM, NULL, "out of memory");
	q->dev = dev;
	q->vid = dev->vid;
	q->vring_idx = (uint16_t)idx;
	q->fd = dev->fd;
	q->lim = dev->lim;
	q->serial = dev->serial;
	q->mem = dev->mem;
	if (rte_vhost_get_vhost_vring(dev->vid, (uint16_t)idx, &q->vring) != 0 ||
		q->vring.size == 0 || q->vring.desc == NULL || q->vring.avail == NULL ||
		q->vring.used == NULL) {
		free(q);
		return base_error_set(err, EINVAL, NULL, "vring %u is not set up", idx);
	}
	q->size = q->vring.size;
	rte_vhost_get_vring_base(dev->vid, (uint16_t)idx, &last_avail, &last_used);
	q->last_avail_idx = last_avail;
	/* The used index in guest memory is the truth after a restart. */
	q->last_used_idx = __atomic_load_n(&q->vring.used->idx, __ATOMIC_ACQUIRE);
	q->reqs = calloc(q->size, sizeof(q->reqs[0]));
	if (q->reqs == NULL || load_resubmit(q) < 0) {
		queue_free(q);
		return base_error_set(err, ENOMEM, NULL, "out of memory");
	}
	q->use_uring = io_uring_queue_init(rte_align32pow2(q->size), &q->ring, 0) == 0;
	q->inline_write_max_cycles = rte_get_tsc_hz() / 1000000 * BLK_INLINE_WRITE_MAX_US;
	q->async_writes_max_cycles = rte_get_tsc_hz() / 1000 * BLK_ASYNC_WRITES_MAX_MS;
	if (q->use_uring)
		pin_helpers(&q->ring);
	*out = q;
	return 0;
}

int
blk_dev_start(struct blk_dev *dev, int vid, struct base_error *err)
{
	uint16_t n = rte_vhost_get_vring_num(vid);
	unsigned int i;
	int rc;

	if (n == 0 || n > dev->nb_queues)
		return base_error_set(err, EINVAL, NULL,
			"the frontend set up %u queues; the device has %u", n, dev->nb_queues);
	dev->vid = vid;
	if (rte_vhost_get_mem_table(vid, &dev->mem) != 0)
		return base_error_set(err, EINVAL, NULL, "no guest memory table");
	for (i = 0; i < n; i++) {
		rc = queue_setup(dev, i, &dev->queues[i], err);
		if (rc < 0) {
			dev->nb_active = i;
			blk_dev_quiesce(dev, true);
			return rc;
		}
	}
	dev->nb_active = n;
	blk_dev_set_paused(dev, false);
	return n;
}

struct blk_queue *
blk_dev_queue(struct blk_dev *dev, unsigned int q)
{
	return q < dev->nb_active ? dev->queues[q] : NULL;
}

static void
stats_add(struct blk_queue_stats *dst, const struct blk_queue_stats *src)
{
	const uint64_t *s = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;
	size_t i;

	for (i = 0; i < sizeof(*src) / sizeof(uint64_t); i++)
		d[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

void
blk_dev_quiesce(struct blk_dev *dev, bool release)
{
	struct blk_queue *q;
	unsigned int i;

	for (i = 0; i < dev->nb_active; i++) {
		q = dev->queues[i];
		blk_queue_drain(q);
		/* GET_VRING_BASE answers with what librte_vhost holds: tell it where we are. */
		rte_vhost_set_vring_base(
			dev->vid, q->vring_idx, q->last_avail_idx, q->last_used_idx);
		if (release) {
			q->st.inflight = 0;
			stats_add(&dev->past[i], &q->st);
			queue_free(q);
			dev->queues[i] = NULL;
		}
	}
	if (release) {
		dev->nb_active = 0;
		free(dev->mem);
		dev->mem = NULL;
		dev->vid = -1;
	}
}

int
blk_dev_resume(struct blk_dev *dev)
{
	struct rte_vhost_memory *mem;
	struct blk_queue *q;
	unsigned int i;

	if (dev->vid < 0 || rte_vhost_get_mem_table(dev->vid, &mem) != 0)
		return -EINVAL;
	free(dev->mem);
	dev->mem = mem;
	for (i = 0; i < dev->nb_active; i++) {
		q = dev->queues[i];
		q->mem = mem;
		if (rte_vhost_get_vhost_vring(dev->vid, q->vring_idx, &q->vring) != 0 ||
			q->vring.size != q->size)
			return -EINVAL;
	}
	return 0;
}

void
blk_dev_set_paused(struct blk_dev *dev, bool paused)
{
	__atomic_store_n(&dev->paused, paused, __ATOMIC_RELEASE);
}

bool
blk_dev_paused(const struct blk_dev *dev)
{
	return __atomic_load_n(&dev->paused, __ATOMIC_ACQUIRE);
}

void
blk_dev_stats(const struct blk_dev *dev, unsigned int q, struct blk_queue_stats *out)
{
	if (q >= BLK_QUEUES_MAX)
		return;
	stats_add(out, &dev->past[q]);
	if (q < dev->nb_active)
		stats_add(out, &dev->queues[q]->st);
}
