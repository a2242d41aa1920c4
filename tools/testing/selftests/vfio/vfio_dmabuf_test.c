// SPDX-License-Identifier: GPL-2.0
/*
 * Selftests of the vfio-pci dma-buf exporter (VFIO_DEVICE_FEATURE_DMA_BUF):
 * the DMA segments an importer gets for each P2P path, the importer
 * refusals, revocation and the buffer's lifetime (the UAPI's answers, its
 * errno table, sizes and file flags, are vfio_dmabuf_uapi's, which compares
 * them with upstream's).
 *
 * Needs a device bound to vfio-pci with a 64-bit memory BAR 2 (QEMU's
 * pci-testdev), a second PCI device as importer and the test importer
 * module; the harness (run.sh) sets up guests that have them and passes
 * them in the environment (see vfio_dmabuf_util.h).
 */

#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest_harness.h"

#define BAR 2
#define MAX_SEGS 8192

/* Fills @n ranges of one page each, @stride pages apart, from @first. */
static void page_ranges(struct vfio_region_dma_range *r, int n, uint64_t first,
			uint64_t stride)
{
	for (int i = 0; i < n; i++) {
		r[i].offset = first + i * stride * PAGE;
		r[i].length = PAGE;
	}
}

FIXTURE(dmabuf) {
	struct vdev d;
	uint64_t bar_size, phys;
	const char *importer, *path;
	/* through the host bridge and an IOMMU: one IOVA range per buffer */
	int one_iova;
	struct vdi_segment *segs;
};

FIXTURE_SETUP(dmabuf)
{
	const char *bdf = getenv("VFIO_DMABUF_EXPORTER");

	if (!bdf)
		SKIP(return, "VFIO_DMABUF_EXPORTER is not set (run through run.sh)");
	ASSERT_EQ(0, vdev_open(&self->d, bdf));
	self->bar_size = vdev_region_size(&self->d, BAR);
	ASSERT_NE(0, self->bar_size);
	self->phys = bar_phys(bdf, BAR);
	ASSERT_NE(0, self->phys);
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	self->importer = env_or("VFIO_DMABUF_IMPORTER", "");
	self->path = env_or("VFIO_DMABUF_PATH", "none");
	self->one_iova = !strcmp(self->path, "host") && dma_translated(self->importer);
	self->segs = calloc(MAX_SEGS, sizeof(*self->segs));
	ASSERT_NE(NULL, self->segs);
}

FIXTURE_TEARDOWN(dmabuf)
{
	vdev_close(&self->d);
	free(self->segs);
}

/* Tests that import skip in a scenario with no P2P path to the BAR. */
#define NO_PATH_SKIP "no P2P path to the BAR in this scenario"

/*
 * With no P2P path no importer can attach, but a revocation still shows:
 * while a buffer is revoked, attach fails with ENODEV, before the path's
 * refusal (EOPNOTSUPP).  The attach's errno, or 0 if it attached.
 */
static int attach_errno(int buf, const char *importer)
{
	int imp = importer_attach(buf, importer, 0);

	if (imp < 0)
		return imp;
	close(imp);
	return 0;
}

/*
 * A reset revokes only while it runs: a thread attaches in a loop around
 * it and counts what it gets.
 */
struct attach_probe {
	pthread_t thread;
	int buf;
	const char *importer;
	int stop;			/* __atomic */
	int enodev, refused, other;
};

static void *attach_probe_fn(void *arg)
{
	struct attach_probe *p = arg;

	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		int e = attach_errno(p->buf, p->importer);

		if (e == -ENODEV)
			p->enodev++;
		else if (e == -EOPNOTSUPP)
			p->refused++;
		else
			p->other++;
	}
	return NULL;
}

static int attach_probe_start(struct attach_probe *p, int buf,
			      const char *importer)
{
	memset(p, 0, sizeof(*p));
	p->buf = buf;
	p->importer = importer;
	return pthread_create(&p->thread, NULL, attach_probe_fn, p);
}

/* Stops the probe: the reset(s) in between must have been seen. */
static void attach_probe_stop(struct __test_metadata *_metadata,
			      struct attach_probe *p)
{
	__atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(0, pthread_join(p->thread, NULL));
	TH_LOG("attaches during the resets: %d ENODEV, %d EOPNOTSUPP",
	       p->enodev, p->refused);
	ASSERT_GT(p->enodev, 0);
	ASSERT_EQ(0, p->other);
}

/*
 * Checks the @nents segments in self->segs, of importer @imp's mapping,
 * against a reference model of the table the exporter must build: ranges
 * that follow each other in the BAR merge into runs, and through an IOMMU
 * (self->one_iova) the whole buffer is one run of IOVA space; each run's
 * DMA addresses follow each other from its first segment's and are cut at
 * @max_seg and at multiples of @boundary + 1.  Every page of every segment
 * must map back to the right BAR bytes: the importer translates a bus
 * address through the host bridge's windows (on q35 a bus address equals
 * the CPU address, so only this conversion tells a bus address from a CPU
 * one) and an IOVA page by page through the IOMMU.
 */
#define check_segments(imp, r, n, nents, max_seg, boundary)		\
	__check_segments(_metadata, imp, self->segs, self->phys,	\
			 !strcmp(self->path, "bus"), self->one_iova, r, n,	\
			 nents, max_seg, boundary)

#define check_restored(imp, r) do {					\
	int __imp = (imp);						\
									\
	ASSERT_EQ(2, importer_moves(__imp));				\
	ASSERT_EQ(1, importer_map(__imp, self->segs, MAX_SEGS));	\
	check_segments(__imp, r, 1, 1, 65536, ~0ULL);			\
} while (0)

/*
 * The order around a reset or a power transition, for an importer that
 * watched the exporting device (importer_watch()) through one revocation
 * and restoration: it was told to let go while the device still decoded
 * memory (before the reset disabled it), and given access back once it
 * decoded again (after the state was restored).
 */
#define check_order(imp) do {						\
	struct vdi_info __vi;						\
	const __u32 __on = VDI_WATCH_SAMPLED | VDI_WATCH_ENABLED |	\
			   VDI_WATCH_MEMORY;				\
									\
	ASSERT_EQ(0, importer_info((imp), &__vi));			\
	ASSERT_EQ(__on, __vi.watched_revoke);				\
	ASSERT_EQ(__on, __vi.watched);					\
} while (0)

static void __check_segments(struct __test_metadata *_metadata, int imp,
			     const struct vdi_segment *segs, uint64_t phys,
			     int bus, int one_iova,
			     const struct vfio_region_dma_range *r, int n,
			     int nents, uint64_t max_seg, uint64_t boundary)
{
	uint64_t total = 0, *pages;
	int idx = 0, k = 0;

	/* whole pages only: the limit is cut down to a page multiple */
	max_seg &= ~(PAGE - 1);
	ASSERT_LE(nents, MAX_SEGS);
	for (int i = 0; i < n;) {
		uint64_t off = r[i].offset, len = r[i].length, base, addr;

		for (i++; i < n && (one_iova || off + len == r[i].offset); i++)
			len += r[i].length;
		total += len;
		ASSERT_LT(idx, nents);
		/* a run's DMA addresses follow each other from its first */
		base = segs[idx].addr;
		for (addr = base; addr < base + len; idx++) {
			uint64_t l = base + len - addr;
			uint64_t to_b = boundary - (addr & boundary) + 1;

			if (l > max_seg)
				l = max_seg;
			if (to_b && l > to_b)
				l = to_b;
			ASSERT_LT(idx, nents);
			ASSERT_EQ(addr, segs[idx].addr);
			ASSERT_EQ(l, segs[idx].len);
			/* every page, back to the CPU address of the BAR */
			if (!one_iova) {
				ASSERT_EQ(phys + off + (addr - base), segs[idx].phys);
				ASSERT_EQ(l / PAGE, segs[idx].pages_ok);
			}
			ASSERT_EQ(bus, segs[idx].bus_addr);
			ASSERT_EQ(0, (segs[idx].addr | segs[idx].len) % PAGE);
			addr += l;
		}
	}
	ASSERT_EQ(idx, nents);
	if (!one_iova)
		return;
	/* one IOVA range over scattered ranges: each page to its BAR page */
	pages = calloc(total / PAGE, sizeof(*pages));
	ASSERT_NE(NULL, pages);
	ASSERT_EQ((int)(total / PAGE), importer_pages(imp, pages, total / PAGE));
	for (int i = 0, ok = 1; i < n && ok; i++)
		for (uint64_t o = 0; o < r[i].length && ok; o += PAGE)
			if (pages[k] == phys + r[i].offset + o)
				k++;
			else
				ok = 0;
	ASSERT_EQ((int)(total / PAGE), k) {
		TH_LOG("page %d of the buffer translates to 0x%llx", k,
		       (unsigned long long)pages[k]);
	}
	free(pages);
}

/* Creates a one-range buffer, imports and maps it; returns the importer. */
static int import_mapped(struct __test_metadata *_metadata, int devfd,
			 const char *importer,
			 const struct vfio_region_dma_range *r,
			 struct vdi_segment *segs, int *buf)
{
	int imp;

	*buf = dmabuf_create(devfd, BAR, 1, r);
	ASSERT_GE(*buf, 0);
	imp = importer_attach(*buf, importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(1, importer_map(imp, segs, MAX_SEGS));
	return imp;
}

/*
 * Attaches @buf (one page) for the importer and maps it, where the scenario
 * has a P2P path; returns the importer, or -1 where there is none.
 */
#define import_where_path(buf) ({					\
	int __imp = -1;							\
									\
	if (strcmp(self->path, "none")) {				\
		__imp = importer_attach(buf, self->importer, 0);	\
		ASSERT_GE(__imp, 0);					\
		ASSERT_EQ(1, importer_map(__imp, self->segs, MAX_SEGS));\
	}								\
	__imp;								\
})

/*
 * @buf is revoked for good: nothing attaches, and its importer @imp (when
 * there is one; closed here) was told once and maps nothing.
 */
