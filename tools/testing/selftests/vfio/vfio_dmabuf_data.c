// SPDX-License-Identifier: GPL-2.0
/*
 * Real data through the dma-buf.  An importing device's DMA engine (QEMU's
 * edu, driven by the test importer: VDI_IOC_DMA) writes and reads a buffer
 * of several ranges of a BAR that is memory (ivshmem-plain, backed by a
 * host file); the CPU checks every byte of each range and of a page on each
 * side of it through the region's VFIO mmap.  Revocation is seen in the
 * data: the importer loses its mapping, and on a translated path a DMA to
 * the address it held faults in the IOMMU and leaves the BAR as it was.
 * The last test leaves a pattern that the host checks in the backing file
 * once the guest has stopped ("### FILECHECK" lines, scripts/report.py).
 *
 * Needs VFIO_DMABUF_MEMDEV (bound to vfio-pci) and VFIO_DMABUF_DMADEV
 * (bound to the test importer's edu driver): see vfio_dmabuf_util.h.
 */

#include <sys/mman.h>
#include <time.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest_harness.h"

#define BAR 2
#define MAX_RANGES 6

/* The BAR as the CPU sees it and the buffer's ranges in it. */
struct layout {
	uint8_t *bar;			/* the region's VFIO mmap */
	uint64_t bar_size;
	struct vfio_region_dma_range r[MAX_RANGES];
};

FIXTURE(data) {
	struct vdev d;
	struct layout l;
	const char *dmadev, *path;
	int translated;			/* the importer's DMA goes through an IOMMU */
	uint64_t total;			/* bytes in the buffer */
	struct vdi_segment segs[64];
};

FIXTURE_SETUP(data)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = BAR };
	const char *memdev = getenv("VFIO_DMABUF_MEMDEV");
	uint64_t s;

	self->l.bar = MAP_FAILED;
	self->d.fd = -1;
	if (!memdev || !*memdev)
		SKIP(return, "VFIO_DMABUF_MEMDEV is not set (run through run.sh)");
	self->dmadev = env_or("VFIO_DMABUF_DMADEV", "");
	if (!*self->dmadev)
		SKIP(return, "VFIO_DMABUF_DMADEV is not set (run through run.sh)");
	self->path = env_or("VFIO_DMABUF_PATH", "none");
	ASSERT_EQ(0, vdev_open(&self->d, memdev));
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_REGION_INFO, &reg));
	ASSERT_TRUE(reg.flags & VFIO_REGION_INFO_FLAG_MMAP);
	s = reg.size;
	self->l.bar_size = s;
	ASSERT_GE(s, 64 * PAGE);
	self->l.bar = mmap(NULL, s, PROT_READ | PROT_WRITE, MAP_SHARED,
			   self->d.fd, reg.offset);
	ASSERT_NE(MAP_FAILED, self->l.bar);
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));

	self->translated = dma_translated(self->dmadev);

	/*
	 * Out of BAR order, the last page, two ranges that merge into one
	 * segment, ranges in the upper half (above 4 GiB for a BAR there).
	 */
	self->l.r[0] = (struct vfio_region_dma_range){ s - PAGE, PAGE };
	self->l.r[1] = (struct vfio_region_dma_range){ 0, 2 * PAGE };
	self->l.r[2] = (struct vfio_region_dma_range){ 2 * PAGE, PAGE };
	self->l.r[3] = (struct vfio_region_dma_range){ s / 2 + 5 * PAGE, PAGE };
	self->l.r[4] = (struct vfio_region_dma_range){ s / 4 + 3 * PAGE, 2 * PAGE };
	self->l.r[5] = (struct vfio_region_dma_range){ 7 * PAGE, PAGE };
	self->total = 8 * PAGE;
}

FIXTURE_TEARDOWN(data)
{
	if (self->l.bar != MAP_FAILED)
		munmap(self->l.bar, self->l.bar_size);
	vdev_close(&self->d);
}

