/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * blk_parse() against hand-built rings and guest memory: valid requests, and every hostile
 * chain the frontend could send. Each row says which status it expected and which came.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blk_internal.h"

#define GPA_BASE 0x100000ULL
#define MEM_SIZE (4u << 20)
#define RING	 16

static uint8_t *guest;
static struct rte_vhost_memory *mem;
static struct vring_desc desc[RING];
static struct blk_limits lim = {.capacity = 1 << 20, .discard = true, .write_zeroes = true};
static struct blk_req req;

/* Guest memory: one region at GPA_BASE. Offsets below are from GPA_BASE. */
static int
setup(void **state)
{
	(void)state;
	guest = calloc(1, MEM_SIZE);
	mem = calloc(1, sizeof(*mem) + sizeof(mem->regions[0]));
	mem->nregions = 1;
	mem->regions[0].guest_phys_addr = GPA_BASE;
	mem->regions[0].size = MEM_SIZE;
	mem->regions[0].host_user_addr = (uint64_t)(uintptr_t)guest;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(guest);
	free(mem);
	return 0;
}

static void
set_desc(
	struct vring_desc *d, uint16_t i, uint64_t off, uint32_t len, uint16_t flags, uint16_t next)
{
	d[i].addr = GPA_BASE + off;
	d[i].len = len;
	d[i].flags = flags;
	d[i].next = next;
}

static void
header(uint64_t off, uint32_t type, uint64_t sector)
{
	struct blk_outhdr h = {.type = type, .sector = sector};

	memcpy(guest + off, &h, sizeof(h));
}

/* header desc 0 -> data desc 1 -> status desc 2 */
static void
three(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable)
{
	memset(desc, 0, sizeof(desc));
	header(0, type, sector);
	set_desc(desc, 0, 0, 16, VRING_DESC_F_NEXT, 1);
	set_desc(desc, 1, 4096, data_len,
		VRING_DESC_F_NEXT | (data_writable ? VRING_DESC_F_WRITE : 0), 2);
	set_desc(desc, 2, 8192, 1, VRING_DESC_F_WRITE, 0);
}

static int
parse(void)
{
	memset(&req, 0, sizeof(req));
	return blk_parse(desc, RING, mem, &lim, 0, &req);
}

static void
valid_read_and_write(void **state)
{
	(void)state;
	three(BLK_T_IN, 8, 4096, true);
	assert_int_equal(parse(), BLK_S_OK);
	assert_int_equal(req.offset, 8 * 512);
	assert_int_equal(req.len, 4096);
	assert_int_equal(req.niov, 1);
	assert_ptr_equal(req.iov[0].iov_base, guest + 4096);
	assert_ptr_equal(req.status, guest + 8192);
	assert_int_equal(req.used_len, 4097);

	three(BLK_T_OUT, 0, 1024, false);
	assert_int_equal(parse(), BLK_S_OK);
	assert_int_equal(req.len, 1024);
	assert_int_equal(req.used_len, 1);
}

static void
any_layout_header_data_status_in_two_descriptors(void **state)
{
	(void)state;
	memset(desc, 0, sizeof(desc));
	header(0, BLK_T_OUT, 2);
	set_desc(desc, 0, 0, 16 + 512, VRING_DESC_F_NEXT, 1); /* header + data */
	set_desc(desc, 1, 8192, 1, VRING_DESC_F_WRITE, 0);
	assert_int_equal(parse(), BLK_S_OK);
	assert_int_equal(req.len, 512);
	assert_ptr_equal(req.iov[0].iov_base, guest + 16);
}

