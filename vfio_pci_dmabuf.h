/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The C shim of the vfio-pci dma-buf exporter, as called from Rust
 * (vfio_pci_core_glue.rs declares the same functions).
 */
#ifndef VFIO_PCI_DMABUF_H
#define VFIO_PCI_DMABUF_H

#include <linux/dma-mapping.h>
#include <linux/mm_types.h>
#include <linux/types.h>

struct device;
struct dma_buf;
struct dma_buf_attachment;
struct dma_buf_ops;
struct dma_iova_state;
struct list_head;
struct pci_dev;
struct phys_vec;
struct vfio_pci_core_device;

struct dma_buf *vfio_pci_dmabuf_shim_export(const struct dma_buf_ops *ops,
					    size_t size, int flags, void *priv);
int vfio_pci_dmabuf_shim_check_feature(u32 flags, size_t argsz,
				       u32 supported_ops, size_t minsz);
bool vfio_pci_dmabuf_shim_export_allowed(struct vfio_pci_core_device *vdev);
bool vfio_pci_dmabuf_shim_is_open(struct vfio_pci_core_device *vdev);
bool vfio_pci_dmabuf_shim_bar_usable(struct vfio_pci_core_device *vdev);
void vfio_pci_dmabuf_shim_assert_memory_locked(struct vfio_pci_core_device *vdev);
void vfio_pci_dmabuf_shim_link(struct vfio_pci_core_device *vdev,
			       struct list_head *node);
void vfio_pci_dmabuf_shim_unlink(struct vfio_pci_core_device *vdev,
				 struct list_head *node);
void vfio_pci_dmabuf_shim_wait_idle(struct vfio_pci_core_device *vdev,
				    struct dma_buf *dmabuf, bool *reported);
void vfio_pci_dmabuf_shim_mapping_get(atomic_t *mappings);
void vfio_pci_dmabuf_shim_mapping_put(atomic_t *mappings);
void vfio_pci_dmabuf_shim_wait_unmapped(struct vfio_pci_core_device *vdev,
					atomic_t *mappings, bool *reported);
void vfio_pci_dmabuf_shim_flush_iotlb(struct device *dev);
int vfio_pci_dmabuf_shim_claim_bar(struct vfio_pci_core_device *vdev, int bar);
void vfio_pci_dmabuf_shim_log_refused(struct pci_dev *provider,
				      struct device *client);
bool vfio_pci_dmabuf_shim_reachable(struct device *dev, u64 addr, u64 len,
				    bool translated);
void vfio_pci_dmabuf_shim_cond_resched(void);
bool vfio_pci_dmabuf_shim_dma_translated(struct device *dev);
bool vfio_pci_dmabuf_shim_iova_alloc(struct device *dev,
				     struct dma_iova_state *state, u64 phys,
				     u64 size, u64 *addr);
int vfio_pci_dmabuf_shim_iova_link(struct device *dev,
				   struct dma_iova_state *state, u64 phys,
				   u64 offset, u64 len,
				   enum dma_data_direction dir);
int vfio_pci_dmabuf_shim_iova_sync(struct device *dev,
				   struct dma_iova_state *state);
void vfio_pci_dmabuf_shim_iova_unlink_free(struct device *dev,
					   struct dma_iova_state *state,
					   u64 linked,
					   enum dma_data_direction dir);
void vfio_pci_dmabuf_shim_iova_destroy(struct device *dev,
				       struct dma_iova_state *state,
				       enum dma_data_direction dir);
void vfio_pci_dmabuf_shim_mmap_setup(struct vm_area_struct *vma,
				     const struct vm_operations_struct *ops,
				     void *priv);

/* Defined in Rust (vfio_pci_dmabuf.rs), called from the shim */
int vfio_pci_dmabuf_iommufd_phys(struct dma_buf_attachment *attach,
				 struct phys_vec *phys);

#endif
