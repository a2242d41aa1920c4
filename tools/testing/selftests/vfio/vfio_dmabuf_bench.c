// SPDX-License-Identifier: GPL-2.0
/*
 * What a range costs: one N-range vfio-pci dma-buf against N one-range ones
 * and against udmabuf's UDMABUF_CREATE_LIST, through the same test importer;
 * revocation time; kernel memory; SG entries; and CPU access: one mmap of
 * an N-range buffer against N mmaps of the region through the device fd
 * (what a VMM does without it).  Not a test: it prints
 * figures (medians, min, max) and ratios computed from the same run.
 * Guests run under emulation: only ratios and growth mean anything.
 * Runs on either P2P path: bus addresses (switch-noiommu) or through the
 * host bridge (rootport-iommu, where the importer's DMA is translated).
 *
 * A quick smoke pass (N up to 256) unless VFIO_DMABUF_BENCH=full; run.sh
 * bench runs the full one.  Needs the environment of vfio_dmabuf_util.h and,
 * for udmabuf beyond 1024 items, a kernel booted with udmabuf.list_limit and
 * udmabuf.size_limit_mb raised.
 */

#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <linux/udmabuf.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest.h"

#define MAXREP 9

static int quick;
/* The importer's DMA goes through an IOMMU domain (dma_translated()). */
static int translated;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stat3 {
	double med, min, max;
};

static struct stat3 stats(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return (struct stat3){ v[n / 2], v[0], v[n - 1] };
}

