// SPDX-License-Identifier: GPL-2.0

//! CPU mappings of a dma-buf: the VMA being set up by its `mmap` op and a
//! page fault in it.

use kernel::{bindings, types::Opaque};

use super::vfio::MemoryReadLocked;

/// A CPU mapping of a dma-buf being set up (the `mmap` op), mmap lock held
/// for writing.
#[repr(transparent)]
pub(crate) struct VmaNew(Opaque<bindings::vm_area_struct>);

impl VmaNew {
    /// # Safety
    ///
    /// `ptr` is a VMA being set up by the `mmap` op, valid for `'a`.
    pub(super) unsafe fn from_raw<'a>(ptr: *mut bindings::vm_area_struct) -> &'a Self {
        // SAFETY: Transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    /// Whether the mapping is shared (`MAP_SHARED`): `VM_MAYSHARE`, which a
    /// read-only shared mapping of a read-only file keeps (the VFS clears
    /// its `VM_SHARED`).
    pub(crate) fn shared(&self) -> bool {
        // SAFETY: Valid VMA; its flags are plain data, stable while the
        // caller holds the mmap lock.
        let flags = unsafe { (*self.0.get()).__bindgen_anon_2.vm_flags };
        flags & bindings::VM_MAYSHARE as bindings::vm_flags_t != 0
    }
}

/// A page fault in a CPU mapping of a dma-buf (the fault op), mmap lock held
/// for reading.
#[repr(transparent)]
pub(crate) struct Fault(Opaque<bindings::vm_fault>);

/// What a fault op returns: `VM_FAULT_NOPAGE` once a page was inserted,
/// `VM_FAULT_SIGBUS`, or an error of the insertion.
pub(crate) type FaultResult = bindings::vm_fault_t;

/// The fault result that sends the faulting task `SIGBUS`.
pub(crate) const FAULT_SIGBUS: FaultResult = bindings::vm_fault_reason_VM_FAULT_SIGBUS;

impl Fault {
    /// The page of the dma-buf that the access hit (the mapping's page
    /// offset plus the page's index in it).
    pub(crate) fn pgoff(&self) -> u64 {
        // SAFETY: Valid fault; `pgoff` is set by the fault path.
        unsafe { (*self.0.get()).__bindgen_anon_1.pgoff as u64 }
    }

    /// Maps the faulting page to page frame `pfn` (`vmf_insert_pfn()`).
    ///
    /// `locked` holds the `memory_lock` of the device whose BAR `pfn` is in:
    /// the BAR keeps decoding until the page is inserted.
    ///
    /// # Safety
    ///
    /// `pfn` is a page of a memory BAR of `locked`'s device that the caller
    /// has claimed and that decodes: never RAM, which user space would then
    /// reach. The mapping is zapped before the BAR stops decoding or is
    /// released.
    pub(crate) unsafe fn insert_pfn(&self, locked: &MemoryReadLocked<'_>, pfn: u64) -> FaultResult {
        let _ = locked;
        let Ok(pfn) = usize::try_from(pfn) else {
            return FAULT_SIGBUS;
        };
        // SAFETY: Valid fault of a `VM_PFNMAP` mapping set up by
        // [`VmaNew`]'s owner through `vfio_pci_dmabuf_shim_mmap_setup()`; the
        // mmap lock is held by the fault path; `pfn` is a decoding page of a
        // claimed BAR (caller's contract).
        unsafe {
            let vmf = &*self.0.get();
            bindings::vmf_insert_pfn(vmf.__bindgen_anon_1.vma, vmf.__bindgen_anon_1.address, pfn)
        }
    }
}
