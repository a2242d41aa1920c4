// SPDX-License-Identifier: GPL-2.0
/*
 * The answers of VFIO_DEVICE_FEATURE_DMA_BUF, one request per test case,
 * for a differential run against upstream Linux: the test command runs
 * this program on our kernel and, in the same guest shape, on Debian's
 * upstream kernel (scenario "upstream", scripts/oracle.sh), where
 * vfio-pci-core has the merged feature.  Every request (each row of the
 * errno table, the flags, the sizes, the regions, what the returned file
 * does) has one expected answer, the same on both kernels, except the
 * deliberate differences marked below, each with the reason the errno
 * table in Documentation/driver-api/vfio-pci-dmabuf.rst gives.  Every
 * answer is printed ("# answer NAME: ANSWER"), so the two consoles can be
 * compared line by line.
 *
 * Needs VFIO_DMABUF_EXPORTER: a pci-testdev bound to vfio-pci (BAR 0 4 KiB
 * of memory, BAR 1 I/O, BAR 2 64-bit memory, BARs 3-5 absent), opened
 * through its group or its cdev (VFIO_DMABUF_OPEN).
 */

#define _GNU_SOURCE	/* O_PATH */
#include <stdarg.h>
#include <sys/mman.h>
#include <linux/dma-buf.h>

#include "vfio_dmabuf_util.h"

#define BAR 2
#define MAX_RANGES 262144U	/* the exporter's limit */

static struct vdev dev;
static uint64_t bar_size, bar_start;
static struct vfio_region_dma_range *many;

/* An answer: "0", "ENODEV", or what a returned dma-buf is. */
struct answer {
	char text[160];
};

static const char *errname(int e)
{
	static char other[32];

	switch (e) {
	case EINVAL: return "EINVAL";
	case ENODEV: return "ENODEV";
	case EOVERFLOW: return "EOVERFLOW";
	case E2BIG: return "E2BIG";
	case ENOMEM: return "ENOMEM";
	case EFAULT: return "EFAULT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOTTY: return "ENOTTY";
	case EBADF: return "EBADF";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EBUSY: return "EBUSY";
	}
	snprintf(other, sizeof(other), "errno %d", e);
	return other;
}

static void say(struct answer *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(a->text, sizeof(a->text), fmt, ap);
	va_end(ap);
}

/* The answer of a call that returned @ret (or -1 with errno). */
static void ret_answer(struct answer *a, long ret)
{
	if (ret < 0)
		say(a, "%s", errname(errno));
	else
		say(a, "%ld", ret);
}

/* What the dma-buf @fd (or -errno) is: size, access mode and fd flags. */
static void buf_answer(struct answer *a, int fd)
{
	int fl, fdfl;

	if (fd < 0) {
		say(a, "%s", errname(-fd));
		return;
	}
	fl = fcntl(fd, F_GETFL);
	fdfl = fcntl(fd, F_GETFD);
	say(a, "dma-buf size=%lld %s%s%s", (long long)lseek(fd, 0, SEEK_END),
	    (fl & O_ACCMODE) == O_RDONLY ? "O_RDONLY" :
	    (fl & O_ACCMODE) == O_WRONLY ? "O_WRONLY" :
	    (fl & O_ACCMODE) == O_RDWR ? "O_RDWR" : "O_ACCMODE",
	    fl & O_NONBLOCK ? "|O_NONBLOCK" : "",
	    fdfl & FD_CLOEXEC ? " cloexec" : "");
	close(fd);
}

static int create(uint32_t region, uint32_t open_flags, uint32_t flags,
		  uint32_t nr, const struct vfio_region_dma_range *r,
		  uint32_t given, long argsz_adj)
{
	return dmabuf_create_ex(dev.fd, region, open_flags, flags, nr, r, given,
				argsz_adj);
}

/* One range of @len bytes at @off in region @region. */
static int one(uint32_t region, uint64_t off, uint64_t len)
{
	struct vfio_region_dma_range r = { off, len };

	return create(region, O_RDWR | O_CLOEXEC, 0, 1, &r, 1, 0);
}

/* Two ranges, the first one good. */
static int second(uint64_t off, uint64_t len)
{
	struct vfio_region_dma_range r[2] = { { 0, PAGE }, { off, len } };

	return create(BAR, O_RDWR | O_CLOEXEC, 0, 2, r, 2, 0);
}