static void die(const char *what, int err)
{
	printf("# bench: %s failed: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/*
 * The benchmark's own sanity: every figure it prints was measured and
 * every SG entry count is the one the exporter must give.  A failed check
 * is printed and fails the run ("not ok 1 benchmark").
 */
static int failed_checks;

#define CHECK(cond, fmt, ...) do {					\
	if (!(cond)) {							\
		failed_checks++;					\
		printf("# bench: check failed: " fmt "\n", ##__VA_ARGS__);	\
	}								\
} while (0)

/* Phases of one variant for one N, in seconds. */
enum { CREATE, MAP, UNMAP, CLOSE, NPHASE };
static const char *const phase_name[NPHASE] = {
	"create", "attach+map", "unmap+detach", "close",
};

/* Scattered: every other page, wrapping in the BAR; contiguous: in a row. */
static void fill_ranges(struct vfio_region_dma_range *r, int n, int scattered,
			uint64_t bar_pages)
{
	for (int i = 0; i < n; i++) {
		uint64_t page = scattered ? (2ULL * i) % (bar_pages - 1) : i % bar_pages;

		r[i].offset = page * PAGE;
		r[i].length = PAGE;
	}
}

/*
 * The fewest SG entries an importer whose segments hold at most @max_seg
 * bytes can get for @r: through an IOMMU the whole buffer can be one IOVA
 * range, cut only at @max_seg; elsewhere each physically contiguous run is.
 */
static int min_entries(const struct vfio_region_dma_range *r, int n,
		       uint64_t max_seg)
{
	uint64_t len = 0;
	int e = 0;

	for (int i = 0; i < n; i++) {
		len += r[i].length;
		if (i + 1 < n && (translated || r[i].offset + r[i].length == r[i + 1].offset))
			continue;
		e += (len + max_seg - 1) / max_seg;
		len = 0;
	}
	return e;
}

/*
 * The importer is asked for the entry count only (no segments copied, no
 * per-page IOMMU lookups): the benchmark times the exporter, not the test
 * importer's checks.
 */
static struct vdi_segment *segs;
#define NO_SEGS 0
static int nents_last;

/* The phases after create, for one buffer: import, map, unmap, detach, close. */
static void import_and_close(int buf, const char *imp_bdf, double t[NPHASE])
{
	double t0 = now();
	int imp = importer_attach(buf, imp_bdf, 0);

	if (imp < 0)
		die("attach", imp);
	nents_last = importer_map(imp, segs, NO_SEGS);
	t[MAP] = now() - t0;
	if (nents_last < 0)
		die("map", nents_last);
	t0 = now();
	CHECK(!importer_unmap(imp), "unmap of a mapped importer");
	close(imp);
	t[UNMAP] = now() - t0;
	t0 = now();
	close(buf);
	t[CLOSE] = now() - t0;
}

/* One N-range buffer: one run of the four phases. */
static void run_one_buffer(struct vdev *d, const char *imp_bdf,
			   struct vfio_region_dma_range *r, int n, double t[NPHASE])
{
	double t0;
	int buf;

	t0 = now();
	buf = dmabuf_create(d->fd, 2, n, r);
	t[CREATE] = now() - t0;
	if (buf < 0)
		die("create", buf);
	import_and_close(buf, imp_bdf, t);
}

/* N one-range buffers: each phase for all N. */
static void run_n_buffers(struct vdev *d, const char *imp_bdf,
			  struct vfio_region_dma_range *r, int n, double t[NPHASE])
{
	int *buf = calloc(n, sizeof(int)), *imp = calloc(n, sizeof(int));
	double t0;
	int i;

	if (!buf || !imp)
		die("calloc", ENOMEM);
	t0 = now();
	for (i = 0; i < n; i++) {
		buf[i] = dmabuf_create(d->fd, 2, 1, &r[i]);
		if (buf[i] < 0)
			die("create", buf[i]);
	}
	t[CREATE] = now() - t0;
	t0 = now();
	for (i = 0; i < n; i++) {
		imp[i] = importer_attach(buf[i], imp_bdf, 0);
		if (imp[i] < 0 || importer_map(imp[i], segs, NO_SEGS) != 1)
			die("attach+map", imp[i] < 0 ? imp[i] : EIO);
	}
	t[MAP] = now() - t0;
	t0 = now();
	for (i = 0; i < n; i++) {
		importer_unmap(imp[i]);
		close(imp[i]);
	}
	t[UNMAP] = now() - t0;
	t0 = now();
	for (i = 0; i < n; i++)
		close(buf[i]);
	t[CLOSE] = now() - t0;
	free(buf);
	free(imp);
}

/*
 * Physically contiguous runs of the first @n pages of @memfd, read from
 * /proc/self/pagemap (root sees the frame numbers): the IOMMU path of an
 * importer maps one run per call (iommu_map_sg() merges neighbours), so
 * udmabuf's cost depends on how the memfd's pages happen to lie. 0 if
 * unknown.
 */
static int memfd_phys_runs(int memfd, int n)
{
	uint64_t *pfn = calloc(n, sizeof(*pfn));
	int pm = open("/proc/self/pagemap", O_RDONLY);
	/* populated: present in the page table, for pagemap to tell the frames */
	void *p = mmap(NULL, (size_t)n * PAGE, PROT_READ, MAP_SHARED | MAP_POPULATE, memfd, 0);
	int runs = 0;

	if (pfn && pm >= 0 && p != MAP_FAILED &&
	    pread(pm, pfn, (size_t)n * sizeof(*pfn),
		  (off_t)((uintptr_t)p / PAGE * sizeof(*pfn))) == (ssize_t)(n * sizeof(*pfn))) {
		for (int i = 0; i < n; i++) {
			uint64_t f = pfn[i] & ((1ULL << 55) - 1);

			if (!(pfn[i] >> 63) || !f) {
				runs = 0;
				break;
			}
			if (!i || f != (pfn[i - 1] & ((1ULL << 55) - 1)) + 1)
				runs++;
		}
	}
	if (p != MAP_FAILED)
		munmap(p, (size_t)n * PAGE);
	if (pm >= 0)
		close(pm);
	free(pfn);
	return runs;
}

static int udmabuf_runs_n, udmabuf_runs;

/*
 * udmabuf over a memfd of N pages, one list item per page: in the memfd's
 * order, or @scattered: the even pages, then the odd ones, so that no two
 * neighbouring items are neighbours in the memfd (nor physically), as the
 * scattered ranges of our buffer are not in the BAR.
 */
static void run_udmabuf(const char *imp_bdf, int n, int scattered, double t[NPHASE])
{
	size_t size = sizeof(struct udmabuf_create_list) +
		      (size_t)n * sizeof(struct udmabuf_create_item);
	struct udmabuf_create_list *list = calloc(1, size);
	int memfd, dev, buf;
	double t0;

	if (!list)
		die("calloc", ENOMEM);
	memfd = memfd_create("bench", MFD_ALLOW_SEALING);
	if (memfd < 0 || ftruncate(memfd, (off_t)n * PAGE) ||
	    fallocate(memfd, 0, 0, (off_t)n * PAGE) ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK))
		die("memfd", errno);
	if (!scattered && n > udmabuf_runs_n) {
		udmabuf_runs_n = n;
		udmabuf_runs = memfd_phys_runs(memfd, n);
	}
	dev = open("/dev/udmabuf", O_RDWR);
	if (dev < 0)
		die("open /dev/udmabuf", errno);
	list->flags = UDMABUF_FLAGS_CLOEXEC;
	list->count = n;
	for (int i = 0; i < n; i++) {
		list->list[i].memfd = memfd;
		int page = !scattered ? i : i < (n + 1) / 2 ? 2 * i : 2 * (i - (n + 1) / 2) + 1;

		list->list[i].offset = (uint64_t)page * PAGE;
		list->list[i].size = PAGE;
	}
	t0 = now();
	buf = ioctl(dev, UDMABUF_CREATE_LIST, list);
	t[CREATE] = now() - t0;
	if (buf < 0)
		die("UDMABUF_CREATE_LIST", errno);
	import_and_close(buf, imp_bdf, t);
	close(dev);
	close(memfd);
	free(list);
}

enum { ONE_SCAT, ONE_CONT, N_BUFS, UDMABUF, UDMABUF_SCAT, NVAR };
static const char *const var_name[NVAR] = {
	"1 buffer, N ranges, scattered", "1 buffer, N ranges, contiguous",
	"N buffers, 1 range each", "udmabuf, N items",
	"udmabuf, N items, scattered",
};

static const int sizes[] = { 1, 16, 256, 1024, 4096, 65536, 262144 };
#define NSIZES ((int)ARRAY_SIZE(sizes))
static struct stat3 res[NVAR][NSIZES][NPHASE + 1];	/* + total */
static int have[NVAR][NSIZES];
static int nents[NVAR][NSIZES];	/* SG entries one buffer gave the importer */

/* Time of phase @ph, or of all phases for NPHASE. */
static double phase_time(const double t[NPHASE], int ph)
{
	double sum = 0;

	for (int q = 0; q < NPHASE; q++)
		if (q == ph || ph == NPHASE)
			sum += t[q];
	return sum;
}

/* Memory in use (MemTotal - MemFree), KiB: counts kmalloc, vmalloc and pages. */
static long kmem_kib(void)
{
	long total = 0, free = 0, v;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "MemTotal: %ld", &v) == 1)
			total = v;
		if (sscanf(line, "MemFree: %ld", &v) == 1)
			free = v;
	}
	if (f)
		fclose(f);
	return total - free;
}

