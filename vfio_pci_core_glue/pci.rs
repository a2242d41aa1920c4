// SPDX-License-Identifier: GPL-2.0

//! The PCI device whose BARs are exported: its memory BARs and how another
//! device reaches them peer-to-peer.

use core::ptr::{self, NonNull};
use kernel::{
    bindings,
    prelude::*,
    types::{AlwaysRefCounted, Opaque},
};

use super::dma::Device;

// The C shim, `vfio_pci_dmabuf_shim.c`: the helpers this module wraps.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_dmabuf_shim_log_refused(
        provider: *mut bindings::pci_dev,
        client: *mut bindings::device,
    );
}

/// A memory BAR of a PCI device.
pub(crate) struct Bar {
    /// CPU physical address of the BAR's first byte.
    pub(crate) phys: u64,
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
        let index = usize::try_from(index).map_err(|_| ENODEV)?;
        // SAFETY: Valid device; its resources are set at enumeration and do
        // not change while a driver is bound (the caller's device is open).
        let res = unsafe { &*ptr::addr_of!((*self.0.get()).resource) };
        let res = res.get(index).ok_or(ENODEV)?;
        // `pci_resource_len()`: 0 for a resource that is not set (no end).
        let len = match res.end {
            0 => 0,
            end => end.wrapping_sub(res.start).wrapping_add(1),
        };
        if len == 0 {
            return Err(ENODEV);
        }
        Ok(
            (res.flags & bindings::IORESOURCE_MEM as usize != 0).then_some(Bar {
                phys: res.start,
                len,
            }),
        )
    }

    /// Logs that `client` was refused an import of this device's BAR for
    /// want of a peer-to-peer path, at a bounded rate.
    pub(crate) fn log_refused(&self, client: &Device) {
        // SAFETY: Both devices are valid.
        unsafe { vfio_pci_dmabuf_shim_log_refused(self.0.get(), client.as_raw()) }
    }
}

/// The peer-to-peer provider of a memory BAR (`struct p2pdma_provider`,
/// from `pcim_p2pdma_provider()`).
///
/// # Invariants
///
/// Points to a provider that stays allocated while the driver of its
/// device stays bound (it is managed by that driver's binding).
pub(crate) struct Provider(NonNull<bindings::p2pdma_provider>);

// SAFETY: The provider is only read, and the map type it caches is kept
// under the P2PDMA core's own locking; any task may do so.
unsafe impl Send for Provider {}
// SAFETY: As for `Send`.
unsafe impl Sync for Provider {}

impl Provider {
    /// # Safety
    ///
    /// `ptr` is a provider from `pcim_p2pdma_provider()` whose device's
    /// driver is bound now.
    pub(super) unsafe fn from_raw(ptr: NonNull<bindings::p2pdma_provider>) -> Self {
        // INVARIANT: Per the caller.
        Provider(ptr)
    }

    /// The BAR's PCI bus address minus its CPU physical address.
    ///
    /// # Safety
    ///
    /// The driver of the provider's device is still bound.
    pub(crate) unsafe fn bus_offset(&self) -> u64 {
        // SAFETY: Allocated while the driver is bound (type invariant and
        // the caller's guarantee); `bus_offset` is set at init and constant.
        unsafe { (*self.0.as_ptr()).bus_offset }
    }

    /// How `client` reaches the BAR (`pci_p2pdma_map_type()`): computed once
    /// per client, the reason for a refusal logged then.
    ///
    /// # Safety
    ///
    /// The driver of the provider's device is still bound: the caller holds
    /// a registration of its vfio device, say.
    pub(crate) unsafe fn map_type(&self, client: &Device) -> bindings::pci_p2pdma_map_type {
        // SAFETY: A live provider (type invariant and the caller's
        // guarantee) and a valid device.
        unsafe { bindings::pci_p2pdma_map_type(self.0.as_ptr(), client.as_raw()) }
    }
}