static int feature(uint32_t flags, uint32_t argsz)
{
	struct vfio_device_feature f = { .argsz = argsz, .flags = flags };

	return ioctl(dev.fd, VFIO_DEVICE_FEATURE, &f);
}

#define REQ(fn) static void fn(struct answer *a)

REQ(probe_get)
{
	ret_answer(a, feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
			      VFIO_DEVICE_FEATURE_DMA_BUF, sizeof(struct vfio_device_feature)));
}

REQ(probe_set)
{
	ret_answer(a, feature(VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
			      VFIO_DEVICE_FEATURE_DMA_BUF, sizeof(struct vfio_device_feature)));
}

REQ(set)
{
	ret_answer(a, feature(VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_BUF,
			      sizeof(struct vfio_device_feature) + 16));
}

REQ(argsz_short_of_header)
{
	struct vfio_region_dma_range r = { 0, PAGE };

	buf_answer(a, create(BAR, O_RDWR, 0, 1, &r, 1, -(long)sizeof(r) - 1));
}

REQ(argsz_short_of_ranges)
{
	struct vfio_region_dma_range r[2] = { { 0, PAGE }, { PAGE, PAGE } };

	/* both ranges are in memory; argsz covers one and a half */
	buf_answer(a, create(BAR, O_RDWR, 0, 2, r, 2, -8));
}

REQ(header_flags)
{
	struct vfio_region_dma_range r = { 0, PAGE };

	buf_answer(a, create(BAR, O_RDWR, 1, 1, &r, 1, 0));
}

REQ(no_ranges)
{
	buf_answer(a, create(BAR, O_RDWR, 0, 0, NULL, 0, 0));
}

REQ(most_ranges)
{
	buf_answer(a, create(BAR, O_RDWR, 0, MAX_RANGES, many, MAX_RANGES, 0));
}

REQ(too_many_ranges)
{
	buf_answer(a, create(BAR, O_RDWR, 0, MAX_RANGES + 1, many, MAX_RANGES + 1, 0));
}

REQ(nr_ranges_u32_max)
{
	struct vfio_region_dma_range r = { 0, PAGE };

	buf_answer(a, create(BAR, O_RDWR, 0, UINT32_MAX, &r, 1, 0));
}

REQ(region_bar0) { buf_answer(a, one(0, 0, PAGE)); }
REQ(region_io_bar1) { buf_answer(a, one(1, 0, PAGE)); }
REQ(region_bar2) { buf_answer(a, one(2, 0, PAGE)); }
REQ(region_upper_half_bar3) { buf_answer(a, one(3, 0, PAGE)); }
REQ(region_absent_bar4) { buf_answer(a, one(4, 0, PAGE)); }
REQ(region_absent_bar5) { buf_answer(a, one(5, 0, PAGE)); }
REQ(region_rom) { buf_answer(a, one(VFIO_PCI_ROM_REGION_INDEX, 0, PAGE)); }
REQ(region_config) { buf_answer(a, one(VFIO_PCI_CONFIG_REGION_INDEX, 0, PAGE)); }
REQ(region_vga) { buf_answer(a, one(VFIO_PCI_VGA_REGION_INDEX, 0, PAGE)); }
REQ(region_beyond) { buf_answer(a, one(VFIO_PCI_NUM_REGIONS, 0, PAGE)); }
REQ(region_u32_max) { buf_answer(a, one(UINT32_MAX, 0, PAGE)); }
REQ(range_empty) { buf_answer(a, second(2 * PAGE, 0)); }
REQ(range_offset_unaligned) { buf_answer(a, second(2 * PAGE + 512, PAGE)); }
REQ(range_length_unaligned) { buf_answer(a, second(2 * PAGE, PAGE + 512)); }
REQ(range_past_end) { buf_answer(a, second(bar_size, PAGE)); }
REQ(range_across_end) { buf_answer(a, second(bar_size - PAGE, 2 * PAGE)); }
REQ(range_whole_bar) { buf_answer(a, one(BAR, 0, bar_size)); }
/* offset + length wraps around 2^64, and so does the lengths' sum */
REQ(range_end_wraps) { buf_answer(a, second(PAGE, -PAGE)); }
REQ(range_offset_wraps) { buf_answer(a, second(-PAGE, 2 * PAGE)); }
/* the BAR's address plus the offset wraps, offset + length does not */
REQ(range_address_wraps) { buf_answer(a, second(-bar_start, PAGE)); }
REQ(range_length_2_63) { buf_answer(a, one(BAR, 0, 1ULL << 63)); }

