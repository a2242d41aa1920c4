// SPDX-License-Identifier: GPL-2.0-only
/*
 * C side of the vfio-pci dma-buf exporter (vfio_pci_dmabuf.rs).
 *
 * Only what Rust cannot reach through the generated bindings lives here:
 * static inline helpers and macros, vfio-pci's private state, and
 * THIS_MODULE; each is a thin wrapper with no logic of its own.  And the
 * exported helpers of struct vfio_pci_device_ops, for vfio-pci and its
 * variant drivers.
 */

#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/dma-resv.h>
#include <linux/iommu.h>
#include <linux/iommu-dma.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/pci.h>
#include <linux/pci-p2pdma.h>
#include <linux/ratelimit.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>
#include <linux/wait_bit.h>

#include "vfio_pci_dmabuf.h"
#include "vfio_pci_priv.h"

MODULE_IMPORT_NS(DMA_BUF);

/*
 * After a revoke, say so once if importers' fences, or their unmaps, take
 * longer than this.
 */
#define VFIO_PCI_DMABUF_FENCE_REPORT_MS	10000

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
	return vdev->pci_ops && vdev->pci_ops->get_dmabuf_phys;
}

/**
 * vfio_pci_core_fill_phys_vec - the physical runs of ranges of a region
 * @phys_vec: filled, one run per range
 * @dma_ranges: the ranges, as offsets into the region
 * @nr_ranges: their number
 * @start: physical address of the region's first byte
 * @len: the region's size
 *
 * Return: 0; -EINVAL for an empty range or one past the region's end;
 * -EOVERFLOW for one whose end does not fit in a physical address.
 */
int vfio_pci_core_fill_phys_vec(struct phys_vec *phys_vec,
				struct vfio_region_dma_range *dma_ranges,
				size_t nr_ranges, phys_addr_t start,
				phys_addr_t len)
{
	phys_addr_t end;
	size_t i;

	for (i = 0; i < nr_ranges; i++) {
		if (!dma_ranges[i].length)
			return -EINVAL;
		if (check_add_overflow(start, dma_ranges[i].offset,
				       &phys_vec[i].paddr) ||
		    check_add_overflow(phys_vec[i].paddr,
				       dma_ranges[i].length, &end))
			return -EOVERFLOW;
		if (end > start + len)
			return -EINVAL;
		phys_vec[i].len = dma_ranges[i].length;
	}
	return 0;
}
EXPORT_SYMBOL_GPL(vfio_pci_core_fill_phys_vec);

/**
 * vfio_pci_core_get_dmabuf_phys - get_dmabuf_phys() of a PCI BAR
 * @vdev: the device
 * @provider: set to the BAR's peer-to-peer provider
 * @region_index: the BAR
 * @phys_vec: filled with the run behind each range
 * @dma_ranges: the ranges, as offsets into the BAR
 * @nr_ranges: their number
 *
 * Return: 0, -EINVAL for a BAR that is not memory, or an error of
 * vfio_pci_core_fill_phys_vec().
 */
int vfio_pci_core_get_dmabuf_phys(struct vfio_pci_core_device *vdev,
				  struct p2pdma_provider **provider,
				  unsigned int region_index,
				  struct phys_vec *phys_vec,
				  struct vfio_region_dma_range *dma_ranges,
				  size_t nr_ranges)
{
	struct pci_dev *pdev = vdev->pdev;

	*provider = pcim_p2pdma_provider(pdev, region_index);
	if (!*provider)
		return -EINVAL;
	return vfio_pci_core_fill_phys_vec(phys_vec, dma_ranges, nr_ranges,
					   pci_resource_start(pdev, region_index),
					   pci_resource_len(pdev, region_index));
}
EXPORT_SYMBOL_GPL(vfio_pci_core_get_dmabuf_phys);

/*
 * Caller holds vdev->memory_lock, and either has the device open (an ioctl
 * or a region access on it) or holds dev_set->lock, under which open_count
 * changes (hot reset walks every device of the set, open or not).
 */
bool vfio_pci_dmabuf_shim_is_open(struct vfio_pci_core_device *vdev)
{
	return READ_ONCE(vdev->vdev.open_count) != 0;
}

/* Caller holds vdev->memory_lock and the device is open (vconfig is set). */
bool vfio_pci_dmabuf_shim_bar_usable(struct vfio_pci_core_device *vdev)
{
	lockdep_assert_held(&vdev->memory_lock);
	return !vdev->pm_runtime_engaged && __vfio_pci_memory_enabled(vdev);
}

