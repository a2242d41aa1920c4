// SPDX-License-Identifier: GPL-2.0
/*
 * iommufd as the importer, the way a VMM uses it: IOMMU_IOAS_MAP_FILE of
 * a vfio-pci dma-buf puts the BAR bytes behind an IOVA of an IOAS, and a
 * device attached to that IOAS reaches them by DMA.
 *
 * Two devices are opened through their VFIO cdevs, bound to one iommufd
 * and attached to one IOAS: an ivshmem-plain, whose BAR 2 is memory (a
 * host file) and exports the buffers, and QEMU's edu, whose DMA engine
 * this program drives through its BAR 0.  edu reaches RAM and the BAR only
 * through the IOAS: a staging page of this process (IOMMU_IOAS_MAP) and
 * the dma-bufs.  Every byte the DMA may touch is checked through the
 * region's VFIO mmap; the first test leaves a pattern that the host checks
 * in the backing file once the guest has stopped ("### FILECHECK").
 *
 * A revoked buffer (memory decode off, reset, device closed) is unmapped
 * from every domain of every IOAS that maps it (also through
 * IOMMU_IOAS_COPY) before the trigger returns: a DMA to its IOVA faults in
 * the IOMMU and leaves the BAR as it was.  The IOVA stays taken until the
 * user unmaps it, and nothing maps it again by itself: the user maps the
 * buffer again once it is usable (MAP_FILE of a revoked buffer is ENODEV).
 *
 * Needs VFIO_DMABUF_MEMDEV and VFIO_DMABUF_DMADEV (edu), both bound to
 * vfio-pci, and an IOMMU (6.12 gives a no-IOMMU device no cdev): see
 * vfio_dmabuf_util.h.  Its BAR slots, at 7/8 of the memory BAR, are out of
 * the other programs' ways.
 */

#define _GNU_SOURCE
#include <sys/mman.h>
#include <time.h>
#include <linux/udmabuf.h>

#include "vfio_dmabuf_util.h"
#include "../kselftest_harness.h"

#define BAR 2
#define BUF_LEN (16 * PAGE)		/* each test's buffer: 64 KiB */
#define SLOT_LEN (32 * PAGE)		/* its BAR slot, with room around it */
#define RW (IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE)
#define FIXED_RW (IOMMU_IOAS_MAP_FIXED_IOVA | RW)

/*
 * The IOAS: every IOVA below 2^28, edu's default DMA mask (this guest's
 * edu has 64 bits; real ones may not).  The kernel picks its IOVAs there
 * too (IOMMU_IOAS_ALLOW_IOVAS).
 */
#define IOVA_LIMIT 0x10000000ULL	/* 2^28 */
#define IOVA_STAGE 0x100000ULL		/* the staging pages */
#define STAGE_LEN (2 * PAGE)
#define IOVA_TAG 0x200000ULL		/* a page that tells IOASes apart */
#define IOVA_A 0x1000000ULL		/* the buffers' fixed IOVA */
#define IOVA_C 0x2000000ULL		/* the refused ones' */

/*
 * QEMU's edu (1234:11e8), BAR 0: one DMA engine that copies between a DMA
 * address and a 4 KiB buffer inside the device, at device address
 * EDU_BUF, 100 ms (virtual clock) after the command.  QEMU 7.2 aborts on
 * a transfer that ends at the end of that buffer: XFER bytes at a time,
 * from its start.
 */
#define EDU_ID 0x00
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_CMD_RUN 0x1
#define EDU_CMD_TO_RAM 0x2		/* edu's buffer -> DMA address */
#define EDU_BUF 0x40000ULL
#define XFER 2048
#define EDU_TIMEOUT_S 20		/* TCG guests under load are slow */

#define NO_CDEV_SKIP "IOMMU_IOAS_MAP_FILE needs the devices' VFIO cdevs: " \
	"6.12 gives a no-IOMMU device no cdev (vfio_device_add in drivers/vfio/vfio.h)"

FIXTURE(iommufd) {
	struct vdev mem, edu;
	const char *memdev, *dmadev;
	uint8_t *bar;			/* ivshmem BAR 2, the region's VFIO mmap */
	uint64_t bar_size;
	uint8_t *regs;			/* edu BAR 0 */
	uint64_t regs_size;
	uint8_t *stage;			/* at IOVA_STAGE: out, then in */
	int iommufd;
	uint32_t ioas;
};

/*
 * The helpers take the fixture's data as the harness declares it,
 * struct _test_data_iommufd (FIXTURE_DATA(iommufd)).
 */