static void print_table(int ph)
{
	printf("\n## %s, seconds: median [min, max]\n", ph == NPHASE ? "total" : phase_name[ph]);
	printf("| N | %s | %s | %s | %s | %s ",
	       var_name[0], var_name[1], var_name[2], var_name[3], var_name[4]);
	printf("| 1 buf / N bufs | ours / udmabuf, scattered | ours / udmabuf, in order |\n|---");
	for (int v = 0; v <= NVAR + 2; v++)
		printf("|---");
	printf("|\n");
	for (int s = 0; s < NSIZES; s++) {
		if (!have[ONE_SCAT][s])
			continue;
		printf("| %d ", sizes[s]);
		for (int v = 0; v < NVAR; v++) {
			struct stat3 x = res[v][s][ph];

			if (have[v][s])
				printf("| %.3g [%.3g, %.3g] ", x.med, x.min, x.max);
			else
				printf("| - ");
		}
		if (have[ONE_SCAT][s] && have[N_BUFS][s])
			printf("| %.3g ", res[ONE_SCAT][s][ph].med / res[N_BUFS][s][ph].med);
		else
			printf("| - ");
		/* like for like: scattered pages, and pages as they lie */
		if (have[ONE_SCAT][s] && have[UDMABUF_SCAT][s])
			printf("| %.3g ", res[ONE_SCAT][s][ph].med / res[UDMABUF_SCAT][s][ph].med);
		else
			printf("| - ");
		if (have[ONE_CONT][s] && have[UDMABUF][s])
			printf("| %.3g ", res[ONE_CONT][s][ph].med / res[UDMABUF][s][ph].med);
		else
			printf("| - ");
		printf("|\n");
	}
}

static void revocation(struct vdev *d, const char *imp_bdf)
{
	static const int ks[] = { 0, 1, 16, 256 }, as[] = { 1, 4 };
	struct vfio_region_dma_range r = { 0, PAGE };

	printf("\n## Revocation: K buffers x A importers, seconds (median of 5)\n");
	printf("| K | A | VFIO_DEVICE_RESET | decode off + on |");
	printf(" move_notify per event, per importer |\n");
	printf("|---|---|---|---|---|\n");
	for (unsigned int ki = 0; ki < ARRAY_SIZE(ks); ki++) {
		for (unsigned int ai = 0; ai < ARRAY_SIZE(as); ai++) {
			if (quick && ks[ki] > 16)
				break;
			int k = ks[ki], a = as[ai];
			int *buf = calloc(k + 1, sizeof(int));
			int *imp = calloc(k * a + 1, sizeof(int));
			double tr[5], tt[5], t0, per_event;
			uint64_t moves0;

			for (int i = 0; i < k; i++) {
				buf[i] = dmabuf_create(d->fd, 2, 1, &r);
				if (buf[i] < 0)
					die("create", buf[i]);
				for (int j = 0; j < a; j++) {
					imp[i * a + j] = importer_attach(buf[i], imp_bdf, 0);
					if (imp[i * a + j] < 0)
						die("attach", imp[i * a + j]);
				}
			}
			moves0 = k ? importer_moves(imp[0]) : 0;
			for (int rep = 0; rep < 5; rep++) {
				for (int i = 0; i < k * a; i++)
					CHECK(importer_map(imp[i], segs, NO_SEGS) == 1,
					      "map before reset, K %d A %d", k, a);
				t0 = now();
				if (ioctl(d->fd, VFIO_DEVICE_RESET))
					die("reset", errno);
				tr[rep] = now() - t0;
				for (int i = 0; i < k * a; i++)
					CHECK(importer_map(imp[i], segs, NO_SEGS) == 1,
					      "map after reset, K %d A %d", k, a);
				t0 = now();
				if (vdev_set_memory(d, 0) || vdev_set_memory(d, 1))
					die("decode off + on", errno);
				tt[rep] = now() - t0;
			}
			per_event = k ? (importer_moves(imp[0]) - moves0) / 10.0 : 0;
			/* each event revokes and restores: two calls */
			CHECK(!k || per_event == 2, "move_notify per event %.3g, want 2",
			      per_event);
			CHECK(stats(tr, 5).med > 0 && stats(tt, 5).med > 0,
			      "reset and decode times measured, K %d A %d", k, a);
			printf("| %d | %d | %.3g | %.3g | %.3g |\n", k, a,
			       stats(tr, 5).med, stats(tt, 5).med, per_event);
			for (int i = 0; i < k * a; i++)
				close(imp[i]);
			for (int i = 0; i < k; i++)
				close(buf[i]);
			free(buf);
			free(imp);
		}
	}
}

