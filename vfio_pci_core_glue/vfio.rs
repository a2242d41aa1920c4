// SPDX-License-Identifier: GPL-2.0

//! The vfio-pci core device: its list of dma-bufs, its `memory_lock` and
//! the proof of holding it ([`MemoryLocked`]), the registration that keeps
//! it bound, and the `VFIO_DEVICE_FEATURE` argument helpers.

use core::{
    cell::UnsafeCell,
    marker::PhantomPinned,
    ptr::{self, NonNull},
    sync::atomic::{AtomicBool, AtomicPtr, Ordering},
};
use kernel::{
    bindings, error::to_result, ffi::c_int, prelude::*, types::Opaque, uaccess::UserSliceReader,
};

use super::{
    dma_buf::{DmaBuf, Exporter, ResvLocked},
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
        let r = f(&MemoryReadLocked(self));
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

/// Proof that the `memory_lock` of one device is held for reading: the BARs'
/// state, and that of each [`DeviceLink`] on its list, does not change
/// while it lives.
///
/// # Invariants
///
/// The device's `memory_lock` is held (for reading at least) while it lives.
pub(crate) struct MemoryReadLocked<'a>(&'a CoreDevice);

impl MemoryReadLocked<'_> {
    /// Whether the dma-buf holding `link` is revoked as far as this device
    /// is concerned: `true` unless it is on this device's list and usable.
    pub(crate) fn revoked(&self, link: &DeviceLink) -> bool {
        // `dev` and `revoked` change only with the memory_lock of the device
        // in `dev` held for writing (type invariant of `DeviceLink`): if it
        // is this device, neither changes while we hold it.
        !link.on_list_of(self.0) || link.revoked.load(Ordering::Relaxed)
    }
}

/// Proof that the `memory_lock` of one device is held for writing; it
/// proves it held for reading too.
pub(crate) struct MemoryLocked<'a>(MemoryReadLocked<'a>);

impl<'a> core::ops::Deref for MemoryLocked<'a> {
    type Target = MemoryReadLocked<'a>;
    fn deref(&self) -> &MemoryReadLocked<'a> {
        &self.0
    }
}

impl<'a> MemoryLocked<'a> {
    /// # Safety
    ///
    /// The caller holds `dev`'s `memory_lock` for writing for as long as the
    /// returned value lives. Lockdep checks that it is held now.
    pub(crate) unsafe fn assume(dev: &'a CoreDevice) -> Self {
        // SAFETY: Valid device; only asserts (lockdep) that its memory_lock
        // is held for writing.
        unsafe { vfio_pci_dmabuf_shim_assert_memory_locked(dev.as_raw()) };
        // INVARIANT: Held for writing, per the caller.
        MemoryLocked(MemoryReadLocked(dev))
    }