REQ(lengths_sum_wraps)
{
	struct vfio_region_dma_range r[2] = { { 0, 1ULL << 63 }, { 0, 1ULL << 63 } };

	buf_answer(a, create(BAR, O_RDWR, 0, 2, r, 2, 0));
}

/* Two faults in one request: which one is reported. */
REQ(first_fault_wraps_second_unaligned)
{
	struct vfio_region_dma_range r[2] = { { -PAGE, 2 * PAGE }, { 0, 512 } };

	buf_answer(a, create(BAR, O_RDWR, 0, 2, r, 2, 0));
}

REQ(first_past_end_second_empty)
{
	struct vfio_region_dma_range r[2] = { { bar_size, PAGE }, { 0, 0 } };

	buf_answer(a, create(BAR, O_RDWR, 0, 2, r, 2, 0));
}

/* An absent or I/O BAR and another fault: which one is reported. */
REQ(absent_bar_bad_range) { buf_answer(a, one(4, 0, 0)); }
REQ(absent_bar_range_wraps) { buf_answer(a, one(4, -PAGE, 2 * PAGE)); }
REQ(io_bar_bad_range) { buf_answer(a, one(1, 0, 0)); }
REQ(io_bar_range_wraps) { buf_answer(a, one(1, -PAGE, 2 * PAGE)); }

REQ(absent_bar_header_flags)
{
	struct vfio_region_dma_range r = { 0, PAGE };

	buf_answer(a, create(4, O_RDWR, 1, 1, &r, 1, 0));
}

REQ(absent_bar_too_many_ranges)
{
	buf_answer(a, create(4, O_RDWR, 0, MAX_RANGES + 1, many, MAX_RANGES + 1, 0));
}

REQ(absent_bar_argsz_short)
{
	struct vfio_region_dma_range r[2] = { { 0, PAGE }, { PAGE, PAGE } };

	buf_answer(a, create(4, O_RDWR, 0, 2, r, 2, -8));
}

REQ(absent_bar_open_flags)
{
	struct vfio_region_dma_range r = { 0, PAGE };

	buf_answer(a, create(4, O_RDWR | O_TRUNC, 0, 1, &r, 1, 0));
}

REQ(rom_too_many_ranges)
{
	buf_answer(a, create(VFIO_PCI_ROM_REGION_INDEX, O_RDWR, 0, MAX_RANGES + 1,
			     many, MAX_RANGES + 1, 0));
}

REQ(rom_header_flags)
{
	struct vfio_region_dma_range r = { 0, PAGE };

	buf_answer(a, create(VFIO_PCI_ROM_REGION_INDEX, O_RDWR, 1, 1, &r, 1, 0));
}

REQ(bad_range_open_flags)
{
	struct vfio_region_dma_range r = { 0, 0 };

	buf_answer(a, create(BAR, O_RDWR | O_TRUNC, 0, 1, &r, 1, 0));
}

REQ(too_big_range_wraps)
{
	many[0] = (struct vfio_region_dma_range){ -PAGE, 2 * PAGE };
	buf_answer(a, create(BAR, O_RDWR, 0, MAX_RANGES + 1, many, MAX_RANGES + 1, 0));
	many[0] = (struct vfio_region_dma_range){ 0, PAGE };
}

REQ(ranges_overlap_any_order)
{
	struct vfio_region_dma_range r[3] = {
		{ 4 * PAGE, 2 * PAGE }, { 0, PAGE }, { 4 * PAGE, PAGE },
	};

	buf_answer(a, create(BAR, O_RDWR, 0, 3, r, 3, 0));
}

/* 2^18 ranges of the whole BAR: 2^18 times the BAR's size */
REQ(buffer_larger_than_bar)
{
	for (uint32_t i = 0; i < MAX_RANGES; i++)
		many[i] = (struct vfio_region_dma_range){ 0, bar_size };
	buf_answer(a, create(BAR, O_RDWR, 0, MAX_RANGES, many, MAX_RANGES, 0));
	for (uint32_t i = 0; i <= MAX_RANGES; i++)
		many[i] = (struct vfio_region_dma_range){ 0, PAGE };
}

