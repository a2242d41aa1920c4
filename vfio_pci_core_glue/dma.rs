// SPDX-License-Identifier: GPL-2.0

//! The importer's device as the DMA API sees it: its limits, and MMIO
//! mapped for it one run at a time ([`ResourceMappings`],
//! `dma_map_resource()`) or linked into one IOVA range ([`IovaRange`], then
//! [`IovaMapping`]: the DMA IOVA API). A mapping holds a reference on the
//! device and is undone when it is dropped.

use core::{mem::ManuallyDrop, ptr};
use kernel::{
    bindings,
    error::to_result,
    ffi::c_int,
    prelude::*,
    types::{ARef, AlwaysRefCounted, Opaque},
};

// The C shim, `vfio_pci_dmabuf_shim.c`: the helpers this module wraps.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_dmabuf_shim_reachable(
        dev: *mut bindings::device,
        addr: u64,
        len: u64,
        translated: bool,
    ) -> bool;
    fn vfio_pci_dmabuf_shim_dma_translated(dev: *mut bindings::device) -> bool;
    fn vfio_pci_dmabuf_shim_iova_alloc(
        dev: *mut bindings::device,
        state: *mut bindings::dma_iova_state,
        phys: u64,
        size: u64,
        addr: *mut u64,
    ) -> bool;
    fn vfio_pci_dmabuf_shim_iova_link(
        dev: *mut bindings::device,
        state: *mut bindings::dma_iova_state,
        phys: u64,
        offset: u64,
        len: u64,
        dir: DataDirection,
    ) -> c_int;
    fn vfio_pci_dmabuf_shim_iova_sync(
        dev: *mut bindings::device,
        state: *mut bindings::dma_iova_state,
    ) -> c_int;
    fn vfio_pci_dmabuf_shim_iova_unlink_free(
        dev: *mut bindings::device,
        state: *mut bindings::dma_iova_state,
        linked: u64,
        dir: DataDirection,
    );
    fn vfio_pci_dmabuf_shim_iova_destroy(
        dev: *mut bindings::device,
        state: *mut bindings::dma_iova_state,
        dir: DataDirection,
    );
    fn vfio_pci_dmabuf_shim_flush_iotlb(dev: *mut bindings::device);
}

/// The direction of a DMA mapping, as `kernel::dma::DataDirection` names it
/// upstream (there an enum; here 6.12's binding).
pub(crate) type DataDirection = bindings::dma_data_direction;

/// A `struct device` (the importer's), always reference-counted:
/// [`ARef<Device>`] holds a reference (`get_device()`/`put_device()`).
///
/// # Invariants
///
/// The device stays valid for as long as a reference to this wrapper exists.
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::device>);

// SAFETY: A device's last reference may be dropped from any thread.
unsafe impl Send for Device {}
// SAFETY: The methods on `&Device` read fields set before the device is
// registered, or call DMA API functions that may run concurrently.
unsafe impl Sync for Device {}

// SAFETY: `get_device()` and `put_device()` keep the device allocated while
// a reference is held.
unsafe impl AlwaysRefCounted for Device {
    fn inc_ref(&self) {
        // SAFETY: A shared reference means the refcount is not zero.
        unsafe { bindings::get_device(self.as_raw()) };
    }

    unsafe fn dec_ref(obj: ptr::NonNull<Self>) {
        // SAFETY: The caller gives up a reference it owns.
        unsafe { bindings::put_device(obj.cast().as_ptr()) }
    }
}