    fn dev(&self) -> &'a CoreDevice {
        self.0 .0
    }

    /// Whether the device is open. A device that is not open has no
    /// config state to read (hot reset walks closed devices of its set too).
    pub(crate) fn is_open(&self) -> bool {
        // SAFETY: Valid device, memory_lock held. Our callers either have the
        // device open or hold its dev_set lock, as the shim requires.
        unsafe { vfio_pci_dmabuf_shim_is_open(self.dev().as_raw()) }
    }

    /// Whether the BARs can be accessed: memory decode on, in D0, and not in
    /// runtime low power; `false` for a device that is not open.
    pub(crate) fn bar_usable(&self) -> bool {
        // SAFETY: Valid device, memory_lock held; the state is read only
        // while the device is open, as the shim requires.
        self.is_open() && unsafe { vfio_pci_dmabuf_shim_bar_usable(self.dev().as_raw()) }
    }

    /// Claims BAR `bar` for vfio, as the region's mmap does
    /// (`vfio_pci_core_setup_barmap()`); the claim lasts until the device
    /// is closed.
    pub(crate) fn claim_bar(&self, bar: u32) -> Result {
        let bar = c_int::try_from(bar)?;
        // SAFETY: Valid device, memory_lock held for writing, `bar` a
        // standard BAR index (checked by the caller).
        to_result(unsafe { vfio_pci_dmabuf_shim_claim_bar(self.dev().as_raw(), bar) })
    }

    /// Waits until no mapping counted in `mappings` is left, however long
    /// that takes; reports the first long wait of a revocation (`reported`).
    pub(crate) fn wait_unmapped(&self, mappings: &Mappings, reported: &mut bool) {
        // SAFETY: Valid device and counter; `reported` is a local.
        unsafe {
            vfio_pci_dmabuf_shim_wait_unmapped(self.dev().as_raw(), mappings.0.get(), reported)
        }
    }

    /// Waits until every fence of `dmabuf` has signalled, however long that
    /// takes; reports the first long wait of a revocation (`reported`).
    pub(crate) fn wait_idle<T>(&self, dmabuf: &DmaBuf<T>, reported: &mut bool) {
        // SAFETY: Valid device and dma-buf; `reported` is a local.
        unsafe { vfio_pci_dmabuf_shim_wait_idle(self.dev().as_raw(), dmabuf.as_raw(), reported) }
    }

    /// Puts the dma-buf whose reservation lock `resv` proves held on this
    /// device's list, holding `reg`, a registration of this device, and
    /// revoked unless the BARs are usable. `EINVAL` for a registration of
    /// another device, `EBUSY` for a dma-buf that was linked before.
    pub(crate) fn link<T: Listed>(&self, resv: &ResvLocked<'_, T>, reg: Registration) -> Result {
        let dmabuf = resv.dmabuf();
        let link = dmabuf.data().link();
        if !ptr::eq(reg.dev(), self.dev()) {
            return Err(EINVAL);
        }
        if !link.owner.load(Ordering::Relaxed).is_null() {
            return Err(EBUSY);
        }
        let usable = self.bar_usable();
        // SAFETY: Never linked (no owner yet), so `reg` is `None` and nothing
        // reads it without the locks we hold: this device's memory_lock and
        // the owner's reservation lock.
        unsafe { *link.reg.get() = Some(reg) };
        // INVARIANT: `owner` is the dma-buf whose data holds the link (from
        // `Listed`); `dev` mirrors `reg`, and the entry goes on the list of
        // that device, both locks held; `revoked` set with them.
        link.owner.store(dmabuf.as_raw(), Ordering::Relaxed);
        link.revoked.store(!usable, Ordering::Relaxed);
        link.dev.store(self.dev().as_raw(), Ordering::Relaxed);
        // SAFETY: The lock is held; the entry is on no list, and stays
        // allocated and in place until it leaves it: it is pinned in the
        // dma-buf's data, whose drop takes it off (`DeviceLink::drop`).
        unsafe { vfio_pci_dmabuf_shim_link(self.dev().as_raw(), link.node.get()) }
        Ok(())
    }

    /// Takes the dma-buf whose reservation lock `resv` proves held off this
    /// device's list and returns the registration it held; `None` if it is
    /// not on this device's list (any more).
    pub(crate) fn unlink<T: Listed>(&self, resv: &ResvLocked<'_, T>) -> Option<Registration> {
        let link = resv.dmabuf().data().link();
        if !link.on_list_of(self.dev()) {
            return None;
        }
        // SAFETY: On this device's list; with the owner's reservation lock
        // held, nothing else reads or writes the entry's `reg` (type
        // invariant of `DeviceLink`).
        unsafe { self.take_off(link) }
    }

    /// Takes `link` off this device's list and returns the registration it
    /// held (always one: the type invariant of `DeviceLink`).
    ///
    /// # Safety
    ///
    /// `link` is on this device's list, and nothing else reads or writes
    /// its `reg` meanwhile: the caller holds its owner's reservation lock,
    /// or no reference to the owner is left.
    unsafe fn take_off(&self, link: &DeviceLink) -> Option<Registration> {
        // SAFETY: On this device's list (caller), whose lock we hold.
        // INVARIANT: The entry leaves the list as `dev` and `reg` are
        // cleared; `owner` stays, so it is never linked again.
        unsafe { vfio_pci_dmabuf_shim_unlink(self.dev().as_raw(), link.node.get()) };
        link.dev.store(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: No other reader or writer (caller).
        unsafe { (*link.reg.get()).take() }
    }

    /// Revokes (`revoked`) or gives back access to the dma-buf whose
    /// reservation lock `resv` proves held: `true` if that changed its
    /// state, `false` if it was so already or is not on this device's list.
    pub(crate) fn set_revoked<T: Listed>(&self, resv: &ResvLocked<'_, T>, revoked: bool) -> bool {
        let link = resv.dmabuf().data().link();
        if !link.on_list_of(self.dev()) || link.revoked.load(Ordering::Relaxed) == revoked {
            return false;
        }
        // INVARIANT: Both locks held, on this device's list.
        link.revoked.store(revoked, Ordering::Relaxed);
        true
    }

    /// Marks `link`, on this device's list, as waited for by the revoke in
    /// progress (`waiting`), or not; a link on no list of ours is left as
    /// it is.
    pub(crate) fn set_revoking(&self, link: &DeviceLink, waiting: bool) {
        if link.on_list_of(self.dev()) {
            link.revoking.store(waiting, Ordering::Relaxed);
        }
    }

    /// Whether `link` is marked by [`Self::set_revoking`].
    pub(crate) fn revoking(&self, link: &DeviceLink) -> bool {
        link.on_list_of(self.dev()) && link.revoking.load(Ordering::Relaxed)
    }

    /// Whether `link` was marked by [`Self::set_revoking`]; clears the mark.
    pub(crate) fn take_revoking(&self, link: &DeviceLink) -> bool {
        link.on_list_of(self.dev()) && link.revoking.swap(false, Ordering::Relaxed)
    }

    /// Calls `f` with each dma-buf on the device's list that was exported
    /// with `T`; `f` may unlink the one it is given.
    pub(crate) fn for_each<T: Listed>(&self, mut f: impl FnMut(&DmaBuf<T>)) {
        // SAFETY: Valid device; the list is protected by the lock we hold.
        let head = unsafe { ptr::addr_of_mut!((*self.dev().as_raw()).dmabufs) };
        // SAFETY: `head` is an initialised list head.
        let mut pos = unsafe { (*head).next };
        while pos != head {
            // SAFETY: `pos` is on the list, so valid; read `next` before `f`
            // may unlink it.
            let next = unsafe { (*pos).next };
            // SAFETY: Only `DeviceLink`s are put on the list (`link`), and
            // they stay allocated until they leave it, under the lock we hold.
            let link = unsafe { &*kernel::container_of!(pos, DeviceLink, node) };
            let owner = link.owner.load(Ordering::Relaxed);
            // SAFETY: A linked entry's owner is the dma-buf whose data holds
            // it (type invariant of `DeviceLink`), valid while the entry is
            // on the list: the data, and the entry, are dropped in the
            // dma-buf's release, before the dma-buf is freed.
            if let Some(dmabuf) = unsafe { DmaBuf::<T>::from_raw_if_ours(owner) } {
                f(dmabuf);
            }
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

/// A dma-buf exporter whose buffers go on a device's list of dma-bufs: the
/// private data holds the buffer's [`DeviceLink`].
///
/// # Safety
///
/// [`Listed::link`] returns the same field of `self` on every call (so the
/// link lives, and stays in place, exactly as long as the data).
pub(crate) unsafe trait Listed: Exporter {
    /// The buffer's link to its device.
    fn link(&self) -> &DeviceLink;
}

/// A dma-buf's relation to the vfio device whose BAR it exports: the entry
/// on the device's list of dma-bufs, the registration that keeps the device
/// while it is there, and the buffer's revocation. Lives in the dma-buf's
/// data (see [`Listed`]); its state is reached only through proofs of the
/// locks that guard it: [`ResvLocked`] of its dma-buf, [`MemoryReadLocked`]
/// and [`MemoryLocked`] of its device.
///
/// # Invariants
///
/// - `owner` is null until the entry is first linked, then the dma-buf
///   whose data holds the entry, for good.
/// - `dev` is non-null exactly while `node` is on the list of that device
///   and `reg` holds a registration of it.
/// - `node`, `reg`, `dev` and `revoked` change only with that device's
///   `memory_lock` held for writing and `owner`'s reservation lock held
///   (or, in `drop`, with no reference to `owner` left); `revoking` only
///   with the `memory_lock` held for writing.
pub(crate) struct DeviceLink {
    node: Opaque<bindings::list_head>,
    owner: AtomicPtr<bindings::dma_buf>,
    dev: AtomicPtr<bindings::vfio_pci_core_device>,
    reg: UnsafeCell<Option<Registration>>,
    /// Whether importers and CPU mappings are locked out.
    revoked: AtomicBool,
    /// Set by a revoke that changed the buffer's state, until that revoke
    /// has waited for its importers.
    revoking: AtomicBool,
    /// Linked into a C list.
    _pin: PhantomPinned,
}

// SAFETY: The list node and the registration change only under the locks of
// the type invariant and are read under one of them; the rest is atomic.
// `Registration` is `Send`.
unsafe impl Send for DeviceLink {}
// SAFETY: As for `Send`: shared access goes through those locks, or atomics.
unsafe impl Sync for DeviceLink {}

impl DeviceLink {
    /// An entry on no list, revoked.
    pub(crate) fn new() -> Self {
        // INVARIANT: No owner, no device, no registration.
        DeviceLink {
            node: Opaque::uninit(),
            owner: AtomicPtr::new(ptr::null_mut()),
            dev: AtomicPtr::new(ptr::null_mut()),
            reg: UnsafeCell::new(None),
            revoked: AtomicBool::new(true),
            revoking: AtomicBool::new(false),
            _pin: PhantomPinned,
        }
    }

    /// Whether the entry is on `dev`'s list. Stable while the caller holds
    /// `dev`'s `memory_lock`.
    fn on_list_of(&self, dev: &CoreDevice) -> bool {
        self.dev.load(Ordering::Relaxed) == dev.as_raw()
    }
}

impl<T: Listed> ResvLocked<'_, T> {
    /// A new registration of the device whose list holds the dma-buf, which
    /// keeps the device allocated and registered without the list; `None`
    /// once the dma-buf left it (the device closed).
    pub(crate) fn registration(&self) -> Option<Registration> {
        let link = self.dmabuf().data().link();
        // SAFETY: `reg` does not change while the owner's reservation lock is
        // held (type invariant); while set, it keeps its device registered,
        // so one more registration reference can be taken.
        unsafe { (*link.reg.get()).as_ref() }.and_then(|reg| reg.dev().try_get_registration())
    }

    /// Whether the dma-buf is revoked: it is until linked, and after its
    /// device was closed.
    pub(crate) fn revoked(&self) -> bool {
        // Written with the reservation lock held (type invariant).
        self.dmabuf().data().link().revoked.load(Ordering::Relaxed)
    }
}

impl Drop for DeviceLink {
    /// A dma-buf released while its device is open leaves the device's list
    /// here, as its data is dropped; the registration goes after the lock.
    fn drop(&mut self) {
        let dev = self.dev.load(Ordering::Relaxed);
        if dev.is_null() {
            return;
        }
        // SAFETY: Linked, so `reg` holds a registration of `dev` (type
        // invariant), which keeps it valid. Nothing else writes `dev` or
        // `reg` now: they change with the owner's reservation lock held,
        // and the owner is being released, so no one holds a reference to
        // it (the device's `cleanup` unlinks only dma-bufs whose file it
        // holds).
        let dev = unsafe { CoreDevice::from_raw(dev) };
        // SAFETY: On `dev`'s list; nothing else reaches `reg` (as above).
        let reg = dev.with_memory_lock(|locked| unsafe { locked.take_off(self) });
        drop(reg);
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
