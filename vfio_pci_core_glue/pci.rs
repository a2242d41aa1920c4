// SPDX-License-Identifier: GPL-2.0

//! The PCI device whose BARs are exported: its memory BARs and how another
//! device reaches them peer-to-peer.

use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::c_int,
    prelude::*,
    types::{AlwaysRefCounted, Opaque},
};

use super::dma::Device;

// The C shim, `vfio_pci_dmabuf_shim.c`: the helpers this module wraps.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_dmabuf_shim_bar(
        pdev: *mut bindings::pci_dev,
        bar: c_int,
        mem: *mut bool,
        phys: *mut u64,
        bus: *mut u64,
    ) -> u64;
    fn vfio_pci_dmabuf_shim_p2p_map_type(
        provider: *mut bindings::pci_dev,
        client: *mut bindings::device,
    ) -> bindings::pci_p2pdma_map_type;
}

/// A memory BAR of a PCI device.
pub(crate) struct Bar {
    /// CPU physical address of the BAR's first byte.
    pub(crate) phys: u64,
    /// PCI bus address of the BAR's first byte.
    pub(crate) bus: u64,
    /// Size in bytes.
    pub(crate) len: u64,
}

/// A `struct pci_dev`, always reference-counted: [`ARef<PciDev>`] holds a
/// reference (`pci_dev_get()`/`pci_dev_put()`).
///
/// # Invariants
///
/// The device stays valid for as long as a reference to this wrapper exists.
#[repr(transparent)]
pub(crate) struct PciDev(Opaque<bindings::pci_dev>);

// SAFETY: A `pci_dev`'s last reference may be dropped from any thread.
unsafe impl Send for PciDev {}
// SAFETY: The methods on `&PciDev` read fields set at enumeration or take
// the locks of the functions they call.
unsafe impl Sync for PciDev {}

// SAFETY: `pci_dev_get()` and `pci_dev_put()` keep the device allocated
// while a reference is held.
unsafe impl AlwaysRefCounted for PciDev {
    fn inc_ref(&self) {
        // SAFETY: A shared reference means the refcount is not zero.
        unsafe { bindings::pci_dev_get(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up a reference it owns.
        unsafe { bindings::pci_dev_put(obj.cast().as_ptr()) }
    }
}

impl PciDev {
    /// # Safety
    ///
    /// `ptr` points to a valid `pci_dev` that outlives `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::pci_dev) -> &'a Self {
        // SAFETY: Transparent wrapper, validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// BAR `index` (a standard BAR) as a request sees it: `ENODEV` where
    /// the device has none (unimplemented, or the upper half of a 64-bit
    /// BAR), `None` for an I/O BAR, else the memory BAR.
    pub(crate) fn memory_bar(&self, index: u32) -> Result<Option<Bar>> {
        let (mut mem, mut phys, mut bus) = (false, 0, 0);
        let index = c_int::try_from(index).map_err(|_| ENODEV)?;
        // SAFETY: Valid device; `index` is a standard BAR (checked by the
        // caller against VFIO_PCI_ROM_REGION_INDEX); out pointers are locals.
        let len =
            unsafe { vfio_pci_dmabuf_shim_bar(self.0.get(), index, &mut mem, &mut phys, &mut bus) };
        if len == 0 {
            return Err(ENODEV);
        }
        Ok(mem.then_some(Bar { phys, bus, len }))
    }

    /// How `client` reaches this device's BARs; logs why when it cannot, at
    /// a bounded rate.
    pub(crate) fn p2p_map_type(&self, client: &Device) -> bindings::pci_p2pdma_map_type {
        // SAFETY: Both devices are valid.
        unsafe { vfio_pci_dmabuf_shim_p2p_map_type(self.0.get(), client.as_raw()) }
    }
}
