// SPDX-License-Identifier: GPL-2.0
/*
 * A walk through the vfio-pci dma-buf exporter, for people: create a
 * dma-buf from three ranges of a BAR, import it through the test importer,
 * print the DMA segments, then show revocation and restoration around a
 * device reset, memory decode off/on and device close.  Last, the CPU's
 * view: three scattered pages of a memory BAR (ivshmem) read back through
 * one mapping of the dma-buf, lost while decode is off.  Each step is also
 * a TAP result, so the suite runs the demo as a smoke test.
 */

#define _GNU_SOURCE
#include <sys/mman.h>

#include "vfio_dmabuf_util.h"

static int step;
static int failed;

static void check(int ok, const char *what)
{
	printf("%s %d %s\n", ok ? "ok" : "not ok", ++step, what);
	failed |= !ok;
}

static void show_segments(int imp)
{
	struct vdi_segment segs[16];
	int n = importer_map(imp, segs, 16);

	if (n < 0) {
		printf("#   map: %s\n", strerror(-n));
		return;
	}
	for (int i = 0; i < n && i < 16; i++)
		printf("#   segment %d: dma 0x%llx len 0x%llx -> phys 0x%llx%s\n",
		       i, (unsigned long long)segs[i].addr,
		       (unsigned long long)segs[i].len,
		       (unsigned long long)segs[i].phys,
		       segs[i].bus_addr ? " (PCI bus address)" : "");
	importer_unmap(imp);
}

/*
 * Labels three scattered pages of the memory BAR of @memdev through the
 * region's mmap, makes a buffer of them in another order and prints what
 * one mapping of it reads, page by page; then the same with decode off.
 */
static int cpu_view(const char *memdev)
{
	struct vfio_region_info reg = { .argsz = sizeof(reg), .index = 2 };
	struct vfio_region_dma_range r[3];
	char want[3][48], got[48];
	uint8_t *bar, *map;
	int buf, ok = 1;
	struct vdev m;

	if (vdev_open(&m, memdev) || vdev_set_memory(&m, 1) ||
	    ioctl(m.fd, VFIO_DEVICE_GET_REGION_INFO, &reg))
		return 0;
	bar = mmap(NULL, reg.size, PROT_READ | PROT_WRITE, MAP_SHARED, m.fd, reg.offset);
	if (bar == MAP_FAILED) {
		vdev_close(&m);
		return 0;
	}
	probe_init();
	/* pages 9, 2 and 5 pages past 3/8 of the BAR, in that order */
	for (int i = 0; i < 3; i++) {
		static const int page[3] = { 9, 2, 5 };

		r[i] = (struct vfio_region_dma_range){
			reg.size / 8 * 3 + page[i] * PAGE, PAGE };
		snprintf(want[i], sizeof(want[i]), "BAR page 0x%llx",
			 (unsigned long long)(r[i].offset / PAGE));
		memcpy(bar + r[i].offset, want[i], sizeof(want[i]));
	}
	buf = dmabuf_create(m.fd, 2, 3, r);
	map = buf < 0 ? MAP_FAILED :
	      mmap(NULL, 3 * PAGE, PROT_READ, MAP_SHARED, buf, 0);
	printf("# memory BAR of %s: one mmap of a buffer of 3 scattered pages reads:\n",
	       memdev);
	for (int i = 0; map != MAP_FAILED && i < 3; i++) {
		memcpy(got, map + i * PAGE, sizeof(got));
		got[sizeof(got) - 1] = 0;
		printf("#   buffer page %d: \"%s\"\n", i, got);
		ok &= !strcmp(got, want[i]);
	}
	ok &= map != MAP_FAILED && vdev_set_memory(&m, 0) == 0;
	if (ok) {
		int sig = probe(map, 0, 0, NULL);

		printf("# memory decode off: reading buffer page 0 gets %s\n",
		       sig == SIGBUS ? "SIGBUS" : sig ? "another signal" : "data");
		ok = sig == SIGBUS && vdev_set_memory(&m, 1) == 0 &&
		     !probe(map, 0, 0, NULL);
		printf("# memory decode on: readable again\n");
	}
	if (map != MAP_FAILED)
		munmap(map, 3 * PAGE);
	if (buf >= 0)
		close(buf);
	munmap(bar, reg.size);
	vdev_close(&m);
	return ok;
}