/* Opens the memory BAR's device through its cdev, its BAR mapped. */
static int mem_open(struct _test_data_iommufd *self)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = BAR };
	int ret = vdev_open_via(&self->mem, self->memdev, 1);

	if (ret)
		return ret;
	if (ioctl(self->mem.fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		return -errno;
	if (!(reg.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return -EINVAL;
	self->bar_size = reg.size;
	self->bar = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->mem.fd, reg.offset);
	if (self->bar == MAP_FAILED)
		return -errno;
	return vdev_set_memory(&self->mem, 1);
}

/* Unmaps the BAR and closes the device: what revokes for good. */
static void mem_close(struct _test_data_iommufd *self)
{
	if (self->bar != MAP_FAILED)
		munmap(self->bar, self->bar_size);
	self->bar = MAP_FAILED;
	vdev_close(&self->mem);
}

FIXTURE_SETUP(iommufd)
{
	struct vfio_region_info reg = {
		.argsz = sizeof(reg), .index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	struct iommu_iova_range allow = { .start = 0, .last = IOVA_LIMIT - 1 };
	struct iommu_ioas_allow_iovas allow_cmd = {
		.size = sizeof(allow_cmd), .num_iovas = 1,
		.allowed_iovas = (uintptr_t)&allow,
	};
	struct iommu_ioas_map map = {
		.size = sizeof(map), .flags = FIXED_RW,
		.length = STAGE_LEN, .iova = IOVA_STAGE,
	};

	self->bar = MAP_FAILED;
	self->regs = MAP_FAILED;
	self->stage = MAP_FAILED;
	self->mem.fd = -1;
	self->mem.iommufd = -1;
	self->edu.fd = -1;
	self->edu.iommufd = -1;
	self->memdev = env_or("VFIO_DMABUF_MEMDEV", "");
	self->dmadev = env_or("VFIO_DMABUF_DMADEV", "");

	/* both cdevs bound to one iommufd, attached to its one IOAS */
	ASSERT_EQ(0, mem_open(self));
	ASSERT_EQ(0, vdev_open_via(&self->edu, self->dmadev, 1));
	self->iommufd = viommufd.fd;
	self->ioas = viommufd.ioas;
	ASSERT_EQ(self->iommufd, self->mem.iommufd);
	ASSERT_EQ(self->iommufd, self->edu.iommufd);
	allow_cmd.ioas_id = self->ioas;
	ASSERT_EQ(0, ioctl(self->iommufd, IOMMU_IOAS_ALLOW_IOVAS, &allow_cmd));
	/* the slots at 7/8 of the BAR (8 GiB in the guests) */
	ASSERT_GE(self->bar_size, 8ULL << 20);

	ASSERT_EQ(0, vdev_set_command(&self->edu,
				      PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 1));
	ASSERT_EQ(0, ioctl(self->edu.fd, VFIO_DEVICE_GET_REGION_INFO, &reg));
	ASSERT_TRUE(reg.flags & VFIO_REGION_INFO_FLAG_MMAP);
	ASSERT_GE(reg.size, EDU_DMA_CMD + 8);
	self->regs_size = reg.size;
	self->regs = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			  self->edu.fd, reg.offset);
	ASSERT_NE(MAP_FAILED, self->regs);
	/* the identification register: 0xRRrr00ed */
	ASSERT_EQ(0xed, __atomic_load_n((uint32_t *)(self->regs + EDU_ID),
					__ATOMIC_RELAXED) & 0xff);

	self->stage = mmap(NULL, STAGE_LEN, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->stage);
	memset(self->stage, 0, STAGE_LEN);
	map.ioas_id = self->ioas;
	map.user_va = (uintptr_t)self->stage;
	ASSERT_EQ(0, ioctl(self->iommufd, IOMMU_IOAS_MAP, &map));
}

FIXTURE_TEARDOWN(iommufd)
{
	if (self->regs != MAP_FAILED)
		munmap(self->regs, self->regs_size);
	vdev_close(&self->edu);
	mem_close(self);
	if (self->stage != MAP_FAILED)
		munmap(self->stage, STAGE_LEN);
}

/* ---- iommufd -------------------------------------------------------- */

/* IOMMU_IOAS_MAP_FILE as given; the IOVA it chose in *@iova: 0 or -errno. */
static int map_file_cmd(int iommufd, struct iommu_ioas_map_file *cmd,
			uint64_t *iova)
{
	if (ioctl(iommufd, IOMMU_IOAS_MAP_FILE, cmd))
		return -errno;
	if (iova)
		*iova = cmd->iova;
	return 0;
}

/*
 * Maps bytes [@start, @start + @len) of file @fd at *@iova of IOAS @ioas,
 * or where the kernel chooses without IOMMU_IOAS_MAP_FIXED_IOVA (written to
 * *@iova).
 */
static int map_file_in(struct _test_data_iommufd *self, uint32_t ioas, int fd,
		       uint64_t start, uint64_t len, uint32_t flags,
		       uint64_t *iova)
{
	struct iommu_ioas_map_file cmd = {
		.size = sizeof(cmd), .flags = flags, .ioas_id = ioas,
		.fd = fd, .start = start, .length = len, .iova = *iova,
	};

	return map_file_cmd(self->iommufd, &cmd, iova);
}

/* map_file_in() the fixture's IOAS. */
static int map_file(struct _test_data_iommufd *self, int fd, uint64_t start,
		    uint64_t len, uint32_t flags, uint64_t *iova)
{
	return map_file_in(self, self->ioas, fd, start, len, flags, iova);
}

/* IOMMU_IOAS_UNMAP in IOAS @ioas: the bytes it unmapped, or -errno. */
static int64_t ioas_unmap_in(struct _test_data_iommufd *self, uint32_t ioas,
			     uint64_t iova, uint64_t len)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd), .ioas_id = ioas,
		.iova = iova, .length = len,
	};

	if (ioctl(self->iommufd, IOMMU_IOAS_UNMAP, &cmd))
		return -errno;
	return cmd.length;
}

/* ioas_unmap_in() the fixture's IOAS. */
static int64_t ioas_unmap(struct _test_data_iommufd *self, uint64_t iova,
			  uint64_t len)
{
	return ioas_unmap_in(self, self->ioas, iova, len);
}

/* A new IOAS, its ID in *@id: 0 or -errno. */
static int ioas_alloc(struct _test_data_iommufd *self, uint32_t *id)
{
	struct iommu_ioas_alloc cmd = { .size = sizeof(cmd) };

	if (ioctl(self->iommufd, IOMMU_IOAS_ALLOC, &cmd))
		return -errno;
	*id = cmd.out_ioas_id;
	return 0;
}

/* IOMMU_IOAS_MAP of @len bytes at @va to fixed IOVA @iova of @ioas. */
static int ioas_map(struct _test_data_iommufd *self, uint32_t ioas, void *va,
		    uint64_t len, uint64_t iova)
{
	struct iommu_ioas_map cmd = {
		.size = sizeof(cmd), .flags = FIXED_RW, .ioas_id = ioas,
		.user_va = (uintptr_t)va, .length = len, .iova = iova,
	};

	return ioctl(self->iommufd, IOMMU_IOAS_MAP, &cmd) ? -errno : 0;
}

