// SPDX-License-Identifier: GPL-2.0

//! The FFI boundary of the vfio-pci dma-buf exporter.
//!
//! Raw pointers stop here. This module holds the thin safe wrappers over the
//! C objects the exporter works with (the vfio-pci core device, the provider
//! `pci_dev`, a dma-buf and its attachments, reservation locks, DMA-address
//! scatter-gather tables, CPU mappings and their faults), the dma-buf ops
//! and the mapping's fault op as a safe [`Exporter`] trait whose C
//! trampolines live here, and the declarations of the C shim
//! (`vfio_pci_dmabuf_shim.c`). The `extern "C"` entry points that vfio-pci
//! calls live in the crate root and convert their arguments with the
//! `from_raw` functions below.

use core::{
    marker::PhantomData,
    ptr::{self, NonNull},
};
use kernel::{
    bindings,
    error::{from_err_ptr, to_result},
    ffi::{c_int, c_void},
    prelude::*,
    types::Opaque,
    uaccess::UserSliceReader,
};

use crate::vfio_pci_dmabuf_ranges::Range;

// The C shim, `vfio_pci_dmabuf_shim.c`. Kernel structs whose bindings contain
// opaque fields are passed by pointer only, as `bindings` itself does.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_dmabuf_shim_export(
        ops: *const bindings::dma_buf_ops,
        size: usize,
        flags: c_int,
        priv_: *mut c_void,
    ) -> *mut bindings::dma_buf;
    fn vfio_pci_dmabuf_shim_check_feature(
        flags: u32,
        argsz: usize,
        supported_ops: u32,
        minsz: usize,
    ) -> c_int;
    fn vfio_pci_dmabuf_shim_export_allowed(vdev: *mut bindings::vfio_pci_core_device) -> bool;
    fn vfio_pci_dmabuf_shim_is_open(vdev: *mut bindings::vfio_pci_core_device) -> bool;
    fn vfio_pci_dmabuf_shim_bar_usable(vdev: *mut bindings::vfio_pci_core_device) -> bool;
    fn vfio_pci_dmabuf_shim_assert_memory_locked(vdev: *mut bindings::vfio_pci_core_device);
    fn vfio_pci_dmabuf_shim_bar(
        pdev: *mut bindings::pci_dev,
        bar: c_int,
        mem: *mut bool,
        phys: *mut u64,
        bus: *mut u64,
    ) -> u64;
    fn vfio_pci_dmabuf_shim_link(
        vdev: *mut bindings::vfio_pci_core_device,
        node: *mut bindings::list_head,
    );
    fn vfio_pci_dmabuf_shim_unlink(
        vdev: *mut bindings::vfio_pci_core_device,
        node: *mut bindings::list_head,
    );
    fn vfio_pci_dmabuf_shim_resv_lock(dmabuf: *mut bindings::dma_buf);
    fn vfio_pci_dmabuf_shim_resv_unlock(dmabuf: *mut bindings::dma_buf);
    fn vfio_pci_dmabuf_shim_wait_idle(
        vdev: *mut bindings::vfio_pci_core_device,
        dmabuf: *mut bindings::dma_buf,
        reported: *mut bool,
    );
    fn vfio_pci_dmabuf_shim_mapping_get(mappings: *mut bindings::atomic_t);
    fn vfio_pci_dmabuf_shim_mapping_put(mappings: *mut bindings::atomic_t);
    fn vfio_pci_dmabuf_shim_wait_unmapped(
        vdev: *mut bindings::vfio_pci_core_device,
        mappings: *mut bindings::atomic_t,
        reported: *mut bool,
    );
    fn vfio_pci_dmabuf_shim_flush_iotlb(dev: *mut bindings::device);
    fn vfio_pci_dmabuf_shim_claim_bar(
        vdev: *mut bindings::vfio_pci_core_device,
        bar: c_int,
    ) -> c_int;
    fn vfio_pci_dmabuf_shim_p2p_map_type(
        provider: *mut bindings::pci_dev,
        client: *mut bindings::device,
    ) -> bindings::pci_p2pdma_map_type;
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
    fn vfio_pci_dmabuf_shim_cond_resched();
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
        dir: bindings::dma_data_direction,
    ) -> c_int;
    fn vfio_pci_dmabuf_shim_iova_sync(dev: *mut bindings::device, addr: u64, size: u64) -> c_int;
    fn vfio_pci_dmabuf_shim_iova_destroy(
        dev: *mut bindings::device,
        addr: u64,
        size: u64,
        mapped: u64,
        dir: bindings::dma_data_direction,
    );
    fn vfio_pci_dmabuf_shim_mmap_setup(
        vma: *mut bindings::vm_area_struct,
        ops: *const bindings::vm_operations_struct,
        data: *mut c_void,
    );
}

/// Lets other tasks run in a loop over a user-sized list: every 1024th
/// `step` calls `cond_resched()`. Only where the caller may sleep.
pub(crate) fn resched_every(step: usize) {
    if step % 1024 == 1023 {
        // SAFETY: No arguments; the callers run in process context and hold
        // no spinlock.
        unsafe { vfio_pci_dmabuf_shim_cond_resched() };
    }
}

/// `vfio_check_feature()`: `Ok(true)` to go on with a GET, `Ok(false)` for a
/// successful PROBE, an error for anything else.
pub(crate) fn check_feature(
    flags: u32,
    argsz: usize,
    supported: u32,
    minsz: usize,
) -> Result<bool> {
    // SAFETY: Plain values; the function only compares them.
    let ret = unsafe { vfio_pci_dmabuf_shim_check_feature(flags, argsz, supported, minsz) };
    to_result(ret)?;
    Ok(ret == 1)
}