int main(void)
{
	static const char *const need[] = {
		"VFIO_DMABUF_EXPORTER",
		"VFIO_DMABUF_IMPORTER", NULL
	};
	const char *bdf = env_or("VFIO_DMABUF_EXPORTER", "");
	const char *importer = env_or("VFIO_DMABUF_IMPORTER", "");
	const char *path = env_or("VFIO_DMABUF_PATH", "none");
	const char *memdev = env_or("VFIO_DMABUF_MEMDEV", "");
	struct vfio_region_dma_range r[3] = {
		{ 16 * PAGE, 2 * PAGE }, { 18 * PAGE, PAGE }, { 0, PAGE },
	};
	int buf, imp = -1, refs = core_refcnt(), ok, one_iova;
	struct vdev d;

	vfio_dmabuf_require(need, 1);
	/* through a host bridge with an IOMMU: one IOVA range per buffer */
	one_iova = !strcmp(path, "host") && dma_translated(importer);

	printf("TAP version 13\n1..8\n");
	printf("# scenario %s: exporter %s, importer %s, expected path: %s\n",
	       env_or("VFIO_DMABUF_SCENARIO", "?"), bdf, importer, path);
	check(vdev_open(&d, bdf) == 0 && vdev_set_memory(&d, 1) == 0,
	      "open the exporting device through VFIO");
	printf("# BAR 2: %llu MiB at phys 0x%llx\n",
	       (unsigned long long)vdev_region_size(&d, 2) >> 20,
	       (unsigned long long)bar_phys(bdf, 2));

	buf = dmabuf_create(d.fd, 2, 3, r);
	for (int i = 0; i < 3; i++)
		printf("# range %d: offset 0x%llx length 0x%llx\n", i,
		       (unsigned long long)r[i].offset,
		       (unsigned long long)r[i].length);
	check(buf >= 0 && lseek(buf, 0, SEEK_END) == 4 * PAGE,
	      "VFIO_DEVICE_FEATURE_DMA_BUF: one 16 KiB dma-buf from 3 ranges");

	if (strcmp(path, "none")) {
		imp = importer_attach(buf, importer, 0);
		check(imp >= 0, "import it for the other device (dynamic, P2P)");
		printf(one_iova ?
		       "# through the IOMMU the whole buffer is one IOVA range, one segment:\n" :
		       "# ranges 0 and 1 touch, so they merge into one segment:\n");
		show_segments(imp);
	} else {
		int e = importer_attach(buf, importer, 0);

		check(e == -EOPNOTSUPP, "import refused: no P2P path here");
	}

	if (imp >= 0) {
		ok = ioctl(d.fd, VFIO_DEVICE_RESET) == 0;
		printf("# VFIO_DEVICE_RESET: move_notify seen %lld times (revoke, restore)\n",
		       (long long)importer_moves(imp));
		check(ok && importer_moves(imp) == 2, "reset revokes, then restores");
		ok = vdev_set_memory(&d, 0) == 0;
		printf("# memory decode off: move_notify %lld, map now:\n",
		       (long long)importer_moves(imp));
		show_segments(imp);
		ok = ok && importer_map(imp, NULL, 0) == -ENODEV;
		ok = ok && vdev_set_memory(&d, 1) == 0;
		printf("# memory decode on: move_notify %lld, map again:\n",
		       (long long)importer_moves(imp));
		show_segments(imp);
		ok = ok && importer_moves(imp) == 4 &&
		     importer_map(imp, NULL, 0) == (one_iova ? 1 : 2);
		check(ok && importer_unmap(imp) == 0, "decode off revokes, on restores");
		vdev_close(&d);
		printf("# device closed: move_notify %lld, map now:\n",
		       (long long)importer_moves(imp));
		show_segments(imp);
		check(importer_map(imp, NULL, 0) == -ENODEV,
		      "closing the device revokes for good");
		close(imp);
	} else {
		static const char *const steps[] = {
			"reset revokes, then restores",
			"decode off revokes, on restores",
			"closing the device revokes for good",
		};

		for (int i = 0; i < 3; i++)
			printf("ok %d %s # SKIP no importer here\n", ++step, steps[i]);
		vdev_close(&d);
	}
	close(buf);
	/* the last reference went: vfio-pci-core's module reference too */
	check(core_refcnt() == refs, "buffer released after the device");
	if (*memdev)
		check(cpu_view(memdev),
		      "the CPU maps scattered ranges as one, SIGBUS while revoked");
	else
		printf("ok %d CPU mapping # SKIP VFIO_DMABUF_MEMDEV is not set\n", ++step);
	return failed;
}
