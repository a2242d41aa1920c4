// SPDX-License-Identifier: GPL-2.0

//! The importer's device as the DMA API sees it: its limits, MMIO mapped
//! per run (`dma_map_resource()`) or linked into one IOVA range (the DMA
//! IOVA API, [`IovaRange`]).

use core::ptr;
use kernel::{bindings, error::to_result, ffi::c_int, prelude::*, types::Opaque};

// The C shim, `vfio_pci_dmabuf_shim.c`: the helpers this module wraps.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_dmabuf_shim_dma_limits(
        dev: *mut bindings::device,
        max_seg: *mut u32,
        boundary_mask: *mut u64,
    );
    fn vfio_pci_dmabuf_shim_mapping_error(dev: *mut bindings::device, addr: u64) -> c_int;
    fn vfio_pci_dmabuf_shim_reachable(
        dev: *mut bindings::device,
        addr: u64,
        len: u64,
        translated: bool,
    ) -> bool;
    fn vfio_pci_dmabuf_shim_dma_translated(dev: *mut bindings::device) -> bool;
    fn vfio_pci_dmabuf_shim_iova_alloc(
        dev: *mut bindings::device,
        phys: u64,
        size: u64,
        addr: *mut u64,
    ) -> bool;
    fn vfio_pci_dmabuf_shim_iova_link(
        dev: *mut bindings::device,
        addr: u64,
        size: u64,
        phys: u64,
        offset: u64,
        len: u64,
        dir: DataDirection,
    ) -> c_int;
    fn vfio_pci_dmabuf_shim_iova_sync(dev: *mut bindings::device, addr: u64, size: u64) -> c_int;
    fn vfio_pci_dmabuf_shim_iova_destroy(
        dev: *mut bindings::device,
        addr: u64,
        size: u64,
        mapped: u64,
        dir: DataDirection,
    );
    fn vfio_pci_dmabuf_shim_flush_iotlb(dev: *mut bindings::device);
}

/// The direction of a DMA mapping, as `kernel::dma::DataDirection` names it
/// upstream (there an enum; here 6.12's binding).
pub(crate) type DataDirection = bindings::dma_data_direction;

/// A `struct device` (the importer's).
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::device>);

impl Device {
    pub(super) fn as_raw(&self) -> *mut bindings::device {
        self.0.get()
    }

    /// Whether the device is a PCI function (`dev_is_pci()`).
    pub(crate) fn is_pci(&self) -> bool {
        // SAFETY: Valid device; its bus is set before it is registered and
        // does not change.
        let bus = unsafe { ptr::addr_of!((*self.as_raw()).bus).read() };
        ptr::eq(bus, ptr::addr_of!(bindings::pci_bus_type))
    }

    /// The device's DMA segment limits.
    pub(crate) fn dma_limits(&self) -> crate::vfio_pci_dmabuf_ranges::Limits {
        let (mut max_seg, mut boundary_mask) = (0, 0);
        // SAFETY: Valid device; out pointers are locals.
        unsafe { vfio_pci_dmabuf_shim_dma_limits(self.as_raw(), &mut max_seg, &mut boundary_mask) };
        crate::vfio_pci_dmabuf_ranges::Limits {
            max_seg,
            boundary_mask,
        }
    }

    /// Whether this device can address `len` bytes from `addr` untranslated:
    /// a bus address (`translated` false), or the CPU physical address the DMA
    /// API maps MMIO to when no IOMMU translates this device's DMA
    /// (`translated` true: always so behind an IOMMU domain).
    pub(crate) fn reaches(&self, addr: u64, len: u64, translated: bool) -> bool {
        // SAFETY: Valid device; reads its DMA mask, bus limit and IOMMU flag.
        unsafe { vfio_pci_dmabuf_shim_reachable(self.as_raw(), addr, len, translated) }
    }

    /// Maps `len` bytes of MMIO at CPU physical address `phys` for DMA by this
    /// device (`dma_map_resource()`); returns the DMA address.
    ///
    /// # Safety
    ///
    /// `phys .. phys + len` lies in a memory BAR that the caller has claimed
    /// and keeps claimed until it undoes the mapping with
    /// [`Self::unmap_resource`]: the device is given DMA access to it.
    pub(crate) unsafe fn map_resource(
        &self,
        phys: u64,
        len: u64,
        dir: DataDirection,
    ) -> Result<u64> {
        let len = usize::try_from(len)?;
        // SAFETY: Valid device; per the caller, MMIO of a claimed BAR, unmapped
        // with `unmap_resource`.
        let addr = unsafe {
            bindings::dma_map_resource(
                self.as_raw(),
                phys,
                len,
                dir,
                bindings::DMA_ATTR_SKIP_CPU_SYNC as usize,
            )
        };
        // SAFETY: Valid device; `addr` was just returned for it.
        if unsafe { vfio_pci_dmabuf_shim_mapping_error(self.as_raw(), addr) } != 0 {
            return Err(ENOMEM);
        }
        Ok(addr)
    }