static void __check_revoked_for_good(struct __test_metadata *_metadata,
				     int buf, int imp, const char *importer,
				     struct vdi_segment *segs)
{
	ASSERT_EQ(-ENODEV, attach_errno(buf, importer));
	if (imp >= 0) {
		ASSERT_EQ(1, importer_moves(imp));
		ASSERT_EQ(-ENODEV, importer_map(imp, segs, MAX_SEGS));
		close(imp);
	}
}

#define check_revoked_for_good(buf, imp)				\
	__check_revoked_for_good(_metadata, buf, imp, self->importer, self->segs)

/*
 * The device @bdf, closed, opens again into @d, decodes, and exports a
 * page of @bar: nothing of its last open holds it.  Returns the buffer.
 */
static int __reopen_and_export(struct __test_metadata *_metadata,
			       struct vdev *d, const char *bdf, int bar)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int buf;

	ASSERT_EQ(0, vdev_open(d, bdf));
	ASSERT_EQ(0, vdev_set_memory(d, 1));
	buf = dmabuf_create(d->fd, bar, 1, &r);
	ASSERT_GE(buf, 0);
	return buf;
}

/* The same for the fixture's exporter; the buffer is closed. */
#define reopen_and_export()						\
	close(__reopen_and_export(_metadata, &self->d,			\
				  getenv("VFIO_DMABUF_EXPORTER"), BAR))

/*
 * Only the holder of the device fd can ask for a buffer: the request fails
 * on every other VFIO or dma-buf fd, a second opener of the group gets
 * EBUSY, and a process without privilege cannot open the group at all.
 */
TEST_F(dmabuf, caller_without_device_fd)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int buf, refs, status, noiommu, other;
	char group[PATH_MAX];
	pid_t child;

	if (vdev_cdev_mode()) {
		/*
		 * The iommufd knows no such ioctl; a second fd of the cdev,
		 * not bound, is refused everything (and cannot be bound:
		 * the device is open).
		 */
		snprintf(group, sizeof(group), "/proc/self/fd/%d", self->d.fd);
		other = open(group, O_RDWR | O_CLOEXEC);
		ASSERT_GE(other, 0);
		refs = core_refcnt();
		ASSERT_EQ(-ENOTTY, dmabuf_create(self->d.iommufd, BAR, 1, &r));
		ASSERT_EQ(-EINVAL, dmabuf_create(other, BAR, 1, &r));
		ASSERT_EQ(refs, core_refcnt());
		close(other);
		return;
	}
	snprintf(group, sizeof(group), "/dev/vfio/%s", self->d.vg->name);
	noiommu = access(group, F_OK) != 0;
	if (noiommu)
		snprintf(group, sizeof(group), "/dev/vfio/noiommu-%s", self->d.vg->name);

	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	refs = core_refcnt();
	ASSERT_EQ(-ENOTTY, dmabuf_create(self->d.group, BAR, 1, &r));
	/*
	 * The container passes the ioctl to its IOMMU driver: type1 reads this
	 * number as VFIO_IOMMU_DIRTY_PAGES (EINVAL), no-IOMMU knows none.
	 */
	ASSERT_EQ(noiommu ? -ENOTTY : -EINVAL,
		  dmabuf_create(self->d.container, BAR, 1, &r));
	ASSERT_EQ(-ENOTTY, dmabuf_create(buf, BAR, 1, &r));
	ASSERT_EQ(refs, core_refcnt());
	close(buf);

	ASSERT_EQ(-1, open(group, O_RDWR));
	ASSERT_EQ(EBUSY, errno);

	child = fork();
	ASSERT_GE(child, 0);
	if (!child) {
		if (setgid(65534) || setuid(65534))
			_exit(2);
		_exit(open(group, O_RDWR) < 0 && errno == EACCES ? 0 : 1);
	}
	ASSERT_EQ(child, waitpid(child, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ(0, WEXITSTATUS(status)) {
		TH_LOG("unprivileged open of %s: %s", group,
		       WEXITSTATUS(status) == 2 ? "cannot drop privileges" : "not EACCES");
	}
}

TEST_F(dmabuf, largest_request)
{
	int n = 262144, buf;
	struct vfio_region_dma_range *r = calloc(n, sizeof(*r));

	ASSERT_NE(NULL, r);
	/*
	 * Every range is the BAR's first page: the limit, not the BAR, bounds
	 * the request.
	 */
	page_ranges(r, n, 0, 0);
	buf = dmabuf_create(self->d.fd, BAR, n, r);
	ASSERT_GE(buf, 0);
	ASSERT_EQ((off_t)n * PAGE, lseek(buf, 0, SEEK_END));
	close(buf);
	free(r);
}

static double secs_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The largest buffer of a BAR: its size, or 1 GiB where the BAR is smaller. */
static uint64_t max_buffer(uint64_t bar_size)
{
	return bar_size > (1ULL << 30) ? bar_size : 1ULL << 30;
}

/*
 * A legal-looking request whose cost the user would choose: 2^18
 * overlapping whole-BAR ranges (a 2^44-byte buffer of a 64 MiB BAR, whose
 * mapping by an importer with 64 KiB segments would be 2^28 entries) is
 * refused at once with E2BIG, as is anything past the largest buffer.
 */
TEST_F(dmabuf, oversized_buffer_refused)
{
	int n = 262144, buf, whole = max_buffer(self->bar_size) / self->bar_size;
	struct vfio_region_dma_range *r = calloc(n, sizeof(*r));
	struct timespec t0;

	ASSERT_NE(NULL, r);
	for (int i = 0; i < n; i++)
		r[i] = (struct vfio_region_dma_range){ 0, self->bar_size };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(-E2BIG, dmabuf_create(self->d.fd, BAR, n, r));
	EXPECT_GT(1.0, secs_since(&t0));
	ASSERT_EQ(-E2BIG, dmabuf_create(self->d.fd, BAR, whole + 1, r));
	buf = dmabuf_create(self->d.fd, BAR, whole, r);
	ASSERT_GE(buf, 0);
	ASSERT_EQ((off_t)max_buffer(self->bar_size), lseek(buf, 0, SEEK_END));
	close(buf);
	free(r);
}

/*
 * The most an importer's table may cost within the limits: the largest
 * buffer cut into single pages (2^18 entries for a 64 MiB BAR) maps, and
 * unmaps, well inside the soft-lockup threshold.
 */
TEST_F(dmabuf, largest_buffer_in_pages)
{
	int buf, imp, whole = max_buffer(self->bar_size) / self->bar_size;
	struct vfio_region_dma_range *r = calloc(whole, sizeof(*r));
	struct timespec t0;
	double map_s;

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	ASSERT_NE(NULL, r);
	for (int i = 0; i < whole; i++)
		r[i] = (struct vfio_region_dma_range){ 0, self->bar_size };
	buf = dmabuf_create(self->d.fd, BAR, whole, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(0, importer_limits(imp, PAGE, ~0ULL));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(max_buffer(self->bar_size) / PAGE,
		  importer_map(imp, self->segs, MAX_SEGS));
	map_s = secs_since(&t0);
	ASSERT_EQ(0, importer_unmap(imp));
	TH_LOG("%llu entries: map %.3f s, map and unmap %.3f s",
	       (unsigned long long)(max_buffer(self->bar_size) / PAGE), map_s,
	       secs_since(&t0));
	EXPECT_GT(10.0, secs_since(&t0));
	close(imp);
	close(buf);
	free(r);
}

/* The buffer pins vfio-pci-core: one module reference per live buffer. */
TEST_F(dmabuf, module_pinned)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int before = core_refcnt(), buf;

	if (before < 0)
		SKIP(return, "vfio-pci-core is built in: no module to pin");
	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	ASSERT_EQ(before + 1, core_refcnt());
	close(buf);
	ASSERT_EQ(before, core_refcnt());
}

TEST_F(dmabuf, refused_importers)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	struct vdi_segment seg;
	int imp;

	ASSERT_GE(buf, 0);
	if (*self->importer) {
		ASSERT_EQ(-EOPNOTSUPP, importer_attach(buf, self->importer, VDI_STATIC));
		ASSERT_EQ(-EOPNOTSUPP, importer_attach(buf, self->importer, VDI_NO_P2P));
	}
	/*
	 * A device that is not PCI (iommufd's /dev/iommu is one) attaches, but
	 * gets no table: it has no path of its own to the BAR.
	 */
	imp = importer_attach(buf, NULL, VDI_NON_PCI);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(-EOPNOTSUPP, importer_map(imp, &seg, 1));
	close(imp);
	if (!strcmp(self->path, "none"))
		ASSERT_EQ(-EOPNOTSUPP, importer_attach(buf, self->importer, 0));
	close(buf);
}