/* The checked window of range @r: the range and a page on each side. */
static void window(const struct vfio_region_dma_range *r, uint64_t bar_size,
		   uint64_t *lo, uint64_t *hi)
{
	*lo = r->offset >= PAGE ? r->offset - PAGE : 0;
	*hi = r->offset + r->length + PAGE <= bar_size ?
	      r->offset + r->length + PAGE : bar_size;
}

/* Writes background pattern @seed, by BAR offset, over every window. */
static void fill_windows(struct layout *l, int n, uint32_t seed)
{
	uint64_t lo, hi;

	for (int i = 0; i < n; i++) {
		window(&l->r[i], l->bar_size, &lo, &hi);
		for (uint64_t x = lo; x < hi; x++)
			l->bar[x] = pat(seed, x);
	}
}

/* Buffer offset of BAR offset @x, or -1 when @x is in no range. */
static int64_t buffer_offset(const struct layout *l, int n, uint64_t x)
{
	uint64_t start = 0;

	for (int i = 0; i < n; i++) {
		if (x >= l->r[i].offset &&
		    x < l->r[i].offset + l->r[i].length)
			return start + x - l->r[i].offset;
		start += l->r[i].length;
	}
	return -1;
}

/* The CPU writes pattern @seed, by buffer offset, into every range. */
static void cpu_write_ranges(struct layout *l, int n, uint32_t seed)
{
	for (int i = 0; i < n; i++) {
		int64_t b = buffer_offset(l, n, l->r[i].offset);

		for (uint64_t j = 0; j < l->r[i].length; j++)
			l->bar[l->r[i].offset + j] = pat(seed, b + j);
	}
}

/*
 * Every byte of every window: pattern @buf_seed by buffer offset inside the
 * ranges, background @bg_seed by BAR offset outside them.  With @witness,
 * prints what the host must find in the backing file, window by window.
 */
static uint64_t check_windows(const struct layout *l, int n,
			      uint32_t bg_seed, uint32_t buf_seed, int witness)
{
	uint64_t lo, hi, bad = 0;

	for (int i = 0; i < n; i++) {
		window(&l->r[i], l->bar_size, &lo, &hi);
		for (uint64_t x = lo; x < hi; x++) {
			int64_t b = buffer_offset(l, n, x);
			uint8_t want = b < 0 ? pat(bg_seed, x) : pat(buf_seed, b);

			if (l->bar[x] != want && !bad++)
				printf("# first bad byte: BAR offset 0x%llx: 0x%02x, want 0x%02x\n",
				       (unsigned long long)x, l->bar[x], want);
		}
		for (uint64_t x = lo; witness && x < hi;) {
			int64_t b = buffer_offset(l, n, x), e;
			uint64_t end;

			/* a run: all background, or consecutive buffer bytes */
			for (end = x + 1; end < hi; end++) {
				e = buffer_offset(l, n, end);
				if (b < 0 ? e >= 0 : e != b + (int64_t)(end - x))
					break;
			}
			filecheck(x, end - x, b < 0 ? bg_seed : buf_seed,
				  b < 0 ? x : (uint64_t)b);
			x = end;
		}
	}
	return bad;
}

/*
 * Moves the whole buffer by DMA, VDI_DMA_MAX bytes at a time: writes
 * pattern @seed (VDI_DMA_WRITE), or reads it and counts the bytes that
 * differ.  Returns that count, or -errno of the first transfer that failed.
 */
static int64_t dma_buffer(int imp, uint64_t total, uint32_t seed, uint32_t flags)
{
	static uint8_t tmp[VDI_DMA_MAX];
	int64_t bad = 0;
	int ret;

	for (uint64_t off = 0; off < total; off += VDI_DMA_MAX) {
		uint64_t len = total - off < VDI_DMA_MAX ? total - off : VDI_DMA_MAX;

		for (uint64_t i = 0; i < len; i++)
			tmp[i] = (flags & VDI_DMA_WRITE) ? pat(seed, off + i) : 0;
		ret = importer_dma(imp, off, tmp, len, flags);
		if (ret)
			return ret;
		for (uint64_t i = 0; !(flags & VDI_DMA_WRITE) && i < len; i++)
			bad += tmp[i] != pat(seed, off + i);
	}
	return bad;
}

