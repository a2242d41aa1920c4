/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the vfio-pci dma-buf selftests and tools: open a device
 * through its VFIO group (IOMMU or no-IOMMU) or its VFIO device cdev bound
 * to iommufd, create dma-bufs, drive the test importer.
 *
 * The harness describes the guest's scenario in the environment:
 *   VFIO_DMABUF_SCENARIO  name of the scenario
 *   VFIO_DMABUF_EXPORTER  BDF of the device bound to vfio-pci
 *   VFIO_DMABUF_EXPORTER2 BDF of a second one (the race stress uses both)
 *   VFIO_DMABUF_IMPORTER  BDF of the importing device (no driver)
 *   VFIO_DMABUF_MF0, _MF1 the two functions of one device (one device set),
 *                         both bound to vfio-pci
 *   VFIO_DMABUF_MEMDEV    BDF of a device bound to vfio-pci whose BAR 2 is
 *                         memory (ivshmem-plain backed by a host file)
 *   VFIO_DMABUF_DMADEV    BDF of a device whose DMA engine the test importer
 *                         drives (edu): VDI_IOC_DMA; for vfio_dmabuf_iommufd
 *                         the guest binds it to vfio-pci instead
 *   VFIO_DMABUF_PMDEV     BDF of a device bound to vfio-pci with PM and FLR
 *                         capabilities (virtio-rng-pci), exporting BAR 4;
 *                         empty where the scenario has none
 *   VFIO_DMABUF_PATH      expected P2P path: bus, host or none
 *   VFIO_DMABUF_OPEN      how vdev_open() opens devices: "group" (the
 *                         default: group + container) or "cdev"
 *                         (/dev/vfio/devices/vfioN bound to an iommufd and
 *                         attached to an IOAS, as QEMU does today)
 */
#ifndef VFIO_DMABUF_UTIL_H
#define VFIO_DMABUF_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "dmabuf_importer/vfio_dmabuf_importer.h"

#define PAGE 4096ULL

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

/*
 * A VFIO group is opened once: devices of one group (behind a PCIe switch
 * without ACS, for instance) share its group and container fds, counted
 * here.  Not thread-safe: open and close devices from one thread at a time.
 */
struct vgroup {
	char name[32];			/* the iommu_group's number */
	int group, container, users;
};

static struct vgroup vgroups[8];

struct vdev {
	int container, group, fd;	/* container and group: shared */
	int iommufd;			/* cdev: the process's iommufd */
	uint32_t dev_id;		/* cdev: its iommufd device ID */
	struct vgroup *vg;
	char bdf[32];
	uint64_t cfg_offset;		/* config space region offset */
};

static inline const char *env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

/* Devices are opened through their cdev (VFIO_DMABUF_OPEN=cdev). */
static inline int vdev_cdev_mode(void)
{
	return !strcmp(env_or("VFIO_DMABUF_OPEN", "group"), "cdev");
}

/* One iommufd and one IOAS for the process, counted like the groups. */
static struct {
	int fd, users;
	uint32_t ioas;
} viommufd = { .fd = -1 };

static inline void iommufd_put(void)
{
	if (--viommufd.users > 0)
		return;
	close(viommufd.fd);
	viommufd.fd = -1;
	viommufd.users = 0;
}

/* Opens (or shares) the iommufd and its IOAS; returns the fd or -errno. */
static inline int iommufd_get(void)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	int e;

	if (viommufd.users++)
		return viommufd.fd;
	viommufd.fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (viommufd.fd < 0 || ioctl(viommufd.fd, IOMMU_IOAS_ALLOC, &alloc)) {
		e = errno;
		if (viommufd.fd >= 0)
			close(viommufd.fd);
		viommufd.fd = -1;
		viommufd.users = 0;
		return -e;
	}
	viommufd.ioas = alloc.out_ioas_id;
	return viommufd.fd;
}

/*
 * Skips the whole program: one line saying @why and kselftest's skip
 * status (scripts/report.py takes the line as the program's skip).
 */