/// Reads `nr` ranges (`struct vfio_region_dma_range`) from user space into
/// a new list, charged to the caller's memory cgroup.
pub(crate) fn read_ranges(reader: &mut UserSliceReader, nr: usize) -> Result<KVVec<Range>> {
    let mut list = KVVec::<Range>::with_capacity(nr, GFP_KERNEL_ACCOUNT)?;
    let spare = &mut list.spare_capacity_mut()[..nr];
    // SAFETY: `spare` is `nr` uninitialised `Range`s; viewing them as
    // `size_of_val(spare)` uninitialised bytes is valid.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), core::mem::size_of_val(spare))
    };
    reader.read_raw(bytes)?;
    // SAFETY: The first `nr` elements were just written; any bytes are a
    // valid `Range` (two integers).
    unsafe { list.set_len(nr) };
    Ok(list)
}

/// A `struct vfio_pci_core_device`.
///
/// # Invariants
///
/// The wrapped device is initialised (`vfio_pci_core_init_dev()` ran) and
/// stays allocated for as long as a reference to this wrapper exists.
#[repr(transparent)]
pub(crate) struct CoreDevice(Opaque<bindings::vfio_pci_core_device>);

impl CoreDevice {
    /// Wraps a device that C handed to an entry point.
    ///
    /// # Safety
    ///
    /// `ptr` points to an initialised `vfio_pci_core_device` that outlives `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::vfio_pci_core_device) -> &'a Self {
        // SAFETY: `CoreDevice` is a transparent wrapper; the caller guarantees
        // that the device is valid for `'a`.
        unsafe { &*ptr.cast() }
    }

    fn as_raw(&self) -> *mut bindings::vfio_pci_core_device {
        self.0.get()
    }

    /// Whether the bound driver opted in to dma-buf export.
    pub(crate) fn export_allowed(&self) -> bool {
        // SAFETY: The device is valid by the type invariant.
        unsafe { vfio_pci_dmabuf_shim_export_allowed(self.as_raw()) }
    }

    /// The PCI device whose BARs are exported.
    pub(crate) fn pdev(&self) -> &PciDev {
        // SAFETY: `pdev` is set at init and the PCI device outlives its
        // vfio device (the driver is bound to it).
        unsafe { PciDev::from_raw((*self.as_raw()).pdev) }
    }

    /// Takes a reference that keeps the vfio device registered.
    pub(crate) fn try_get_registration(&self) -> Option<Registration> {
        // SAFETY: The device is valid; `vdev` is its embedded vfio_device.
        let vdev = unsafe { ptr::addr_of_mut!((*self.as_raw()).vdev) };
        // SAFETY: `vdev` is a valid, registered or unregistering vfio device.
        if unsafe { bindings::vfio_device_try_get_registration(vdev) } {
            // INVARIANT: We took the reference just above.
            NonNull::new(self.as_raw()).map(Registration)
        } else {
            None
        }
    }

    /// Runs `f` with the device's `memory_lock` held for reading, as
    /// vfio-pci's own BAR mappings fault pages in: the BARs' state (and every
    /// buffer's `revoked`) does not change meanwhile.
    pub(crate) fn with_memory_lock_read<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: The device is valid, so is its memory_lock.
        let sem = unsafe { ptr::addr_of_mut!((*self.as_raw()).memory_lock) };
        // SAFETY: `sem` is an initialised rw_semaphore.
        unsafe { bindings::down_read(sem) };
        let r = f();
        // SAFETY: Taken above by this thread.
        unsafe { bindings::up_read(sem) };
        r
    }

    /// Runs `f` with the device's `memory_lock` held for writing.
    pub(crate) fn with_memory_lock<R>(&self, f: impl FnOnce(&MemoryLocked<'_>) -> R) -> R {
        // SAFETY: The device is valid, so is its memory_lock.
        let sem = unsafe { ptr::addr_of_mut!((*self.as_raw()).memory_lock) };
        // SAFETY: `sem` is an initialised rw_semaphore.
        unsafe { bindings::down_write(sem) };
        // SAFETY: We hold the lock for writing until `up_write` below.
        let r = f(&unsafe { MemoryLocked::assume(self) });
        // SAFETY: Taken above by this thread.
        unsafe { bindings::up_write(sem) };
        r
    }
}

/// Proof that the device's `memory_lock` is held for writing.
pub(crate) struct MemoryLocked<'a>(&'a CoreDevice);

impl<'a> MemoryLocked<'a> {
    /// # Safety
    ///
    /// The caller holds `dev`'s `memory_lock` for writing for as long as the
    /// returned value lives. Lockdep checks that it is held now.
    pub(crate) unsafe fn assume(dev: &'a CoreDevice) -> Self {
        // SAFETY: Valid device; only asserts (lockdep) that its memory_lock
        // is held for writing.
        unsafe { vfio_pci_dmabuf_shim_assert_memory_locked(dev.as_raw()) };
        MemoryLocked(dev)
    }

    /// Whether the device is open. A device that is not open has no
    /// config state to read (hot reset walks closed devices of its set too).
    pub(crate) fn is_open(&self) -> bool {
        // SAFETY: Valid device, memory_lock held. Our callers either have the
        // device open or hold its dev_set lock, as the shim requires.
        unsafe { vfio_pci_dmabuf_shim_is_open(self.0.as_raw()) }
    }

    /// Whether the BARs can be accessed: memory decode on, in D0, and not in
    /// runtime low power; `false` for a device that is not open.
    pub(crate) fn bar_usable(&self) -> bool {
        // SAFETY: Valid device, memory_lock held; the state is read only
        // while the device is open, as the shim requires.
        self.is_open() && unsafe { vfio_pci_dmabuf_shim_bar_usable(self.0.as_raw()) }
    }

