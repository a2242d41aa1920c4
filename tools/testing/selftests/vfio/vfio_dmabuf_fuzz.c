// SPDX-License-Identifier: GPL-2.0
/*
 * Seeded ioctl fuzzer for VFIO_DEVICE_FEATURE_DMA_BUF.
 *
 * Mutates argsz, the feature flags, region_index, open_flags, flags,
 * nr_ranges and the ranges, on every region of both exporting devices
 * (each call picks one), and
 * checks each call against the contract: a call that breaks a rule fails
 * with an errno of a rule it breaks; a call that breaks none succeeds with
 * a dma-buf whose size is the sum of the ranges.  One buffer in eight is
 * then mapped for the CPU with a mutated offset, length, protection and
 * sharing, checked the same way; a mapping that is allowed is read at a
 * page it maps (the BARs' decode is on: the read must go through).  At
 * the end, open fds and
 * vfio-pci-core's module references (one per live buffer) are back to
 * where they started; the guest's kmemleak scan follows.
 *
 *   VFIO_DMABUF_FUZZ_SEED   seed (default: 1); a failure prints the seed and
 *                           call number that reproduce it
 *   VFIO_DMABUF_FUZZ_CALLS  calls (default: 100000)
 *
 * In a harness guest, the kernel parameters vfio_dmabuf.fuzz_seed= and
 * vfio_dmabuf.fuzz_calls= set them; the long mode is
 *   VM_APPEND="vfio_dmabuf.fuzz_calls=1000000 vfio_dmabuf.fuzz_seed=2" \
 *   scripts/vm.sh switch-noiommu ~/.cache/vfio-dmabuf/artifacts-test LOG \
 *   vfio_dmabuf_fuzz
 */

#include <sys/mman.h>
#include <time.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest.h"

#define MAX_RANGES	262144
#define REGIONS		10	/* BARs 0-5, ROM, config, VGA, one past */

static uint64_t rng_state;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64* */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t pick(uint64_t n)
{
	return rnd() % n;
}

struct bar {
	int mem;
	uint64_t start, size;
};

/* Memory BARs and their sizes, from sysfs (flags 0x200: IORESOURCE_MEM). */
static void read_bars(const char *bdf, struct bar *bars)
{
	unsigned long long start, end, flags;
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", bdf);
	f = fopen(path, "r");
	for (int i = 0; f && i < 6; i++) {
		if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3)
			break;
		bars[i].mem = !!(flags & 0x200);
		bars[i].start = start;
		bars[i].size = end ? end - start + 1 : 0;
	}
	if (f)
		fclose(f);
}

/* An offset or length: aligned, unaligned, at or past the end, huge. */
static uint64_t value(uint64_t bar_size)
{
	uint64_t pages = bar_size / PAGE + 2;

	switch (pick(8)) {
	case 0:
		return pick(pages + 1) * PAGE + pick(PAGE);	/* unaligned */
	case 1:
		return bar_size;
	case 2:
		return bar_size - PAGE;
	case 3:
		return -(pick(4) + 1) * PAGE;			/* overflows */
	case 4:
		return 0;
	default:
		return pick(pages) * PAGE;
	}
}

/* The errnos a request may fail with: one bit per rule it breaks. */
static uint64_t allow(int e)
{
	switch (e) {
	case EINVAL:
		return 1;
	case E2BIG:
		return 2;
	case ENODEV:
		return 4;
	case EOVERFLOW:
		return 8;
	case EACCES:
		return 16;
	default:
		return 0;
	}
}