static void memory_and_entries(struct vdev *d, const char *imp_bdf,
			       struct vfio_region_dma_range *r, uint64_t bar_pages)
{
	int m = quick ? 64 : 1024, n = quick ? 4096 : 65536, buf[1024], imp;
	int got, want;
	long k0, k1;

	printf("\n## Kernel memory (MemTotal - MemFree deltas; noisy for small counts)\n");
	fill_ranges(r, m, 1, bar_pages);
	k0 = kmem_kib();
	for (int i = 0; i < m; i++) {
		buf[i] = dmabuf_create(d->fd, 2, 1, &r[i]);
		if (buf[i] < 0)
			die("create", buf[i]);
	}
	k1 = kmem_kib();
	for (int i = 0; i < m; i++)
		close(buf[i]);
	printf("per buffer (%d one-range buffers): %.2f KiB\n", m, (k1 - k0) / (double)m);
	fill_ranges(r, n, 1, bar_pages);
	k0 = kmem_kib();
	buf[0] = dmabuf_create(d->fd, 2, n, r);
	k1 = kmem_kib();
	if (buf[0] < 0)
		die("create", buf[0]);
	printf("per range (one buffer of %d ranges): %.1f bytes\n", n,
	       (k1 - k0) * 1024.0 / n);

	printf("\n## SG entries against the minimum (%s, cut at the maximum segment)\n",
	       translated ? "one IOVA range for the buffer" : "physically contiguous runs");
	imp = importer_attach(buf[0], imp_bdf, 0);
	if (imp < 0)
		die("attach", imp);
	CHECK(!importer_limits(imp, 1U << 31, ~0ULL), "set importer limits");
	got = importer_map(imp, segs, NO_SEGS);
	want = min_entries(r, n, 1U << 31);
	printf("scattered, %d ranges: %d entries, minimum %d\n", n, got, want);
	CHECK(got == want, "scattered: %d entries, want %d", got, want);
	close(imp);
	close(buf[0]);
	n = n < (int)bar_pages ? n : (int)bar_pages;
	fill_ranges(r, n, 0, bar_pages);
	buf[0] = dmabuf_create(d->fd, 2, n, r);
	if (buf[0] < 0)
		die("create", buf[0]);
	imp = importer_attach(buf[0], imp_bdf, 0);
	if (imp < 0)
		die("attach", imp);
	CHECK(!importer_limits(imp, 1U << 31, ~0ULL), "set importer limits");
	got = importer_map(imp, segs, NO_SEGS);
	want = min_entries(r, n, 1U << 31);
	printf("contiguous, %d ranges (max segment 2 GiB): %d entries, minimum %d\n",
	       n, got, want);
	CHECK(got == want, "contiguous: %d entries, want %d", got, want);
	CHECK(!importer_unmap(imp), "unmap");
	CHECK(!importer_limits(imp, 65536, ~0ULL), "set importer limits");
	got = importer_map(imp, segs, NO_SEGS);
	want = min_entries(r, n, 65536);
	printf("contiguous, %d ranges (max segment 64 KiB, PCI's default): ", n);
	printf("%d entries, minimum %d\n", got, want);
	CHECK(got == want, "contiguous at 64 KiB: %d entries, want %d", got, want);
	close(imp);
	close(buf[0]);
}

/* Lines of /proc/self/maps: the process's VMAs. */
static int vma_count(void)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0;

	if (!f)
		die("open /proc/self/maps", errno);
	while (fgets(line, sizeof(line), f))
		n += !!strchr(line, '\n');
	fclose(f);
	return n;
}

