/**
 * VFIO_DEVICE_FEATURE_DMA_BUF - create a dma-buf from ranges of a PCI BAR
 *
 * Upon VFIO_DEVICE_FEATURE_GET, create a dma-buf whose contents are the
 * @nr_ranges ranges of region @region_index (a memory BAR), concatenated in
 * the order given, and return its file descriptor.  Other drivers (RDMA,
 * GPU, iommufd) import the dma-buf to DMA peer-to-peer into the BAR.
 *
 * @open_flags: flags for the new file, as for open(2): O_ACCMODE, O_CLOEXEC
 *	and O_NONBLOCK.
 * @flags: must be 0.
 * @nr_ranges: number of entries in @dma_ranges, at least 1.
 * @dma_ranges: offset and length of each range within the region; both
 *	must be multiples of the page size and the range must lie inside
 *	the region.
 *
 * The importer's access is revoked (dma-buf move_notify) while the BAR is
 * unusable: memory decode disabled, reset, low power, and for good once the
 * device is closed.  VFIO_DEVICE_FEATURE_PROBE reports whether the device
 * supports the feature; VFIO_DEVICE_FEATURE_SET is not supported.
 *
 * Return: the dma-buf file descriptor on success, -1 and errno on failure.
 */
#define VFIO_DEVICE_FEATURE_DMA_BUF 11

struct vfio_region_dma_range {
	__u64 offset;
	__u64 length;
};

struct vfio_device_feature_dma_buf {
	__u32	region_index;
	__u32	open_flags;
	__u32	flags;
	__u32	nr_ranges;
	struct vfio_region_dma_range dma_ranges[] __counted_by(nr_ranges);
};