/*
 * IOMMU_IOAS_COPY of [@iova, @iova + @len) of IOAS @src to the same IOVAs
 * of @dst: the areas there share the pages of those in @src.
 */
static int ioas_copy(struct _test_data_iommufd *self, uint32_t dst,
		     uint32_t src, uint64_t iova, uint64_t len)
{
	struct iommu_ioas_copy cmd = {
		.size = sizeof(cmd), .flags = FIXED_RW,
		.dst_ioas_id = dst, .src_ioas_id = src,
		.length = len, .dst_iova = iova, .src_iova = iova,
	};

	return ioctl(self->iommufd, IOMMU_IOAS_COPY, &cmd) ? -errno : 0;
}

/*
 * IOMMU_HWPT_ALLOC: a domain of IOAS @ioas for edu, its ID in *@id; it
 * stays in the IOAS until destroyed, with edu attached or not.
 */
static int hwpt_alloc(struct _test_data_iommufd *self, uint32_t ioas,
		      uint32_t *id)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd), .dev_id = self->edu.dev_id, .pt_id = ioas,
		.data_type = IOMMU_HWPT_DATA_NONE,
	};

	if (ioctl(self->iommufd, IOMMU_HWPT_ALLOC, &cmd))
		return -errno;
	*id = cmd.out_hwpt_id;
	return 0;
}

/* IOMMU_DESTROY of object @id: 0 or -errno. */
static int obj_destroy(struct _test_data_iommufd *self, uint32_t id)
{
	struct iommu_destroy cmd = { .size = sizeof(cmd), .id = id };

	return ioctl(self->iommufd, IOMMU_DESTROY, &cmd) ? -errno : 0;
}

/*
 * edu attached to *@pt_id, an IOAS (a domain of iommufd's choice, its
 * HWPT's ID written to *@pt_id) or a HWPT; an attachment edu has is
 * replaced (vfio_iommufd_physical_attach_ioas()).  0 or -errno.
 */
static int edu_attach(struct _test_data_iommufd *self, uint32_t *pt_id)
{
	struct vfio_device_attach_iommufd_pt cmd = {
		.argsz = sizeof(cmd), .pt_id = *pt_id,
	};

	if (ioctl(self->edu.fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &cmd))
		return -errno;
	*pt_id = cmd.pt_id;
	return 0;
}

/* ---- edu's DMA engine ----------------------------------------------- */

/*
 * One transfer of @len bytes between DMA address @iova and the start of
 * edu's buffer, into the buffer or, with @to_ram, out of it; waits until
 * the device is done.  0, or -errno.
 */
static int edu_dma(uint8_t *regs, uint64_t iova, uint64_t len, int to_ram)
{
	struct timespec t0, t;

	if (!len || len > XFER)
		return -EINVAL;		/* QEMU would abort the guest */
	/* the CPU's stores reach memory before the device reads them */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	st64(regs + EDU_DMA_SRC, to_ram ? EDU_BUF : iova);
	st64(regs + EDU_DMA_DST, to_ram ? iova : EDU_BUF);
	st64(regs + EDU_DMA_CNT, len);
	st64(regs + EDU_DMA_CMD, EDU_CMD_RUN | (to_ram ? EDU_CMD_TO_RAM : 0));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ld64(regs + EDU_DMA_CMD) & EDU_CMD_RUN) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > EDU_TIMEOUT_S)
			return -ETIMEDOUT;
		usleep(5000);
	}
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return 0;
}

/* edu's buffer gets XFER bytes of pattern @seed, from the staging page. */
static int edu_load(struct _test_data_iommufd *self, uint32_t seed)
{
	for (int i = 0; i < XFER; i++)
		self->stage[i] = pat(seed, i);
	return edu_dma(self->regs, IOVA_STAGE, XFER, 0);
}

/* The device writes XFER bytes of pattern @seed at @iova. */
static int dma_to(struct _test_data_iommufd *self, uint64_t iova, uint32_t seed)
{
	int ret = edu_load(self, seed);

	return ret ? ret : edu_dma(self->regs, iova, XFER, 1);
}

/*
 * The device reads XFER bytes at @iova (into the second staging page):
 * the count of them that are not pattern @seed, or -errno.
 */
static int64_t dma_from(struct _test_data_iommufd *self, uint64_t iova,
			uint32_t seed)
{
	uint8_t *in = self->stage + PAGE;
	int64_t bad = 0;
	int ret;

	/* each byte must be written to match */
	for (int i = 0; i < XFER; i++)
		in[i] = ~pat(seed, i);
	ret = edu_dma(self->regs, iova, XFER, 0);
	if (!ret)
		ret = edu_dma(self->regs, IOVA_STAGE + PAGE, XFER, 1);
	if (ret)
		return ret;
	for (int i = 0; i < XFER; i++)
		bad += in[i] != pat(seed, i);
	return bad;
}

/* ---- what the BAR must hold ---------------------------------------- */

/* BAR bytes [off, off + len) are pat(seed, x0 + i). */
struct run {
	uint64_t off, len;
	uint32_t seed;
	uint64_t x0;
};

/*
 * A test's buffer, @base in the BAR, and the BAR bytes checked around it:
 * a page on each side.  A later run overrides an earlier one.
 */
struct window {
	uint64_t base, lo, hi;
	struct run run[8];
	int n;
};

/* The BAR slot of test @k. */
static uint64_t slot(struct _test_data_iommufd *self, int k)
{
	return self->bar_size / 8 * 7 + k * SLOT_LEN;
}