/* What __export_and_import() returns where no importer may attach. */
#define NO_PATH (-2)

/*
 * Exports the first @n ranges of @l from @devfd into *@buf and imports it
 * for the edu device @dmadev, mapped; returns the importer's fd, or -1
 * after a failed check.  In the scenario with no P2P path the import must
 * be refused (EOPNOTSUPP), and that is all: returns NO_PATH with *@buf
 * closed (the caller skips).
 */
static int __export_and_import(struct __test_metadata *_metadata, int devfd,
			       const struct layout *l, int n, const char *dmadev,
			       const char *path, struct vdi_segment *segs, int max,
			       int *buf)
{
	int imp;

	*buf = dmabuf_create(devfd, BAR, n, l->r);
	EXPECT_GE(*buf, 0);
	if (*buf < 0)
		return -1;
	if (!strcmp(path, "none")) {
		/*
		 * Only the right refusal lets the caller SKIP(), which in
		 * this harness would overwrite an EXPECT_*() failure.
		 */
		imp = importer_attach(*buf, dmadev, 0);
		EXPECT_EQ(-EOPNOTSUPP, imp);
		if (imp >= 0)
			close(imp);
		close(*buf);
		return imp == -EOPNOTSUPP ? NO_PATH : -1;
	}
	imp = importer_attach(*buf, dmadev, 0);
	EXPECT_GE(imp, 0);
	EXPECT_GT(importer_map(imp, segs, max), 0);
	return imp;
}

/* __export_and_import() for the fixture's device, ranges and segments. */
#define export_and_import(n, buf)					\
	__export_and_import(_metadata, self->d.fd, &self->l, n, self->dmadev, \
			    self->path, self->segs, ARRAY_SIZE(self->segs), buf)

#define NO_PATH_SKIP "no P2P path to the BAR in this scenario"

/*
 * The device's DMA writes the buffer and every byte lands at the BAR
 * offset range arithmetic gives, none outside; then the CPU writes the
 * ranges and the device's DMA reads back the buffer's bytes in order.
 */
TEST_F(data, dma_both_ways_every_byte)
{
	int buf, imp, n = MAX_RANGES;

	fill_windows(&self->l, n, 1);
	imp = export_and_import(n, &buf);
	if (imp == NO_PATH)
		SKIP(return, NO_PATH_SKIP);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(0, dma_buffer(imp, self->total, 2, VDI_DMA_WRITE));
	ASSERT_EQ(0, check_windows(&self->l, n, 1, 2, 0));

	cpu_write_ranges(&self->l, n, 3);
	ASSERT_EQ(0, dma_buffer(imp, self->total, 3, 0));
	close(imp);
	close(buf);
}

/*
 * Revocation seen in the data.  Decode off: the importer's mapping is
 * gone and it refuses to DMA.  Decode back on, before a new map: on a
 * translated path a DMA to the address it held must fault in the IOMMU
 * (the fault is the pass condition) and the BAR must not change; on an
 * untranslated path that address is the BAR itself, and only the importer
 * honouring move_notify protects it.  A new map makes DMA work again.
 * The fault does not depend on timing: the revoke returned only after the
 * importer unmapped, and the exporter's unmap flushed the IOTLB of the
 * importer's lazy (flush-queue) domain instead of leaving the stale
 * translation to the flush queue's timer.
 */