static inline void vfio_dmabuf_skip_all(const char *why)
{
	printf("TAP version 13\n1..0 # SKIP %s\n", why);
	exit(4);
}

/*
 * Run outside the harness (make run_tests on a machine without the test
 * devices), a program that lacks the environment variables @vars (NULL
 * terminated) or, with @importer, the test importer module says so in one
 * line and exits with kselftest's skip status.  Call it first in main().
 */
#define VFIO_DMABUF_HINT "device BDFs set up as guest/run_guest_tests.sh does (see run.sh)"

static inline void vfio_dmabuf_require(const char *const *vars, int importer)
{
	char missing[512] = "", why[640];
	size_t n = 0;

	for (; *vars; vars++)
		if (!getenv(*vars) || !*getenv(*vars))
			n += snprintf(missing + n, sizeof(missing) - n, "%s%s",
				      n ? ", " : "", *vars);
	if (importer && access(VDI_DEVICE, F_OK) && n < sizeof(missing))
		n += snprintf(missing + n, sizeof(missing) - n, "%s%s",
			      n ? ", " : "",
			      VDI_DEVICE " (insmod dmabuf_importer/vfio_dmabuf_importer.ko)");
	if (!n)
		return;
	snprintf(why, sizeof(why), "needs %s: %s", missing, VFIO_DMABUF_HINT);
	vfio_dmabuf_skip_all(why);
}

static inline void vgroup_put(struct vgroup *g)
{
	if (--g->users > 0)
		return;
	if (g->group >= 0)
		close(g->group);
	if (g->container >= 0)
		close(g->container);
	memset(g, 0, sizeof(*g));
}

/* Opens (or shares) the VFIO group of @bdf; returns it or NULL, errno set. */
static inline struct vgroup *vgroup_get(const char *bdf)
{
	char path[PATH_MAX], link[PATH_MAX];
	struct vgroup *g = NULL;
	int noiommu, type;
	const char *name;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return NULL;
	link[n] = 0;
	name = basename(link);
	for (unsigned int i = 0; i < ARRAY_SIZE(vgroups); i++) {
		if (vgroups[i].users && !strcmp(vgroups[i].name, name)) {
			vgroups[i].users++;
			return &vgroups[i];
		}
		if (!vgroups[i].users && !g)
			g = &vgroups[i];
	}
	if (!g) {
		errno = ENOSPC;
		return NULL;
	}
	snprintf(g->name, sizeof(g->name), "%s", name);
	g->users = 1;
	g->container = -1;
	snprintf(path, sizeof(path), "/dev/vfio/%s", name);
	g->group = open(path, O_RDWR);
	noiommu = g->group < 0;
	if (noiommu) {
		snprintf(path, sizeof(path), "/dev/vfio/noiommu-%s", name);
		g->group = open(path, O_RDWR);
	}
	type = noiommu ? VFIO_NOIOMMU_IOMMU : VFIO_TYPE1v2_IOMMU;
	if (g->group >= 0)
		g->container = open("/dev/vfio/vfio", O_RDWR);
	if (g->container < 0 ||
	    ioctl(g->group, VFIO_GROUP_SET_CONTAINER, &g->container) ||
	    ioctl(g->container, VFIO_SET_IOMMU, type)) {
		int e = errno;

		vgroup_put(g);
		errno = e;
		return NULL;
	}
	return g;
}

static inline void vdev_close(struct vdev *d)
{
	if (d->fd >= 0)
		close(d->fd);
	if (d->vg)
		vgroup_put(d->vg);
	if (d->iommufd >= 0)
		iommufd_put();
	d->fd = -1;
	d->group = -1;
	d->container = -1;
	d->iommufd = -1;
	d->vg = NULL;
}

/*
 * The device cdev of @bdf, opened, bound to the process's iommufd and
 * attached to its IOAS; 0 or -errno.  6.12 gives a no-IOMMU device no
 * cdev (vfio_device_add() in drivers/vfio/vfio.h): ENOENT.
 */