/* The CPU writes pattern @seed, by buffer offset, at buffer offset @off. */
static void win_cpu_write(struct window *w, uint8_t *bar, uint64_t off,
			  uint64_t len, uint32_t seed)
{
	for (uint64_t i = 0; i < len; i++)
		bar[w->base + off + i] = pat(seed, i);
	w->run[w->n++] = (struct run){ w->base + off, len, seed, 0 };
}

/* The DMA wrote XFER bytes of pattern @seed at buffer offset @off. */
static void win_dma_wrote(struct window *w, uint64_t off, uint32_t seed)
{
	w->run[w->n++] = (struct run){ w->base + off, XFER, seed, 0 };
}

/* The CPU writes background @bg, by BAR offset, over the whole window. */
static void win_init(struct window *w, uint8_t *bar, uint64_t base, uint32_t bg)
{
	w->base = base;
	w->lo = base - PAGE;
	w->hi = base + BUF_LEN + PAGE;
	w->n = 1;
	w->run[0] = (struct run){ w->lo, w->hi - w->lo, bg, w->lo };
	for (uint64_t x = w->lo; x < w->hi; x++)
		bar[x] = pat(bg, x);
}

/* The run BAR offset @x belongs to. */
static const struct run *win_run(const struct window *w, uint64_t x)
{
	for (int i = w->n - 1; i > 0; i--)
		if (x >= w->run[i].off && x < w->run[i].off + w->run[i].len)
			return &w->run[i];
	return &w->run[0];
}

/*
 * The bytes of the window that are not what it must hold; with @witness,
 * prints what the host must find in the backing file, run by run.
 */
static uint64_t win_check(const struct window *w, const uint8_t *bar,
			  int witness)
{
	uint64_t bad = 0, x, end;
	const struct run *r;
	uint8_t want, got;

	for (x = w->lo; x < w->hi; x++) {
		r = win_run(w, x);
		want = pat(r->seed, r->x0 + x - r->off);
		got = bar[x];
		/* not printf(): the test's process ends with _exit() */
		if (got != want && !bad++)
			dprintf(1, "# first bad byte: buffer offset %lld: 0x%02x, want 0x%02x\n",
				(long long)(x - w->base), got, want);
	}
	for (x = w->lo; witness && x < w->hi; x = end) {
		r = win_run(w, x);
		for (end = x + 1; end < w->hi && win_run(w, end) == r; end++)
			;
		filecheck(x, end - x, r->seed, r->x0 + x - r->off);
	}
	return bad;
}

/* ---- the tests ------------------------------------------------------ */

/* Buffer offsets of the transfers: across a page boundary, the end. */
#define OFF_CROSS (6 * PAGE - 1024)
#define OFF_MID (12 * PAGE + 0x80)
#define OFF_END (BUF_LEN - XFER)
#define OFF_PART (8 * PAGE)

/* A one-range buffer of BUF_LEN bytes at @base in the BAR: its fd. */
/*
 * The device writes pattern @seed at @iova + @off, where the buffer's byte
 * @off is mapped: the window shows it, and nothing else changed.
 */
static void __dma_write(struct __test_metadata *_metadata,
			struct _test_data_iommufd *self, struct window *w,
			uint64_t iova, uint64_t off, uint32_t seed)
{
	ASSERT_EQ(0, dma_to(self, iova + off, seed));
	win_dma_wrote(w, off, seed);
	ASSERT_EQ(0, win_check(w, self->bar, 0));
}

#define dma_write(w, iova, off, seed) __dma_write(_metadata, self, w, iova, off, seed)

static int buf_create(struct _test_data_iommufd *self, uint64_t base)
{
	struct vfio_region_dma_range r = { base, BUF_LEN };

	return dmabuf_create(self->mem.fd, BAR, 1, &r);
}

/*
 * The buffer at a fixed IOVA and where the kernel chooses: data both ways
 * through the first, every byte of the window checked; the same bytes
 * through the second.  Leaves the pattern the host checks.
 */