REQ(ranges_unreadable)
{
	size_t hdr = sizeof(struct vfio_device_feature) +
		     sizeof(struct vfio_device_feature_dma_buf);
	struct vfio_device_feature_dma_buf *get;
	struct vfio_device_feature *f;
	char *map;

	/* the second range is on a PROT_NONE page */
	map = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED || mprotect(map + PAGE, PAGE, PROT_NONE)) {
		say(a, "setup failed: %s", strerror(errno));
		return;
	}
	f = (void *)(map + PAGE - hdr - 16);
	get = (void *)f->data;
	f->argsz = hdr + 2 * 16;
	f->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF;
	*get = (struct vfio_device_feature_dma_buf){ .region_index = BAR,
		.open_flags = O_RDWR, .nr_ranges = 2 };
	get->dma_ranges[0] = (struct vfio_region_dma_range){ 0, PAGE };
	buf_answer(a, ioctl(dev.fd, VFIO_DEVICE_FEATURE, f) < 0 ? -errno : 0);
	munmap(map, 2 * PAGE);
}

REQ(argument_unreadable)
{
	ret_answer(a, ioctl(dev.fd, VFIO_DEVICE_FEATURE, (void *)16));
}

static void flags_answer(struct answer *a, uint32_t open_flags)
{
	struct vfio_region_dma_range r = { 0, PAGE };

	buf_answer(a, create(BAR, open_flags, 0, 1, &r, 1, 0));
}

REQ(open_rdonly) { flags_answer(a, O_RDONLY); }
REQ(open_wronly) { flags_answer(a, O_WRONLY); }
REQ(open_rdwr) { flags_answer(a, O_RDWR); }
REQ(open_accmode) { flags_answer(a, O_ACCMODE); }
REQ(open_cloexec) { flags_answer(a, O_RDWR | O_CLOEXEC); }
REQ(open_nonblock) { flags_answer(a, O_RDWR | O_NONBLOCK); }
REQ(open_nonblock_cloexec) { flags_answer(a, O_RDONLY | O_NONBLOCK | O_CLOEXEC); }
REQ(open_trunc) { flags_answer(a, O_RDWR | O_TRUNC); }
REQ(open_path) { flags_answer(a, O_PATH); }
REQ(open_bit31) { flags_answer(a, O_RDWR | 0x80000000U); }

/* Memory decode off: the request still succeeds (the buffer is revoked). */
REQ(decode_off)
{
	if (vdev_set_memory(&dev, 0)) {
		say(a, "setup failed: %s", strerror(errno));
		return;
	}
	buf_answer(a, one(BAR, 0, PAGE));
	vdev_set_memory(&dev, 1);
}

/* The exporter's name in the dma-buf's fdinfo. */
REQ(fdinfo_exp_name)
{
	char path[64], line[256], name[128] = "none";
	int fd = one(BAR, 0, PAGE);
	FILE *f;

	if (fd < 0) {
		say(a, "%s", errname(-fd));
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "exp_name: %127s", name) == 1)
			break;
	if (f)
		fclose(f);
	close(fd);
	say(a, "exp_name %s", name);
}

REQ(set_name)
{
	int fd = one(BAR, 0, PAGE);

	ret_answer(a, fd < 0 ? fd : ioctl(fd, DMA_BUF_SET_NAME_B, "uapi"));
	if (fd >= 0)
		close(fd);
}

REQ(sync_ioctl)
{
	struct dma_buf_sync s = { DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW };
	int fd = one(BAR, 0, PAGE);

	ret_answer(a, fd < 0 ? fd : ioctl(fd, DMA_BUF_IOCTL_SYNC, &s));
	if (fd >= 0)
		close(fd);
}

static void mmap_answer(struct answer *a, int flags)
{
	int fd = one(BAR, 0, 2 * PAGE);
	void *p;

	if (fd < 0) {
		say(a, "%s", errname(-fd));
		return;
	}
	p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, flags, fd, 0);
	if (p == MAP_FAILED) {
		say(a, "%s", errname(errno));
	} else {
		say(a, "mapped");
		munmap(p, 2 * PAGE);
	}
	close(fd);
}

REQ(mmap_shared) { mmap_answer(a, MAP_SHARED); }
REQ(mmap_private) { mmap_answer(a, MAP_PRIVATE); }

/* The buffer outlives its device's fd: its size, and it stays a file. */
REQ(device_closed)
{
	int fd = one(BAR, 0, 3 * PAGE);
	struct vdev d2;

	if (fd < 0) {
		say(a, "%s", errname(-fd));
		return;
	}
	vdev_close(&dev);
	buf_answer(a, fd);
	if (vdev_open(&d2, env_or("VFIO_DMABUF_EXPORTER", "")))
		say(a, "reopen failed");
	dev = d2;
}