static inline int vdev_open_cdev(struct vdev *d, const char *bdf)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	char path[PATH_MAX], node[PATH_MAX] = "";
	struct dirent *e;
	DIR *dir;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((e = readdir(dir)))
		if (!strncmp(e->d_name, "vfio", 4))
			snprintf(node, sizeof(node), "/dev/vfio/devices/%s", e->d_name);
	closedir(dir);
	if (!node[0])
		return -ENODEV;
	d->fd = open(node, O_RDWR | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	d->iommufd = iommufd_get();
	if (d->iommufd < 0)
		return d->iommufd;
	bind.iommufd = d->iommufd;
	if (ioctl(d->fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return -errno;
	d->dev_id = bind.out_devid;
	attach.pt_id = viommufd.ioas;
	return ioctl(d->fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) ? -errno : 0;
}

/*
 * Opens @bdf through its VFIO group, or with @cdev its cdev; returns 0 or
 * -errno.  On failure nothing stays open and vdev_close() is a no-op.
 */
static inline int vdev_open_via(struct vdev *d, const char *bdf, int cdev)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg) };
	int e;

	memset(d, 0, sizeof(*d));
	d->container = -1;
	d->group = -1;
	d->iommufd = -1;
	d->fd = -1;
	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	if (cdev) {
		e = vdev_open_cdev(d, bdf);
		if (e) {
			vdev_close(d);
			return e;
		}
	} else {
		d->vg = vgroup_get(bdf);
		if (!d->vg)
			return -errno;
		d->group = d->vg->group;
		d->container = d->vg->container;
		d->fd = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	}
	reg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	if (d->fd < 0 || ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &reg)) {
		e = errno;
		vdev_close(d);
		return -e;
	}
	d->cfg_offset = reg.offset;
	return 0;
}

/* vdev_open_via() the way the environment says (vdev_cdev_mode()). */
static inline int vdev_open(struct vdev *d, const char *bdf)
{
	return vdev_open_via(d, bdf, vdev_cdev_mode());
}

static inline uint64_t vdev_region_size(struct vdev *d, uint32_t index)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = index };

	if (ioctl(d->fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		return 0;
	return reg.size;
}

/* CPU physical address of BAR @bar, from sysfs. */
static inline uint64_t bar_phys(const char *bdf, int bar)
{
	unsigned long long start = 0, end, flags;
	char path[PATH_MAX];
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", bdf);
	f = fopen(path, "r");
	if (!f)
		return 0;
	for (i = 0; i <= bar; i++)
		if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3)
			start = 0;
	fclose(f);
	return start;
}