    /// Claims BAR `bar` for vfio, as the region's mmap does
    /// (`vfio_pci_core_setup_barmap()`); the claim lasts until the device
    /// is closed.
    pub(crate) fn claim_bar(&self, bar: u32) -> Result {
        let bar = c_int::try_from(bar)?;
        // SAFETY: Valid device, memory_lock held for writing, `bar` a
        // standard BAR index (checked by the caller).
        to_result(unsafe { vfio_pci_dmabuf_shim_claim_bar(self.0.as_raw(), bar) })
    }

    /// Waits until no mapping counted in `mappings` is left, however long
    /// that takes; reports the first long wait of a revocation (`reported`).
    pub(crate) fn wait_unmapped(&self, mappings: &Mappings, reported: &mut bool) {
        // SAFETY: Valid device and counter; `reported` is a local.
        unsafe { vfio_pci_dmabuf_shim_wait_unmapped(self.0.as_raw(), mappings.0.get(), reported) }
    }

    /// Waits until every fence of `dmabuf` has signalled, however long that
    /// takes; reports the first long wait of a revocation (`reported`).
    pub(crate) fn wait_idle<T>(&self, dmabuf: &DmaBuf<T>, reported: &mut bool) {
        // SAFETY: Valid device and dma-buf; `reported` is a local.
        unsafe { vfio_pci_dmabuf_shim_wait_idle(self.0.as_raw(), dmabuf.as_raw(), reported) }
    }

    /// Puts `link` on the device's list of dma-bufs, holding `reg`, a
    /// registration of this device.
    ///
    /// # Safety
    ///
    /// `link` is on no list, and stays allocated and in place until it is
    /// unlinked. The caller holds the owner's lock for
    /// [`DeviceLink::registration`] too.
    pub(crate) unsafe fn link(&self, link: &DeviceLink, reg: Registration) {
        // SAFETY: We hold the lock that guards `reg`, and `link` is on no
        // list, so nothing else reads or writes `reg` (type invariant).
        unsafe { *link.reg.get() = Some(reg) };
        // SAFETY: The lock is held; the caller guarantees `link`'s state.
        // INVARIANT: `reg` is set and the entry goes on its device's list.
        unsafe { vfio_pci_dmabuf_shim_link(self.0.as_raw(), link.node.get()) }
    }

    /// Takes `link` off the device's list and returns the registration it
    /// held; `None` if it was already unlinked.
    ///
    /// # Safety
    ///
    /// `link` is on this device's list, or was and has been unlinked. The
    /// caller holds the owner's lock for [`DeviceLink::registration`] too.
    pub(crate) unsafe fn unlink(&self, link: &DeviceLink) -> Option<Registration> {
        // SAFETY: `reg` changes only under this device's memory_lock, which
        // we hold (type invariant and the caller's guarantee).
        let reg = unsafe { &mut *link.reg.get() };
        reg.as_ref()?;
        // SAFETY: A registration means `link` is on this device's list (type
        // invariant), whose lock we hold.
        // INVARIANT: The entry leaves the list as `reg` is cleared.
        unsafe { vfio_pci_dmabuf_shim_unlink(self.0.as_raw(), link.node.get()) };
        reg.take()
    }

    /// Calls `f` with each entry of the device's list of dma-bufs; `f` may
    /// unlink the entry it is given.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&DeviceLink)) {
        // SAFETY: Valid device; the list is protected by the lock we hold.
        let head = unsafe { ptr::addr_of_mut!((*self.0.as_raw()).dmabufs) };
        // SAFETY: `head` is an initialised list head.
        let mut pos = unsafe { (*head).next };
        while pos != head {
            // SAFETY: `pos` is on the list, so valid; read `next` before `f`
            // may unlink it.
            let next = unsafe { (*pos).next };
            // SAFETY: Only `DeviceLink`s are put on the list (`link`), and
            // they stay allocated until they leave it, under the lock we hold.
            f(unsafe { &*kernel::container_of!(pos, DeviceLink, node) });
            pos = next;
        }
    }
}

/// The number of importers' live mappings of one buffer: [`Self::get`]
/// when a map succeeds, [`Self::put`] when it is undone. A revocation waits
/// for none to be left ([`MemoryLocked::wait_unmapped`]), so it also covers
/// importers that unmap after `move_notify` returned.
pub(crate) struct Mappings(Opaque<bindings::atomic_t>);

// SAFETY: The counter is only read and changed with atomic operations
// (`atomic_inc`/`atomic_dec_and_test`), from any task.
unsafe impl Send for Mappings {}
// SAFETY: As for `Send`: every access through `&Mappings` is atomic.
unsafe impl Sync for Mappings {}

impl Mappings {
    pub(crate) fn new() -> Self {
        Mappings(Opaque::new(bindings::atomic_t { counter: 0 }))
    }

    /// Counts a new mapping.
    pub(crate) fn get(&self) {
        // SAFETY: A valid counter.
        unsafe { vfio_pci_dmabuf_shim_mapping_get(self.0.get()) }
    }

    /// A mapping counted by [`Self::get`] is gone; the last one wakes a
    /// waiting revocation.
    pub(crate) fn put(&self) {
        // SAFETY: A valid counter, above zero: every `put` follows its `get`.
        unsafe { vfio_pci_dmabuf_shim_mapping_put(self.0.get()) }
    }
}

/// An entry in a device's list of dma-bufs, with the hold on the device's
/// registration that it carries: state that the device's `memory_lock`
/// guards, changed only through [`MemoryLocked`].
///
/// # Invariants
///
/// `reg` is `Some` exactly while `node` is on the list of `reg`'s device;
/// both change only with that device's `memory_lock` held for writing and
/// with the lock the entry's owner chose for [`DeviceLink::registration`]
/// (a buffer's reservation lock).
pub(crate) struct DeviceLink {
    node: Opaque<bindings::list_head>,
    reg: core::cell::UnsafeCell<Option<Registration>>,
}

