// SPDX-License-Identifier: GPL-2.0
/*
 * CPU mappings of the dma-buf: mmap() of a buffer of scattered ranges is
 * one mapping of the ranges' bytes in request order, with the semantics of
 * vfio-pci's own BAR mmap.  The BAR is memory (ivshmem-plain, bound to
 * vfio-pci); the region's VFIO mmap is the reference view of it.
 *
 * What is checked: data both ways, page by page; partial mappings, munmap
 * and mremap; refusals (private, past the end, write on a read-only
 * buffer, now and through mprotect); fork; and every revocation trigger:
 * SIGBUS while revoked, the pages gone from the page tables when the
 * trigger returns (the next access faults again: counted with the
 * thread's minor faults), the data back after restore; a buffer whose
 * device was closed cannot be mapped and is SIGBUS for good.
 *
 * Stays out of the windows vfio_dmabuf_data leaves for the host's file
 * check (the BAR's first 9 pages, its last 2, and around 1/4 and 1/2 of
 * it): every range here is at 1/8, 3/4 or 5/8 of the BAR.
 *
 * Needs VFIO_DMABUF_MEMDEV (bound to vfio-pci): see vfio_dmabuf_util.h.
 */

#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <linux/dma-buf.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest_harness.h"

#define BAR 2
#define NR 6
#define MANY 4096

/* Minor faults of the calling thread so far. */
static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_minflt;
}

/* ---- the buffer's layout ----------------------------------------------- */

/* Word @w (8-byte index) of pattern @seed. */
static uint64_t word(uint32_t seed, uint64_t w)
{
	return ((uint64_t)seed << 40) ^ (w * 0x9e3779b97f4a7c15ULL >> 24) ^ w;
}

/* BAR offset of buffer byte @b of ranges @r, or -1 past the end. */
static int64_t bar_off(const struct vfio_region_dma_range *r, int n, uint64_t b)
{
	for (int i = 0; i < n; i++) {
		if (b < r[i].length)
			return r[i].offset + b;
		b -= r[i].length;
	}
	return -1;
}

static uint64_t total_of(const struct vfio_region_dma_range *r, int n)
{
	uint64_t t = 0;

	for (int i = 0; i < n; i++)
		t += r[i].length;
	return t;
}

FIXTURE(mmap) {
	struct vdev d;
	uint8_t *bar;			/* the region's VFIO mmap */
	uint64_t bar_size;
	struct vfio_region_dma_range r[NR];
	uint64_t total;
	int buf;
};

FIXTURE_SETUP(mmap)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = BAR };
	const char *memdev = getenv("VFIO_DMABUF_MEMDEV");
	uint64_t s, e, q;

	self->bar = MAP_FAILED;
	self->d.fd = -1;
	self->buf = -1;
	if (!memdev || !*memdev)
		SKIP(return, "VFIO_DMABUF_MEMDEV is not set (run through run.sh)");
	probe_init();
	ASSERT_EQ(0, vdev_open(&self->d, memdev));
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_REGION_INFO, &reg));
	ASSERT_TRUE(reg.flags & VFIO_REGION_INFO_FLAG_MMAP);
	s = reg.size;
	self->bar_size = s;
	ASSERT_GE(s, 64 * 1024 * PAGE);
	self->bar = mmap(NULL, s, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->d.fd, reg.offset);
	ASSERT_NE(MAP_FAILED, self->bar);
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));

	/*
	 * Out of BAR order: a range at 3/4 (above 4 GiB on an 8 GiB BAR),
	 * two that follow each other in the BAR, single pages, a 64 KiB range.
	 */
	e = s / 8, q = s / 4 * 3;
	self->r[0] = (struct vfio_region_dma_range){ q + 3 * PAGE, 2 * PAGE };
	self->r[1] = (struct vfio_region_dma_range){ e, PAGE };
	self->r[2] = (struct vfio_region_dma_range){ e + PAGE, 3 * PAGE };
	self->r[3] = (struct vfio_region_dma_range){ e + 9 * PAGE, PAGE };
	self->r[4] = (struct vfio_region_dma_range){ s / 8 * 5, 16 * PAGE };
	self->r[5] = (struct vfio_region_dma_range){ e + 11 * PAGE, PAGE };
	self->total = total_of(self->r, NR);
	self->buf = dmabuf_create(self->d.fd, BAR, NR, self->r);
	ASSERT_GE(self->buf, 0);
}