/* What the exporter's proof of the held memory_lock assumes, checked. */
void vfio_pci_dmabuf_shim_assert_memory_locked(struct vfio_pci_core_device *vdev)
{
	lockdep_assert_held_write(&vdev->memory_lock);
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

/*
 * Waits, with no time limit, until every fence of @dmabuf has signalled: once
 * revoked, the BAR may go away only after its importers stopped using it.
 * The first wait of a revocation that takes long is reported, once
 * (*@reported).  The reservation lock is not needed.
 */
void vfio_pci_dmabuf_shim_wait_idle(struct vfio_pci_core_device *vdev,
				    struct dma_buf *dmabuf, bool *reported)
{
	if (dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP, false,
				  msecs_to_jiffies(VFIO_PCI_DMABUF_FENCE_REPORT_MS)) > 0)
		return;
	if (!*reported)
		pci_warn(vdev->pdev,
			 "dma-buf importers still busy %d ms after revocation; waiting for them\n",
			 VFIO_PCI_DMABUF_FENCE_REPORT_MS);
	*reported = true;
	dma_resv_wait_timeout(dmabuf->resv, DMA_RESV_USAGE_BOOKKEEP, false,
			      MAX_SCHEDULE_TIMEOUT);
}

/*
 * @mappings counts the importers' live mappings of one buffer: map adds
 * one, unmap takes one away and wakes a revocation waiting for the last.
 */
void vfio_pci_dmabuf_shim_mapping_get(atomic_t *mappings)
{
	atomic_inc(mappings);
}

void vfio_pci_dmabuf_shim_mapping_put(atomic_t *mappings)
{
	/* fully ordered: the waiter sees the count before it is woken */
	if (atomic_dec_and_test(mappings))
		wake_up_var(mappings);
}

/*
 * Waits, with no time limit, until no importer holds a mapping counted in
 * @mappings: one that unmaps later than move_notify (from a work item, say)
 * still reaches the BAR until then.  Reported once as vfio_pci_dmabuf_shim_
 * wait_idle() does.
 */
void vfio_pci_dmabuf_shim_wait_unmapped(struct vfio_pci_core_device *vdev,
					atomic_t *mappings, bool *reported)
{
	if (wait_var_event_timeout(mappings, !atomic_read(mappings),
				   msecs_to_jiffies(VFIO_PCI_DMABUF_FENCE_REPORT_MS)))
		return;
	if (!*reported)
		pci_warn(vdev->pdev,
			 "dma-buf importers still hold mappings %d ms after revocation; waiting for them to unmap\n",
			 VFIO_PCI_DMABUF_FENCE_REPORT_MS);
	*reported = true;
	wait_var_event(mappings, !atomic_read(mappings));
}

/*
 * After a BAR mapping of @dev was unmapped: a lazy (flush-queue) domain
 * defers the IOTLB flush to a timer, so a stale translation of the BAR
 * would outlive the unmap, and a revocation waiting for it.  Flush now.
 */
void vfio_pci_dmabuf_shim_flush_iotlb(struct device *dev)
{
	struct iommu_domain *domain = iommu_get_domain_for_dev(dev);

	if (domain && domain->type == IOMMU_DOMAIN_DMA_FQ)
		iommu_flush_iotlb_all(domain);
}

/* Claims the BAR for vfio as its mmap and read/write paths do. */
int vfio_pci_dmabuf_shim_claim_bar(struct vfio_pci_core_device *vdev, int bar)
{
	lockdep_assert_held_write(&vdev->memory_lock);
	return vfio_pci_core_setup_barmap(vdev, bar);
}

/*
 * An import refused for want of a P2P path.  The P2PDMA core logs why once
 * per importer (it keeps the answer); this says so at every refusal, at a
 * bounded rate: user space can retry an import in a loop.
 */
void vfio_pci_dmabuf_shim_log_refused(struct pci_dev *provider,
				      struct device *client)
{
	static DEFINE_RATELIMIT_STATE(rs, DEFAULT_RATELIMIT_INTERVAL, 5);

	if (__ratelimit(&rs))
		dev_warn(client, "cannot import a dma-buf of %s: no peer-to-peer path to it\n",
			 pci_name(provider));
}