enum { CPU_MAP, CPU_TOUCH, CPU_UNMAP, NCPU };

/* The word the CPU table leaves at the start of the BAR page at @offset. */
static uint64_t page_word(uint64_t offset)
{
	return 0x5eedf00d00000000ULL ^ offset;
}

/*
 * Writes page_word() at the start of each page of @r[0..@n) through one
 * mapping of an N-range buffer of @d, so that both ways read known data.
 */
static void write_page_words(struct vdev *d, const struct vfio_region_dma_range *r, int n)
{
	int buf = dmabuf_create(d->fd, 2, n, r);
	uint8_t *map;

	if (buf < 0)
		die("create", buf);
	map = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, buf, 0);
	if (map == MAP_FAILED)
		die("mmap of the dma-buf", errno);
	for (int i = 0; i < n; i++)
		st64(map + i * PAGE, page_word(r[i].offset));
	munmap(map, n * PAGE);
	close(buf);
}

/*
 * The CPU's way to N scattered pages of a memory BAR (@d, region offset
 * @reg_off): one mmap of an N-range dma-buf, or (@per_range) one mmap of
 * the region per range.  Times mapping, reading one word of every page
 * (each read faults its page in) and unmapping; *@vmas gets the VMAs the
 * mappings took, or minus the number of mmaps that succeeded before one
 * failed (the process's map count limit).  Each word read that is not
 * the page's page_word() counts in *@wrong.
 */
static void cpu_once(struct vdev *d, uint64_t reg_off,
		     const struct vfio_region_dma_range *r, int n, int per_range,
		     double t[NCPU], int *vmas, uint64_t *wrong)
{
	static uint8_t **maps;
	int v0 = vma_count(), buf = -1, k;
	double t0;

	if (!maps)
		maps = calloc(262144, sizeof(*maps));
	if (!maps)
		die("calloc", ENOMEM);
	t0 = now();
	if (per_range) {
		for (k = 0; k < n; k++) {
			maps[k] = mmap(NULL, r[k].length, PROT_READ, MAP_SHARED,
				       d->fd, reg_off + r[k].offset);
			if (maps[k] == MAP_FAILED)
				break;
		}
	} else {
		buf = dmabuf_create(d->fd, 2, n, r);
		if (buf < 0)
			die("create", buf);
		maps[0] = mmap(NULL, n * PAGE, PROT_READ, MAP_SHARED, buf, 0);
		if (maps[0] == MAP_FAILED)
			die("mmap of the dma-buf", errno);
		k = n;
	}
	t[CPU_MAP] = now() - t0;
	*vmas = k < n ? -k : vma_count() - v0;
	t0 = now();
	for (int i = 0; i < k; i++)
		*wrong += (per_range ? ld64(maps[i]) : ld64(maps[0] + i * PAGE)) !=
			  page_word(r[i].offset);
	t[CPU_TOUCH] = now() - t0;
	t0 = now();
	if (per_range) {
		for (int i = 0; i < k; i++)
			munmap(maps[i], r[i].length);
	} else {
		munmap(maps[0], n * PAGE);
		close(buf);
	}
	t[CPU_UNMAP] = now() - t0;
}

