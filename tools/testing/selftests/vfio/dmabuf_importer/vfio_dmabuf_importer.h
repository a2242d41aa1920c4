/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Interface of the test importer (vfio_dmabuf_importer.ko), shared by the
 * module and the selftests.
 *
 * Each open of /dev/vfio_dmabuf_importer is one importer: it attaches one
 * dma-buf on behalf of one device, maps it and reports the DMA segments.
 */
#ifndef VFIO_DMABUF_IMPORTER_H
#define VFIO_DMABUF_IMPORTER_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define VDI_DEVICE "/dev/vfio_dmabuf_importer"

/* Attach flags; 0 is a dynamic, peer-to-peer importer for a PCI device. */
#define VDI_STATIC	0x1	/* dma_buf_attach(): no move_notify */
#define VDI_NO_P2P	0x2	/* dynamic, but refuses peer-to-peer */
#define VDI_NON_PCI	0x4	/* on behalf of the misc device itself */
/*
 * For a PCI device without a driver the importer acts as its driver and
 * sets its DMA mask, to 64 bits, or with VDI_DMA32 to 32 bits, or with
 * VDI_DMA24 to 24 bits (behind an IOMMU: 16 MiB of IOVA space).
 */
#define VDI_DMA32	0x8
#define VDI_DMA24	0x40
/*
 * Each mapping the importer drops (unmap, move_notify, detach) is looked up
 * again, page by page, in its device's IOMMU domain once the exporter has
 * unmapped it: struct vdi_info counts the pages looked up and those still
 * translated.  Only translated mappings are looked up.
 */
#define VDI_CHECK_UNMAP	0x10
/*
 * Unmaps lazily, as GPU drivers do: move_notify only schedules the unmap,
 * which a work item does VDI_LAZY_UNMAP_MS later.  Until then the mapping
 * is held (struct vdi_info's mapped).
 */
#define VDI_LAZY_UNMAP	0x20
#define VDI_LAZY_UNMAP_MS	500

struct vdi_attach {
	__s32 fd;		/* dma-buf file descriptor */
	__u32 flags;		/* VDI_* */
	char bdf[32];		/* importing PCI device, "dddd:bb:dd.f" */
};

/*
 * @phys is the CPU physical address behind @addr: through the IOMMU domain
 * of the importing device for a translated address, through the host
 * bridge's windows (pcibios_bus_to_resource()) for a PCI bus address, @addr
 * itself otherwise.  @pages_ok counts the pages of the segment whose own
 * translation is @phys plus their offset (every page is looked up).
 */
struct vdi_segment {
	__u64 addr;		/* DMA address */
	__u64 len;
	__u64 phys;		/* CPU physical address behind addr */
	__u32 bus_addr;		/* sg_dma_is_bus_address() */
	__u32 pages_ok;
};

struct vdi_map {
	__u64 segments;		/* user pointer to struct vdi_segment[max] */
	__u32 max;		/* capacity of segments */
	__u32 nents;		/* out: number of entries in the table */
};

struct vdi_info {
	__u64 move_notify;	/* move_notify calls seen */
	__u32 mapped;		/* a mapping is held */
	__u32 fences_signalled;	/* fences of VDI_IOC_SET_FENCE signalled */
	__u32 watched;		/* VDI_WATCH_*, at the last move_notify */
	__u32 watched_revoke;	/* VDI_WATCH_*, at the last mapping dropped */
	__u64 unmap_checked;	/* VDI_CHECK_UNMAP: pages looked up */
	__u64 unmap_stale;	/* ... and found still translated */
};

/*
 * VDI_IOC_PAGES: the CPU physical address behind each page of the current
 * mapping, in buffer order (the segments' pages one after the other),
 * converted as struct vdi_segment's @phys, 0 for a page the IOMMU does not
 * translate.  @count is the number of pages of the mapping; the first @max
 * are written to @phys.  ENXIO without a mapping.
 */
struct vdi_pages {
	__u64 phys;		/* user pointer to __u64[max] */
	__u32 max;
	__u32 count;		/* out */
};

/* State of the device named by VDI_IOC_WATCH, as seen by move_notify. */
#define VDI_WATCH_SAMPLED	0x1	/* a move_notify sampled it */
#define VDI_WATCH_ENABLED	0x2	/* pci_is_enabled() */
#define VDI_WATCH_MEMORY	0x4	/* PCI_COMMAND_MEMORY set */

/*
 * From now on, each move_notify that drops a mapping adds a fence to the
 * buffer's reservation object that signals @delay_ms later, as an importer
 * with DMA in flight does.
 */
struct vdi_fence {
	__u32 delay_ms;
	__u32 pad;
};

/*
 * request_mem_region() of a range of physical addresses, as another driver
 * holding part of a BAR; released when the importer is closed.
 */
struct vdi_claim {
	__u64 phys;
	__u64 len;
};

struct vdi_limits {
	__u32 max_seg;		/* dma_set_max_seg_size() of the importing device */
	__u32 pad;
	__u64 boundary_mask;	/* dma_set_seg_boundary() */
};

/*
 * VDI_IOC_DMA: the importing device really moves data.  Only for an
 * importer attached on behalf of QEMU's "edu" device, which this module
 * drives (its DMA engine copies through a 4 KiB buffer inside the device;
 * QEMU 7.2 stops the whole machine on a transfer that ends at the end of
 * that buffer, so at most VDI_DMA_MAX bytes per call).  @len bytes at @offset of the dma-buf are
 * written from, or read into, @user, through the DMA addresses of the
 * importer's current mapping: without a mapping the importer refuses
 * (ENXIO), as a dynamic importer whose mapping move_notify dropped must.
 * With VDI_DMA_RAW, @offset is a DMA address used as is, whatever the
 * mapping: what a buggy importer holding a stale address does.
 */
#define VDI_DMA_WRITE	0x1	/* @user -> buffer; else buffer -> @user */
#define VDI_DMA_RAW	0x2	/* @offset is a DMA address */
#define VDI_DMA_MAX	2048

struct vdi_dma {
	__u64 offset;		/* in the dma-buf, or a DMA address (RAW) */
	__u64 len;		/* 1..VDI_DMA_MAX */
	__u64 user;		/* user pointer to @len bytes */
	__u32 flags;		/* VDI_DMA_* */
	__u32 pad;
};

#define VDI_IOC_ATTACH		_IOW('V', 0xd0, struct vdi_attach)
#define VDI_IOC_MAP		_IOWR('V', 0xd1, struct vdi_map)
#define VDI_IOC_UNMAP		_IO('V', 0xd2)
#define VDI_IOC_DETACH		_IO('V', 0xd3)
#define VDI_IOC_INFO		_IOR('V', 0xd4, struct vdi_info)
#define VDI_IOC_SET_LIMITS	_IOW('V', 0xd5, struct vdi_limits)
#define VDI_IOC_SET_FENCE	_IOW('V', 0xd6, struct vdi_fence)
#define VDI_IOC_CLAIM		_IOW('V', 0xd7, struct vdi_claim)
/* PCI device ("dddd:bb:dd.f") whose state each move_notify samples. */
#define VDI_IOC_WATCH		_IOW('V', 0xd8, char[32])
#define VDI_IOC_DMA		_IOW('V', 0xd9, struct vdi_dma)
#define VDI_IOC_PAGES		_IOWR('V', 0xda, struct vdi_pages)
/*
 * dma_buf_vmap() of the dma-buf whose fd is the argument, unmapped again at
 * once: 0, or its errno.  Needs no attachment.
 */
#define VDI_IOC_VMAP		_IOW('V', 0xdb, __s32)

#endif