FIXTURE_TEARDOWN(mmap)
{
	if (self->buf >= 0)
		close(self->buf);
	if (self->bar != MAP_FAILED)
		munmap(self->bar, self->bar_size);
	vdev_close(&self->d);
}

/* Writes pattern @seed into the ranges through the region's mmap. */
static void bar_fill(uint8_t *bar, const struct vfio_region_dma_range *r,
		     int n, uint32_t seed)
{
	uint64_t t = total_of(r, n);

	for (uint64_t b = 0; b < t; b += 8)
		st64(bar + bar_off(r, n, b), word(seed, b / 8));
}

/*
 * Words of buffer bytes [@from, @from + @len) that differ from pattern
 * @seed, read through @map (the buffer's page @from / PAGE at @map) or,
 * with @map NULL, through the region's mmap.  A fault fails the test.
 */
static uint64_t __check(struct __test_metadata *_metadata, uint8_t *bar,
			const struct vfio_region_dma_range *r, int n,
			uint8_t *map, uint64_t from, uint64_t len,
			uint32_t seed)
{
	uint64_t bad = 0, v;

	for (uint64_t b = from; b < from + len; b += 8) {
		uint8_t *p = map ? map + b - from : bar + bar_off(r, n, b);

		EXPECT_EQ(0, probe(p, 0, 0, &v));
		if (v != word(seed, b / 8) && !bad++)
			printf("# buffer offset 0x%llx (BAR 0x%llx): 0x%llx, want 0x%llx\n",
			       (unsigned long long)b,
			       (unsigned long long)bar_off(r, n, b),
			       (unsigned long long)v,
			       (unsigned long long)word(seed, b / 8));
	}
	return bad;
}

#define check(map, from, len, seed)					\
	__check(_metadata, self->bar, self->r, NR, map, from, len, seed)

/* Maps the whole buffer shared, read-write. */
static uint8_t *map_all(int buf, uint64_t total)
{
	return mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
}

/* Every page of the mapping: 0 when each access raised @sig (0: none). */
static int every_page(uint8_t *map, uint64_t total, int sig)
{
	int wrong = 0;

	for (uint64_t b = 0; b < total; b += PAGE)
		wrong += probe(map + b, 0, 0, NULL) != sig;
	return wrong;
}

TEST_F(mmap, data_both_ways)
{
	struct vfio_region_dma_range twice[2] = {
		{ self->r[3].offset, PAGE }, { self->r[3].offset, PAGE },
	};
	uint8_t *map;
	int buf;

	map = map_all(self->buf, self->total);
	ASSERT_NE(MAP_FAILED, map);
	/* BAR to mapping: every word at its buffer offset */
	bar_fill(self->bar, self->r, NR, 1);
	ASSERT_EQ(0, check(map, 0, self->total, 1));
	/* mapping to BAR */
	for (uint64_t b = 0; b < self->total; b += 8)
		st64(map + b, word(2, b / 8));
	ASSERT_EQ(0, check(NULL, 0, self->total, 2));
	ASSERT_EQ(0, munmap(map, self->total));

	/* a page named twice is one page, seen at both buffer offsets */
	buf = dmabuf_create(self->d.fd, BAR, 2, twice);
	ASSERT_GE(buf, 0);
	map = map_all(buf, 2 * PAGE);
	ASSERT_NE(MAP_FAILED, map);
	st64(map + PAGE + 16, word(9, 1));
	ASSERT_EQ(word(9, 1), ld64(map + 16));
	ASSERT_EQ(word(9, 1), ld64(self->bar + twice[0].offset + 16));
	munmap(map, 2 * PAGE);
	close(buf);
}