// SAFETY: The list node and the registration change only with the device's
// `memory_lock` held for writing and the owner's lock (type invariant), and
// are read under one of them (`MemoryLocked`, and the `unsafe` readers'
// contracts); `Registration` is `Send`.
unsafe impl Send for DeviceLink {}
// SAFETY: As for `Send`: shared access goes through those locks.
unsafe impl Sync for DeviceLink {}

impl DeviceLink {
    /// An entry on no list.
    pub(crate) fn new() -> Self {
        // INVARIANT: No registration, on no list.
        DeviceLink {
            node: Opaque::uninit(),
            reg: core::cell::UnsafeCell::new(None),
        }
    }

    /// The device whose list holds the entry, read without its lock.
    ///
    /// # Safety
    ///
    /// Nothing links or unlinks the entry during the call or while the
    /// returned device is used, other than the caller itself through
    /// [`MemoryLocked::unlink`], after which the device is not used.
    pub(crate) unsafe fn device(&self) -> Option<&CoreDevice> {
        // SAFETY: No concurrent writer, per the caller. The registration
        // keeps the device allocated while it is held.
        unsafe { (*self.reg.get()).as_ref() }.map(Registration::dev)
    }

    /// A new registration of the device whose list holds the entry, which
    /// keeps the device allocated and registered without the entry; `None`
    /// once the entry was unlinked (the device closed).
    ///
    /// # Safety
    ///
    /// The caller holds the lock that every link and unlink of the entry
    /// holds besides the device's `memory_lock` (its owner's choice).
    pub(crate) unsafe fn registration(&self) -> Option<Registration> {
        // SAFETY: `reg` does not change while the caller's lock is held;
        // while set, it keeps its device registered, so one more
        // registration reference can be taken.
        unsafe { (*self.reg.get()).as_ref() }.and_then(|reg| reg.dev().try_get_registration())
    }
}

/// A reference that keeps a vfio device registered (and so its driver bound
/// and its `vfio_pci_core_device` allocated).
///
/// # Invariants
///
/// Holds one registration reference on the device.
pub(crate) struct Registration(NonNull<bindings::vfio_pci_core_device>);

// SAFETY: The reference may be dropped from any thread.
unsafe impl Send for Registration {}
// SAFETY: Only `&CoreDevice` is handed out, which is safe to share.
unsafe impl Sync for Registration {}

impl Registration {
    /// The registered device.
    pub(crate) fn dev(&self) -> &CoreDevice {
        // SAFETY: Registered devices are initialised and stay allocated while
        // the reference is held (type invariant).
        unsafe { CoreDevice::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: We own one registration reference (type invariant).
        unsafe {
            bindings::vfio_device_put_registration(ptr::addr_of_mut!((*self.0.as_ptr()).vdev))
        }
    }
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

/// A `struct pci_dev`.
///
/// # Invariants
///
/// The device stays valid for as long as a reference to this wrapper exists.
#[repr(transparent)]
pub(crate) struct PciDev(Opaque<bindings::pci_dev>);

impl PciDev {
    /// # Safety
    ///
    /// `ptr` points to a valid `pci_dev` that outlives `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::pci_dev) -> &'a Self {
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

    /// Takes a reference on the device.
    pub(crate) fn get(&self) -> PciDevRef {
        // SAFETY: Valid device; pci_dev_get() takes a reference on it.
        unsafe { bindings::pci_dev_get(self.0.get()) };
        // INVARIANT: The reference was taken above.
        PciDevRef(NonNull::from(self).cast())
    }

    /// How `client` reaches this device's BARs; logs why when it cannot, at
    /// a bounded rate.
    pub(crate) fn p2p_map_type(&self, client: &Device) -> bindings::pci_p2pdma_map_type {
        // SAFETY: Both devices are valid.
        unsafe { vfio_pci_dmabuf_shim_p2p_map_type(self.0.get(), client.as_raw()) }
    }
}

/// A reference on a `pci_dev`, dropped with `pci_dev_put()`.
///
/// # Invariants
///
/// Holds one reference on a valid `pci_dev`.
pub(crate) struct PciDevRef(NonNull<bindings::pci_dev>);

// SAFETY: The reference may be used and dropped from any thread.
unsafe impl Send for PciDevRef {}
// SAFETY: Only `&PciDev` is handed out.
unsafe impl Sync for PciDevRef {}

impl core::ops::Deref for PciDevRef {
    type Target = PciDev;
    fn deref(&self) -> &PciDev {
        // SAFETY: The reference keeps the device valid (type invariant).
        unsafe { PciDev::from_raw(self.0.as_ptr()) }
    }
}

impl Drop for PciDevRef {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariant).
        unsafe { bindings::pci_dev_put(self.0.as_ptr()) }
    }
}

/// A `struct device` (the importer's).
#[repr(transparent)]
pub(crate) struct Device(Opaque<bindings::device>);