static uint64_t allowed(uint32_t fflags, size_t payload,
			const struct vfio_device_feature_dma_buf *get,
			const struct vfio_region_dma_range *r, uint32_t given,
			const struct bar *bars, uint64_t *total)
{
	uint64_t set = 0, sum = 0, max;
	const struct bar *b;
	int wrapped = 0;

	if (fflags & VFIO_DEVICE_FEATURE_SET)
		return allow(EINVAL);
	if (fflags & VFIO_DEVICE_FEATURE_PROBE)
		return 0;
	if (payload < sizeof(*get))
		return allow(EINVAL);
	if (get->flags || !get->nr_ranges)
		set |= allow(EINVAL);
	if (get->nr_ranges > MAX_RANGES)
		set |= allow(E2BIG);
	if (payload < sizeof(*get) + (uint64_t)get->nr_ranges * sizeof(*r))
		set |= allow(EINVAL);
	if (get->region_index >= VFIO_PCI_ROM_REGION_INDEX)
		return set | allow(ENODEV);
	if (get->open_flags & ~(O_ACCMODE | O_CLOEXEC | O_NONBLOCK))
		set |= allow(EINVAL);
	b = &bars[get->region_index];
	if (!b->size)
		set |= allow(ENODEV);	/* no such BAR */
	else if (!b->mem)
		set |= allow(EINVAL);	/* an I/O BAR */
	for (uint32_t i = 0; i < given && i < get->nr_ranges; i++) {
		uint64_t end = r[i].offset + r[i].length;

		/* as upstream, the overflow covers the BAR's start address */
		if (!r[i].length || (r[i].offset | r[i].length) % PAGE)
			set |= allow(EINVAL);
		else if (end < r[i].offset || b->start + end < end)
			set |= allow(EOVERFLOW);
		else if (end > b->size)
			set |= allow(EINVAL);
		if (sum + r[i].length < sum) {
			set |= allow(EINVAL);
			wrapped = 1;
		}
		sum += r[i].length;
	}
	/* lengths of 2^63 bytes or more in all, as upstream */
	if (wrapped || sum >> 63)
		set |= allow(EINVAL);
	/* a buffer is at most as large as its BAR, or 1 GiB */
	max = b->size > (1ULL << 30) ? b->size : 1ULL << 30;
	if (!wrapped && sum > max)
		set |= allow(E2BIG);
	*total = sum;
	return set;
}

/*
 * mmap() of buffer @fd (@total bytes, opened with @open_flags) with mutated
 * arguments: 1 when the result breaks the contract, else 0.
 */
static int mmap_wrong(int fd, uint32_t open_flags, uint64_t total)
{
	uint64_t pages = total / PAGE, off, len, set = 0;
	int prot = pick(4) ? PROT_READ | (pick(2) ? PROT_WRITE : 0) : PROT_WRITE;
	int flags = pick(8) ? MAP_SHARED : MAP_PRIVATE;
	int mode = open_flags & O_ACCMODE, wrong, sig;
	uint8_t *map;

	off = pick(8) ? pick(pages) * PAGE : pick(pages + 2) * PAGE;
	if (off < total && pick(8))
		len = (pick(pages - off / PAGE) + 1) * PAGE;
	else
		len = (pick(pages + 2) + 1) * PAGE;
	/* the VFS first: read access always, write for a shared writable one */
	if (mode == O_WRONLY ||
	    ((flags & MAP_SHARED) && (prot & PROT_WRITE) && mode != O_RDWR))
		set |= allow(EACCES);
	if (!(flags & MAP_SHARED) || off + len > total)
		set |= allow(EINVAL);
	map = mmap(NULL, len, prot, flags, fd, off);
	if (map == MAP_FAILED)
		return !(set & allow(errno));
	wrong = set != 0;
	if (prot & PROT_READ) {
		sig = probe(map + pick(len / PAGE) * PAGE, 0, 0, NULL);
		wrong |= sig != 0;
	}
	munmap(map, len);
	return wrong;
}