    /// Whether an IOMMU domain of the DMA API translates this device's DMA:
    /// then a whole buffer can be one IOVA range ([`Self::iova_range`]).
    pub(crate) fn dma_translated(&self) -> bool {
        // SAFETY: Valid device; reads its DMA ops flag.
        unsafe { vfio_pci_dmabuf_shim_dma_translated(self.as_raw()) }
    }

    /// Reserves one IOVA range of `size` bytes for this device, whose first
    /// byte will map CPU physical address `phys` (`dma_iova_try_alloc()`);
    /// `None` when the device is not translated or no range is free.
    pub(crate) fn iova_range(
        &self,
        phys: u64,
        size: u64,
        dir: DataDirection,
    ) -> Option<IovaRange<'_>> {
        let mut addr = 0;
        // SAFETY: Valid device; `addr` is a local. What is reserved is freed
        // by the guard returned.
        if !unsafe { vfio_pci_dmabuf_shim_iova_alloc(self.as_raw(), phys, size, &mut addr) } {
            return None;
        }
        Some(IovaRange {
            dev: self,
            addr,
            size,
            linked: 0,
            dir,
        })
    }

    /// Flushes the IOTLB of this device's IOMMU domain if it is a lazy
    /// (flush-queue) one, after a mapping of a BAR was unmapped: no stale
    /// translation of it survives the unmap.
    pub(crate) fn flush_iotlb(&self) {
        // SAFETY: Valid device.
        unsafe { vfio_pci_dmabuf_shim_flush_iotlb(self.as_raw()) }
    }

    /// Unmaps and frees an IOVA range that [`IovaRange::keep`] kept.
    ///
    /// # Safety
    ///
    /// `addr` and `size` are the start and size of a range reserved for this
    /// device, fully linked with `dir` and kept; it is destroyed once.
    pub(crate) unsafe fn iova_destroy(&self, addr: u64, size: u64, dir: DataDirection) {
        // SAFETY: Valid device; per the caller, a kept range of this device,
        // linked in full, destroyed once.
        unsafe { vfio_pci_dmabuf_shim_iova_destroy(self.as_raw(), addr, size, size, dir) }
    }

    /// Undoes one [`Self::map_resource`] of `len` bytes at `addr`.
    ///
    /// # Safety
    ///
    /// `(addr, len, dir)` is a mapping that [`Self::map_resource`] made for
    /// this device and that is not unmapped yet; it is unmapped once (a
    /// second unmap would free another mapping's IOVA).
    pub(crate) unsafe fn unmap_resource(&self, addr: u64, len: u64, dir: DataDirection) {
        // SAFETY: Valid device; (addr, len, dir) is a mapping made by
        // `map_resource`, unmapped once (caller's contract).
        unsafe {
            bindings::dma_unmap_resource(
                self.as_raw(),
                addr,
                len as usize,
                dir,
                bindings::DMA_ATTR_SKIP_CPU_SYNC as usize,
            )
        }
    }
}

/// An IOVA range reserved for a device (the DMA IOVA API), linked from its
/// start: MMIO runs mapped one after the other. Dropping it unmaps what was
/// linked and frees the range, unless [`IovaRange::keep`] kept it.
pub(crate) struct IovaRange<'a> {
    dev: &'a Device,
    addr: u64,
    size: u64,
    /// Bytes linked from the start.
    linked: u64,
    dir: DataDirection,
}

impl IovaRange<'_> {
    /// The range's first DMA address.
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }

    /// Maps `len` bytes of MMIO at CPU physical address `phys` right after
    /// what is linked (`dma_iova_link()`); on failure nothing of them is.
    ///
    /// # Safety
    ///
    /// `phys .. phys + len` lies in a memory BAR that the caller has claimed
    /// and keeps claimed until the range is destroyed: the device is given
    /// DMA access to it.
    pub(crate) unsafe fn link(&mut self, phys: u64, len: u64) -> Result {
        // SAFETY: Valid device; the range is reserved for it and the link's
        // bounds are checked by `dma_iova_link()`; MMIO of a claimed BAR
        // (caller's contract).
        to_result(unsafe {
            vfio_pci_dmabuf_shim_iova_link(
                self.dev.as_raw(),
                self.addr,
                self.size,
                phys,
                self.linked,
                len,
                self.dir,
            )
        })?;
        self.linked += len;
        Ok(())
    }

    /// Makes every link usable by the device (`dma_iova_sync()`).
    pub(crate) fn sync(&self) -> Result {
        // SAFETY: Valid device; the range is reserved for it.
        to_result(unsafe {
            vfio_pci_dmabuf_shim_iova_sync(self.dev.as_raw(), self.addr, self.size)
        })
    }

    /// Keeps the range mapped past the guard, for
    /// [`Device::iova_destroy`].
    pub(crate) fn keep(self) {
        core::mem::forget(self);
    }
}

impl Drop for IovaRange<'_> {
    fn drop(&mut self) {
        // SAFETY: Valid device; the range is reserved for it, `linked` bytes
        // from its start are mapped with `dir`, and it is destroyed once.
        unsafe {
            vfio_pci_dmabuf_shim_iova_destroy(
                self.dev.as_raw(),
                self.addr,
                self.size,
                self.linked,
                self.dir,
            )
        }
    }
}