TEST_F(data, revoked_importer_moves_no_data)
{
	static uint8_t tmp[PAGE];
	int buf, imp, kmsg, n = 2, found = 0;
	struct vdi_info info;
	uint64_t stale;
	char needle[96];

	fill_windows(&self->l, n, 4);
	imp = export_and_import(n, &buf);
	if (imp == NO_PATH)
		SKIP(return, NO_PATH_SKIP);
	ASSERT_GE(imp, 0);
	stale = self->segs[0].addr;
	ASSERT_EQ(0, dma_buffer(imp, 3 * PAGE, 5, VDI_DMA_WRITE));
	ASSERT_EQ(0, check_windows(&self->l, n, 4, 5, 0));

	ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
	ASSERT_EQ(0, importer_info(imp, &info));
	ASSERT_EQ(0, info.mapped);
	ASSERT_EQ(-ENXIO, importer_dma(imp, 0, tmp, VDI_DMA_MAX, VDI_DMA_WRITE));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	ASSERT_EQ(0, importer_info(imp, &info));
	ASSERT_EQ(0, info.mapped);
	ASSERT_EQ(-ENXIO, importer_dma(imp, 0, tmp, VDI_DMA_MAX, 0));

	if (self->translated) {
		kmsg = iommu_fault_expect(self->dmadev, stale, needle, sizeof(needle));
		ASSERT_GE(kmsg, 0);
		memset(tmp, 0x5a, sizeof(tmp));
		ASSERT_EQ(0, importer_dma(imp, stale, tmp, VDI_DMA_MAX,
					  VDI_DMA_WRITE | VDI_DMA_RAW));
		found = iommu_fault_seen(kmsg, needle);
		TH_LOG("DMA to the revoked IOVA 0x%llx: %s",
		       (unsigned long long)stale,
		       found ? "IOMMU fault reported" : "no IOMMU fault");
		ASSERT_TRUE(found);
	} else {
		TH_LOG("untranslated: the address the importer held is the BAR's, not tried");
	}
	ASSERT_EQ(0, check_windows(&self->l, n, 4, 5, 0));

	ASSERT_GT(importer_map(imp, self->segs, ARRAY_SIZE(self->segs)), 0);
	ASSERT_EQ(0, dma_buffer(imp, 3 * PAGE, 6, VDI_DMA_WRITE));
	ASSERT_EQ(0, check_windows(&self->l, n, 4, 6, 0));
	ASSERT_EQ(0, dma_buffer(imp, 3 * PAGE, 6, 0));
	close(imp);
	close(buf);
}

/*
 * The test importer's own refusals: a transfer past the end of the buffer
 * or larger than the engine's, and DMA for a device it does not drive.
 */
TEST_F(data, dma_refusals)
{
	const char *other = env_or("VFIO_DMABUF_IMPORTER", "");
	static uint8_t tmp[PAGE];
	int buf, imp;

	imp = export_and_import(1, &buf);
	if (imp == NO_PATH)
		SKIP(return, NO_PATH_SKIP);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(-EINVAL, importer_dma(imp, PAGE, tmp, 1, 0));
	ASSERT_EQ(-EINVAL, importer_dma(imp, 0, tmp, VDI_DMA_MAX + 1, 0));
	close(imp);
	ASSERT_NE(0, *other);
	imp = importer_attach(buf, other, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(-EOPNOTSUPP, importer_dma(imp, 0, tmp, 1, 0));
	close(imp);
	close(buf);
}

/*
 * Leaves the pattern the host checks: background by BAR offset around
 * every range, the buffer's bytes inside them, written by the device's
 * DMA (by the CPU where there is no P2P path), and prints one FILECHECK
 * line per run of it.
 */
TEST_F(data, host_file_witness)
{
	int buf, imp, n = MAX_RANGES;

	fill_windows(&self->l, n, 8);
	imp = export_and_import(n, &buf);
	if (!strcmp(self->path, "none")) {
		cpu_write_ranges(&self->l, n, 9);
	} else {
		ASSERT_GE(imp, 0);
		ASSERT_EQ(0, dma_buffer(imp, self->total, 9, VDI_DMA_WRITE));
		close(imp);
		close(buf);
	}
	ASSERT_EQ(0, check_windows(&self->l, n, 8, 9, 1));
}

/* Outside the harness, without the devices: one line and a skip. */
static void __attribute__((constructor)) require_devices(void)
{
	static const char *const vars[] = {
		"VFIO_DMABUF_MEMDEV", "VFIO_DMABUF_DMADEV", "VFIO_DMABUF_IMPORTER", NULL
	};

	vfio_dmabuf_require(vars, 1);
}

TEST_HARNESS_MAIN