impl Device {
    /// # Safety
    ///
    /// `ptr` points to a valid device that outlives `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::device) -> &'a Self {
        // SAFETY: Transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

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
        // SAFETY: Valid device; reads its DMA parameters.
        let (max_seg, boundary_mask) = unsafe {
            (
                bindings::dma_get_max_seg_size(self.as_raw()),
                bindings::dma_get_seg_boundary(self.as_raw()),
            )
        };
        crate::vfio_pci_dmabuf_ranges::Limits {
            max_seg,
            boundary_mask: boundary_mask as u64,
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

    /// Whether an IOMMU domain of the DMA API translates this device's DMA:
    /// then a whole buffer can be one IOVA range ([`Self::iova_range`]).
    pub(crate) fn dma_translated(&self) -> bool {
        // SAFETY: Valid device; reads its DMA ops flag.
        unsafe { vfio_pci_dmabuf_shim_dma_translated(self.as_raw()) }
    }

    /// Room for `runs` mappings of MMIO runs for this device, with `dir`.
    pub(crate) fn resource_mappings(
        &self,
        dir: DataDirection,
        runs: usize,
    ) -> Result<ResourceMappings> {
        Ok(ResourceMappings {
            dev: self.into(),
            dir,
            maps: KVVec::with_capacity(runs, GFP_KERNEL_ACCOUNT)?,
        })
    }

    /// Reserves one IOVA range of `size` bytes for this device, whose first
    /// byte will map CPU physical address `phys` (`dma_iova_try_alloc()`);
    /// `None` when the device is not translated or no range of that size is
    /// free.
    pub(crate) fn iova_range(&self, phys: u64, size: u64, dir: DataDirection) -> Option<IovaRange> {
        let state = Opaque::<bindings::dma_iova_state>::uninit();
        let mut addr = 0;
        // SAFETY: Valid device; `state` is ours to fill and `addr` a local.
        // What is reserved is freed by the `IovaRange` returned.
        if !unsafe {
            vfio_pci_dmabuf_shim_iova_alloc(self.as_raw(), state.get(), phys, size, &mut addr)
        } {
            return None;
        }
        // INVARIANT: Reserved just above; nothing linked yet.
        Some(IovaRange {
            iova: Iova {
                dev: self.into(),
                state,
                addr,
                size,
                dir,
            },
            linked: 0,
        })
    }

    /// Flushes the IOTLB of this device's IOMMU domain if it is a lazy
    /// (flush-queue) one, after a mapping of a BAR was unmapped: no stale
    /// translation of it survives the unmap.
    pub(crate) fn flush_iotlb(&self) {
        // SAFETY: Valid device.
        unsafe { vfio_pci_dmabuf_shim_flush_iotlb(self.as_raw()) }
    }
}

/// MMIO runs mapped for a device one at a time (`dma_map_resource()`),
/// unmapped when dropped.
///
/// # Invariants
///
/// Each `(addr, len)` of `maps` is a mapping of `dev` with `dir` made by
/// [`Self::map`], not unmapped yet.
pub(crate) struct ResourceMappings {
    dev: ARef<Device>,
    dir: DataDirection,
    maps: KVVec<(u64, u64)>,
}

impl ResourceMappings {
    /// Maps `len` bytes of MMIO at CPU physical address `phys` for DMA by the
    /// device and returns the DMA address.
    ///
    /// # Safety
    ///
    /// `phys .. phys + len` lies in a memory BAR that the caller has claimed
    /// and keeps claimed until these mappings are dropped: the device is
    /// given DMA access to it.
    pub(crate) unsafe fn map(&mut self, phys: u64, len: u64) -> Result<u64> {
        let size = usize::try_from(len)?;
        let dev = self.dev.as_raw();
        // SAFETY: Valid device; MMIO of a claimed BAR (caller's contract),
        // unmapped below or on drop.
        let addr = unsafe {
            bindings::dma_map_resource(
                dev,
                phys,
                size,
                self.dir,
                bindings::DMA_ATTR_SKIP_CPU_SYNC as usize,
            )
        };
        // SAFETY: Valid device; `addr` was just returned for it.
        if unsafe { bindings::dma_mapping_error(dev, addr) } != 0 {
            return Err(ENOMEM);
        }
        if let Err(e) = self.maps.push((addr, len), GFP_KERNEL_ACCOUNT) {
            // SAFETY: Mapped just above, not recorded: unmapped once, here.
            unsafe { unmap_resource(dev, addr, len, self.dir) };
            return Err(e.into());
        }
        // INVARIANT: Recorded the mapping just made.
        Ok(addr)
    }