static void
indirect_table(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(guest + 65536);

	(void)state;
	memset(desc, 0, sizeof(desc));
	header(0, BLK_T_IN, 0);
	set_desc(table, 0, 0, 16, VRING_DESC_F_NEXT, 1);
	set_desc(table, 1, 4096, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 2);
	set_desc(table, 2, 8192, 1, VRING_DESC_F_WRITE, 0);
	set_desc(desc, 0, 65536, 3 * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(parse(), BLK_S_OK);
	assert_int_equal(req.len, 512);

	table[2].flags |= VRING_DESC_F_NEXT; /* loops back to entry 0 */
	table[2].next = 0;
	assert_int_equal(parse(), BLK_S_IOERR);

	table[2].flags = VRING_DESC_F_WRITE;
	table[1].flags |= VRING_DESC_F_INDIRECT; /* nested table */
	assert_int_equal(parse(), BLK_S_IOERR);
	table[1].flags &= ~VRING_DESC_F_INDIRECT;

	desc[0].len = 3 * 16 + 1; /* not a whole number of entries */
	assert_int_equal(parse(), BLK_S_IOERR);
}

/* Hostile chains: the status expected, and whether a status byte could be found. */
static void
hostile_chains(void **state)
{
	(void)state;

	/* loop: 0 -> 1 -> 0 */
	three(BLK_T_IN, 0, 512, true);
	desc[1].next = 0;
	assert_int_equal(parse(), BLK_S_IOERR);
	assert_null(req.status);

	/* next index past the ring */
	three(BLK_T_IN, 0, 512, true);
	desc[1].next = RING + 3;
	assert_int_equal(parse(), BLK_S_IOERR);

	/* a data buffer outside guest memory: IOERR, status still reported */
	three(BLK_T_IN, 0, 512, true);
	desc[1].addr = GPA_BASE + MEM_SIZE + 4096;
	assert_int_equal(parse(), BLK_S_IOERR);
	assert_ptr_equal(req.status, guest + 8192);

	/* a buffer that starts inside memory and runs past its end */
	three(BLK_T_IN, 0, 8192, true);
	desc[1].addr = GPA_BASE + MEM_SIZE - 4096;
	assert_int_equal(parse(), BLK_S_IOERR);

	/* an 8-byte header */
	three(BLK_T_IN, 0, 512, true);
	desc[0].len = 8;
	assert_int_equal(parse(), BLK_S_IOERR);

	/* no device-writable byte at all: nowhere to put a status */
	three(BLK_T_OUT, 0, 512, false);
	desc[2].flags = 0;
	assert_int_equal(parse(), BLK_S_IOERR);
	assert_null(req.status);

	/* a device-readable descriptor after a writable one */
	three(BLK_T_IN, 0, 512, true);
	desc[2].flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE;
	desc[2].next = 3;
	set_desc(desc, 3, 12288, 1, 0, 0);
	assert_int_equal(parse(), BLK_S_IOERR);

	/* past the capacity, and straddling it */
	three(BLK_T_IN, lim.capacity / 512, 512, true);
	assert_int_equal(parse(), BLK_S_IOERR);
	three(BLK_T_IN, lim.capacity / 512 - 1, 1024, true);
	assert_int_equal(parse(), BLK_S_IOERR);
	three(BLK_T_IN, UINT64_MAX / 256, 512, true); /* sector * 512 would overflow */
	assert_int_equal(parse(), BLK_S_IOERR);

	/* a length that is not whole sectors */
	three(BLK_T_OUT, 0, 1000, false);
	assert_int_equal(parse(), BLK_S_IOERR);

	/* an unknown request type */
	three(0x7777, 0, 512, true);
	assert_int_equal(parse(), BLK_S_UNSUPP);
	assert_ptr_equal(req.status, guest + 8192);
}

static void
too_many_segments(void **state)
{
	struct vring_desc *table = (struct vring_desc *)(guest + 131072);
	uint16_t i, n = BLK_SEG_MAX + 3;

	(void)state;
	header(0, BLK_T_OUT, 0);
	set_desc(table, 0, 0, 16, VRING_DESC_F_NEXT, 1);
	for (i = 1; i < n - 1; i++)
		set_desc(table, i, 4096 + i * 512, 512, VRING_DESC_F_NEXT, i + 1);
	set_desc(table, n - 1, 8192 * 16, 1, VRING_DESC_F_WRITE, 0);
	memset(desc, 0, sizeof(desc));
	set_desc(desc, 0, 131072, n * 16, VRING_DESC_F_INDIRECT, 0);
	assert_int_equal(parse(), BLK_S_IOERR);
	assert_non_null(req.status);
}

static void
readonly_discard_and_get_id(void **state)
{
	struct blk_dwz_range range = {.sector = 0, .num_sectors = 8, .flags = 0};

	(void)state;
	lim.readonly = true;
	three(BLK_T_OUT, 0, 512, false);
	assert_int_equal(parse(), BLK_S_IOERR);
	three(BLK_T_IN, 0, 512, true);
	assert_int_equal(parse(), BLK_S_OK);
	lim.readonly = false;

	three(BLK_T_DISCARD, 0, sizeof(range), false);
	memcpy(guest + 4096, &range, sizeof(range));
	assert_int_equal(parse(), BLK_S_OK);
	assert_int_equal(req.len, 8 * 512);
	range.flags = 1; /* UNMAP is for WRITE_ZEROES only */
	memcpy(guest + 4096, &range, sizeof(range));
	assert_int_equal(parse(), BLK_S_UNSUPP);
	three(BLK_T_WRITE_ZEROES, 0, sizeof(range), false);
	assert_int_equal(parse(), BLK_S_OK);
	lim.write_zeroes = false;
	assert_int_equal(parse(), BLK_S_UNSUPP);
	lim.write_zeroes = true;

	three(BLK_T_GET_ID, 0, 64, true);
	assert_int_equal(parse(), BLK_S_OK);
	assert_int_equal(req.len, BLK_ID_BYTES);
	assert_int_equal(req.used_len, BLK_ID_BYTES + 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_read_and_write),
		cmocka_unit_test(any_layout_header_data_status_in_two_descriptors),
		cmocka_unit_test(indirect_table),
		cmocka_unit_test(hostile_chains),
		cmocka_unit_test(too_many_segments),
		cmocka_unit_test(readonly_discard_and_get_id),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