TEST_F(dmabuf, segments_merge_and_order)
{
	struct vfio_region_dma_range r[] = {
		{ 8 * PAGE, PAGE }, { 9 * PAGE, PAGE },		/* merge */
		{ 0, 2 * PAGE }, { PAGE, 2 * PAGE },		/* overlap */
		{ 20 * PAGE, 3 * PAGE },
	};
	int n = ARRAY_SIZE(r), buf, imp, nents;

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	buf = dmabuf_create(self->d.fd, BAR, n, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	nents = importer_map(imp, self->segs, MAX_SEGS);
	/* four runs; through an IOMMU one IOVA range of 9 pages */
	ASSERT_EQ(self->one_iova ? 1 : 4, nents);
	check_segments(imp, r, n, nents, 65536, ~0ULL);
	close(imp);
	close(buf);
}

TEST_F(dmabuf, segments_split)
{
	struct vfio_region_dma_range r[] = {
		{ 0, 64 * PAGE }, { 15 * PAGE, 2 * PAGE },
	};
	int buf, imp, nents;

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	buf = dmabuf_create(self->d.fd, BAR, 2, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	/* PCI's default max segment: 64 KiB */
	nents = importer_map(imp, self->segs, MAX_SEGS);
	check_segments(imp, r, 2, nents, 65536, ~0ULL);
	ASSERT_EQ(0, importer_unmap(imp));
	/* 16 KiB segments, 64 KiB boundary */
	ASSERT_EQ(0, importer_limits(imp, 16384, 0xffff));
	nents = importer_map(imp, self->segs, MAX_SEGS);
	check_segments(imp, r, 2, nents, 16384, 0xffff);
	ASSERT_EQ(0, importer_unmap(imp));
	/* the whole 64-bit range in one segment when the device allows it */
	ASSERT_EQ(0, importer_limits(imp, 1U << 31, ~0ULL));
	nents = importer_map(imp, self->segs, MAX_SEGS);
	ASSERT_EQ(self->one_iova ? 1 : 2, nents);
	check_segments(imp, r, 2, nents, 1U << 31, ~0ULL);
	close(imp);
	close(buf);
}

/*
 * Through a host bridge with an IOMMU, a buffer of many scattered ranges is
 * one IOVA range: its entries follow each other in IOVA space, cut only at
 * the importer's limits, and every page translates to its own BAR page.
 * Once unmapped -- by the importer or by a revocation -- no page of it
 * translates any more.
 */
TEST_F(dmabuf, one_iova_range)
{
	int n = 1024, buf, imp, nents;
	struct vfio_region_dma_range *r = calloc(n, sizeof(*r));
	struct vdi_info vi;

	if (!self->one_iova)
		SKIP(return, "the importer's DMA is not translated by an IOMMU in this scenario");
	ASSERT_NE(NULL, r);
	/* every third page from the second, then out of BAR order: the last page first */
	page_ranges(r, n, PAGE, 3);
	r[0].offset = self->bar_size - PAGE;
	r[1].length = 2 * PAGE;		/* runs into r[2]'s page's neighbour */
	buf = dmabuf_create(self->d.fd, BAR, n, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, VDI_CHECK_UNMAP);
	ASSERT_GE(imp, 0);
	nents = importer_map(imp, self->segs, MAX_SEGS);
	ASSERT_EQ((n + 1) * PAGE / 65536 + 1, nents);
	check_segments(imp, r, n, nents, 65536, ~0ULL);

	/* the importer lets go: none of it stays translated */
	ASSERT_EQ(0, importer_unmap(imp));
	ASSERT_EQ(0, importer_info(imp, &vi));
	ASSERT_EQ(n + 1, vi.unmap_checked);
	ASSERT_EQ(0, vi.unmap_stale);

	/* a revocation takes it away the same way */
	ASSERT_EQ(nents, importer_map(imp, self->segs, MAX_SEGS));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
	ASSERT_EQ(0, importer_info(imp, &vi));
	ASSERT_EQ(1, vi.move_notify);
	ASSERT_EQ(2 * (n + 1), vi.unmap_checked);
	ASSERT_EQ(0, vi.unmap_stale);
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));

	/* the whole range in one segment; 16 KiB segments, 64 KiB boundary */
	ASSERT_EQ(0, importer_limits(imp, 1U << 31, ~0ULL));
	ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	check_segments(imp, r, n, 1, 1U << 31, ~0ULL);
	ASSERT_EQ(0, importer_unmap(imp));
	ASSERT_EQ(0, importer_limits(imp, 16384, 0xffff));
	nents = importer_map(imp, self->segs, MAX_SEGS);
	ASSERT_EQ((n + 1) * PAGE / 16384 + 1, nents);
	check_segments(imp, r, n, nents, 16384, 0xffff);
	ASSERT_EQ(0, importer_unmap(imp));
	ASSERT_EQ(0, importer_info(imp, &vi));
	ASSERT_EQ(4 * (n + 1), vi.unmap_checked);
	ASSERT_EQ(0, vi.unmap_stale);
	close(imp);
	close(buf);
	free(r);
}

/*
 * Through an IOMMU, a buffer for which no IOVA range of its size is free is
 * mapped run by run, as without an IOMMU, not refused.  A 24-bit importer
 * has 16 MiB of IOVA space, and a range of 12 MiB is aligned to 16 MiB by
 * the IOVA allocator: it cannot have one.  Its 192 runs of 64 KiB can.
 * Each entry translates to its own run; once unmapped, none stays
 * translated.  The same importer with a 64-bit mask gets the one range.
 */
TEST_F(dmabuf, one_iova_range_fallback)
{
	int n = 192, buf, imp;
	struct vfio_region_dma_range *r = calloc(n, sizeof(*r));
	struct vdi_info vi;

	if (!self->one_iova)
		SKIP(return, "the importer's DMA is not translated by an IOMMU in this scenario");
	ASSERT_NE(NULL, r);
	/* 64 KiB every 128 KiB: 192 runs, 12 MiB */
	for (int i = 0; i < n; i++)
		r[i] = (struct vfio_region_dma_range){ i * 32 * PAGE, 16 * PAGE };
	ASSERT_LE(r[n - 1].offset + r[n - 1].length, self->bar_size);
	buf = dmabuf_create(self->d.fd, BAR, n, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, VDI_DMA24 | VDI_CHECK_UNMAP);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(n, importer_map(imp, self->segs, MAX_SEGS));
	/* one entry per run, at an IOVA of its own, below 16 MiB */
	__check_segments(_metadata, imp, self->segs, self->phys, 0, 0, r, n, n,
			 65536, ~0ULL);
	for (int i = 0; i < n; i++)
		ASSERT_LE(self->segs[i].addr + self->segs[i].len, 1ULL << 24);
	ASSERT_EQ(0, importer_unmap(imp));
	ASSERT_EQ(0, importer_info(imp, &vi));
	ASSERT_EQ(n * 16, vi.unmap_checked);
	ASSERT_EQ(0, vi.unmap_stale);
	close(imp);

	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(n, importer_map(imp, self->segs, MAX_SEGS));
	check_segments(imp, r, n, n, 65536, ~0ULL);
	close(imp);
	close(buf);
	free(r);
}

TEST_F(dmabuf, many_ranges_and_whole_bar)
{
	int n = 4096, buf, imp, nents;
	struct vfio_region_dma_range *r = calloc(n, sizeof(*r));

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	ASSERT_NE(NULL, r);
	page_ranges(r, n, 0, 2);	/* every other page: no merging */
	buf = dmabuf_create(self->d.fd, BAR, n, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	nents = importer_map(imp, self->segs, MAX_SEGS);
	/* through an IOMMU one IOVA range: 64 KiB segments */
	ASSERT_EQ(self->one_iova ? n * PAGE / 65536 : n, nents);
	check_segments(imp, r, n, nents, 65536, ~0ULL);
	close(imp);
	close(buf);

	/* the whole BAR, page by page: one run */
	n = self->bar_size / PAGE;
	r = realloc(r, n * sizeof(*r));
	ASSERT_NE(NULL, r);
	page_ranges(r, n, 0, 1);
	buf = dmabuf_create(self->d.fd, BAR, n, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(0, importer_limits(imp, 1U << 31, ~0ULL));
	nents = importer_map(imp, self->segs, MAX_SEGS);
	ASSERT_EQ(1, nents);
	check_segments(imp, r, n, nents, 1U << 31, ~0ULL);
	close(imp);
	close(buf);
	free(r);
}

TEST_F(dmabuf, many_attachments)
{
	struct vfio_region_dma_range r[] = { { 0, 4 * PAGE }, { 64 * PAGE, PAGE } };
	/* two runs; through an IOMMU one IOVA range of 5 pages */
	int buf, imp[8], nents = self->one_iova ? 1 : 2;

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	buf = dmabuf_create(self->d.fd, BAR, 2, r);
	ASSERT_GE(buf, 0);
	for (int i = 0; i < 8; i++) {
		imp[i] = importer_attach(buf, self->importer, 0);
		ASSERT_GE(imp[i], 0);
		ASSERT_EQ(nents, importer_map(imp[i], self->segs, MAX_SEGS));
	}
	/* The importers keep the buffer alive after its fd is closed. */
	close(buf);
	for (int i = 0; i < 8; i++) {
		ASSERT_EQ(0, importer_unmap(imp[i]));
		ASSERT_EQ(nents, importer_map(imp[i], self->segs, MAX_SEGS));
		close(imp[i]);
	}
}

/*
 * An importer whose DMA mask does not reach the BAR is refused at map time
 * with EINVAL, and no kernel warning: a 32-bit device and a BAR above
 * 4 GiB with nothing translating (the bus path, or the host bridge without
 * an IOMMU, where the DMA API hands out the CPU address; on q35 a bus
 * address equals it).  Behind an IOMMU it gets IOVAs it can reach.  The
 * same device with a 64-bit mask maps.
 */
TEST_F(dmabuf, importer_dma_mask_too_small)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int buf, imp, reachable;

	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	if (!strcmp(self->path, "none")) {
		ASSERT_EQ(-EOPNOTSUPP, attach_errno(buf, self->importer));
		close(buf);
		return;
	}
	reachable = (!strcmp(self->path, "host") && dma_translated(self->importer)) ||
		    self->phys + PAGE <= 1ULL << 32;
	imp = importer_attach(buf, self->importer, VDI_DMA32);
	ASSERT_GE(imp, 0);
	TH_LOG("32-bit importer, BAR at 0x%llx, %s path: %s",
	       (unsigned long long)self->phys, self->path,
	       reachable ? "reachable" : "refused");
	ASSERT_EQ(reachable ? 1 : -EINVAL,
		  importer_map(imp, self->segs, MAX_SEGS));
	close(imp);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	close(imp);
	close(buf);
}

/* Memory decode off revokes, on restores; the importer sees both. */
TEST_F(dmabuf, revoke_on_decode_off)
{
	struct vfio_region_dma_range r = { 0, 2 * PAGE };
	int buf, imp;

	if (!strcmp(self->path, "none")) {
		buf = dmabuf_create(self->d.fd, BAR, 1, &r);
		ASSERT_GE(buf, 0);
		ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
		ASSERT_EQ(-ENODEV, attach_errno(buf, self->importer));
		ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
		ASSERT_EQ(-EOPNOTSUPP, attach_errno(buf, self->importer));
		close(buf);
		return;
	}
	imp = import_mapped(_metadata, self->d.fd, self->importer, &r,
			    self->segs, &buf);
	ASSERT_EQ(0, importer_moves(imp));

	ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
	ASSERT_EQ(1, importer_moves(imp));
	ASSERT_EQ(-ENODEV, importer_map(imp, self->segs, MAX_SEGS));
	/* a new attachment is refused while revoked */
	ASSERT_EQ(-ENODEV, importer_attach(buf, self->importer, 0));

	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	check_restored(imp, &r);
	close(imp);
	close(buf);
}

TEST_F(dmabuf, created_with_decode_off)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int buf, imp;

	ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	ASSERT_EQ(-ENODEV, importer_attach(buf, self->importer, 0));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	if (!strcmp(self->path, "none")) {
		ASSERT_EQ(-EOPNOTSUPP, attach_errno(buf, self->importer));
		close(buf);
		return;
	}
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	close(imp);
	close(buf);
}