/*
 * Whether @dev can address [@addr, @addr + @len) as it is, without an IOMMU
 * translating it: a bus address on the bus path, or the CPU physical
 * address dma-direct hands out for dma_map_resource() (which WARNs when the
 * range is past the device's DMA mask or bus limit).  A device whose DMA
 * goes through an IOMMU domain gets IOVAs allocated within its mask: true.
 */
bool vfio_pci_dmabuf_shim_reachable(struct device *dev, u64 addr, u64 len,
				    bool translated)
{
	u64 limit = min_not_zero(dma_get_mask(dev), dev->bus_dma_limit);

	if (translated && use_dma_iommu(dev))
		return true;
	return len && addr + len - 1 >= addr && addr + len - 1 <= limit;
}

/* cond_resched() is a macro: loops over a user-sized list call this. */
void vfio_pci_dmabuf_shim_cond_resched(void)
{
	cond_resched();
}

bool vfio_pci_dmabuf_shim_dma_translated(struct device *dev)
{
	return use_dma_iommu(dev);
}

/*
 * One IOVA range for a whole buffer (the DMA IOVA API), for an importer
 * whose DMA an IOMMU domain of the DMA API translates.  Rust keeps the
 * struct dma_iova_state and does not look into it; these forward to the
 * API, which has inline stubs without CONFIG_IOMMU_DMA.  Links are MMIO:
 * no cache maintenance, never bounced.
 */
#define VFIO_PCI_DMABUF_IOVA_ATTRS (DMA_ATTR_MMIO | DMA_ATTR_SKIP_CPU_SYNC)

bool vfio_pci_dmabuf_shim_iova_alloc(struct device *dev,
				     struct dma_iova_state *state, u64 phys,
				     u64 size, u64 *addr)
{
	if (!dma_iova_try_alloc(dev, state, phys, size))
		return false;
	*addr = state->addr;
	return true;
}

int vfio_pci_dmabuf_shim_iova_link(struct device *dev,
				   struct dma_iova_state *state, u64 phys,
				   u64 offset, u64 len,
				   enum dma_data_direction dir)
{
	return dma_iova_link(dev, state, phys, offset, len, dir,
			     VFIO_PCI_DMABUF_IOVA_ATTRS);
}

int vfio_pci_dmabuf_shim_iova_sync(struct device *dev,
				   struct dma_iova_state *state)
{
	return dma_iova_sync(dev, state, 0, dma_iova_size(state));
}

/* Undoes the links of the first @linked bytes and frees the range. */
void vfio_pci_dmabuf_shim_iova_unlink_free(struct device *dev,
					   struct dma_iova_state *state,
					   u64 linked,
					   enum dma_data_direction dir)
{
	if (linked)
		dma_iova_unlink(dev, state, 0, linked, dir,
				VFIO_PCI_DMABUF_IOVA_ATTRS);
	dma_iova_free(dev, state);
}

/* Undoes a range linked in full. */
void vfio_pci_dmabuf_shim_iova_destroy(struct device *dev,
				       struct dma_iova_state *state,
				       enum dma_data_direction dir)
{
	dma_iova_destroy(dev, state, dma_iova_size(state), dir,
			 VFIO_PCI_DMABUF_IOVA_ATTRS);
}

/*
 * A CPU mapping of a buffer gets what vfio_pci_core_mmap() gives a BAR:
 * uncached device memory, VM_IO | VM_PFNMAP, not expandable, not dumped;
 * its pages are inserted by @ops' fault handler, @priv is the dma-buf.
 */
void vfio_pci_dmabuf_shim_mmap_setup(struct vm_area_struct *vma,
				     const struct vm_operations_struct *ops,
				     void *priv)
{
	vma->vm_private_data = priv;
	vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
	vma->vm_page_prot = pgprot_decrypted(vma->vm_page_prot);
	vm_flags_set(vma, VM_ALLOW_ANY_UNCACHED | VM_IO | VM_PFNMAP |
			  VM_DONTEXPAND | VM_DONTDUMP);
	vma->vm_ops = ops;
}

/*
 * For iommufd's IOMMU_IOAS_MAP_FILE (<linux/vfio_pci_core.h>): the physical
 * range of a vfio-pci dma-buf of one range, or an errno (the exporter's).
 */
int vfio_pci_dma_buf_iommufd_map(struct dma_buf_attachment *attachment,
				 struct phys_vec *phys)
{
	/* The exporter asserts the caller's reservation lock (lockdep). */
	return vfio_pci_dmabuf_iommufd_phys(attachment, phys);
}
EXPORT_SYMBOL_GPL(vfio_pci_dma_buf_iommufd_map);