int main(void)
{
	static const char *const need[] = {
		"VFIO_DMABUF_EXPORTER",
		"VFIO_DMABUF_EXPORTER2", NULL
	};
	uint64_t seed = strtoull(env_or("VFIO_DMABUF_FUZZ_SEED", "1"), NULL, 0);
	long calls = atol(env_or("VFIO_DMABUF_FUZZ_CALLS", "100000"));
	const char *bdfs[2] = { getenv("VFIO_DMABUF_EXPORTER"),
				getenv("VFIO_DMABUF_EXPORTER2") };
	int refs0, refs1, fd0, fd1, ok_calls = 0, bad = 0, maps = 0;
	struct vfio_device_feature *feat;
	size_t cap = sizeof(*feat) + 16 + 4096 * 16 + 64;
	struct {
		struct vdev d;
		struct bar bars[6];
	} devs[2] = {};
	double t0;

	vfio_dmabuf_require(need, 0);

	ksft_print_header();
	ksft_set_plan(1);
	probe_init();
	for (int i = 0; i < 2; i++) {
		if (!bdfs[i] || vdev_open(&devs[i].d, bdfs[i]) ||
		    vdev_set_memory(&devs[i].d, 1))
			ksft_exit_fail_msg("cannot open exporting device %d (%s)\n",
					   i + 1, bdfs[i] ? bdfs[i] : "unset");
		read_bars(bdfs[i], devs[i].bars);
	}
	feat = malloc(cap);
	if (!feat)
		ksft_exit_fail_msg("malloc\n");
	refs0 = core_refcnt();
	fd0 = dup(0);
	close(fd0);
	rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
	ksft_print_msg("seed %llu, %ld calls\n", (unsigned long long)seed, calls);

	t0 = now();
	for (long c = 0; c < calls; c++) {
		struct vfio_device_feature_dma_buf *get = (void *)feat->data;
		struct vfio_region_dma_range *r = get->dma_ranges;
		int dev = pick(2);
		const struct bar *bars = devs[dev].bars;
		uint64_t set, total = 0;
		uint32_t given, fflags;
		size_t payload;
		int ret, e, wrong;

		memset(feat, 0, sizeof(*feat) + sizeof(*get));
		switch (pick(16)) {
		case 0:
			fflags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET;
			break;
		case 1:
			fflags = VFIO_DEVICE_FEATURE_SET;
			break;
		default:
			fflags = VFIO_DEVICE_FEATURE_GET;
		}
		get->region_index = pick(4) ? 2 : pick(8) ? pick(REGIONS) : rnd();
		get->open_flags = pick(8) ? (pick(3) | (pick(2) ? O_CLOEXEC : 0)) :
					    (uint32_t)rnd();
		get->flags = pick(16) ? 0 : (uint32_t)rnd();
		given = pick(4) ? pick(8) + 1 : pick(4096) + 1;
		switch (pick(16)) {
		case 0:
			get->nr_ranges = 0;
			break;
		case 1:
			get->nr_ranges = MAX_RANGES + 1 + pick(1000);
			break;
		case 2:
			get->nr_ranges = (uint32_t)rnd();
			break;
		case 3:
			get->nr_ranges = given + 1;	/* argsz too short */
			break;
		default:
			get->nr_ranges = given;
		}
		for (uint32_t i = 0; i < given; i++) {
			uint64_t size = bars[get->region_index % 6].size;

			if (i && !pick(8)) {			/* contiguous */
				r[i].offset = r[i - 1].offset + r[i - 1].length;
				r[i].length = pick(4) * PAGE + PAGE;
			} else if (pick(3)) {			/* valid */
				r[i].length = (pick(4) + 1) * PAGE;
				r[i].offset = size > r[i].length ?
					pick((size - r[i].length) / PAGE + 1) * PAGE : 0;
			} else {
				r[i].offset = value(size);
				r[i].length = value(size);
			}
		}
		payload = sizeof(*get) + given * sizeof(*r);
		if (!pick(16))
			payload = pick(payload + 1);		/* truncated */
		feat->argsz = sizeof(*feat) + payload;
		feat->flags = fflags | VFIO_DEVICE_FEATURE_DMA_BUF;

		set = allowed(fflags, payload, get, r, given, bars, &total);
		ret = ioctl(devs[dev].d.fd, VFIO_DEVICE_FEATURE, feat);
		e = ret < 0 ? errno : 0;
		if (ret >= 0 && (fflags & VFIO_DEVICE_FEATURE_PROBE)) {
			wrong = ret != 0;
		} else if (ret >= 0) {
			ok_calls++;
			wrong = set || lseek(ret, 0, SEEK_END) != (off_t)total;
			if (!wrong && !pick(8)) {
				maps++;
				wrong = mmap_wrong(ret, get->open_flags, total);
			}
			close(ret);
		} else {
			wrong = !(set & allow(e));
		}
		if (wrong && bad++ < 5) {
			ksft_print_msg("seed %llu call %ld: ret %d errno %d\n",
				       (unsigned long long)seed, c, ret, e);
			ksft_print_msg("  %s bar %u nr %u given %u argsz %u flags 0x%x open 0x%x\n",
				       bdfs[dev], get->region_index, get->nr_ranges, given,
				       feat->argsz, get->flags, get->open_flags);
		}
	}
	t0 = now() - t0;

	refs1 = core_refcnt();
	fd1 = dup(0);
	close(fd1);
	ksft_print_msg("%ld calls, %d buffers created, %d CPU mappings tried, %.0f calls/s\n",
		       calls, ok_calls, maps, t0 > 0 ? calls / t0 : (double)calls);
	ksft_print_msg("fds %d -> %d, module references %d -> %d\n", fd0, fd1,
		       refs0, refs1);
	vdev_close(&devs[0].d);
	vdev_close(&devs[1].d);
	/* it did its work: buffers were made and mapped, not only refused */
	ksft_test_result(!bad && fd0 == fd1 && refs0 == refs1 && ok_calls && maps,
			 "fuzz VFIO_DEVICE_FEATURE_DMA_BUF\n");
	ksft_finished();
}