TEST_F(dmabuf, revoke_on_reset)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct attach_probe probe;
	int buf, imp;

	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
		SKIP(return, "device %s has no reset", self->d.bdf);
	if (!strcmp(self->path, "none")) {
		buf = dmabuf_create(self->d.fd, BAR, 1, &r);
		ASSERT_GE(buf, 0);
		ASSERT_EQ(0, attach_probe_start(&probe, buf, self->importer));
		for (int i = 0; i < 3; i++)
			ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_RESET));
		attach_probe_stop(_metadata, &probe);
		ASSERT_EQ(-EOPNOTSUPP, attach_errno(buf, self->importer));
		close(buf);
		return;
	}
	imp = import_mapped(_metadata, self->d.fd, self->importer, &r,
			    self->segs, &buf);
	ASSERT_EQ(0, importer_watch(imp, self->d.bdf));
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_RESET));
	/* revoked before the reset, restored after it */
	check_restored(imp, &r);
	check_order(imp);
	close(imp);
	close(buf);
}

/* Hot reset of the device's bus: revoked around it, restored after. */
TEST_F(dmabuf, revoke_on_hot_reset)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	struct attach_probe probe;
	int buf, imp, e;

	e = vdev_hot_reset_info(self->d.fd);
	ASSERT_NE(-ENOMEM, e);
	if (e)
		SKIP(return, "no hot reset for %s: %s", self->d.bdf, strerror(-e));
	if (!strcmp(self->path, "none")) {
		buf = dmabuf_create(self->d.fd, BAR, 1, &r);
		ASSERT_GE(buf, 0);
		ASSERT_EQ(0, attach_probe_start(&probe, buf, self->importer));
		for (int i = 0; i < 3; i++)
			ASSERT_EQ(0, vdev_hot_reset(self->d.fd, &self->d.group, 1));
		attach_probe_stop(_metadata, &probe);
		ASSERT_EQ(-EOPNOTSUPP, attach_errno(buf, self->importer));
		close(buf);
		return;
	}
	imp = import_mapped(_metadata, self->d.fd, self->importer, &r,
			    self->segs, &buf);
	ASSERT_EQ(0, importer_watch(imp, self->d.bdf));
	ASSERT_EQ(0, vdev_hot_reset(self->d.fd, &self->d.group, 1));
	check_restored(imp, &r);
	check_order(imp);
	close(imp);
	close(buf);
}

/* Low-power entry revokes, exit restores. */
TEST_F(dmabuf, revoke_on_low_power)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	struct vfio_device_feature f = { .argsz = sizeof(f) };
	int buf, imp;

	if (!strcmp(self->path, "none")) {
		buf = dmabuf_create(self->d.fd, BAR, 1, &r);
		ASSERT_GE(buf, 0);
		f.flags = VFIO_DEVICE_FEATURE_SET |
			  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY;
		ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_FEATURE, &f));
		ASSERT_EQ(-ENODEV, attach_errno(buf, self->importer));
		f.flags = VFIO_DEVICE_FEATURE_SET |
			  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT;
		ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_FEATURE, &f));
		ASSERT_EQ(-EOPNOTSUPP, attach_errno(buf, self->importer));
		close(buf);
		return;
	}
	imp = import_mapped(_metadata, self->d.fd, self->importer, &r,
			    self->segs, &buf);
	ASSERT_EQ(0, importer_watch(imp, self->d.bdf));
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY;
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_FEATURE, &f));
	ASSERT_EQ(1, importer_moves(imp));
	ASSERT_EQ(-ENODEV, importer_map(imp, self->segs, MAX_SEGS));
	f.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT;
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_FEATURE, &f));
	ASSERT_EQ(2, importer_moves(imp));
	check_order(imp);
	ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	close(imp);
	close(buf);
}

/* Several buffers and importers through repeated resets. */
TEST_F(dmabuf, reset_loop)
{
	struct vfio_region_dma_range r[3] = {
		{ 0, PAGE }, { 8 * PAGE, 2 * PAGE }, { 32 * PAGE, PAGE },
	};
	struct vfio_device_info info = { .argsz = sizeof(info) };
	int buf[3], imp[6], loops = 10;
	struct attach_probe probe;

	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
		SKIP(return, "device %s has no reset", self->d.bdf);
	if (!strcmp(self->path, "none")) {
		/* each reset revokes; none leaves a buffer revoked */
		for (int b = 0; b < 3; b++) {
			buf[b] = dmabuf_create(self->d.fd, BAR, 1, &r[b]);
			ASSERT_GE(buf[b], 0);
		}
		ASSERT_EQ(0, attach_probe_start(&probe, buf[2], self->importer));
		for (int n = 1; n <= loops; n++)
			ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_RESET));
		attach_probe_stop(_metadata, &probe);
		for (int b = 0; b < 3; b++) {
			ASSERT_EQ(-EOPNOTSUPP, attach_errno(buf[b], self->importer));
			close(buf[b]);
		}
		return;
	}
	for (int b = 0; b < 3; b++) {
		buf[b] = dmabuf_create(self->d.fd, BAR, 1, &r[b]);
		ASSERT_GE(buf[b], 0);
		for (int i = 0; i < 2; i++) {
			imp[2 * b + i] = importer_attach(buf[b], self->importer, 0);
			ASSERT_GE(imp[2 * b + i], 0);
		}
	}
	for (int n = 1; n <= loops; n++) {
		for (int i = 0; i < 6; i++)
			ASSERT_EQ(1, importer_map(imp[i], self->segs, MAX_SEGS));
		ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_RESET));
		for (int i = 0; i < 6; i++)
			ASSERT_EQ(2 * n, importer_moves(imp[i]));
	}
	for (int i = 0; i < 6; i++) {
		ASSERT_EQ(1, importer_map(imp[i], self->segs, MAX_SEGS));
		close(imp[i]);
	}
	for (int b = 0; b < 3; b++)
		close(buf[b]);
}

/* Writes @val to a sysfs or debugfs file; returns 0 or -errno. */
static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/* The buffer outlives its device's driver: unbind must not wait for it. */
TEST_F(dmabuf, buffer_outlives_unbind)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	const char *bdf = getenv("VFIO_DMABUF_EXPORTER");
	char path[PATH_MAX];
	int buf, imp = -1;

	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	if (strcmp(self->path, "none"))
		imp = import_mapped(_metadata, self->d.fd, self->importer, &r,
				    self->segs, &buf);
	vdev_close(&self->d);
	/* Hangs (and the guest times out) if the buffer kept the device. */
	ASSERT_EQ(0, write_file("/sys/bus/pci/drivers/vfio-pci/unbind", bdf));
	ASSERT_EQ(PAGE, lseek(buf, 0, SEEK_END));
	ASSERT_EQ(-ENODEV, importer_attach(buf, self->importer, 0));
	if (imp >= 0) {
		ASSERT_EQ(-ENODEV, importer_map(imp, self->segs, MAX_SEGS));
		close(imp);
	}
	close(buf);	/* released after the vfio device is gone */
	ASSERT_EQ(0, write_file("/sys/bus/pci/drivers_probe", bdf));
	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/vfio-pci/%s", bdf);
	ASSERT_EQ(0, access(path, F_OK));
}

/*
 * The exporting device goes away while a user has it open -- unbound from
 * vfio-pci, or removed from the bus as a hot-unplug removes it: vfio asks
 * the user to let go through the REQ eventfd and waits.  The buffer stays
 * usable until the user closes the device, is revoked for good then (its
 * importer told), and outlives the device (removed: the struct pci_dev is
 * gone); bound again (rescanned and bound), the device exports again.
 */
static void __gone_while_open(struct __test_metadata *_metadata,
			      struct _test_data_dmabuf *self, int removed)
{
	char irqbuf[sizeof(struct vfio_irq_set) + sizeof(int)];
	struct vfio_irq_set *irq = (void *)irqbuf;
	struct vfio_region_dma_range r = { 0, PAGE };
	struct pollfd pfd = { .events = POLLIN };
	uint64_t requests = 0;
	char bdf[32], path[96];
	int buf, imp, status;
	pid_t pid;

