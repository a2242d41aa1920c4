// SPDX-License-Identifier: GPL-2.0

//! The vfio-pci core device: its list of dma-bufs, its `memory_lock` and
//! the proof of holding it ([`MemoryLocked`]), the registration that keeps
//! it bound, and the `VFIO_DEVICE_FEATURE` argument helpers.

use core::{
    marker::PhantomData,
    ptr::{self, NonNull},
};
use kernel::{
    bindings, error::to_result, ffi::c_int, prelude::*, types::Opaque, uaccess::UserSliceReader,
};

use super::{
    dma_buf::DmaBuf,
    pci::{PciDev, Provider},
};
use crate::vfio_pci_dmabuf_ranges::Range;

// The C shim, `vfio_pci_dmabuf_shim.c`: the helpers this module wraps.
#[allow(improper_ctypes)]
extern "C" {
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
    fn vfio_pci_dmabuf_shim_link(
        vdev: *mut bindings::vfio_pci_core_device,
        node: *mut bindings::list_head,
    );
    fn vfio_pci_dmabuf_shim_unlink(
        vdev: *mut bindings::vfio_pci_core_device,
        node: *mut bindings::list_head,
    );
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
    fn vfio_pci_dmabuf_shim_claim_bar(
        vdev: *mut bindings::vfio_pci_core_device,
        bar: c_int,
    ) -> c_int;
    fn vfio_pci_dmabuf_shim_cond_resched();
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

    /// The bound driver's `get_dmabuf_phys()` (`vdev->pci_ops`): the
    /// peer-to-peer provider of BAR `region` and the physical run behind each
    /// of `ranges`; `EOPNOTSUPP` for a driver without it. Called from an
    /// ioctl of the open device, which keeps its driver, and so the
    /// provider, bound.
    pub(crate) fn dmabuf_phys(
        &self,
        region: u32,
        ranges: &[Range],
    ) -> Result<(Provider, KVVec<bindings::phys_vec>)> {
        // SAFETY: The device is valid; `pci_ops` is set at probe and stays.
        let ops = unsafe { (*self.as_raw()).pci_ops };
        // SAFETY: Non-NULL `pci_ops` point to the driver's constant table.
        let get = (!ops.is_null())
            .then(|| unsafe { (*ops).get_dmabuf_phys })
            .flatten()
            .ok_or_else(|| Error::from_errno(-(bindings::EOPNOTSUPP as c_int)))?;
        let nr = ranges.len();
        let mut phys = KVVec::<bindings::phys_vec>::with_capacity(nr, GFP_KERNEL_ACCOUNT)?;
        let mut provider = ptr::null_mut();
        // SAFETY: Valid device; `provider` is a local; `phys` has room for
        // `nr` runs; `ranges` are `nr` ranges laid out as
        // `struct vfio_region_dma_range` (`Range` is `repr(C)` of the same
        // two fields), which the op only reads.
        to_result(unsafe {
            get(
                self.as_raw(),
                &mut provider,
                region,
                phys.as_mut_ptr(),
                ranges.as_ptr().cast_mut().cast(),
                nr,
            )
        })?;
        // SAFETY: On success the op filled one run per range.
        unsafe { phys.set_len(nr) };
        let provider = NonNull::new(provider).ok_or(EINVAL)?;
        // SAFETY: The op's provider, from `pcim_p2pdma_provider()` of this
        // device, whose driver is bound (the device is open).
        Ok((unsafe { Provider::from_raw(provider) }, phys))
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
    pub(crate) fn with_memory_lock_read<R>(&self, f: impl FnOnce(&MemoryReadLocked<'_>) -> R) -> R {
        // SAFETY: The device is valid, so is its memory_lock.
        let sem = unsafe { ptr::addr_of_mut!((*self.as_raw()).memory_lock) };
        // SAFETY: `sem` is an initialised rw_semaphore.
        unsafe { bindings::down_read(sem) };
        // INVARIANT: Held for reading until `up_read` below.
        let r = f(&MemoryReadLocked(PhantomData));
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

/// Proof that the device's `memory_lock` is held for reading: the BARs'
/// state does not change while it lives.
///
/// # Invariants
///
/// The device's `memory_lock` is held (for reading at least) while it lives.
pub(crate) struct MemoryReadLocked<'a>(PhantomData<&'a CoreDevice>);

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