    /// The DMA address of the `i`-th mapping, in the order made.
    pub(crate) fn addr(&self, i: usize) -> Option<u64> {
        self.maps.get(i).map(|(addr, _)| *addr)
    }
}

impl Drop for ResourceMappings {
    fn drop(&mut self) {
        for (i, (addr, len)) in self.maps.iter().enumerate() {
            // SAFETY: A mapping of this device with `dir`, not unmapped yet
            // (type invariant), unmapped once: the list goes with `self`.
            unsafe { unmap_resource(self.dev.as_raw(), *addr, *len, self.dir) };
            super::vfio::resched_every(i);
        }
    }
}

/// Undoes one `dma_map_resource()` of `len` bytes at `addr`.
///
/// # Safety
///
/// `(addr, len, dir)` is a mapping made for `dev` and not unmapped yet; it
/// is unmapped once (a second unmap would free another mapping's IOVA).
unsafe fn unmap_resource(dev: *mut bindings::device, addr: u64, len: u64, dir: DataDirection) {
    // SAFETY: Per the caller.
    unsafe {
        bindings::dma_unmap_resource(
            dev,
            addr,
            len as usize,
            dir,
            bindings::DMA_ATTR_SKIP_CPU_SYNC as usize,
        )
    }
}

/// An IOVA range reserved for a device: its state stays opaque to Rust (the
/// DMA IOVA API's `struct dma_iova_state`).
struct Iova {
    dev: ARef<Device>,
    state: Opaque<bindings::dma_iova_state>,
    /// The range's first DMA address.
    addr: u64,
    size: u64,
    dir: DataDirection,
}

/// An IOVA range being linked from its start: MMIO runs mapped one after
/// the other, not yet usable by the device. Dropping it undoes what was
/// linked and frees the range; [`Self::sync`] turns a fully linked range
/// into an [`IovaMapping`].
///
/// # Invariants
///
/// `iova` is reserved for its device, and its first `linked` bytes (no
/// more) are linked with its `dir`.
pub(crate) struct IovaRange {
    iova: Iova,
    linked: u64,
}

impl IovaRange {
    /// The range's first DMA address.
    pub(crate) fn addr(&self) -> u64 {
        self.iova.addr
    }

    /// Maps `len` bytes of MMIO at CPU physical address `phys` right after
    /// what is linked (`dma_iova_link()`); on failure nothing of them is.
    ///
    /// # Safety
    ///
    /// `phys .. phys + len` lies in a memory BAR that the caller has claimed
    /// and keeps claimed until the range (or the [`IovaMapping`] it becomes)
    /// is dropped: the device is given DMA access to it.
    pub(crate) unsafe fn link(&mut self, phys: u64, len: u64) -> Result {
        let iova = &self.iova;
        // SAFETY: Valid device and its reserved range; the link's bounds are
        // checked by `dma_iova_link()`; MMIO of a claimed BAR (caller's
        // contract).
        to_result(unsafe {
            vfio_pci_dmabuf_shim_iova_link(
                iova.dev.as_raw(),
                iova.state.get(),
                phys,
                self.linked,
                len,
                iova.dir,
            )
        })?;
        // INVARIANT: The link succeeded: `len` more bytes are linked.
        self.linked += len;
        Ok(())
    }

    /// Makes every link usable by the device (`dma_iova_sync()`). The range
    /// must be linked in full (`EINVAL` otherwise); on failure it is undone.
    pub(crate) fn sync(self) -> Result<IovaMapping> {
        if self.linked != self.iova.size {
            return Err(EINVAL);
        }
        // SAFETY: Valid device and its reserved range.
        to_result(unsafe {
            vfio_pci_dmabuf_shim_iova_sync(self.iova.dev.as_raw(), self.iova.state.get())
        })?;
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is neither used nor dropped again: its range moves
        // out once.
        let iova = unsafe { ptr::read(&this.iova) };
        // INVARIANT: Linked in full (checked above) and synchronised.
        Ok(IovaMapping(iova))
    }
}

impl Drop for IovaRange {
    fn drop(&mut self) {
        let iova = &self.iova;
        // SAFETY: Valid device and its reserved range, `linked` bytes of it
        // linked from the start with `dir` (type invariant); undone once.
        unsafe {
            vfio_pci_dmabuf_shim_iova_unlink_free(
                iova.dev.as_raw(),
                iova.state.get(),
                self.linked,
                iova.dir,
            )
        }
    }
}

/// An IOVA range linked in full and synchronised: the device may use it.
/// Dropping it unmaps it and frees the range (`dma_iova_destroy()`).
///
/// # Invariants
///
/// The range is reserved for its device and linked in full with its `dir`.
pub(crate) struct IovaMapping(Iova);

impl IovaMapping {
    /// The range's first DMA address.
    pub(crate) fn addr(&self) -> u64 {
        self.0.addr
    }
}

impl Drop for IovaMapping {
    fn drop(&mut self) {
        // SAFETY: Valid device and its reserved range, linked in full with
        // `dir` (type invariant); destroyed once.
        unsafe {
            vfio_pci_dmabuf_shim_iova_destroy(self.0.dev.as_raw(), self.0.state.get(), self.0.dir)
        }
    }
}