/* Part of the buffer from a page offset; munmap of a page in the middle. */
TEST_F(mmap, offset_and_partial_unmap)
{
	uint8_t *map;

	bar_fill(self->bar, self->r, NR, 3);
	/* buffer pages 2..13: the range pair, a single page, into 64 KiB */
	map = mmap(NULL, 12 * PAGE, PROT_READ, MAP_SHARED, self->buf, 2 * PAGE);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, check(map, 2 * PAGE, 12 * PAGE, 3));
	ASSERT_EQ(0, munmap(map + 4 * PAGE, PAGE));
	ASSERT_EQ(SIGSEGV, probe(map + 4 * PAGE, 0, 0, NULL));
	ASSERT_EQ(0, check(map, 2 * PAGE, 4 * PAGE, 3));
	ASSERT_EQ(0, check(map + 5 * PAGE, 7 * PAGE, 7 * PAGE, 3));
	munmap(map, 4 * PAGE);
	munmap(map + 5 * PAGE, 7 * PAGE);
	/* the last page alone */
	map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->buf, self->total - PAGE);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, check(map, self->total - PAGE, PAGE, 3));
	munmap(map, PAGE);
}

TEST_F(mmap, refusals)
{
	struct dma_buf_sync sync = { DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
	uint64_t t = self->total;
	uint8_t *map, *moved;
	int ro, wo;

	/* private mappings: EINVAL, as the region's mmap */
	errno = 0;
	ASSERT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, self->buf, 0));
	ASSERT_EQ(EINVAL, errno);
	/* past the end, by length or by offset */
	ASSERT_EQ(MAP_FAILED, mmap(NULL, t + PAGE, PROT_READ, MAP_SHARED, self->buf, 0));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->buf, t));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(MAP_FAILED, mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, self->buf,
				   t - PAGE));
	ASSERT_EQ(EINVAL, errno);

	/* a read-only buffer: no writable mapping, now or later */
	ro = dmabuf_create_ex(self->d.fd, BAR, O_RDONLY, 0, NR, self->r, NR, 0);
	ASSERT_GE(ro, 0);
	ASSERT_EQ(MAP_FAILED, mmap(NULL, t, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0));
	ASSERT_EQ(EACCES, errno);
	map = mmap(NULL, t, PROT_READ, MAP_SHARED, ro, 0);
	ASSERT_NE(MAP_FAILED, map);
	bar_fill(self->bar, self->r, NR, 4);
	ASSERT_EQ(0, check(map, 0, t, 4));
	ASSERT_EQ(-1, mprotect(map, PAGE, PROT_READ | PROT_WRITE));
	ASSERT_EQ(EACCES, errno);
	ASSERT_EQ(SIGSEGV, probe(map, 1, 0, NULL));
	ASSERT_EQ(0, check(NULL, 0, t, 4));
	munmap(map, t);
	close(ro);
	/* a write-only buffer cannot be mapped at all (the VFS wants read) */
	wo = dmabuf_create_ex(self->d.fd, BAR, O_WRONLY, 0, NR, self->r, NR, 0);
	ASSERT_GE(wo, 0);
	ASSERT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_WRITE, MAP_SHARED, wo, 0));
	ASSERT_EQ(EACCES, errno);
	close(wo);

	/* not expandable; moved whole, it maps the same bytes */
	map = map_all(self->buf, t);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(MAP_FAILED, mremap(map, t, t + PAGE, 0));
	ASSERT_EQ(MAP_FAILED, mremap(map, t, t + PAGE, MREMAP_MAYMOVE));
	moved = mmap(NULL, t, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, moved);
	ASSERT_EQ(moved, mremap(map, t, t, MREMAP_MAYMOVE | MREMAP_FIXED, moved));
	ASSERT_EQ(0, check(moved, 0, t, 4));
	/* shrunk: the rest still maps the first pages */
	ASSERT_EQ(moved, mremap(moved, t, 2 * PAGE, 0));
	ASSERT_EQ(0, check(moved, 0, 2 * PAGE, 4));
	munmap(moved, 2 * PAGE);

	/*
	 * DMA_BUF_IOCTL_SYNC is accepted: it waits for the importers' fences
	 * and has no caches to maintain (the mapping is uncached).
	 */
	ASSERT_EQ(0, ioctl(self->buf, DMA_BUF_IOCTL_SYNC, &sync));
	sync.flags = DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW;
	ASSERT_EQ(0, ioctl(self->buf, DMA_BUF_IOCTL_SYNC, &sync));
	/* no kernel mapping: it could not be revoked */
	ASSERT_EQ(-EINVAL, importer_vmap(self->buf));
}