/* Whether @bdf's DMA goes through an IOMMU domain that translates it. */
static inline int dma_translated(const char *bdf)
{
	char path[PATH_MAX], type[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/type", bdf);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(type, sizeof(type), f))
		type[0] = 0;
	fclose(f);
	return !strncmp(type, "DMA", 3);	/* DMA or DMA-FQ, not identity */
}

/* Sets or clears @bits of PCI_COMMAND through the VFIO config region. */
static inline int vdev_set_command(struct vdev *d, uint16_t bits, int on)
{
	uint16_t cmd;

	if (pread(d->fd, &cmd, 2, d->cfg_offset + PCI_COMMAND) != 2)
		return -errno;
	cmd = on ? (cmd | bits) : (cmd & ~bits);
	if (pwrite(d->fd, &cmd, 2, d->cfg_offset + PCI_COMMAND) != 2)
		return -errno;
	return 0;
}

/* Memory decode on or off (PCI_COMMAND_MEMORY). */
static inline int vdev_set_memory(struct vdev *d, int on)
{
	return vdev_set_command(d, PCI_COMMAND_MEMORY, on);
}

/*
 * VFIO_DEVICE_FEATURE_DMA_BUF with @nr ranges; returns the fd or -errno.
 * @argsz_adj is added to the exact argsz (negative to truncate).
 */
static inline int dmabuf_create_ex(int devfd, uint32_t region, uint32_t open_flags,
				   uint32_t flags, uint32_t nr,
				   const struct vfio_region_dma_range *ranges,
				   uint32_t ranges_given, long argsz_adj)
{
	size_t size = sizeof(struct vfio_device_feature) +
		      sizeof(struct vfio_device_feature_dma_buf) +
		      (size_t)ranges_given * sizeof(*ranges);
	struct vfio_device_feature *feat = calloc(1, size);
	struct vfio_device_feature_dma_buf *get;
	int ret;

	if (!feat)
		return -ENOMEM;
	get = (void *)feat->data;
	feat->argsz = size + argsz_adj;
	feat->flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_BUF;
	get->region_index = region;
	get->open_flags = open_flags;
	get->flags = flags;
	get->nr_ranges = nr;
	if (ranges_given)
		memcpy(get->dma_ranges, ranges, ranges_given * sizeof(*ranges));
	ret = ioctl(devfd, VFIO_DEVICE_FEATURE, feat);
	if (ret < 0)
		ret = -errno;
	free(feat);
	return ret;
}

static inline int dmabuf_create(int devfd, uint32_t region, uint32_t nr,
				const struct vfio_region_dma_range *ranges)
{
	return dmabuf_create_ex(devfd, region, O_RDWR | O_CLOEXEC, 0, nr,
				ranges, nr, 0);
}

/* Module references of vfio-pci-core (one per live buffer), -1 if built in. */
static inline int core_refcnt(void)
{
	FILE *f = fopen("/sys/module/vfio_pci_core/refcnt", "r");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Opens a new test importer and issues @cmd on it; its fd or -errno. */
static inline int importer_open(unsigned long cmd, void *arg)
{
	int fd = open(VDI_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, cmd, arg)) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* Opens the test importer and attaches @dmabuf; returns its fd or -errno. */
static inline int importer_attach(int dmabuf, const char *bdf, uint32_t flags)
{
	struct vdi_attach a = { .fd = dmabuf, .flags = flags };

	snprintf(a.bdf, sizeof(a.bdf), "%s", bdf ? bdf : "");
	return importer_open(VDI_IOC_ATTACH, &a);
}

/* Maps; fills up to @max segments; returns the entry count or -errno. */
static inline int importer_map(int imp, struct vdi_segment *segs, uint32_t max)
{
	struct vdi_map m = { .segments = (uintptr_t)segs, .max = max };

	if (ioctl(imp, VDI_IOC_MAP, &m))
		return -errno;
	return m.nents;
}

/*
 * The CPU physical address behind each page of @imp's mapping, up to @max;
 * returns the mapping's page count or -errno (VDI_IOC_PAGES).
 */
static inline int importer_pages(int imp, uint64_t *phys, uint32_t max)
{
	struct vdi_pages p = { .phys = (uintptr_t)phys, .max = max };

	if (ioctl(imp, VDI_IOC_PAGES, &p))
		return -errno;
	return p.count;
}

static inline int importer_unmap(int imp)
{
	return ioctl(imp, VDI_IOC_UNMAP) ? -errno : 0;
}

/* The importer's counters; returns 0 or -errno. */
static inline int importer_info(int imp, struct vdi_info *i)
{
	memset(i, 0, sizeof(*i));
	return ioctl(imp, VDI_IOC_INFO, i) ? -errno : 0;
}

/* The move_notify calls the importer saw, or -errno. */
static inline int64_t importer_moves(int imp)
{
	struct vdi_info i;
	int ret = importer_info(imp, &i);

	return ret ? ret : (int64_t)i.move_notify;
}

/* Each later move_notify that drops a mapping fences for @delay_ms. */
static inline int importer_fence(int imp, uint32_t delay_ms)
{
	struct vdi_fence f = { .delay_ms = delay_ms };

	return ioctl(imp, VDI_IOC_SET_FENCE, &f) ? -errno : 0;
}

/* Each later move_notify samples the state of PCI device @bdf. */
static inline int importer_watch(int imp, const char *bdf)
{
	char b[32] = "";

	snprintf(b, sizeof(b), "%s", bdf);
	return ioctl(imp, VDI_IOC_WATCH, b) ? -errno : 0;
}

/*
 * Holds [@phys, @phys + @len) with request_mem_region(), as another driver
 * would, until the returned fd is closed; returns the fd or -errno.
 */
/* dma_buf_vmap() of dma-buf @buf through the test importer: 0 or -errno. */
static inline int importer_vmap(int buf)
{
	int fd = importer_open(VDI_IOC_VMAP, &buf);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

static inline int region_claim(uint64_t phys, uint64_t len)
{
	struct vdi_claim c = { .phys = phys, .len = len };

	return importer_open(VDI_IOC_CLAIM, &c);
}

/*
 * VFIO_DEVICE_PCI_HOT_RESET with the group fds @groups; a device opened
 * through its cdev passes none (the devices of the set must then be bound
 * to its iommufd or be in a group that is).  Returns 0 or -errno.
 */
static inline int vdev_hot_reset(int devfd, const int *groups, int n)
{
	if (vdev_cdev_mode())
		n = 0;

	size_t size = sizeof(struct vfio_pci_hot_reset) + n * sizeof(int);
	struct vfio_pci_hot_reset *reset = calloc(1, size);
	int ret;

	if (!reset)
		return -ENOMEM;
	reset->argsz = size;
	reset->count = n;
	memcpy(reset->group_fds, groups, n * sizeof(int));
	ret = ioctl(devfd, VFIO_DEVICE_PCI_HOT_RESET, reset) ? -errno : 0;
	free(reset);
	return ret;
}

/*
 * Whether device @devfd can be hot reset (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO
 * succeeds): 0, or -errno.
 */
static inline int vdev_hot_reset_info(int devfd)
{
	size_t size = sizeof(struct vfio_pci_hot_reset_info) +
		      16 * sizeof(struct vfio_pci_dependent_device);
	struct vfio_pci_hot_reset_info *info = calloc(1, size);
	int ret;

	if (!info)
		return -ENOMEM;
	info->argsz = size;
	ret = ioctl(devfd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) ? -errno : 0;
	free(info);
	return ret;
}

/*
 * Writes @tag to the kernel log through @fd (/dev/kmsg, positioned at its
 * end) and returns the sequence number of that record, or -1.  Records the
 * ring buffer overwrote in between (EPIPE) are skipped.
 */
static inline long long kmsg_mark(int fd, const char *tag)
{
	char rec[8192], line[128];
	long long seq;
	ssize_t n;

	/* a record is complete, and readable, at its newline */
	snprintf(line, sizeof(line), "%s\n", tag);
	if (write(fd, line, strlen(line)) < 0)
		return -1;
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			return -1;
		rec[n] = 0;
		if (strstr(rec, tag) && sscanf(rec, "%*u,%lld,", &seq) == 1)
			return seq;
	}
}

/*
 * Reads the records of @fd (/dev/kmsg, O_NONBLOCK) until one contains
 * @needle (returns 1) or none is left (returns 0).
 */
static inline int kmsg_find(int fd, const char *needle)
{
	char rec[8192];
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			return 0;
		rec[n] = 0;
		if (strstr(rec, needle))
			return 1;
	}
}

/*
 * A DMA by device @bdf to @iova is about to fault in the IOMMU: announces
 * the fault's text, kept in @needle, for scripts/report.py (any other
 * IOMMU fault on the console fails the run) and returns /dev/kmsg opened
 * past every record so far, or -errno.  The fault address VT-d reports is
 * the page's.
 */
static inline int iommu_fault_expect(const char *bdf, uint64_t iova,
				     char *needle, size_t size)
{
	const char *bus = strchr(bdf, ':');
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	lseek(fd, 0, SEEK_END);
	/* "DMAR: [DMA Write NO_PASID] Request device [bb:dd.f] fault addr 0x..." */
	snprintf(needle, size, "Request device [%s] fault addr 0x%llx",
		 bus ? bus + 1 : bdf, (unsigned long long)(iova & ~(PAGE - 1)));
	dprintf(1, "### EXPECT-IOMMU-FAULT %s\n", needle);
	return fd;
}

/* Whether the kernel logs @needle within 5 s; closes @kmsg. */
static inline int iommu_fault_seen(int kmsg, const char *needle)
{
	int found = 0;

	for (int i = 0; i < 50 && !found; i++) {
		found = kmsg_find(kmsg, needle);
		if (!found)
			usleep(100 * 1000);
	}
	close(kmsg);
	return found;
}

/*
 * Byte @x of pattern @seed: differs from byte to byte and from page to
 * page, so a byte at the wrong offset shows.  scripts/report.py computes
 * the same to check the memory BAR's backing file.
 */
static inline uint8_t pat(uint32_t seed, uint64_t x)
{
	uint64_t h = (x + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)seed << 32);

	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 32;
	return h >> 56;
}