	snprintf(bdf, sizeof(bdf), "%s", self->d.bdf);
	if (removed)
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/remove", bdf);
	else
		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/vfio-pci/unbind");
	pfd.fd = eventfd(0, EFD_CLOEXEC);
	ASSERT_GE(pfd.fd, 0);
	*irq = (struct vfio_irq_set){
		.argsz = sizeof(irqbuf), .index = VFIO_PCI_REQ_IRQ_INDEX,
		.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
		.count = 1,
	};
	memcpy(irq->data, &pfd.fd, sizeof(int));
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_SET_IRQS, irq));
	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	imp = import_where_path(buf);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		/* the request waits for every fd of the device, ours too */
		vdev_close(&self->d);
		_exit(write_file(path, removed ? "1" : bdf) ? 1 : 0);
	}
	/* the request comes while the device is open; unbind/remove wait */
	ASSERT_EQ(1, poll(&pfd, 1, 20000));
	ASSERT_EQ(sizeof(requests), read(pfd.fd, &requests, sizeof(requests)));
	ASSERT_LE(1, requests);
	ASSERT_EQ(0, waitpid(pid, &status, WNOHANG));
	/* not revoked yet: another importer attaches (or meets the path) */
	ASSERT_EQ(imp >= 0 ? 0 : -EOPNOTSUPP, attach_errno(buf, self->importer));
	if (imp >= 0)
		ASSERT_EQ(0, importer_moves(imp));
	/* the user lets go: unbind/remove complete, the buffer is revoked */
	vdev_close(&self->d);
	close(pfd.fd);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ(PAGE, lseek(buf, 0, SEEK_END));
	check_revoked_for_good(buf, imp);
	if (removed) {
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", bdf);
		ASSERT_NE(0, access(path, F_OK));
	}
	close(buf);	/* the last reference, after the device is gone */
	if (removed) {
		/* back on the bus, without a driver: vfio-pci by override */
		ASSERT_EQ(0, write_file("/sys/bus/pci/rescan", "1"));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override",
			 bdf);
		ASSERT_EQ(0, write_file(path, "vfio-pci"));
	}
	/* bound again, the device exports again */
	ASSERT_EQ(0, write_file("/sys/bus/pci/drivers_probe", bdf));
	reopen_and_export();
}

TEST_F(dmabuf, unbind_while_open)
{
	__gone_while_open(_metadata, self, 0);
}

TEST_F(dmabuf, removed_while_open)
{
	__gone_while_open(_metadata, self, 1);
}

/*
 * One device opened twice through its group: closing one of the two fds
 * revokes nothing, closing the last one revokes.  The device cdev allows
 * one open only (vfio_df_open()): a second bind is EINVAL.
 */
TEST_F(dmabuf, two_opens_one_close)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	struct vdev d2;
	int buf, imp, e;

	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	imp = import_where_path(buf);
	e = vdev_open(&d2, self->d.bdf);
	if (vdev_cdev_mode()) {
		ASSERT_EQ(-EINVAL, e);
	} else {
		ASSERT_EQ(0, e);
		ASSERT_NE(self->d.fd, d2.fd);
		vdev_close(&d2);
	}
	/* not revoked: another importer attaches (or meets the path) */
	ASSERT_EQ(imp >= 0 ? 0 : -EOPNOTSUPP, attach_errno(buf, self->importer));
	if (imp >= 0)
		ASSERT_EQ(0, importer_moves(imp));
	vdev_close(&self->d);
	check_revoked_for_good(buf, imp);
	close(buf);
	reopen_and_export();
}

/*
 * The exporter passes its buffer to another process over SCM_RIGHTS and
 * is killed: its device closes with it, which revokes the buffer the
 * other process holds (and its importer is told); the device can be opened
 * and export again.
 */
TEST_F(dmabuf, exporter_killed_after_passing_buffer)
{
	struct vfio_region_dma_range r = { 0, 2 * PAGE };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 0;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	int sv[2], buf, imp = -1, status;
	pid_t pid;

	/* the child owns the device: this process lets go of it first */
	vdev_close(&self->d);
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid) {
		struct vdev d;

		if (vdev_open(&d, getenv("VFIO_DMABUF_EXPORTER")) ||
		    vdev_set_memory(&d, 1))
			_exit(1);
		buf = dmabuf_create(d.fd, BAR, 1, &r);
		if (buf < 0)
			_exit(2);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &buf, sizeof(int));
		if (sendmsg(sv[1], &msg, 0) != 1)
			_exit(3);
		close(buf);
		for (;;)
			pause();
	}
	close(sv[1]);
	ASSERT_EQ(1, recvmsg(sv[0], &msg, 0));
	close(sv[0]);
	c = CMSG_FIRSTHDR(&msg);
	ASSERT_NE(NULL, c);
	ASSERT_EQ(SCM_RIGHTS, c->cmsg_type);
	memcpy(&buf, CMSG_DATA(c), sizeof(int));
	ASSERT_EQ(2 * PAGE, lseek(buf, 0, SEEK_END));
	if (strcmp(self->path, "none")) {
		imp = importer_attach(buf, self->importer, 0);
		ASSERT_GE(imp, 0);
		ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	}
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status));
	check_revoked_for_good(buf, imp);
	close(buf);
	reopen_and_export();
}

/*
 * The device closed while in low power: the entry revoked the buffer, the
 * close keeps it revoked for good (no second notice), and the device opens
 * again in D0 and exports.
 */
TEST_F(dmabuf, close_while_low_power)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
	};
	struct vfio_region_dma_range r = { 0, PAGE };
	int buf, imp;

	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	imp = import_where_path(buf);
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_FEATURE, &f));
	ASSERT_EQ(-ENODEV, attach_errno(buf, self->importer));
	if (imp >= 0)
		ASSERT_EQ(1, importer_moves(imp));
	vdev_close(&self->d);
	check_revoked_for_good(buf, imp);
	close(buf);
	buf = __reopen_and_export(_metadata, &self->d,
				  getenv("VFIO_DMABUF_EXPORTER"), BAR);
	imp = import_where_path(buf);
	if (imp >= 0)
		close(imp);
	close(buf);
}

/*
 * This thread's /proc/thread-self/fail-nth, opened once: opening it again
 * between the injection and the call under test would consume the failure.
 */
static int nth_fd = -1;

/* Makes the @nth allocation of this thread's next system call fail. */
static int fail_nth(int nth)
{
	char val[16];

	snprintf(val, sizeof(val), "%d", nth);
	return pwrite(nth_fd, val, strlen(val), 0) < 0 ? -errno : 0;
}

/* fail-nth left over: 0 once a failure was injected. */
static int fail_nth_left(void)
{
	char val[16] = "";

	if (pread(nth_fd, val, sizeof(val) - 1, 0) < 0)
		return -1;
	return atoi(val);
}

/*
 * The text of kernel function @name, from /proc/kallsyms: [*start, *end),
 * where *end is the next symbol's address.  Returns 0 or -1.
 */
static int kernel_function(const char *name, unsigned long long *start,
			   unsigned long long *end)
{
	unsigned long long addr, best = ~0ULL;
	char sym[256], type;
	FILE *f = fopen("/proc/kallsyms", "r");

	*start = 0;
	if (!f)
		return -1;
	while (fscanf(f, "%llx %c %255s%*[^\n]", &addr, &type, sym) == 3)
		if (!strcmp(sym, name))
			*start = addr;
	rewind(f);
	while (*start && fscanf(f, "%llx %c %255s%*[^\n]", &addr, &type, sym) == 3)
		if (addr > *start && addr < best)
			best = addr;
	fclose(f);
	*end = best;
	return *start && best != ~0ULL ? 0 : -1;
}

/*
 * Fault injection (fail-nth) fails the n-th allocation of a system call,
 * whoever makes it.  dma-debug's own allocations under dma_map_resource()
 * (its entry pool, its GFP_ATOMIC cacheline radix tree) are not the
 * exporter's, and failing one turns DMA-API debugging off for the rest of
 * the boot: allocations with dma-debug's code from dma_entry_alloc() to
 * add_dma_entry() on their stack are left alone (the stacktrace filter's
 * reject range).  Not debug_dma_map_resource(): it tail-calls
 * add_dma_entry() and is not on the stack.
 */
static int fault_injection_setup(void)
{
	static const char *const knobs[] = {
		"/sys/kernel/debug/failslab/ignore-gfp-wait",
		"/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait",
		"/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem",
	};
	static const char *const attrs[] = {
		"/sys/kernel/debug/failslab", "/sys/kernel/debug/fail_page_alloc",
	};
	unsigned long long start, end, s2, e2;
	char path[PATH_MAX], val[32];

	for (unsigned int i = 0; i < ARRAY_SIZE(knobs); i++)
		if (write_file(knobs[i], "N"))
			return -1;
	if (write_file("/sys/kernel/debug/fail_page_alloc/min-order", "0"))
		return -1;
	if (kernel_function("dma_entry_alloc", &start, &end) ||
	    kernel_function("add_dma_entry", &s2, &e2))
		return -1;
	start = start < s2 ? start : s2;
	end = end > e2 ? end : e2;
	for (unsigned int i = 0; i < ARRAY_SIZE(attrs); i++) {
		snprintf(path, sizeof(path), "%s/reject-start", attrs[i]);
		snprintf(val, sizeof(val), "%llu", start);
		if (write_file(path, val))
			return -1;
		snprintf(path, sizeof(path), "%s/reject-end", attrs[i]);
		snprintf(val, sizeof(val), "%llu", end);
		if (write_file(path, val))
			return -1;
	}
	nth_fd = open("/proc/thread-self/fail-nth", O_RDWR);
	return nth_fd < 0 ? -1 : 0;
}

/*
 * Fails the n-th allocation of the create and then of the map path, for
 * every n until the call goes through: each failure is an errno with
 * nothing left behind (no fd, no module reference; kmemleak runs at the
 * end of the guest), and the next call works.
 */