/* One VMA for a buffer of MANY ranges, every page where it belongs. */
TEST_F(mmap, many_ranges_one_mapping)
{
	struct vfio_region_dma_range *r = calloc(MANY, sizeof(*r));
	uint64_t base = self->bar_size / 8 + 64 * PAGE, bad = 0;
	int buf, before, after;
	uint8_t *map;
	char line[256];
	FILE *f;

	ASSERT_NE(NULL, r);
	/* every other page of a window, last first */
	for (int i = 0; i < MANY; i++)
		r[i] = (struct vfio_region_dma_range){
			base + 2 * (MANY - 1 - i) * PAGE, PAGE };
	buf = dmabuf_create(self->d.fd, BAR, MANY, r);
	ASSERT_GE(buf, 0);
	for (int i = 0; i < MANY; i++)
		st64(self->bar + r[i].offset + 8, i);

	f = fopen("/proc/self/maps", "r");
	ASSERT_NE(NULL, f);
	for (before = 0; fgets(line, sizeof(line), f);)
		before++;
	map = mmap(NULL, MANY * PAGE, PROT_READ, MAP_SHARED, buf, 0);
	ASSERT_NE(MAP_FAILED, map);
	rewind(f);
	for (after = 0; fgets(line, sizeof(line), f);)
		after++;
	fclose(f);
	ASSERT_EQ(before + 1, after);
	for (int i = 0; i < MANY; i++)
		bad += ld64(map + i * PAGE + 8) != (uint64_t)i;
	ASSERT_EQ(0, bad);
	munmap(map, MANY * PAGE);
	close(buf);
	free(r);
}

/* A forked child shares the mapping, and loses it on a revoke. */
TEST_F(mmap, fork_shares_and_revokes)
{
	int to_child[2], status;
	uint8_t *map;
	pid_t pid;
	char c;

	map = map_all(self->buf, self->total);
	ASSERT_NE(MAP_FAILED, map);
	bar_fill(self->bar, self->r, NR, 5);
	ASSERT_EQ(0, check(map, 0, self->total, 5));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		/* exit status: 1 data wrong, 2 no SIGBUS while revoked */
		if (check(map, 0, self->total, 5))
			_exit(1);
		st64(map, word(6, 0));
		if (read(to_child[0], &c, 1) != 1)
			_exit(3);
		if (every_page(map, self->total, SIGBUS))
			_exit(2);
		_exit(0);
	}
	close(to_child[0]);
	/* the child's write reached the BAR: wait for it */
	for (int i = 0; i < 1000 && ld64(self->bar + self->r[0].offset)
				    != word(6, 0); i++)
		usleep(1000);
	ASSERT_EQ(word(6, 0), ld64(self->bar + self->r[0].offset));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
	ASSERT_EQ(1, write(to_child[1], "x", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status));
	close(to_child[1]);
	munmap(map, self->total);
}

/* A revocation trigger or its undoing, on device @d: 0 or -errno. */
typedef int (*trigger_fn)(struct vdev *d);

/*
 * Every page of a mapping of @buf (ranges @r, @total bytes) faulted in (the
 * thread's fault count grows by one a page, then stays put on a second
 * pass), then @revoke: with @restore, SIGBUS on every page until @restore
 * ran; then every page faults in again (the revoke removed them) with the
 * data intact.
 */
