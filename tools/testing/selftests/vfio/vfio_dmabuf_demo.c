// SPDX-License-Identifier: GPL-2.0
/*
 * A walk through the vfio-pci dma-buf exporter, for people: create a
 * dma-buf from three ranges of a BAR, import it through the test importer,
 * print the DMA segments, then show revocation and restoration around a
 * device reset, memory decode off/on and device close.  Each step is also a
 * TAP result, so the suite runs the demo as a smoke test.
 */

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

int main(void)
{
	static const char *const need[] = {
		"VFIO_DMABUF_EXPORTER",
		"VFIO_DMABUF_IMPORTER", NULL
	};
	const char *bdf = env_or("VFIO_DMABUF_EXPORTER", "");
	const char *importer = env_or("VFIO_DMABUF_IMPORTER", "");
	const char *path = env_or("VFIO_DMABUF_PATH", "none");
	struct vfio_region_dma_range r[3] = {
		{ 16 * PAGE, 2 * PAGE }, { 18 * PAGE, PAGE }, { 0, PAGE },
	};
	int buf, imp = -1, refs = core_refcnt(), ok, one_iova;
	struct vdev d;

	vfio_dmabuf_require(need, 1);
	/* through a host bridge with an IOMMU: one IOVA range per buffer */
	one_iova = !strcmp(path, "host") && dma_translated(importer);

	printf("TAP version 13\n1..7\n");
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
		for (int i = 0; i < 3; i++)
			printf("ok %d revocation # SKIP no importer here\n", ++step);
		vdev_close(&d);
	}
	close(buf);
	/* the last reference went: vfio-pci-core's module reference too */
	check(core_refcnt() == refs, "buffer released after the device");
	return failed;
}