/*
 * Tells the host what to find in the memory BAR's backing file once the
 * guest has stopped: @len bytes from BAR offset @off are pat(@seed, @x0 +
 * i).  Nothing may write there afterwards, in any program.
 */
static inline void filecheck(uint64_t off, uint64_t len, uint32_t seed, uint64_t x0)
{
	dprintf(1, "### FILECHECK 0x%llx 0x%llx %u 0x%llx\n",
		(unsigned long long)off, (unsigned long long)len, seed,
		(unsigned long long)x0);
}

/*
 * Moves @len bytes (at most VDI_DMA_MAX) between @buf and the dma-buf at
 * @offset (a DMA address with VDI_DMA_RAW) by the importing device's DMA
 * engine; returns 0 or -errno.
 */
static inline int importer_dma(int imp, uint64_t offset, void *buf,
			       uint64_t len, uint32_t flags)
{
	struct vdi_dma d = {
		.offset = offset, .len = len,
		.user = (uintptr_t)buf, .flags = flags,
	};

	return ioctl(imp, VDI_IOC_DMA, &d) ? -errno : 0;
}

static inline int importer_limits(int imp, uint32_t max_seg, uint64_t boundary)
{
	struct vdi_limits l = { .max_seg = max_seg, .boundary_mask = boundary };

	return ioctl(imp, VDI_IOC_SET_LIMITS, &l) ? -errno : 0;
}