/*
 * The requests.  @ours is the answer of this kernel; @upstream, where set,
 * upstream's (a deliberate difference), and @why the reason, as the errno
 * table gives it.  %S stands for the BAR's size in bytes.
 */
static const struct request {
	const char *name;
	void (*fn)(struct answer *a);
	const char *ours, *upstream, *why;
} requests[] = {
#define RANGE_LIMIT "more than 262144 ranges is E2BIG, a documented limit; upstream's is the allocator's"
#define OPEN_FLAGS "open_flags other than O_ACCMODE, O_CLOEXEC and O_NONBLOCK mean nothing for a dma-buf"
#define SAME(fn, ours) { #fn, fn, ours, NULL, NULL }
#define DIFF(fn, ours, upstream, why) { #fn, fn, ours, upstream, why }
	SAME(probe_get, "0"),
	SAME(probe_set, "EINVAL"),
	SAME(set, "EINVAL"),
	SAME(argsz_short_of_header, "EINVAL"),
	DIFF(argsz_short_of_ranges, "EINVAL", "dma-buf size=8192 O_RDWR",
	     "argsz covers the ranges, as VFIO's argsz says; upstream reads past it"),
	SAME(header_flags, "EINVAL"),
	SAME(no_ranges, "EINVAL"),
	SAME(most_ranges, "dma-buf size=1073741824 O_RDWR"),
	DIFF(too_many_ranges, "E2BIG", "ENOMEM", RANGE_LIMIT),
	DIFF(nr_ranges_u32_max, "E2BIG", "ENOMEM", RANGE_LIMIT),
	SAME(region_bar0, "dma-buf size=4096 O_RDWR cloexec"),
	SAME(region_io_bar1, "EINVAL"),
	SAME(region_bar2, "dma-buf size=4096 O_RDWR cloexec"),
	SAME(region_upper_half_bar3, "ENODEV"),
	SAME(region_absent_bar4, "ENODEV"),
	SAME(region_absent_bar5, "ENODEV"),
	SAME(region_rom, "ENODEV"),
	SAME(region_config, "ENODEV"),
	SAME(region_vga, "ENODEV"),
	SAME(region_beyond, "ENODEV"),
	SAME(region_u32_max, "ENODEV"),
	SAME(range_empty, "EINVAL"),
	SAME(range_offset_unaligned, "EINVAL"),
	SAME(range_length_unaligned, "EINVAL"),
	SAME(range_past_end, "EINVAL"),
	SAME(range_across_end, "EINVAL"),
	SAME(range_whole_bar, "dma-buf size=%S O_RDWR cloexec"),
	SAME(range_end_wraps, "EINVAL"),
	SAME(range_offset_wraps, "EOVERFLOW"),
	SAME(range_address_wraps, "EOVERFLOW"),
	SAME(range_length_2_63, "EINVAL"),
	SAME(lengths_sum_wraps, "EINVAL"),
	SAME(first_fault_wraps_second_unaligned, "EINVAL"),
	SAME(first_past_end_second_empty, "EINVAL"),
	SAME(absent_bar_bad_range, "ENODEV"),
	SAME(absent_bar_range_wraps, "ENODEV"),
	SAME(io_bar_bad_range, "EINVAL"),
	SAME(io_bar_range_wraps, "EINVAL"),
	SAME(absent_bar_header_flags, "EINVAL"),
	SAME(absent_bar_too_many_ranges, "ENODEV"),
	SAME(absent_bar_argsz_short, "ENODEV"),
	SAME(absent_bar_open_flags, "ENODEV"),
	SAME(rom_too_many_ranges, "ENODEV"),
	SAME(rom_header_flags, "EINVAL"),
	SAME(bad_range_open_flags, "EINVAL"),
	DIFF(too_big_range_wraps, "E2BIG", "ENOMEM", RANGE_LIMIT),
	SAME(ranges_overlap_any_order, "dma-buf size=16384 O_RDWR"),
	DIFF(buffer_larger_than_bar, "E2BIG", "dma-buf size=17592186044416 O_RDWR",
	     "a buffer is at most its BAR's size or 1 GiB: importers' costs stay bounded"),
	SAME(ranges_unreadable, "EFAULT"),
	SAME(argument_unreadable, "EFAULT"),
	SAME(open_rdonly, "dma-buf size=4096 O_RDONLY"),
	SAME(open_wronly, "dma-buf size=4096 O_WRONLY"),
	SAME(open_rdwr, "dma-buf size=4096 O_RDWR"),
	SAME(open_accmode, "dma-buf size=4096 O_ACCMODE"),
	SAME(open_cloexec, "dma-buf size=4096 O_RDWR cloexec"),
	SAME(open_nonblock, "dma-buf size=4096 O_RDWR|O_NONBLOCK"),
	SAME(open_nonblock_cloexec, "dma-buf size=4096 O_RDONLY|O_NONBLOCK cloexec"),
	DIFF(open_trunc, "EINVAL", "dma-buf size=4096 O_RDWR", OPEN_FLAGS),
	DIFF(open_path, "EINVAL", "dma-buf size=4096 O_RDONLY", OPEN_FLAGS),
	DIFF(open_bit31, "EINVAL", "dma-buf size=4096 O_RDWR", OPEN_FLAGS),
	SAME(decode_off, "dma-buf size=4096 O_RDWR cloexec"),
	SAME(fdinfo_exp_name, "exp_name vfio_pci_core"),
	SAME(set_name, "0"),
	SAME(sync_ioctl, "0"),
	DIFF(mmap_shared, "mapped", "EINVAL",
	     "CPU mappings of a buffer are a feature upstream does not have"),
	SAME(mmap_private, "EINVAL"),
	SAME(device_closed, "dma-buf size=12288 O_RDWR cloexec"),
#undef RANGE_LIMIT
#undef OPEN_FLAGS
#undef SAME
#undef DIFF
};

