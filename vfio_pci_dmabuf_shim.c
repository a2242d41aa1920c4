// SPDX-License-Identifier: GPL-2.0-only
/*
 * C side of the vfio-pci dma-buf exporter (vfio_pci_dmabuf.rs).
 *
 * Only what Rust cannot reach through the generated bindings lives here:
 * static inline helpers and macros, vfio-pci's private state, and
 * THIS_MODULE.  Each function is a thin wrapper with no logic of its own.
 */

#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/vfio.h>

#include "vfio_pci_dmabuf.h"
#include "vfio_pci_priv.h"

MODULE_IMPORT_NS(DMA_BUF);

/* Wait this long for an importer's fences after a revoke, then complain. */
#define VFIO_PCI_DMABUF_FENCE_TIMEOUT_MS	10000

struct dma_buf *vfio_pci_dmabuf_shim_export(const struct dma_buf_ops *ops,
					    size_t size, int flags, void *priv)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);

	exp_info.ops = ops;
	exp_info.size = size;
	exp_info.flags = flags;
	exp_info.priv = priv;
	return dma_buf_export(&exp_info);
}

int vfio_pci_dmabuf_shim_check_feature(u32 flags, size_t argsz,
				       u32 supported_ops, size_t minsz)
{
	return vfio_check_feature(flags, argsz, supported_ops, minsz);
}

bool vfio_pci_dmabuf_shim_export_allowed(struct vfio_pci_core_device *vdev)
{
	return vdev->dma_buf_export;
}

/* Caller holds vdev->memory_lock. */
bool vfio_pci_dmabuf_shim_bar_usable(struct vfio_pci_core_device *vdev)
{
	return !vdev->pm_runtime_engaged && __vfio_pci_memory_enabled(vdev);
}

/* Returns the BAR's size, 0 if @bar is not a memory BAR. */
u64 vfio_pci_dmabuf_shim_bar(struct pci_dev *pdev, int bar, u64 *phys,
			     u64 *bus)
{
	if (!(pci_resource_flags(pdev, bar) & IORESOURCE_MEM))
		return 0;
	*phys = pci_resource_start(pdev, bar);
	*bus = pci_bus_address(pdev, bar);
	return pci_resource_len(pdev, bar);
}

void vfio_pci_dmabuf_shim_link(struct vfio_pci_core_device *vdev,
			       struct list_head *node)
{
	lockdep_assert_held_write(&vdev->memory_lock);
	list_add_tail(node, &vdev->dmabufs);
}

void vfio_pci_dmabuf_shim_unlink(struct vfio_pci_core_device *vdev,
				 struct list_head *node)
{
	lockdep_assert_held_write(&vdev->memory_lock);
	list_del_init(node);
}

void vfio_pci_dmabuf_shim_resv_lock(struct dma_buf *dmabuf)
{
	dma_resv_lock(dmabuf->resv, NULL);
}

void vfio_pci_dmabuf_shim_resv_unlock(struct dma_buf *dmabuf)
{
	dma_resv_unlock(dmabuf->resv);
}

/* Caller holds the reservation lock; the fences of a revoke must signal. */
void vfio_pci_dmabuf_shim_wait_idle(struct dma_buf *dmabuf)
{
	long ret;

	ret = dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP, false,
				    msecs_to_jiffies(VFIO_PCI_DMABUF_FENCE_TIMEOUT_MS));
	if (ret <= 0)
		pr_err("vfio-pci dma-buf %s: importer fences did not signal within %d ms of revocation (%ld)\n",
		       dmabuf->name ?: "", VFIO_PCI_DMABUF_FENCE_TIMEOUT_MS, ret);
}

void vfio_pci_dmabuf_shim_dma_limits(struct device *dev, u32 *max_seg,
				     u64 *boundary_mask)
{
	*max_seg = dma_get_max_seg_size(dev);
	*boundary_mask = dma_get_seg_boundary(dev);
}

int vfio_pci_dmabuf_shim_mapping_error(struct device *dev, dma_addr_t addr)
{
	return dma_mapping_error(dev, addr);
}