static void __revoke_cycle(struct __test_metadata *_metadata, struct vdev *d,
			   uint8_t *bar, const struct vfio_region_dma_range *r,
			   uint64_t total, int buf, trigger_fn revoke,
			   trigger_fn restore)
{
	uint64_t pages = total / PAGE;
	uint8_t *map;
	long f0, f1, f2;

	map = map_all(buf, total);
	ASSERT_NE(MAP_FAILED, map);
	bar_fill(bar, r, NR, 7);
	f0 = minor_faults();
	ASSERT_EQ(0, every_page(map, total, 0));
	f1 = minor_faults();
	ASSERT_EQ(0, every_page(map, total, 0));
	f2 = minor_faults();
	ASSERT_GE(f1 - f0, (long)pages);
	ASSERT_EQ(f1, f2);

	ASSERT_EQ(0, revoke(d));
	if (restore) {
		ASSERT_EQ(0, every_page(map, total, SIGBUS));
		ASSERT_EQ(SIGBUS, probe(map, 1, 1, NULL));
		ASSERT_EQ(0, restore(d));
	}
	f0 = minor_faults();
	ASSERT_EQ(0, every_page(map, total, 0));
	f1 = minor_faults();
	ASSERT_GE(f1 - f0, (long)pages);
	ASSERT_EQ(0, __check(_metadata, bar, r, NR, map, 0, total, 7));
	munmap(map, total);
}

#define revoke_cycle(revoke, restore)					\
	__revoke_cycle(_metadata, &self->d, self->bar, self->r, self->total, \
		       self->buf, revoke, restore)

static int decode_off(struct vdev *d)
{
	return vdev_set_memory(d, 0);
}

static int decode_on(struct vdev *d)
{
	return vdev_set_memory(d, 1);
}

static int low_power(struct vdev *d, uint32_t which)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f), .flags = VFIO_DEVICE_FEATURE_SET | which,
	};

	return ioctl(d->fd, VFIO_DEVICE_FEATURE, &f) ? -errno : 0;
}

static int low_power_entry(struct vdev *d)
{
	return low_power(d, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY);
}

static int low_power_exit(struct vdev *d)
{
	return low_power(d, VFIO_DEVICE_FEATURE_LOW_POWER_EXIT);
}

static int reset(struct vdev *d)
{
	return ioctl(d->fd, VFIO_DEVICE_RESET) ? -errno : 0;
}

static int hot_reset(struct vdev *d)
{
	return vdev_hot_reset(d->fd, &d->group, 1);
}

TEST_F(mmap, revoke_on_decode_off)
{
	revoke_cycle(decode_off, decode_on);
}

TEST_F(mmap, revoke_on_low_power)
{
	revoke_cycle(low_power_entry, low_power_exit);
}

TEST_F(mmap, revoke_on_reset)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };

	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
		SKIP(return, "device %s has no reset", self->d.bdf);
	revoke_cycle(reset, NULL);
}

TEST_F(mmap, revoke_on_hot_reset)
{
	int e;

	e = vdev_hot_reset_info(self->d.fd);
	ASSERT_NE(-ENOMEM, e);
	if (e)
		SKIP(return, "no hot reset for %s: %s", self->d.bdf, strerror(-e));
	revoke_cycle(hot_reset, NULL);
}

/*
 * Closing the device revokes for good: SIGBUS on every page, also after
 * the BAR is usable again for the next opener; no new mapping (ENODEV).
 */
TEST_F(mmap, device_closed)
{
	uint8_t *map;

	map = map_all(self->buf, self->total);
	ASSERT_NE(MAP_FAILED, map);
	ASSERT_EQ(0, every_page(map, self->total, 0));
	munmap(self->bar, self->bar_size);
	self->bar = MAP_FAILED;
	vdev_close(&self->d);
	ASSERT_EQ(0, every_page(map, self->total, SIGBUS));
	errno = 0;
	ASSERT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->buf, 0));
	ASSERT_EQ(ENODEV, errno);
	/* the device opened again: the old buffer stays revoked */
	ASSERT_EQ(0, vdev_open(&self->d, getenv("VFIO_DMABUF_MEMDEV")));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	ASSERT_EQ(0, every_page(map, self->total, SIGBUS));
	munmap(map, self->total);
}

TEST_HARNESS_MAIN