TEST_F(dmabuf, fault_injection)
{
	struct vfio_region_dma_range r[64], m[64];
	int refs = core_refcnt(), next_fd, buf, imp, n, ret, injected = 0;
	int refused = 0, sweeps = 0;

	if (fault_injection_setup() || fail_nth(0))
		SKIP(return, "no fault injection (failslab, page alloc, debugfs, stack filter)");
	page_ranges(r, 64, 0, 2);
	next_fd = dup(0);
	close(next_fd);
	/*
	 * Which allocations a sweep fails depends on the caches' state: one
	 * whose every failure the kernel absorbed (seen once in 2026-12-04's
	 * rootport-noiommu run: 15 failed, 0 refused) is followed by another,
	 * up to three.
	 */
sweep:
	sweeps++;
	for (n = 1; n < 1000; n++) {
		ASSERT_EQ(0, fail_nth(n));
		ret = dmabuf_create(self->d.fd, BAR, 64, r);
		if (fail_nth_left()) {	/* nothing left to fail */
			ASSERT_EQ(0, fail_nth(0));
			ASSERT_GE(ret, 0);
			close(ret);
			break;
		}
		injected++;
		if (ret >= 0) {		/* a failure the kernel absorbed */
			ASSERT_EQ(64 * PAGE, lseek(ret, 0, SEEK_END));
			close(ret);
			continue;
		}
		ASSERT_EQ(-ENOMEM, ret);
		refused++;
		ASSERT_EQ(next_fd, dup(0));
		close(next_fd);
		if (refs >= 0)
			ASSERT_EQ(refs, core_refcnt());
	}
	ASSERT_LT(n, 1000);
	TH_LOG("create: %d allocations failed in turn, %d refused the request",
	       injected, refused);
	if (!refused && sweeps < 3)
		goto sweep;
	/* the injection reached the exporter's own allocations */
	ASSERT_GT(refused, 0);

	if (!strcmp(self->path, "none"))
		SKIP(return, "map path: " NO_PATH_SKIP);
	/*
	 * 64 runs of 64 KiB: 64 entries on every path.  Through an IOMMU the
	 * one IOVA range of 4 MiB spans two last-level page tables, so a
	 * failure can come half-way through the links: what was linked must
	 * be undone exactly (dma-iommu WARNs on an unmap of another length).
	 */
	for (int i = 0; i < 64; i++)
		m[i] = (struct vfio_region_dma_range){ i * 32 * PAGE, 16 * PAGE };
	buf = dmabuf_create(self->d.fd, BAR, 64, m);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	for (n = 1, injected = 0, refused = 0; n < 1000; n++) {
		ASSERT_EQ(0, fail_nth(n));
		ret = importer_map(imp, self->segs, MAX_SEGS);
		if (fail_nth_left()) {
			ASSERT_EQ(0, fail_nth(0));
			ASSERT_EQ(64, ret);
			break;
		}
		injected++;
		if (ret >= 0) {		/* absorbed: the table is whole */
			ASSERT_EQ(64, ret);
			check_segments(imp, m, 64, 64, 65536, ~0ULL);
			ASSERT_EQ(0, importer_unmap(imp));
			continue;
		}
		ASSERT_EQ(-ENOMEM, ret);
		refused++;
		/* a failed map holds nothing: unmap finds no mapping */
		ASSERT_EQ(-ENOENT, importer_unmap(imp));
	}
	ASSERT_LT(n, 1000);
	TH_LOG("map: %d allocations failed in turn, %d refused the map",
	       injected, refused);
	ASSERT_GT(refused, 0);
	check_segments(imp, m, 64, 64, 65536, ~0ULL);
	close(imp);
	close(buf);
}

/*
 * Closing the device revokes for good; the buffer outlives it, and stays
 * revoked when the device is opened again and its BAR is usable.
 */
TEST_F(dmabuf, device_closed_under_buffer)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int buf, imp;

	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	imp = import_where_path(buf);
	vdev_close(&self->d);
	ASSERT_EQ(PAGE, lseek(buf, 0, SEEK_END));
	reopen_and_export();
	if (imp >= 0) {
		ASSERT_EQ(1, importer_moves(imp));
		ASSERT_EQ(-ENODEV, importer_map(imp, self->segs, MAX_SEGS));
	}
	/* revoked comes before the path check */
	ASSERT_EQ(-ENODEV, importer_attach(buf, self->importer, 0));
	close(buf);	/* an importer may hold the last reference */
	if (imp >= 0)
		close(imp);
}

/* ---- Field shapes: multi-function devices, large and claimed BARs ------ */

#define MF_SKIP "no two-function device in this scenario (VFIO_DMABUF_MF0/1)"

static int mf_bdfs(const char **f0, const char **f1)
{
	*f0 = getenv("VFIO_DMABUF_MF0");
	*f1 = getenv("VFIO_DMABUF_MF1");
	return *f0 && **f0 && *f1 && **f1;
}

/*
 * Hot reset of a two-function device (one device set) with only function
 * 0 open, as a GPU whose audio function is bound to vfio-pci but unused:
 * without a buffer, with a live one, and a hot reset that fails because
 * the closed function's group is missing from the request.  The closed
 * function's state must never be read (it has none); the open one's
 * buffer is revoked and restored as for a single device.
 */
TEST_F(dmabuf, hot_reset_closed_sibling)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int groups[2], n = 1, buf, imp;
	const char *f0, *f1;
	struct vgroup *g1;
	struct vdev d;

	if (!mf_bdfs(&f0, &f1))
		SKIP(return, MF_SKIP);
	ASSERT_EQ(0, vdev_open(&d, f0));
	ASSERT_EQ(0, vdev_set_memory(&d, 1));
	/*
	 * The closed function's group, not the device; by cdev, no group:
	 * the closed function counts as owned when its group holds a device
	 * bound to our iommufd (it does: no ACS between the functions).
	 */
	g1 = vdev_cdev_mode() ? NULL : vgroup_get(f1);
	ASSERT_TRUE(vdev_cdev_mode() || g1);
	groups[0] = d.group;
	if (g1 && g1->group != d.group)
		groups[n++] = g1->group;

	ASSERT_EQ(0, vdev_hot_reset(d.fd, groups, n));

	buf = dmabuf_create(d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	imp = import_where_path(buf);
	if (imp >= 0)
		ASSERT_EQ(0, importer_watch(imp, f0));
	ASSERT_EQ(0, vdev_hot_reset(d.fd, groups, n));
	if (imp >= 0) {
		ASSERT_EQ(2, importer_moves(imp));
		check_order(imp);
		ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
		ASSERT_EQ(0, importer_unmap(imp));
	} else {
		/* not left revoked: the refusal is the missing path's */
		ASSERT_EQ(-EOPNOTSUPP, importer_attach(buf, self->importer, 0));
	}

	if (n == 2) {
		/*
		 * Function 0 (bound first, first in the set) is locked and
		 * revoked, function 1 is found unowned: the unwind restores
		 * function 0 and the ioctl fails.
		 */
		ASSERT_EQ(-EINVAL, vdev_hot_reset(d.fd, groups, 1));
		if (imp >= 0) {
			ASSERT_EQ(4, importer_moves(imp));
			ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
		}
	} else {
		TH_LOG("one IOMMU group, or opened by cdev: no request can miss one");
	}
	if (imp >= 0)
		close(imp);
	close(buf);
	if (g1)
		vgroup_put(g1);
	vdev_close(&d);
}

/*
 * A BAR over 4 GiB (function 0 of the two-function device behind the
 * switch: 8 GiB, placed above 4 GiB) exported whole and in scattered
 * ranges, imported with the largest max_seg (UINT_MAX): every entry is a
 * whole number of pages at a page-aligned address, in order.
 */
TEST_F(dmabuf, bar_over_4gib)
{
	const uint64_t G = 1ULL << 30, top = UINT32_MAX & ~(PAGE - 1);
	struct vfio_region_dma_range r[3];
	int bus = !strcmp(self->path, "bus");
	int buf, imp, nents;
	const char *f0, *f1;
	uint64_t size, phys;
	struct timespec t0;
	struct vdev d;

	if (!mf_bdfs(&f0, &f1))
		SKIP(return, MF_SKIP);
	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	ASSERT_EQ(0, vdev_open(&d, f0));
	size = vdev_region_size(&d, BAR);
	if (size <= 4 * G) {
		vdev_close(&d);
		SKIP(return, "BAR %d of %s is %llu MiB: the 8 GiB BAR is behind the switch",
		     BAR, f0, (unsigned long long)size >> 20);
	}
	phys = bar_phys(f0, BAR);
	ASSERT_GE(phys, 4 * G);
	ASSERT_EQ(0, vdev_set_memory(&d, 1));

	r[0] = (struct vfio_region_dma_range){ 0, size };
	buf = dmabuf_create(d.fd, BAR, 1, r);
	ASSERT_GE(buf, 0);
	ASSERT_EQ(size, lseek(buf, 0, SEEK_END));
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(0, importer_limits(imp, UINT32_MAX, ~0ULL));
	nents = importer_map(imp, self->segs, MAX_SEGS);
	ASSERT_EQ((size + top - 1) / top, nents);
	__check_segments(_metadata, imp, self->segs, phys, bus, self->one_iova,
			 r, 1, nents, UINT32_MAX, ~0ULL);
	/*
	 * in single pages the whole BAR would be 2^21 entries: past the most
	 * one mapping may have (2^20), refused before anything is allocated
	 */
	ASSERT_EQ(0, importer_unmap(imp));
	ASSERT_EQ(0, importer_limits(imp, PAGE, ~0ULL));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(-E2BIG, importer_map(imp, self->segs, MAX_SEGS));
	EXPECT_GT(1.0, secs_since(&t0));
	close(imp);
	close(buf);

	/* scattered: above 4 GiB of the BAR, across it, and its last pages */
	r[0] = (struct vfio_region_dma_range){ 5 * G, G + 8 * PAGE };
	r[1] = (struct vfio_region_dma_range){ PAGE, 4 * G };
	r[2] = (struct vfio_region_dma_range){ size - 16 * PAGE, 16 * PAGE };
	buf = dmabuf_create(d.fd, BAR, 3, r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, 0);
	ASSERT_GE(imp, 0);
	ASSERT_EQ(0, importer_limits(imp, UINT32_MAX, ~0ULL));
	nents = importer_map(imp, self->segs, MAX_SEGS);
	ASSERT_EQ(4, nents);
	__check_segments(_metadata, imp, self->segs, phys, bus, self->one_iova,
			 r, 3, nents, UINT32_MAX, ~0ULL);
	/* a limit under one page fits no page: refused at map time */
	ASSERT_EQ(0, importer_unmap(imp));
	ASSERT_EQ(0, importer_limits(imp, PAGE - 1, ~0ULL));
	ASSERT_EQ(-EINVAL, importer_map(imp, self->segs, MAX_SEGS));
	close(imp);
	close(buf);
	vdev_close(&d);
}