/* The CPU mapping table, on the memory BAR of VFIO_DMABUF_MEMDEV. */
static void cpu_mappings(struct vfio_region_dma_range *r)
{
	static const int cpu_sizes[] = { 1, 16, 256, 1024, 4096, 16384, 65536 };
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = 2 };
	const char *memdev = env_or("VFIO_DMABUF_MEMDEV", "");
	double t[2][5][NCPU], col[5], tot[2];
	struct stat3 st[2][NCPU];
	int vmas[2], limit_hit = 0;
	uint64_t wrong = 0, pages;
	struct vdev m;
	FILE *f;
	int e, max_map = 0;

	if (!*memdev) {
		CHECK(0, "VFIO_DMABUF_MEMDEV is not set: no CPU mapping figures");
		return;
	}
	f = fopen("/proc/sys/vm/max_map_count", "r");
	if (!f || fscanf(f, "%d", &max_map) != 1)
		max_map = 0;
	if (f)
		fclose(f);
	e = vdev_open(&m, memdev);
	if (e || vdev_set_memory(&m, 1) ||
	    ioctl(m.fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		die("open the memory BAR's device", e ? e : errno);
	pages = reg.size / PAGE;
	printf("\n## CPU mappings: one N-range buffer vs N mmaps of the region\n");
	printf("# seconds: median [min, max]\n");
	printf("# scattered pages of %s's memory BAR; vm.max_map_count %d\n", memdev, max_map);
	printf("# map: VFIO_DEVICE_FEATURE_DMA_BUF and one mmap of the buffer, or one mmap of\n"
	       "# the region per range; unmap: munmap and close, or one munmap per range\n");
	printf("| N | map: 1 buffer | map: N mmaps ");
	printf("| read every page: 1 buffer | read every page: N mmaps ");
	printf("| unmap: 1 buffer | unmap: N mmaps ");
	printf("| VMAs: 1 buffer / N mmaps | N mmaps / 1 buffer, all three |\n");
	printf("|---|---|---|---|---|---|---|---|---|\n");
	for (unsigned int s = 0; s < ARRAY_SIZE(cpu_sizes); s++) {
		int n = cpu_sizes[s], reps = n <= 1024 ? 5 : 3;

		if (quick && n > 256)
			break;
		fill_ranges(r, n, 1, pages);
		write_page_words(&m, r, n);
		/* the two ways in turns, each first every other time */
		for (int rep = 0; rep < reps; rep++)
			for (int i = 0; i < 2; i++) {
				int w = (rep + i) % 2;

				cpu_once(&m, reg.offset, r, n, w, t[w][rep], &vmas[w], &wrong);
			}
		for (int w = 0; w < 2; w++) {
			tot[w] = 0;
			for (int ph = 0; ph < NCPU; ph++) {
				for (int rep = 0; rep < reps; rep++)
					col[rep] = t[w][rep][ph];
				st[w][ph] = stats(col, reps);
				tot[w] += st[w][ph].med;
			}
		}
		printf("| %d ", n);
		for (int ph = 0; ph < NCPU; ph++)
			for (int w = 0; w < 2; w++)
				printf("| %.3g [%.3g, %.3g] ", st[w][ph].med,
				       st[w][ph].min, st[w][ph].max);
		if (vmas[1] < 0) {
			limit_hit = 1;
			printf("| %d / failed after %d (ENOMEM) | - |\n", vmas[0], -vmas[1]);
		} else {
			printf("| %d / %d | %.3g |\n", vmas[0], vmas[1], tot[1] / tot[0]);
		}
		CHECK(vmas[0] == 1, "N %d: one buffer took %d VMAs", n, vmas[0]);
		CHECK(vmas[1] < 0 || vmas[1] == n, "N %d: %d mmaps took %d VMAs", n, n, vmas[1]);
		CHECK(vmas[1] > 0 || n > max_map - 1000,
		      "N %d: the per-range mmaps failed far below the map count limit", n);
		fflush(stdout);
	}
	if (limit_hit)
		printf("# per range, mmap stops at the map count limit; one buffer is one VMA\n");
	/* both ways read what was written: not zero pages, not each other's */
	CHECK(!wrong, "%llu words read were not the page's known word",
	      (unsigned long long)wrong);
	vdev_close(&m);
}

/*
 * What a VMM pays to give a device one whole BAR, timed in one run, @reps
 * times each: VFIO_IOMMU_MAP_DMA of the region's mmap in the type1
 * container (QEMU's way before iommufd: type1 faults the mmap in and looks
 * up each page's PFN) against IOMMU_IOAS_MAP_FILE of a one-range dma-buf of
 * the same bytes (one physical range, mapped whole), with the unmaps.  Only
 * where an IOMMU translates the device: type1 and iommufd map through it.
 * @bdf's BAR 2 (the memory-backed one, 8 GiB in the guests) is opened
 * through its group, then through its cdev for iommufd.
 */
static void map_file_vs_type1(const char *bdf)
{
	uint64_t len, iova = 1ULL << 32;
	double t1[MAXREP], t1u[MAXREP], tf[MAXREP], tfu[MAXREP];
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = 2 };
	struct vfio_region_dma_range r = { 0, 0 };
	int reps = quick ? 1 : 3, buf, e;
	char path[PATH_MAX];
	struct vdev c, g;
	struct vdev *d = &g;
	void *bar;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu", bdf);
	if (access(path, F_OK)) {
		printf("\n## IOMMU_IOAS_MAP_FILE vs type1: %s\n",
		       "not measured, no IOMMU translates the device here");
		return;
	}
	e = vdev_open(d, bdf);
	CHECK(!e && !vdev_set_memory(d, 1), "open %s through its group: %s", bdf, strerror(-e));
	if (e)
		return;
	len = quick ? 64ULL << 20 : vdev_region_size(d, 2);
	CHECK(!ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &reg), "region info");
	bar = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, reg.offset);
	CHECK(bar != MAP_FAILED, "mmap of BAR 2: %s", strerror(errno));
	for (int i = 0; bar != MAP_FAILED && i < reps; i++) {
		struct vfio_iommu_type1_dma_map map = {
			.argsz = sizeof(map), .vaddr = (uintptr_t)bar,
			.iova = iova, .size = len,
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		};
		struct vfio_iommu_type1_dma_unmap unmap = {
			.argsz = sizeof(unmap), .iova = iova, .size = len,
		};
		double t0 = now();

		CHECK(!ioctl(d->container, VFIO_IOMMU_MAP_DMA, &map),
		      "VFIO_IOMMU_MAP_DMA of the BAR's mmap: %s", strerror(errno));
		t1[i] = now() - t0;
		t0 = now();
		CHECK(!ioctl(d->container, VFIO_IOMMU_UNMAP_DMA, &unmap) &&
		      unmap.size == len, "VFIO_IOMMU_UNMAP_DMA");
		t1u[i] = now() - t0;
	}
	if (bar != MAP_FAILED)
		munmap(bar, len);
	vdev_close(d);

	e = vdev_open_via(&c, bdf, 1);
	CHECK(!e && !vdev_set_memory(&c, 1), "open %s through its cdev: %s", bdf, strerror(-e));
	if (e)
		return;
	r.length = len;
	buf = dmabuf_create(c.fd, 2, 1, &r);
	CHECK(buf >= 0, "a dma-buf of the BAR: %s", strerror(-buf));
	for (int i = 0; buf >= 0 && i < reps; i++) {
		struct iommu_ioas_map_file map = {
			.size = sizeof(map), .ioas_id = viommufd.ioas, .fd = buf,
			.length = len, .iova = iova,
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
		};
		struct iommu_ioas_unmap unmap = {
			.size = sizeof(unmap), .ioas_id = viommufd.ioas,
			.iova = iova, .length = len,
		};
		double t0 = now();

		CHECK(!ioctl(c.iommufd, IOMMU_IOAS_MAP_FILE, &map),
		      "IOMMU_IOAS_MAP_FILE of the dma-buf: %s", strerror(errno));
		tf[i] = now() - t0;
		t0 = now();
		CHECK(!ioctl(c.iommufd, IOMMU_IOAS_UNMAP, &unmap) &&
		      unmap.length == len, "IOMMU_IOAS_UNMAP");
		tfu[i] = now() - t0;
	}
	if (buf >= 0)
		close(buf);
	vdev_close(&c);
	if (failed_checks)
		return;

	printf("\n## Giving a device the whole BAR (%llu MiB): %s, %d runs\n",
	       (unsigned long long)(len >> 20), "type1 vs IOMMU_IOAS_MAP_FILE", reps);
	printf("| way | map median (ms) | unmap median (ms) |\n|---|---|---|\n");
	printf("| VFIO_IOMMU_MAP_DMA of the BAR's mmap (type1) | %.3f | %.3f |\n",
	       stats(t1, reps).med * 1e3, stats(t1u, reps).med * 1e3);
	printf("| IOMMU_IOAS_MAP_FILE of a one-range dma-buf | %.3f | %.3f |\n",
	       stats(tf, reps).med * 1e3, stats(tfu, reps).med * 1e3);
	printf("map ratio type1/MAP_FILE: %.3g (goal: at least 2)\n",
	       stats(t1, reps).med / stats(tf, reps).med);
	CHECK(stats(t1, reps).med >= 2 * stats(tf, reps).med,
	      "MAP_FILE is not twice as fast as type1");
}