impl Device {
    fn as_raw(&self) -> *mut bindings::device {
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
        dir: bindings::dma_data_direction,
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
        dir: bindings::dma_data_direction,
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
    pub(crate) unsafe fn iova_destroy(
        &self,
        addr: u64,
        size: u64,
        dir: bindings::dma_data_direction,
    ) {
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
    pub(crate) unsafe fn unmap_resource(
        &self,
        addr: u64,
        len: u64,
        dir: bindings::dma_data_direction,
    ) {
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
    dir: bindings::dma_data_direction,
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

/// A `struct dma_buf` exported by us, whose `priv` is a `T`.
///
/// # Invariants
///
/// The dma-buf is valid for as long as a reference to this wrapper exists,
/// was created by [`DmaBuf::export`] and its `priv` points to a valid `T`
/// until the `release` op.
#[repr(transparent)]
pub(crate) struct DmaBuf<T>(Opaque<bindings::dma_buf>, PhantomData<T>);

impl<T> DmaBuf<T> {
    /// # Safety
    ///
    /// `ptr` is a dma-buf exported by [`DmaBuf::export`] with a `T` as
    /// private data, valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dma_buf) -> &'a Self {
        // SAFETY: Transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut bindings::dma_buf {
        self.0.get()
    }

    /// Exports a dma-buf of `size` bytes with `T`'s ops, private data `data`
    /// and file flags `flags`. Ownership of `data` passes to the dma-buf
    /// (the `release` op drops it); on failure it is dropped here.
    pub(crate) fn export(size: usize, flags: c_int, data: KBox<T>) -> Result<DmaBufRef<T>>
    where
        T: Exporter,
    {
        let raw = KBox::into_raw(data);
        // SAFETY: The ops table is a `static`; `raw` is a valid allocation.
        let ret = unsafe { vfio_pci_dmabuf_shim_export(&T::ops().0, size, flags, raw.cast()) };
        match from_err_ptr(ret).and_then(|p| NonNull::new(p).ok_or(EINVAL)) {
            // INVARIANT: A new dma-buf whose reference we own, with a `T`.
            Ok(p) => Ok(DmaBufRef(p, PhantomData)),
            Err(e) => {
                // SAFETY: On failure dma_buf_export() did not keep `raw`,
                // which came from `KBox::into_raw` above.
                drop(unsafe { KBox::from_raw(raw) });
                Err(e)
            }
        }
    }

    /// The private data.
    pub(crate) fn data(&self) -> &T {
        // SAFETY: `priv` points to a valid `T` until release (invariant).
        unsafe { &*(*self.as_raw()).priv_.cast::<T>() }
    }

    /// Takes back the private data, in the `release` op.
    ///
    /// # Safety
    ///
    /// Called once, from the `release` op; no reference from [`Self::data`]
    /// is used afterwards.
    unsafe fn take_data(&self) -> KBox<T> {
        // SAFETY: `priv` came from `KBox::into_raw` in `export`, and the
        // caller guarantees this is the only taker.
        unsafe { KBox::from_raw((*self.as_raw()).priv_.cast::<T>()) }
    }

    /// Takes the reservation lock.
    pub(crate) fn lock(&self) -> ResvGuard<'_, T> {
        // SAFETY: Valid dma-buf; sleeping lock taken without an acquire
        // context, released by the guard.
        unsafe { vfio_pci_dmabuf_shim_resv_lock(self.as_raw()) };
        ResvGuard(self)
    }

    /// Takes a reference on the dma-buf's file unless it is being released.
    pub(crate) fn try_get_file(&self) -> Option<FileRef> {
        // SAFETY: Valid dma-buf; `file` is set at export and never changes.
        let f = unsafe { bindings::get_file_active(ptr::addr_of_mut!((*self.as_raw()).file)) };
        // INVARIANT: a non-NULL return carries a new reference.
        NonNull::new(f).map(FileRef)
    }
}

/// The reference on a dma-buf that [`DmaBuf::export`] returns: dropped with
/// `dma_buf_put()` unless handed to user space as a file descriptor.
///
/// # Invariants
///
/// Holds one reference on a dma-buf exported with a `T`.
pub(crate) struct DmaBufRef<T>(NonNull<bindings::dma_buf>, PhantomData<T>);

impl<T> core::ops::Deref for DmaBufRef<T> {
    type Target = DmaBuf<T>;
    fn deref(&self) -> &DmaBuf<T> {
        // SAFETY: The reference keeps the dma-buf valid (type invariant).
        unsafe { DmaBuf::from_raw(self.0.as_ptr()) }
    }
}

impl<T> DmaBufRef<T> {
    /// Installs the dma-buf in a new file descriptor with `flags`, which
    /// takes over the reference; on failure the reference is dropped.
    pub(crate) fn into_fd(self, flags: c_int) -> Result<c_int> {
        // SAFETY: Valid dma-buf we hold a reference on.
        let fd = unsafe { bindings::dma_buf_fd(self.0.as_ptr(), flags) };
        if fd < 0 {
            return Err(Error::from_errno(fd));
        }
        core::mem::forget(self);
        Ok(fd)
    }
}

impl<T> Drop for DmaBufRef<T> {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariant).
        unsafe { bindings::dma_buf_put(self.0.as_ptr()) }
    }
}

/// A reference on a file, dropped with `fput()`.
///
/// # Invariants
///
/// Holds one reference on the file.
pub(crate) struct FileRef(NonNull<bindings::file>);

impl FileRef {
    /// Removes every page of every CPU mapping of the file from the page
    /// tables (of every process: each mapping is in the file's address
    /// space); accesses fault again.
    pub(crate) fn zap_cpu_mappings(&self) {
        // SAFETY: The reference (type invariant) keeps the file and its
        // inode, whose address space `f_mapping` is, alive for the call;
        // length 0 means to the end of the file, and private COW copies
        // (none: only shared mappings are allowed) would go too.
        unsafe { bindings::unmap_mapping_range((*self.0.as_ptr()).f_mapping, 0, 0, 1) };
    }
}

impl Drop for FileRef {
    fn drop(&mut self) {
        // SAFETY: We own one reference (type invariant).
        unsafe { bindings::fput(self.0.as_ptr()) }
    }
}