/* Whether /proc/iomem has a region named vfio* starting at @start. */
static int iomem_claimed_by_vfio(uint64_t start)
{
	unsigned long long s, e;
	char line[256];
	int found = 0, n;
	FILE *f = fopen("/proc/iomem", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " %llx-%llx : %n", &s, &e, &n) == 2 &&
		    s == start && !strncmp(line + n, "vfio", 4))
			found = 1;
	fclose(f);
	return found;
}

/*
 * Part of the BAR held by another driver (a boot framebuffer, say): the
 * create is refused with the mmap's errno and leaves nothing behind; once
 * the BAR is free, a create claims it for vfio.
 */
TEST_F(dmabuf, bar_claimed_by_another_driver)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int refs = core_refcnt(), claim, next_fd, buf;

	ASSERT_EQ(0, iomem_claimed_by_vfio(self->phys));
	claim = region_claim(self->phys + 16 * PAGE, PAGE);
	ASSERT_GE(claim, 0);
	next_fd = dup(0);
	close(next_fd);
	ASSERT_EQ(-EBUSY, dmabuf_create(self->d.fd, BAR, 1, &r));
	ASSERT_EQ(next_fd, dup(0));
	close(next_fd);
	if (refs >= 0)
		ASSERT_EQ(refs, core_refcnt());
	ASSERT_EQ(0, iomem_claimed_by_vfio(self->phys));
	close(claim);
	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	ASSERT_EQ(1, iomem_claimed_by_vfio(self->phys));
	close(buf);
}

/*
 * Sixteen buffers, each with an importer whose fence signals 2 s after the
 * move_notify that took its mapping away: the reset returns only once
 * every fence has signalled, and all importers are told before any is
 * waited for, so it takes about one delay, not sixteen.
 */
TEST_F(dmabuf, revoke_waits_for_every_fence)
{
	/*
	 * VFIO_DMABUF_FENCE_MS: scripts/inject.sh makes it longer than the
	 * hung-task timeout, to prove the runner catches what follows.
	 */
	const int DELAY_MS = atoi(env_or("VFIO_DMABUF_FENCE_MS", "2000"));
	enum { N = 16 };
	struct vfio_device_info info = { .argsz = sizeof(info) };
	int buf[N], imp[N];
	struct timespec t0, t1;
	struct vdi_info vi;
	double ms;

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
		SKIP(return, "device %s has no reset", self->d.bdf);
	for (int i = 0; i < N; i++) {
		struct vfio_region_dma_range r = { 2 * i * PAGE, PAGE };

		buf[i] = dmabuf_create(self->d.fd, BAR, 1, &r);
		ASSERT_GE(buf[i], 0);
		imp[i] = importer_attach(buf[i], self->importer, 0);
		ASSERT_GE(imp[i], 0);
		ASSERT_EQ(0, importer_fence(imp[i], DELAY_MS));
		ASSERT_EQ(1, importer_map(imp[i], self->segs, MAX_SEGS));
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_RESET));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int i = 0; i < N; i++) {
		ASSERT_EQ(0, importer_info(imp[i], &vi));
		ASSERT_EQ(2, vi.move_notify);
		ASSERT_EQ(1, vi.fences_signalled);
	}
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	TH_LOG("reset with %d importers fencing %d ms each: %.0f ms, %.2f x one fence",
	       N, DELAY_MS, ms, ms / DELAY_MS);
	ASSERT_GE(ms, DELAY_MS);
	ASSERT_LT(ms, 2 * DELAY_MS);
	for (int i = 0; i < N; i++) {
		close(imp[i]);
		close(buf[i]);
	}
}

/*
 * An importer that unmaps after move_notify returns (from a work item, as
 * GPU drivers do) reaches the BAR until it has unmapped: decode off, a
 * reset and the close of the device each return only after that.
 */
static void __revoke_and_time(struct __test_metadata *_metadata, int imp,
			      const char *what, double s)
{
	struct vdi_info vi;

	ASSERT_EQ(0, importer_info(imp, &vi));
	TH_LOG("%s with an importer unmapping %d ms after move_notify: %.3f s",
	       what, VDI_LAZY_UNMAP_MS, s);
	ASSERT_EQ(0, vi.mapped);
	ASSERT_LE(VDI_LAZY_UNMAP_MS / 1e3, s);
}

TEST_F(dmabuf, revoke_waits_for_lazy_unmap)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct vfio_region_dma_range r = { 0, PAGE };
	struct timespec t0;
	int buf, imp;

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_INFO, &info));
	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	imp = importer_attach(buf, self->importer, VDI_LAZY_UNMAP);
	ASSERT_GE(imp, 0);

	ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
	__revoke_and_time(_metadata, imp, "decode off", secs_since(&t0));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));

	ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	if (info.flags & VFIO_DEVICE_FLAGS_RESET) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_RESET));
		__revoke_and_time(_metadata, imp, "reset", secs_since(&t0));
		ASSERT_EQ(1, importer_map(imp, self->segs, MAX_SEGS));
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	vdev_close(&self->d);
	__revoke_and_time(_metadata, imp, "close", secs_since(&t0));
	close(imp);
	close(buf);
}

/*
 * A loop of refused imports does not flood the log, and the reason is
 * given.  The records between two marks are counted by their sequence
 * numbers: a flood can overwrite the ring buffer.
 */
TEST_F(dmabuf, refused_attach_log_bounded)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	long long begin, end;
	int buf, kmsg;

	if (strcmp(self->path, "none"))
		SKIP(return, "the importer has a P2P path in this scenario");
	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	/*
	 * The refusals' log is rate limited to 5 lines in 5 s: the earlier
	 * tests' refusals may have used this window's lines up (0 lines seen
	 * once, rootport-refused, 2026-12-04), so start in a fresh window.
	 */
	sleep(6);
	kmsg = open("/dev/kmsg", O_RDWR | O_NONBLOCK);
	ASSERT_GE(kmsg, 0);
	lseek(kmsg, 0, SEEK_END);
	begin = kmsg_mark(kmsg, "vfio_dmabuf_test: refused attaches begin");
	ASSERT_GE(begin, 0);
	for (int i = 0; i < 1000; i++)
		ASSERT_EQ(-EOPNOTSUPP, importer_attach(buf, self->importer, 0));
	end = kmsg_mark(kmsg, "vfio_dmabuf_test: refused attaches end");
	ASSERT_GT(end, begin);
	TH_LOG("1000 refused attaches: %lld log lines", end - begin - 1);
	ASSERT_GE(end - begin - 1, 1);
	ASSERT_LE(end - begin - 1, 50);
	close(kmsg);
	close(buf);
}

/*
 * Upstream fixed a refcount underflow and a hang when a buffer is closed
 * after PCI_COMMAND_MEMORY was cleared: close the importer and the buffer
 * while decode is off, then turn it on and export again.
 */
TEST_F(dmabuf, closed_while_decode_off)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int refs = core_refcnt(), buf, imp;

	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	imp = import_where_path(buf);
	ASSERT_EQ(0, vdev_set_memory(&self->d, 0));
	if (imp >= 0) {
		ASSERT_EQ(1, importer_moves(imp));
		close(imp);
	}
	close(buf);
	if (refs >= 0)
		ASSERT_EQ(refs, core_refcnt());
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	buf = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(buf, 0);
	close(buf);
}

/*
 * Upstream fixed a double free when the new fd cannot be installed: with
 * no free fd the create fails with EMFILE and leaves nothing behind.
 */
TEST_F(dmabuf, no_free_fd)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	int refs = core_refcnt(), next_fd = dup(0), ret;
	struct rlimit old, lim;

	ASSERT_GE(next_fd, 0);
	close(next_fd);
	ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &old));
	lim = old;
	lim.rlim_cur = next_fd;
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &lim));
	ret = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &old));
	ASSERT_EQ(-EMFILE, ret);
	if (refs >= 0)
		ASSERT_EQ(refs, core_refcnt());
	ret = dmabuf_create(self->d.fd, BAR, 1, &r);
	ASSERT_GE(ret, 0);
	close(ret);
}

/*
 * Upstream moved its cleanup before the function is disabled: closing the
 * device tells the importers while the function is still enabled and
 * decoding memory (the importer samples the exporting device in its
 * move_notify).
 */
TEST_F(dmabuf, close_revokes_before_disable)
{
	struct vfio_region_dma_range r = { 0, PAGE };
	struct vdi_info vi;
	int buf, imp;

	if (!strcmp(self->path, "none"))
		SKIP(return, NO_PATH_SKIP);
	imp = import_mapped(_metadata, self->d.fd, self->importer, &r,
			    self->segs, &buf);
	ASSERT_EQ(0, importer_watch(imp, self->d.bdf));
	vdev_close(&self->d);
	ASSERT_EQ(0, importer_info(imp, &vi));
	ASSERT_EQ(1, vi.move_notify);
	ASSERT_EQ(VDI_WATCH_SAMPLED | VDI_WATCH_ENABLED | VDI_WATCH_MEMORY,
		  vi.watched);
	close(imp);
	close(buf);
}

/* Outside the harness, without the devices: one line and a skip. */
static void __attribute__((constructor)) require_devices(void)
{
	static const char *const vars[] = { "VFIO_DMABUF_EXPORTER", "VFIO_DMABUF_IMPORTER", NULL };

	vfio_dmabuf_require(vars, 1);
}

/*
 * Power management and FLR for real: a device with a PM capability and
 * FLR in its PCIe capability (QEMU's virtio-rng-pci on a root port,
 * VFIO_DMABUF_PMDEV), exporting its BAR 4, in a kernel with CONFIG_PM.
 * Each way the device leaves D0 or resets revokes the buffer while the
 * device still decodes (the importer watched it), the CPU mapping raises
 * SIGBUS in the window, and access comes back afterwards.
 */