TEST_F_TIMEOUT(iommufd, dmabuf_map_dma, 120)
{
	uint64_t iova = IOVA_A, b = 0, c = 0;
	struct window w;
	int buf;

	win_init(&w, self->bar, slot(self, 0), 1);
	buf = buf_create(self, w.base);
	ASSERT_GE(buf, 0);
	ASSERT_EQ(0, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	ASSERT_EQ(IOVA_A, iova);

	/* the device writes the buffer */
	dma_write(&w, IOVA_A, OFF_CROSS, 2);
	/* and reads it */
	win_cpu_write(&w, self->bar, OFF_MID, XFER, 3);
	ASSERT_EQ(0, dma_from(self, IOVA_A + OFF_MID, 3));

	/* the kernel's choice: page aligned, in the allowed range, free */
	ASSERT_EQ(0, map_file(self, buf, 0, BUF_LEN, RW, &b));
	TH_LOG("the kernel mapped the buffer at IOVA 0x%llx", (unsigned long long)b);
	ASSERT_EQ(0, b % PAGE);
	ASSERT_LE(b + BUF_LEN, IOVA_LIMIT);
	ASSERT_TRUE(b + BUF_LEN <= IOVA_A || b >= IOVA_A + BUF_LEN);
	ASSERT_TRUE(b + BUF_LEN <= IOVA_STAGE || b >= IOVA_STAGE + STAGE_LEN);
	dma_write(&w, b, OFF_END, 4);
	/* both IOVAs are the same bytes */
	ASSERT_EQ(0, dma_from(self, IOVA_A + OFF_END, 4));
	ASSERT_EQ(0, dma_from(self, b + OFF_CROSS, 2));

	/*
	 * Part of the buffer, from a page past its start, as QEMU maps the
	 * parts of a BAR around a hole (start = the offset in the BAR)
	 */
	ASSERT_EQ(0, map_file(self, buf, OFF_PART, 4 * PAGE, RW, &c));
	ASSERT_EQ(0, dma_to(self, c + PAGE + 0x100, 5));
	win_dma_wrote(&w, OFF_PART + PAGE + 0x100, 5);
	ASSERT_EQ(0, win_check(&w, self->bar, 0));
	ASSERT_EQ(0, dma_from(self, IOVA_A + OFF_PART + PAGE + 0x100, 5));
	ASSERT_EQ(4 * PAGE, ioas_unmap(self, c, 4 * PAGE));

	ASSERT_EQ(BUF_LEN, ioas_unmap(self, IOVA_A, BUF_LEN));
	ASSERT_EQ(BUF_LEN, ioas_unmap(self, b, BUF_LEN));
	ASSERT_EQ(-ENOENT, ioas_unmap(self, IOVA_A, BUF_LEN));
	close(buf);
	ASSERT_EQ(0, win_check(&w, self->bar, 1));
}

/*
 * The device writes pattern @seed at IOVA_A, which must fault in the IOMMU:
 * the kernel logs the fault and the window stays as it was.
 */
static void __dma_faults(struct __test_metadata *_metadata,
			 struct _test_data_iommufd *self,
			 const struct window *w, uint32_t seed)
{
	char needle[96];
	int kmsg, found;

	ASSERT_EQ(0, edu_load(self, seed));
	kmsg = iommu_fault_expect(self->dmadev, IOVA_A, needle, sizeof(needle));
	ASSERT_GE(kmsg, 0);
	ASSERT_EQ(0, edu_dma(self->regs, IOVA_A, XFER, 1));
	found = iommu_fault_seen(kmsg, needle);
	ASSERT_EQ(0, win_check(w, self->bar, 0));
	ASSERT_TRUE(found);
}

#define dma_faults(w, seed) __dma_faults(_metadata, self, w, seed)

/*
 * After a revocation: a DMA to the buffer's IOVA faults in the IOMMU and
 * leaves the BAR as it was, the IOVA is still taken (EEXIST) until it is
 * unmapped, and a new MAP_FILE moves data again.
 */
static void __after_revoke(struct __test_metadata *_metadata,
			   struct _test_data_iommufd *self, struct window *w,
			   int buf)
{
	uint64_t iova = IOVA_A;

	dma_faults(w, 8);

	ASSERT_EQ(-EEXIST, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	ASSERT_EQ(BUF_LEN, ioas_unmap(self, IOVA_A, BUF_LEN));
	ASSERT_EQ(0, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	dma_write(w, IOVA_A, OFF_MID, 9);
	ASSERT_EQ(0, dma_from(self, IOVA_A + OFF_CROSS, 7));
	ASSERT_EQ(BUF_LEN, ioas_unmap(self, IOVA_A, BUF_LEN));
}

#define after_revoke(w, buf) __after_revoke(_metadata, self, w, buf)

/* Maps the buffer of test @k at IOVA_A; the device writes pattern 7. */
static int __map_and_write(struct __test_metadata *_metadata,
			   struct _test_data_iommufd *self, struct window *w, int k)
{
	uint64_t iova = IOVA_A;
	int buf;

	win_init(w, self->bar, slot(self, k), 6);
	buf = buf_create(self, w->base);
	ASSERT_GE(buf, 0);
	ASSERT_EQ(0, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	dma_write(w, IOVA_A, OFF_CROSS, 7);
	return buf;
}

#define map_and_write(w, k) __map_and_write(_metadata, self, w, k)

TEST_F_TIMEOUT(iommufd, revoke_on_decode_off, 120)
{
	uint64_t iova = 0;
	struct window w;
	int buf;

	buf = map_and_write(&w, 1);
	ASSERT_EQ(0, vdev_set_memory(&self->mem, 0));
	ASSERT_EQ(-ENODEV, map_file(self, buf, 0, BUF_LEN, RW, &iova));
	ASSERT_EQ(0, vdev_set_memory(&self->mem, 1));
	/* decode on again: the buffer is usable, its old IOVA still unmapped */
	after_revoke(&w, buf);
	close(buf);
}

TEST_F_TIMEOUT(iommufd, revoke_on_reset, 120)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct window w;
	int buf;

	ASSERT_EQ(0, ioctl(self->mem.fd, VFIO_DEVICE_GET_INFO, &info));
	if (!(info.flags & VFIO_DEVICE_FLAGS_RESET))
		SKIP(return, "device %s has no reset", self->mem.bdf);
	buf = map_and_write(&w, 2);
	ASSERT_EQ(0, ioctl(self->mem.fd, VFIO_DEVICE_RESET));
	after_revoke(&w, buf);
	close(buf);
}

/*
 * Closing the device revokes for good: the DMA faults, the buffer (still
 * open) cannot be mapped, also once the device is open again, and its
 * IOVA unmaps.
 */
TEST_F_TIMEOUT(iommufd, revoke_on_close, 120)
{
	uint64_t iova = 0;
	struct window w;
	char needle[96];
	int buf, kmsg;

	buf = map_and_write(&w, 3);
	ASSERT_EQ(0, edu_load(self, 8));
	mem_close(self);

	kmsg = iommu_fault_expect(self->dmadev, IOVA_A, needle, sizeof(needle));
	ASSERT_GE(kmsg, 0);
	ASSERT_EQ(0, edu_dma(self->regs, IOVA_A, XFER, 1));
	ASSERT_TRUE(iommu_fault_seen(kmsg, needle));
	ASSERT_EQ(-ENODEV, map_file(self, buf, 0, BUF_LEN, RW, &iova));
	ASSERT_EQ(BUF_LEN, ioas_unmap(self, IOVA_A, BUF_LEN));

	/* open again, on the same IOAS: the BAR as it was, the buffer dead */
	ASSERT_EQ(0, mem_open(self));
	ASSERT_EQ(0, win_check(&w, self->bar, 0));
	ASSERT_EQ(-ENODEV, map_file(self, buf, 0, BUF_LEN, RW, &iova));
	close(buf);
}

/*
 * dmar_fault() reports through one ratelimit state (10 messages in 5 s)
 * and a lone fault takes three turns of it (the status, the record, the
 * next record, found empty): a fourth fault within those 5 s goes
 * unreported.  Waits until the next fault starts a new interval: three
 * faults in a row are then reported.
 */
static void fault_pause(void)
{
	sleep(6);
}

/* The tag page of IOAS k (1, 2, 3) at IOVA_TAG: pattern TAG_SEED + k. */
#define TAG_SEED 40

/* edu moves to @pt_id, and reads IOAS @k's tag page there. */
static void __edu_move(struct __test_metadata *_metadata,
		       struct _test_data_iommufd *self, uint32_t pt_id, int k)
{
	ASSERT_EQ(0, edu_attach(self, &pt_id));
	ASSERT_EQ(0, dma_from(self, IOVA_TAG, TAG_SEED + k));
}

#define edu_move(pt_id, k) __edu_move(_metadata, self, pt_id, k)

/*
 * One revocation reaches every mapping of the buffer: in the fixture's
 * IOAS (IOAS1, MAP_FILE), in a second one holding a copy of that area
 * (IOAS2, IOMMU_IOAS_COPY: the same pages) and in a third that maps the
 * buffer itself (IOAS3: a second attachment).  Each IOAS has a domain
 * through the revocation (IOAS1 ivshmem's, IOAS2 and IOAS3 one allocated
 * for edu), and edu moves from one to another; a tag page at IOVA_TAG
 * tells where it is.  Data moves through the buffer's IOVA in each before
 * the revocation and faults in each after it.  Once the buffer is usable
 * again, a new MAP_FILE in IOAS3 moves data there while IOAS2 (also in a
 * domain made after the revocation) and IOAS1 still fault: nothing is
 * mapped again by itself.  Then nothing but their HWPTs holds the two
 * IOASes.
 */
TEST_F_TIMEOUT(iommufd, revoke_every_ioas, 180)
{
	uint32_t ioas2 = 0, ioas3 = 0, hwpt2 = 0, hwpt3 = 0, pt;
	uint64_t iova = IOVA_A;
	struct window w;
	uint8_t *tags;
	int buf;

	tags = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, tags);
	for (int k = 1; k <= 3; k++)
		for (int i = 0; i < XFER; i++)
			tags[(k - 1) * PAGE + i] = pat(TAG_SEED + k, i);

	win_init(&w, self->bar, slot(self, 5), 30);
	buf = buf_create(self, w.base);
	ASSERT_GE(buf, 0);
	ASSERT_EQ(0, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	ASSERT_EQ(0, ioas_map(self, self->ioas, tags, PAGE, IOVA_TAG));

	/* IOAS2: a domain, then copies of IOAS1's staging pages and buffer */
	ASSERT_EQ(0, ioas_alloc(self, &ioas2));
	ASSERT_EQ(0, hwpt_alloc(self, ioas2, &hwpt2));
	ASSERT_EQ(0, ioas_map(self, ioas2, tags + PAGE, PAGE, IOVA_TAG));
	ASSERT_EQ(0, ioas_copy(self, ioas2, self->ioas, IOVA_STAGE, STAGE_LEN));
	ASSERT_EQ(0, ioas_copy(self, ioas2, self->ioas, IOVA_A, BUF_LEN));

	/* IOAS3: the staging pages and the buffer mapped, then a domain */
	ASSERT_EQ(0, ioas_alloc(self, &ioas3));
	ASSERT_EQ(0, ioas_map(self, ioas3, tags + 2 * PAGE, PAGE, IOVA_TAG));
	ASSERT_EQ(0, ioas_map(self, ioas3, self->stage, STAGE_LEN, IOVA_STAGE));
	ASSERT_EQ(0, map_file_in(self, ioas3, buf, 0, BUF_LEN, FIXED_RW, &iova));
	ASSERT_EQ(0, hwpt_alloc(self, ioas3, &hwpt3));

	/* from each IOAS edu reads what it wrote from the last, and writes */
	edu_move(self->ioas, 1);
	dma_write(&w, IOVA_A, OFF_CROSS, 31);
	edu_move(hwpt2, 2);
	ASSERT_EQ(0, dma_from(self, IOVA_A + OFF_CROSS, 31));
	dma_write(&w, IOVA_A, OFF_MID, 32);
	edu_move(hwpt3, 3);
	ASSERT_EQ(0, dma_from(self, IOVA_A + OFF_MID, 32));
	dma_write(&w, IOVA_A, OFF_END, 33);

	/* one revocation, with edu in IOAS3 */
	fault_pause();
	ASSERT_EQ(0, vdev_set_memory(&self->mem, 0));
	iova = IOVA_C;
	ASSERT_EQ(-ENODEV, map_file_in(self, ioas2, buf, 0, BUF_LEN, FIXED_RW, &iova));
	ASSERT_EQ(0, vdev_set_memory(&self->mem, 1));
	/* it reached the domain of each IOAS */
	dma_faults(&w, 34);
	edu_move(hwpt2, 2);
	dma_faults(&w, 35);
	edu_move(self->ioas, 1);
	dma_faults(&w, 36);

	/* usable again: mapped again in IOAS3, it moves data there */
	iova = IOVA_A;
	ASSERT_EQ(-EEXIST, map_file_in(self, ioas3, buf, 0, BUF_LEN, FIXED_RW, &iova));
	ASSERT_EQ(BUF_LEN, ioas_unmap_in(self, ioas3, IOVA_A, BUF_LEN));
	ASSERT_EQ(0, map_file_in(self, ioas3, buf, 0, BUF_LEN, FIXED_RW, &iova));
	edu_move(hwpt3, 3);
	ASSERT_EQ(0, dma_from(self, IOVA_A + OFF_END, 33));
	dma_write(&w, IOVA_A, OFF_CROSS, 37);

	/* and nowhere else, also not in a domain of IOAS2 made now */
	fault_pause();
	edu_move(hwpt2, 2);
	dma_faults(&w, 38);
	pt = ioas2;
	ASSERT_EQ(0, edu_attach(self, &pt));
	ASSERT_NE(hwpt2, pt);
	ASSERT_EQ(0, dma_from(self, IOVA_TAG, TAG_SEED + 2));
	dma_faults(&w, 39);
	edu_move(self->ioas, 1);
	dma_faults(&w, 40);

	EXPECT_EQ(BUF_LEN, ioas_unmap(self, IOVA_A, BUF_LEN));
	EXPECT_EQ(PAGE, ioas_unmap(self, IOVA_TAG, PAGE));
	EXPECT_EQ(PAGE + STAGE_LEN + BUF_LEN,
		  ioas_unmap_in(self, ioas2, 0, UINT64_MAX));
	EXPECT_EQ(PAGE + STAGE_LEN + BUF_LEN,
		  ioas_unmap_in(self, ioas3, 0, UINT64_MAX));
	/* IOAS2's new domain went with edu: only its HWPT holds each IOAS */
	EXPECT_EQ(-EBUSY, obj_destroy(self, ioas2));
	EXPECT_EQ(0, obj_destroy(self, hwpt2));
	EXPECT_EQ(0, obj_destroy(self, hwpt3));
	EXPECT_EQ(0, obj_destroy(self, ioas2));
	EXPECT_EQ(0, obj_destroy(self, ioas3));
	close(buf);
	munmap(tags, 3 * PAGE);
	EXPECT_EQ(0, win_check(&w, self->bar, 0));
}

/* A udmabuf of two pages of a sealed memfd: its fd, or -errno. */
static int udmabuf_create(void)
{
	struct udmabuf_create c = {
		.flags = UDMABUF_FLAGS_CLOEXEC, .size = 2 * PAGE,
	};
	int memfd, dev, buf = -1;

	memfd = memfd_create("vfio_dmabuf_iommufd", MFD_ALLOW_SEALING);
	if (memfd < 0)
		return -errno;
	dev = open("/dev/udmabuf", O_RDWR | O_CLOEXEC);
	c.memfd = memfd;
	if (dev >= 0 && !ftruncate(memfd, 2 * PAGE) &&
	    !fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK))
		buf = ioctl(dev, UDMABUF_CREATE, &c);
	if (buf < 0)
		buf = -errno;
	if (dev >= 0)
		close(dev);
	close(memfd);
	return buf;
}

/*
 * A memfd (QEMU's memfd guest RAM): the device reads what the CPU wrote into
 * the file and writes into it, through a mapping of the whole file at a
 * fixed IOVA and of part of it where the kernel chooses; a range past the
 * file's end and a file that is not a memfd are EINVAL, and nothing is left
 * mapped.
 */
TEST_F_TIMEOUT(iommufd, memfd_map, 120)
{
	uint64_t iova = IOVA_A, part = 0;
	uint8_t bytes[XFER];
	int mfd, pipefd[2], bad = 0;

	mfd = memfd_create("vfio_dmabuf_iommufd", MFD_CLOEXEC);
	ASSERT_GE(mfd, 0);
	ASSERT_EQ(0, ftruncate(mfd, BUF_LEN));
	for (int i = 0; i < XFER; i++)
		bytes[i] = pat(21, i);
	/* across a page boundary of the file */
	ASSERT_EQ(XFER, pwrite(mfd, bytes, XFER, 2 * PAGE - XFER / 2));
	ASSERT_EQ(0, map_file(self, mfd, 0, BUF_LEN, FIXED_RW, &iova));
	EXPECT_EQ(0, dma_from(self, IOVA_A + 2 * PAGE - XFER / 2, 21));

	ASSERT_EQ(0, dma_to(self, IOVA_A + 5 * PAGE + 0x80, 22));
	ASSERT_EQ(XFER, pread(mfd, bytes, XFER, 5 * PAGE + 0x80));
	for (int i = 0; i < XFER; i++)
		bad += bytes[i] != pat(22, i);
	EXPECT_EQ(0, bad);

	/* pages 4..7 of the file, where the kernel chooses */
	ASSERT_EQ(0, map_file(self, mfd, 4 * PAGE, 4 * PAGE, RW, &part));
	EXPECT_EQ(0, part % PAGE);
	EXPECT_EQ(0, dma_from(self, part + PAGE + 0x80, 22));

	EXPECT_EQ(BUF_LEN, ioas_unmap(self, IOVA_A, BUF_LEN));
	EXPECT_EQ(4 * PAGE, ioas_unmap(self, part, 4 * PAGE));

	iova = IOVA_C;
	EXPECT_EQ(-EINVAL, map_file(self, mfd, 0, BUF_LEN + PAGE, FIXED_RW, &iova));
	EXPECT_EQ(-EINVAL, map_file(self, mfd, BUF_LEN, PAGE, FIXED_RW, &iova));
	ASSERT_EQ(0, pipe(pipefd));
	EXPECT_EQ(-EINVAL, map_file(self, pipefd[0], 0, PAGE, FIXED_RW, &iova));
	close(pipefd[0]);
	close(pipefd[1]);
	close(mfd);

	EXPECT_EQ(STAGE_LEN, ioas_unmap(self, 0, UINT64_MAX));
}

/*
 * Every refusal, each with one thing wrong, and nothing left behind: at
 * the end the IOAS holds only the staging pages.  The refused requests are
 * for a free IOVA: one wrongly granted fails only its own check here.
 */
TEST_F(iommufd, refusals)
{
	uint64_t base = slot(self, 4), iova = IOVA_C;
	struct vfio_region_dma_range apart[2] = {
		{ base, PAGE }, { base + 4 * PAGE, PAGE },
	};
	struct vfio_region_dma_range adjacent[2] = {
		{ base, PAGE }, { base + PAGE, PAGE },
	};
	struct iommu_ioas_map_file cmd;
	int buf, two, udma;

	buf = buf_create(self, base);
	ASSERT_GE(buf, 0);

	/* not one range: upstream's answer, even where they touch */
	two = dmabuf_create(self->mem.fd, BAR, 2, apart);
	ASSERT_GE(two, 0);
	EXPECT_EQ(-EOPNOTSUPP, map_file(self, two, 0, 2 * PAGE, FIXED_RW, &iova));
	close(two);
	two = dmabuf_create(self->mem.fd, BAR, 2, adjacent);
	ASSERT_GE(two, 0);
	EXPECT_EQ(-EOPNOTSUPP, map_file(self, two, 0, 2 * PAGE, FIXED_RW, &iova));
	EXPECT_EQ(-EOPNOTSUPP, map_file(self, two, 0, PAGE, FIXED_RW, &iova));
	close(two);
	/* a dma-buf of another exporter */
	udma = udmabuf_create();
	ASSERT_GE(udma, 0);
	EXPECT_EQ(-EOPNOTSUPP, map_file(self, udma, 0, 2 * PAGE, FIXED_RW, &iova));
	close(udma);

	/* flags */
	EXPECT_EQ(-EOPNOTSUPP, map_file(self, buf, 0, BUF_LEN, FIXED_RW | 1 << 3, &iova));
	EXPECT_EQ(-EOPNOTSUPP, map_file(self, buf, 0, BUF_LEN, FIXED_RW | 1U << 31, &iova));
	EXPECT_EQ(-EINVAL, map_file(self, buf, 0, BUF_LEN, IOMMU_IOAS_MAP_FIXED_IOVA, &iova));
	EXPECT_EQ(-EINVAL, map_file(self, buf, 0, BUF_LEN, 0, &iova));

	/* the command's size, the IOAS, the fd */
	ASSERT_EQ(40, sizeof(cmd));
	cmd = (struct iommu_ioas_map_file){
		.size = sizeof(cmd) - 1, .flags = FIXED_RW,
		.ioas_id = self->ioas, .fd = buf, .length = BUF_LEN,
		.iova = IOVA_C,
	};
	EXPECT_EQ(-EINVAL, map_file_cmd(self->iommufd, &cmd, NULL));
	cmd.size = sizeof(cmd);
	cmd.ioas_id = 0;
	EXPECT_EQ(-ENOENT, map_file_cmd(self->iommufd, &cmd, NULL));
	cmd.ioas_id = UINT32_MAX;
	EXPECT_EQ(-ENOENT, map_file_cmd(self->iommufd, &cmd, NULL));
	EXPECT_EQ(-EBADF, map_file(self, -1, 0, BUF_LEN, FIXED_RW, &iova));

	/* the bytes: none, past the end of the buffer, past the end of all */
	EXPECT_EQ(-EINVAL, map_file(self, buf, 0, 0, FIXED_RW, &iova));
	EXPECT_EQ(-EINVAL, map_file(self, buf, BUF_LEN - PAGE, 2 * PAGE, FIXED_RW, &iova));
	EXPECT_EQ(-EINVAL, map_file(self, buf, BUF_LEN, PAGE, FIXED_RW, &iova));
	EXPECT_EQ(-EINVAL, map_file(self, buf, 0, BUF_LEN + PAGE, FIXED_RW, &iova));
	EXPECT_EQ(-EOVERFLOW, map_file(self, buf, 0 - PAGE, 2 * PAGE, FIXED_RW, &iova));

	/* IOVAs taken, by the buffer itself and by the staging pages */
	iova = IOVA_A;
	ASSERT_EQ(0, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	iova = IOVA_A + BUF_LEN / 2;
	EXPECT_EQ(-EEXIST, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	iova = IOVA_A - BUF_LEN / 2;
	EXPECT_EQ(-EEXIST, map_file(self, buf, 0, BUF_LEN, FIXED_RW, &iova));
	iova = IOVA_STAGE;
	EXPECT_EQ(-EEXIST, map_file(self, buf, 0, PAGE, FIXED_RW, &iova));
	EXPECT_EQ(BUF_LEN, ioas_unmap(self, IOVA_A, BUF_LEN));
	close(buf);

	/* no refusal mapped anything */
	EXPECT_EQ(STAGE_LEN, ioas_unmap(self, 0, UINT64_MAX));
}

/*
 * Outside the harness, or where the devices have no cdev: one line and a
 * skip.
 */
static void __attribute__((constructor)) require_devices(void)
{
	static const char *const vars[] = {
		"VFIO_DMABUF_MEMDEV", "VFIO_DMABUF_DMADEV", NULL
	};
	char path[PATH_MAX], why[256];
	const char *memdev, *dmadev;

	vfio_dmabuf_require(vars, 0);
	memdev = getenv("VFIO_DMABUF_MEMDEV");
	dmadev = getenv("VFIO_DMABUF_DMADEV");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s", memdev);
	if (access(path, F_OK)) {
		snprintf(why, sizeof(why), "no PCI device %s", memdev);
		vfio_dmabuf_skip_all(why);
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu", memdev);
	if (access(path, F_OK))
		vfio_dmabuf_skip_all(NO_CDEV_SKIP);
	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/vfio-pci/%s", dmadev);
	if (access(path, F_OK)) {
		snprintf(why, sizeof(why),
			 "edu %s is not bound to vfio-pci (guest/run_guest_tests.sh binds it for this program)",
			 dmadev);
		vfio_dmabuf_skip_all(why);
	}
}

TEST_HARNESS_MAIN