/// The reservation lock of a [`DmaBuf`], held; released on drop.
pub(crate) struct ResvGuard<'a, T>(&'a DmaBuf<T>);

impl<T> ResvGuard<'_, T> {
    /// Tells every dynamic importer to drop its mappings and map again
    /// (`dma_buf_move_notify()`).
    pub(crate) fn move_notify(&self) {
        // SAFETY: Valid dma-buf with its reservation lock held.
        unsafe { bindings::dma_buf_move_notify(self.0.as_raw()) }
    }
}

impl<T> Drop for ResvGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The lock was taken in `DmaBuf::lock`.
        unsafe { vfio_pci_dmabuf_shim_resv_unlock(self.0.as_raw()) }
    }
}

/// A `struct dma_buf_attachment` to one of our dma-bufs.
#[repr(transparent)]
pub(crate) struct Attachment<T>(Opaque<bindings::dma_buf_attachment>, PhantomData<T>);

impl<T> Attachment<T> {
    /// # Safety
    ///
    /// `ptr` is a valid attachment, for `'a`, to a dma-buf exported by
    /// [`DmaBuf::export`] with a `T`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::dma_buf_attachment) -> &'a Self {
        // SAFETY: Transparent wrapper; validity guaranteed by the caller.
        unsafe { &*ptr.cast() }
    }

    fn as_raw(&self) -> *mut bindings::dma_buf_attachment {
        self.0.get()
    }

    pub(crate) fn dmabuf(&self) -> &DmaBuf<T> {
        // SAFETY: Valid attachment; `dmabuf` is set before the exporter's
        // ops are called and never changes. The dma-buf outlives the
        // attachment and is one of ours. Only this field is read: the
        // dma-buf core writes others while we hold the attachment.
        unsafe { DmaBuf::from_raw(ptr::addr_of!((*self.as_raw()).dmabuf).read()) }
    }

    /// The importing device.
    pub(crate) fn dev(&self) -> &Device {
        // SAFETY: As for `dmabuf`: `dev` is set once; the importer's device
        // outlives the attachment.
        unsafe { &*ptr::addr_of!((*self.as_raw()).dev).read().cast::<Device>() }
    }

    /// Whether the importer handles `move_notify` (a dynamic importer).
    pub(crate) fn is_dynamic(&self) -> bool {
        // SAFETY: As for `dmabuf`: `importer_ops` is set once.
        !unsafe { ptr::addr_of!((*self.as_raw()).importer_ops).read() }.is_null()
    }

    /// Whether the importer accepts peer-to-peer addresses.
    pub(crate) fn peer2peer(&self) -> bool {
        // SAFETY: As for `dmabuf`: `peer2peer` is set before `attach`.
        unsafe { ptr::addr_of!((*self.as_raw()).peer2peer).read() }
    }

    /// The exporter's per-attachment value.
    pub(crate) fn exporter_value(&self) -> usize {
        // SAFETY: As for `dmabuf`: `priv` is the exporter's, written only
        // by `set_exporter_value` in the `attach` op.
        unsafe { ptr::addr_of!((*self.as_raw()).priv_).read() as usize }
    }

    /// Sets the exporter's per-attachment value, from the `attach` op.
    pub(crate) fn set_exporter_value(&self, v: usize) {
        // SAFETY: `priv` belongs to the exporter; the `attach` op runs before
        // the attachment is published to anyone else.
        unsafe { ptr::addr_of_mut!((*self.as_raw()).priv_).write(v as *mut c_void) };
    }
}

impl<T: Exporter> Attachment<T> {
    /// The attachment, if its dma-buf is one exported with `T`; `None` for
    /// a dma-buf of any other exporter.
    ///
    /// # Safety
    ///
    /// `ptr` is a valid attachment for `'a`.
    pub(crate) unsafe fn from_raw_if_ours<'a>(
        ptr: *mut bindings::dma_buf_attachment,
    ) -> Option<&'a Self> {
        // SAFETY: Valid attachment: its `dmabuf` is set before it is
        // published and outlives it; a dma-buf's `ops` is set at export and
        // never changes.
        let ops = unsafe { (*ptr::addr_of!((*ptr).dmabuf).read()).ops };
        if !ptr::eq(ops, &T::ops().0) {
            return None;
        }
        // SAFETY: Only `DmaBuf::<T>::export` exports with `T::ops()`: the
        // dma-buf was exported with a `T`.
        Some(unsafe { Self::from_raw(ptr) })
    }
}

/// A DMA-address-only scatter-gather table being filled: no `struct page`,
/// no CPU addresses; each entry carries a DMA address and length.
///
/// # Invariants
///
/// `table` has `left` unfilled entries at its end and `next` is the first
/// of them (NULL once full).
pub(crate) struct SgTableBuilder {
    table: SgTable,
    next: *mut bindings::scatterlist,
    left: u32,
}

impl SgTableBuilder {
    /// Allocates a table of `nents` entries, charged to the caller's memory
    /// cgroup.
    pub(crate) fn new(nents: usize) -> Result<Self> {
        let nents = u32::try_from(nents).map_err(|_| E2BIG)?;
        // SAFETY: All-zero is a valid, empty `sg_table`.
        let mut table = KBox::new(
            unsafe { core::mem::zeroed::<bindings::sg_table>() },
            GFP_KERNEL_ACCOUNT,
        )?;
        // SAFETY: `table` is a valid empty table.
        to_result(unsafe {
            bindings::sg_alloc_table(&mut *table, nents, bindings::GFP_KERNEL_ACCOUNT)
        })?;
        let next = table.sgl;
        // INVARIANT: Allocated with sg_alloc_table(); all `nents` unfilled.
        Ok(SgTableBuilder {
            table: SgTable(table),
            next,
            left: nents,
        })
    }