/* @pattern with %S filled in. */
static void expand(char *out, size_t n, const char *pattern)
{
	char *o = out;

	for (const char *p = pattern; *p && o < out + n - 24; p++) {
		if (p[0] == '%' && p[1] == 'S')
			o += sprintf(o, "%llu", (unsigned long long)bar_size), p++;
		else
			*o++ = *p;
	}
	*o = 0;
}

int main(void)
{
	const char *bdf = getenv("VFIO_DMABUF_EXPORTER");
	int upstream = !strcmp(env_or("VFIO_DMABUF_SCENARIO", ""), "upstream");
	unsigned int i, n = ARRAY_SIZE(requests), failed = 0;
	int e;

	if (!bdf)
		vfio_dmabuf_skip_all("VFIO_DMABUF_EXPORTER is not set: " VFIO_DMABUF_HINT);
	printf("TAP version 13\n");
	e = vdev_open(&dev, bdf);
	bar_size = e ? 0 : vdev_region_size(&dev, BAR);
	bar_start = bar_phys(bdf, BAR);
	many = calloc(MAX_RANGES + 1, sizeof(*many));
	if (e || !bar_size || !bar_start || !many || vdev_set_memory(&dev, 1)) {
		printf("Bail out! cannot open %s or read its BAR %d: %s\n", bdf, BAR,
		       strerror(e ? -e : errno));
		return 1;
	}
	for (i = 0; i <= MAX_RANGES; i++)
		many[i] = (struct vfio_region_dma_range){ 0, PAGE };
	printf("# %s kernel; %s BAR %d: %llu bytes at 0x%llx\n",
	       upstream ? "upstream" : "this", bdf, BAR,
	       (unsigned long long)bar_size, (unsigned long long)bar_start);
	printf("1..%u\n", n);
	for (i = 0; i < n; i++) {
		const struct request *r = &requests[i];
		const char *want = upstream && r->upstream ? r->upstream : r->ours;
		struct answer a = { "no answer" };
		char expect[160];
		int next = dup(0), ok;

		close(next);
		r->fn(&a);
		expand(expect, sizeof(expect), want);
		ok = !strcmp(a.text, expect);
		printf("# answer %s: %s\n", r->name, a.text);
		if (r->upstream)
			printf("# deliberate difference: ours %s, upstream %s: %s\n",
			       r->ours, r->upstream, r->why);
		/* nothing left open by the request */
		e = dup(0);
		close(e);
		if (e != next) {
			printf("# %s left fd %d open\n", r->name, next);
			ok = 0;
		}
		if (!ok)
			printf("# expected: %s\n", expect);
		printf("%sok %u uapi.%s\n", ok ? "" : "not ", i + 1, r->name);
		failed += !ok;
	}
	vdev_close(&dev);
	free(many);
	return failed ? 1 : 0;
}