#define PM_BAR 4
/* PMCSR PowerState values (pci_regs.h names only the mask) */
#define PMCSR_D0 0
#define PMCSR_D3HOT 3

FIXTURE(pm) {
	struct vdev d;
	const char *importer, *path;
	char bdf[32];
	int pm, exp, buf, imp;
	uint8_t *map;
	struct vdi_segment segs[8];
};

static uint16_t cfg_read16(struct vdev *d, int pos)
{
	uint16_t v = 0xffff;

	if (pread(d->fd, &v, 2, d->cfg_offset + pos) != 2)
		return 0xffff;
	return v;
}

static uint32_t cfg_read32(struct vdev *d, int pos)
{
	uint32_t v = 0;

	if (pread(d->fd, &v, 4, d->cfg_offset + pos) != 4)
		return 0;
	return v;
}

static int cfg_write16(struct vdev *d, int pos, uint16_t v)
{
	return pwrite(d->fd, &v, 2, d->cfg_offset + pos) == 2 ? 0 : -errno;
}

/* Offset of capability @id in @d's config space (as vfio shows it), or 0. */
static int find_cap(struct vdev *d, int id)
{
	int pos = cfg_read16(d, PCI_CAPABILITY_LIST) & 0xfc;

	for (int n = 0; pos && n < 48; n++) {
		uint16_t w = cfg_read16(d, pos);

		if ((w & 0xff) == id)
			return pos;
		pos = (w >> 8) & 0xfc;
	}
	return 0;
}

FIXTURE_SETUP(pm)
{
	const char *bdf = getenv("VFIO_DMABUF_PMDEV");
	struct vfio_region_dma_range r = { 0, PAGE };

	self->buf = -1;
	self->imp = -1;
	self->map = MAP_FAILED;
	if (!bdf || !*bdf)
		SKIP(return, "no device with PM and FLR capabilities in this scenario");
	snprintf(self->bdf, sizeof(self->bdf), "%s", bdf);
	self->importer = env_or("VFIO_DMABUF_IMPORTER", "");
	self->path = env_or("VFIO_DMABUF_PATH", "none");
	probe_init();
	ASSERT_EQ(0, vdev_open(&self->d, bdf));
	ASSERT_EQ(0, vdev_set_memory(&self->d, 1));
	self->pm = find_cap(&self->d, PCI_CAP_ID_PM);
	self->exp = find_cap(&self->d, PCI_CAP_ID_EXP);
	ASSERT_NE(0, self->pm);
	ASSERT_NE(0, self->exp);
	ASSERT_NE(0, cfg_read32(&self->d, self->exp + PCI_EXP_DEVCAP) & PCI_EXP_DEVCAP_FLR);
	self->buf = dmabuf_create(self->d.fd, PM_BAR, 1, &r);
	ASSERT_GE(self->buf, 0);
	self->map = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->buf, 0);
	ASSERT_NE(MAP_FAILED, self->map);
	ASSERT_EQ(0, probe(self->map, 0, 0, NULL));
	if (strcmp(self->path, "none")) {
		self->imp = importer_attach(self->buf, self->importer, 0);
		ASSERT_GE(self->imp, 0);
		ASSERT_EQ(1, importer_map(self->imp, self->segs, ARRAY_SIZE(self->segs)));
		ASSERT_EQ(0, importer_watch(self->imp, bdf));
	}
}

FIXTURE_TEARDOWN(pm)
{
	if (self->map != MAP_FAILED)
		munmap(self->map, PAGE);
	if (self->imp >= 0)
		close(self->imp);
	if (self->buf >= 0)
		close(self->buf);
	vdev_close(&self->d);
}

/* The device's power state from sysfs: "D0", "D3hot", ... */
static const char *dev_power_state(const char *bdf)
{
	static char state[16];
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power_state", bdf);
	state[0] = 0;
	f = fopen(path, "r");
	if (f) {
		if (!fgets(state, sizeof(state), f))
			state[0] = 0;
		state[strcspn(state, "\n")] = 0;
		fclose(f);
	}
	return state;
}

/*
 * Waits up to 10 s for the device to reach @state: low-power entry only
 * drops vfio's runtime PM reference, the suspend runs asynchronously.
 */
static const char *wait_power_state(const char *bdf, const char *state)
{
	for (int i = 0; i < 1000 && strcmp(dev_power_state(bdf), state); i++)
		usleep(10000);
	return dev_power_state(bdf);
}

/* Revoked: the importer was told once, nothing maps, the CPU gets SIGBUS. */
#define pm_revoked() do {						\
	if (self->imp >= 0) {						\
		ASSERT_EQ(1, importer_moves(self->imp));		\
		ASSERT_EQ(-ENODEV, importer_map(self->imp, self->segs,	\
						ARRAY_SIZE(self->segs)));\
	}								\
	ASSERT_EQ(-ENODEV, attach_errno(self->buf, self->importer));	\
	ASSERT_EQ(SIGBUS, probe(self->map, 0, 0, NULL));		\
} while (0)

/*
 * Access is back: the importer was told to let go while the device still
 * decoded and given access back once it decoded again; it maps, the CPU
 * reads.
 */
#define pm_restored() do {						\
	if (self->imp >= 0) {						\
		ASSERT_EQ(2, importer_moves(self->imp));		\
		check_order(self->imp);					\
		ASSERT_EQ(1, importer_map(self->imp, self->segs,	\
					  ARRAY_SIZE(self->segs)));	\
	}								\
	ASSERT_EQ(0, probe(self->map, 0, 0, NULL));			\
	ASSERT_STREQ("D0", dev_power_state(self->bdf));			\
} while (0)

TEST_F(pm, d3hot_through_pmcsr)
{
	int ctrl = self->pm + PCI_PM_CTRL;
	uint16_t v = cfg_read16(&self->d, ctrl) & ~PCI_PM_CTRL_STATE_MASK;

	ASSERT_EQ(0, cfg_write16(&self->d, ctrl, v | PMCSR_D3HOT));
	ASSERT_EQ(PMCSR_D3HOT, cfg_read16(&self->d, ctrl) & PCI_PM_CTRL_STATE_MASK);
	ASSERT_STREQ("D3hot", dev_power_state(self->bdf));
	pm_revoked();
	ASSERT_EQ(0, cfg_write16(&self->d, ctrl, v | PMCSR_D0));
	pm_restored();
}

TEST_F(pm, flr_through_devctl)
{
	int ctl = self->exp + PCI_EXP_DEVCTL;

	ASSERT_EQ(0, cfg_write16(&self->d, ctl,
				 cfg_read16(&self->d, ctl) | PCI_EXP_DEVCTL_BCR_FLR));
	pm_restored();
}

TEST_F(pm, reset_ioctl_is_flr)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	char path[PATH_MAX], method[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/reset_method", self->bdf);
	f = fopen(path, "r");
	ASSERT_NE(NULL, f);
	ASSERT_NE(NULL, fgets(method, sizeof(method), f));
	fclose(f);
	ASSERT_EQ(0, strncmp(method, "flr", 3));
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_GET_INFO, &info));
	ASSERT_NE(0, info.flags & VFIO_DEVICE_FLAGS_RESET);
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_RESET));
	pm_restored();
}

/*
 * Low power with wake-up: the device goes to D3hot; another process wakes
 * it (runtime PM forbidden through sysfs, as a host tool would); vfio
 * signals the wake-up eventfd and the buffer is usable again.
 */
TEST_F(pm, low_power_wakeup_from_another_process)
{
	char fbuf[sizeof(struct vfio_device_feature) +
		  sizeof(struct vfio_device_low_power_entry_with_wakeup)];
	struct vfio_device_feature *f = (void *)fbuf;
	struct vfio_device_low_power_entry_with_wakeup *w = (void *)f->data;
	struct pollfd pfd = { .events = POLLIN };
	char path[PATH_MAX];
	uint64_t n = 0;
	int status;
	pid_t pid;

	pfd.fd = eventfd(0, EFD_CLOEXEC);
	ASSERT_GE(pfd.fd, 0);
	f->argsz = sizeof(fbuf);
	f->flags = VFIO_DEVICE_FEATURE_SET |
		   VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP;
	w->wakeup_eventfd = pfd.fd;
	w->reserved = 0;
	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_FEATURE, f));
	ASSERT_STREQ("D3hot", wait_power_state(self->bdf, "D3hot"));
	pm_revoked();
	ASSERT_EQ(0, poll(&pfd, 1, 0));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/power/control",
		 self->bdf);
	pid = fork();
	ASSERT_GE(pid, 0);
	if (!pid)
		_exit(write_file(path, "on") ? 1 : 0);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_EQ(0, status);
	ASSERT_EQ(1, poll(&pfd, 1, 10000));
	ASSERT_EQ(0, write_file(path, "auto"));
	ASSERT_EQ(sizeof(n), read(pfd.fd, &n, sizeof(n)));
	ASSERT_LE(1, n);
	close(pfd.fd);
	pm_restored();
}

/*
 * Closed while in low power: the buffer stays revoked for good (no second
 * notice), and the device opens again in D0 and exports.
 */
TEST_F(pm, close_in_low_power)
{
	struct vfio_device_feature f = {
		.argsz = sizeof(f),
		.flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
	};

	ASSERT_EQ(0, ioctl(self->d.fd, VFIO_DEVICE_FEATURE, &f));
	ASSERT_STREQ("D3hot", wait_power_state(self->bdf, "D3hot"));
	pm_revoked();
	vdev_close(&self->d);
	pm_revoked();
	close(__reopen_and_export(_metadata, &self->d, self->bdf, PM_BAR));
	ASSERT_STREQ("D0", dev_power_state(self->bdf));
	pm_revoked();
}

TEST_HARNESS_MAIN