    /// Fills the next entry.
    ///
    /// # Safety
    ///
    /// `addr .. addr + len` is a DMA address range of the importer the table
    /// is for that reaches MMIO of a memory BAR the caller has claimed (its
    /// PCI bus address when `bus_address`, else mapped for the importer),
    /// and stays so for as long as the table is lent to the importer: the
    /// importer will DMA to it.
    pub(crate) unsafe fn push(&mut self, addr: u64, len: u32, bus_address: bool) -> Result {
        if self.left == 0 || self.next.is_null() {
            return Err(EINVAL);
        }
        let sg = self.next;
        // SAFETY: `sg` is an unfilled entry of our table (type invariant).
        unsafe {
            (*sg).dma_address = addr;
            (*sg).dma_length = len;
            if bus_address {
                (*sg).dma_flags |= bindings::SG_DMA_BUS_ADDRESS;
            }
        }
        self.left -= 1;
        self.next = if self.left == 0 {
            ptr::null_mut()
        } else {
            // SAFETY: `sg` is an entry of a valid table, not the last one.
            unsafe { bindings::sg_next(sg) }
        };
        Ok(())
    }

    /// The full table.
    pub(crate) fn finish(self) -> Result<SgTable> {
        if self.left != 0 {
            return Err(EINVAL);
        }
        Ok(self.table)
    }
}

/// A DMA-address table made by [`SgTableBuilder`], lent to an importer
/// between the `map` and `unmap` ops; freed on drop.
///
/// # Invariants
///
/// `0` was allocated with `sg_alloc_table()`; every entry is filled once the
/// builder hands it out.
pub(crate) struct SgTable(KBox<bindings::sg_table>);

impl SgTable {
    /// Hands the table over as a raw pointer; [`DmaBufOps::unmap`] takes it
    /// back.
    fn into_raw(self) -> *mut bindings::sg_table {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; move the box out.
        KBox::into_raw(unsafe { ptr::read(&this.0) })
    }

    /// The DMA entries `(address, length)`.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let (mut sg, mut left) = (self.0.sgl, self.0.nents);
        core::iter::from_fn(move || {
            if left == 0 || sg.is_null() {
                return None;
            }
            // SAFETY: `sg` is one of the table's `nents` filled entries,
            // alive as long as `self` (type invariant).
            let e = unsafe { ((*sg).dma_address, (*sg).dma_length) };
            left -= 1;
            // SAFETY: As above; sg_next() returns NULL after the last entry.
            sg = unsafe { bindings::sg_next(sg) };
            Some(e)
        })
    }
}

impl Drop for SgTable {
    fn drop(&mut self) {
        // SAFETY: Allocated with sg_alloc_table() (type invariant).
        unsafe { bindings::sg_free_table(&mut *self.0) };
    }
}

/// A CPU mapping of a dma-buf being set up (the `mmap` op), mmap lock held
/// for writing.
#[repr(transparent)]
pub(crate) struct Vma(Opaque<bindings::vm_area_struct>);

impl Vma {
    /// # Safety
    ///
    /// `ptr` is a VMA being set up by the `mmap` op, valid for `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::vm_area_struct) -> &'a Self {
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
    /// # Safety
    ///
    /// `pfn` is a page of a memory BAR that the caller has claimed and that
    /// decodes (the device's `memory_lock` held for reading): never RAM,
    /// which user space would then reach.  The mapping is zapped before the
    /// BAR stops decoding or is released.
    pub(crate) unsafe fn insert_pfn(&self, pfn: u64) -> FaultResult {
        let Ok(pfn) = usize::try_from(pfn) else {
            return FAULT_SIGBUS;
        };
        // SAFETY: Valid fault of a `VM_PFNMAP` mapping set up by
        // [`Vma`]'s owner through `vfio_pci_dmabuf_shim_mmap_setup()`; the
        // mmap lock is held by the fault path; `pfn` is a decoding page of a
        // claimed BAR (caller's contract).
        unsafe {
            let vmf = &*self.0.get();
            bindings::vmf_insert_pfn(vmf.__bindgen_anon_1.vma, vmf.__bindgen_anon_1.address, pfn)
        }
    }
}

/// The exporter of a dma-buf whose private data is a `Self`: the dma-buf ops
/// as safe methods. Their C trampolines are in [`DmaBufOps`]. Pinning is
/// refused (the memory is revocable); vmap is refused (no op), and CPU
/// mappings get their pages from [`Self::fault`]. The ops run in any task,
/// concurrently, each with `&Self`: an exporter is `Send + Sync`.
pub(crate) trait Exporter: Sized + Send + Sync {
    /// The exporter's ops table, a `static` of [`DmaBufOpsTable::of`]: its
    /// address tells this exporter's dma-bufs from any other's.
    fn ops() -> &'static DmaBufOpsTable;
    /// A new attachment; an error refuses it.
    fn attach(attach: &Attachment<Self>) -> Result;
    /// The table of DMA addresses for `attach`, reservation lock held.
    fn map(attach: &Attachment<Self>, dir: bindings::dma_data_direction) -> Result<SgTable>;
    /// Undoes [`Self::map`], reservation lock held; `table` is freed after.
    fn unmap(attach: &Attachment<Self>, table: &SgTable, dir: bindings::dma_data_direction);
    /// The last reference is gone; the private data is dropped after this.
    fn release(dmabuf: &DmaBuf<Self>);
    /// A CPU mapping of the buffer's pages `vm_pgoff ..` (the dma-buf core
    /// checked that they exist); an error refuses it. On success the
    /// mapping is made uncached, `VM_IO | VM_PFNMAP`, and its pages come from
    /// [`Self::fault`].
    fn mmap(dmabuf: &DmaBuf<Self>, vma: &Vma) -> Result;
    /// A CPU access to a page that is not mapped yet.
    fn fault(dmabuf: &DmaBuf<Self>, fault: &Fault) -> FaultResult;
}