int main(void)
{
	static const char *const need[] = {
		"VFIO_DMABUF_EXPORTER",
		"VFIO_DMABUF_IMPORTER", NULL
	};
	const char *bdf = getenv("VFIO_DMABUF_EXPORTER");
	const char *imp_bdf = env_or("VFIO_DMABUF_IMPORTER", "");
	struct rlimit rl = { 600000, 600000 };
	struct vfio_region_dma_range *r;
	uint64_t bar_pages;
	const char *path;
	struct vdev d;
	int s, v, e;

	vfio_dmabuf_require(need, 1);

	quick = strcmp(env_or("VFIO_DMABUF_BENCH", "quick"), "full") != 0;
	printf("TAP version 13\n1..1\n");
	path = env_or("VFIO_DMABUF_PATH", "none");
	if (!bdf || !strcmp(path, "none")) {
		printf("ok 1 benchmark # SKIP the scenario has no P2P path\n");
		return 0;
	}
	translated = !strcmp(path, "host") && dma_translated(imp_bdf);
	setrlimit(RLIMIT_NOFILE, &rl);
	e = vdev_open(&d, bdf);
	if (e || vdev_set_memory(&d, 1))
		die("open device", e);
	bar_pages = vdev_region_size(&d, 2) / PAGE;
	r = calloc(262144, sizeof(*r));
	segs = calloc(1, sizeof(*segs));
	if (!r || !segs)
		die("calloc", ENOMEM);

	printf("# vfio-pci dma-buf benchmark%s; guest under QEMU TCG emulation:\n"
	       "# absolute times are not meaningful, ratios and growth are.\n",
	       quick ? " (quick smoke pass)" : "");
	printf("# path: %s, the importer's DMA %s\n",
	       !strcmp(path, "bus") ? "PCI bus addresses" : "through the host bridge",
	       translated ? "translated by an IOMMU" : "untranslated");
	/* First, while the slab caches are cold. */
	memory_and_entries(&d, imp_bdf, r, bar_pages);
	for (s = 0; s < NSIZES; s++) {
		int n = sizes[s], reps = n <= 1024 ? MAXREP : n <= 4096 ? 5 : 3;

		if (quick && n > 256)
			break;
		for (v = 0; v < NVAR; v++) {
			double t[MAXREP][NPHASE], col[MAXREP];

			if ((v == N_BUFS || v >= UDMABUF) && n > 65536)
				continue;
			for (int rep = 0; rep < reps; rep++) {
				fill_ranges(r, n, v != ONE_CONT, bar_pages);
				if (v == ONE_SCAT || v == ONE_CONT)
					run_one_buffer(&d, imp_bdf, r, n, t[rep]);
				else if (v == N_BUFS)
					run_n_buffers(&d, imp_bdf, r, n, t[rep]);
				else
					run_udmabuf(imp_bdf, n, v == UDMABUF_SCAT, t[rep]);
			}
			nents[v][s] = v == N_BUFS ? n : nents_last;
			for (int ph = 0; ph <= NPHASE; ph++) {
				for (int rep = 0; rep < reps; rep++)
					col[rep] = phase_time(t[rep], ph);
				res[v][s][ph] = stats(col, reps);
			}
			have[v][s] = 1;
			fflush(stdout);
		}
	}
	for (int ph = 0; ph <= NPHASE; ph++)
		print_table(ph);
	printf("\n## SG entries the importer got (64 KiB max segment)\n| N |");
	for (v = 0; v < NVAR; v++)
		printf(" %s |", var_name[v]);
	printf("\n|---|---|---|---|---|---|\n");
	for (s = 0; s < NSIZES; s++) {
		if (!have[ONE_SCAT][s])
			continue;
		printf("| %d |", sizes[s]);
		for (v = 0; v < NVAR; v++)
			printf(have[v][s] ? " %d |" : " - |", nents[v][s]);
		printf("\n");
	}
	for (v = 0; v < NVAR; v++) {
		int a = 4, b = 5;	/* sizes 4096 and 65536 */

		if (!have[v][a] || !have[v][b])
			continue;
		printf("growth t(65536)/t(4096), %s, ", var_name[v]);
		printf("create + attach+map: %.3g (linear: 16)\n",
		       (res[v][b][CREATE].med + res[v][b][MAP].med) /
		       (res[v][a][CREATE].med + res[v][a][MAP].med));
	}
	if (udmabuf_runs_n)
		printf("udmabuf's memfd, %d pages: %d physically contiguous runs%s\n",
		       udmabuf_runs_n, udmabuf_runs,
		       udmabuf_runs ? "" : " (unknown: no frame numbers in pagemap)");
	/* 2^10 to 2^18 ranges of one buffer: past 2^14 they overlap in the BAR */
	for (v = ONE_SCAT; v <= ONE_CONT; v++) {
		int a = 3, b = 6;	/* sizes 1024 and 262144 */

		if (!have[v][a] || !have[v][b])
			continue;
		printf("growth t(262144)/t(1024), %s, ", var_name[v]);
		printf("create + attach+map: %.3g (linear: 256)\n",
		       (res[v][b][CREATE].med + res[v][b][MAP].med) /
		       (res[v][a][CREATE].med + res[v][a][MAP].med));
	}
	/* every size of this mode measured for every variant, entries right */
	for (s = 0; s < NSIZES && !(quick && sizes[s] > 256); s++) {
		int n = sizes[s];

		for (v = 0; v < NVAR; v++) {
			if ((v == N_BUFS || v >= UDMABUF) && n > 65536)
				continue;
			CHECK(have[v][s], "%s, N %d: not measured", var_name[v], n);
			for (int ph = 0; have[v][s] && ph <= NPHASE; ph++)
				CHECK(res[v][s][ph].med > 0 && res[v][s][ph].min > 0,
				      "%s, N %d: a time is not positive", var_name[v], n);
		}
		fill_ranges(r, n, 1, bar_pages);
		CHECK(nents[ONE_SCAT][s] == min_entries(r, n, 65536),
		      "scattered, N %d: %d entries, minimum %d", n,
		      nents[ONE_SCAT][s], min_entries(r, n, 65536));
		fill_ranges(r, n, 0, bar_pages);
		CHECK(nents[ONE_CONT][s] == min_entries(r, n, 65536),
		      "contiguous, N %d: %d entries, minimum %d", n,
		      nents[ONE_CONT][s], min_entries(r, n, 65536));
	}
	revocation(&d, imp_bdf);
	vdev_close(&d);
	map_file_vs_type1(env_or("VFIO_DMABUF_MEMDEV", bdf));
	cpu_mappings(r);
	printf("%s 1 benchmark\n", failed_checks ? "not ok" : "ok");
	return failed_checks ? 1 : 0;
}