/*
 * Loads and stores of 8 bytes that the compiler does as written, once
 * (device memory), as the kernel's READ_ONCE() and WRITE_ONCE().
 */
static inline uint64_t ld64(const void *p)
{
	return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
}

static inline void st64(void *p, uint64_t v)
{
	__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELAXED);
}

/*
 * CPU accesses that may fault (a dma-buf's mapping while revoked): the
 * calling thread catches SIGBUS and SIGSEGV once probe_init() ran.
 */
static __thread sigjmp_buf probe_jmp;
static __thread int probe_armed;

static inline void probe_handler(int sig)
{
	if (!__atomic_load_n(&probe_armed, __ATOMIC_SEQ_CST))
		abort();
	siglongjmp(probe_jmp, sig);
}

static inline void probe_init(void)
{
	struct sigaction sa = { .sa_handler = probe_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/*
 * Reads (into *@out unless NULL) or, if @write, writes @val to the 8 bytes
 * at @p: 0 when the access went through, else the signal it raised.
 */
static inline int probe(void *p, int write, uint64_t val, uint64_t *out)
{
	int sig = sigsetjmp(probe_jmp, 1);
	uint64_t v;

	if (sig) {
		__atomic_store_n(&probe_armed, 0, __ATOMIC_SEQ_CST);
		return sig;
	}
	__atomic_store_n(&probe_armed, 1, __ATOMIC_SEQ_CST);
	if (write) {
		st64(p, val);
	} else {
		v = ld64(p);
		if (out)
			*out = v;
	}
	__atomic_store_n(&probe_armed, 0, __ATOMIC_SEQ_CST);
	return 0;
}

#endif