/// The C side of an [`Exporter`].
struct DmaBufOps<T>(PhantomData<T>);

/// The dma-buf ops of an [`Exporter`], to be put in a `static`.
pub(crate) struct DmaBufOpsTable(bindings::dma_buf_ops);

// SAFETY: The table is never written; its pointers are to functions.
unsafe impl Sync for DmaBufOpsTable {}

impl DmaBufOpsTable {
    /// The ops of `T`.
    pub(crate) const fn of<T: Exporter>() -> Self {
        Self(DmaBufOps::<T>::OPS)
    }
}

impl<T: Exporter> DmaBufOps<T> {
    const OPS: bindings::dma_buf_ops = bindings::dma_buf_ops {
        attach: Some(Self::attach),
        pin: Some(Self::pin),
        unpin: Some(Self::unpin),
        map_dma_buf: Some(Self::map),
        unmap_dma_buf: Some(Self::unmap),
        release: Some(Self::release),
        mmap: Some(Self::mmap),
        // SAFETY: All-zero is a valid `dma_buf_ops`: the remaining ops are
        // absent (NULL), so vmap is refused.
        ..unsafe { core::mem::zeroed() }
    };

    const VM_OPS: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(Self::fault),
        // SAFETY: All-zero is a valid `vm_operations_struct`: the other
        // ops are absent (NULL).
        ..unsafe { core::mem::zeroed() }
    };

    // The ops are called by the dma-buf core only, with valid pointers to one
    // of our dma-bufs (exported with a `T` by `DmaBuf::export`) and its
    // attachments; each one's `# Safety` section says what else it guarantees.

    /// # Safety
    ///
    /// `att` is a new attachment to a dma-buf exported with `T`.
    unsafe extern "C" fn attach(
        _dmabuf: *mut bindings::dma_buf,
        att: *mut bindings::dma_buf_attachment,
    ) -> c_int {
        // SAFETY: Per the function's contract.
        match T::attach(unsafe { Attachment::from_raw(att) }) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Any pointer: it is not used.
    unsafe extern "C" fn pin(_att: *mut bindings::dma_buf_attachment) -> c_int {
        -(bindings::EOPNOTSUPP as c_int)
    }

    /// # Safety
    ///
    /// Any pointer: it is not used.
    unsafe extern "C" fn unpin(_att: *mut bindings::dma_buf_attachment) {}

    /// # Safety
    ///
    /// `att` is an attachment made by `attach`, whose dma-buf's reservation
    /// lock the caller holds.
    unsafe extern "C" fn map(
        att: *mut bindings::dma_buf_attachment,
        dir: bindings::dma_data_direction,
    ) -> *mut bindings::sg_table {
        // SAFETY: Per the function's contract.
        match T::map(unsafe { Attachment::from_raw(att) }, dir) {
            // `unmap` takes the box back.
            Ok(table) => table.into_raw(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// `att` is an attachment made by `attach` and `sgt` a table `map`
    /// returned for it, handed back once, reservation lock held.
    unsafe extern "C" fn unmap(
        att: *mut bindings::dma_buf_attachment,
        sgt: *mut bindings::sg_table,
        dir: bindings::dma_data_direction,
    ) {
        // SAFETY: `sgt` came from `KBox::into_raw` in `map`, of a full table
        // (the `SgTable` invariant), and is handed back once.
        let table = SgTable(unsafe { KBox::from_raw(sgt) });
        // SAFETY: Per the function's contract.
        T::unmap(unsafe { Attachment::from_raw(att) }, &table, dir);
    }

    /// # Safety
    ///
    /// `dmabuf` was exported with `T`; called once, when its last reference
    /// is dropped.
    unsafe extern "C" fn release(dmabuf: *mut bindings::dma_buf) {
        // SAFETY: Per the function's contract.
        let dmabuf = unsafe { DmaBuf::<T>::from_raw(dmabuf) };
        T::release(dmabuf);
        // SAFETY: This is the release op; the data is not used after this.
        drop(unsafe { dmabuf.take_data() });
    }

    /// # Safety
    ///
    /// `dmabuf` was exported with `T` and `vma` is a mapping of its file
    /// being set up, mmap lock held for writing.
    unsafe extern "C" fn mmap(
        dmabuf: *mut bindings::dma_buf,
        vma: *mut bindings::vm_area_struct,
    ) -> c_int {
        // SAFETY: Per the function's contract.
        let (buf, area) = unsafe { (DmaBuf::<T>::from_raw(dmabuf), Vma::from_raw(vma)) };
        if let Err(e) = T::mmap(buf, area) {
            return e.to_errno();
        }
        // SAFETY: `vma` is being set up under the mmap lock; the ops table
        // is a constant promoted to a static; the mapping holds a reference
        // on the dma-buf's file, so `dmabuf` outlives it.
        unsafe { vfio_pci_dmabuf_shim_mmap_setup(vma, &Self::VM_OPS, dmabuf.cast()) };
        0
    }

    /// # Safety
    ///
    /// `vmf` is a fault in a mapping that `mmap` set up, mmap lock held.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: Per the function's contract; `mmap` stored the dma-buf,
        // kept alive by the mapping, as the VMA's private data.
        let dmabuf = unsafe {
            let vma = (*vmf).__bindgen_anon_1.vma;
            DmaBuf::<T>::from_raw((*vma).vm_private_data.cast())
        };
        // SAFETY: `Fault` is a transparent wrapper of a valid fault.
        T::fault(dmabuf, unsafe { &*vmf.cast::<Fault>() })
    }
}
