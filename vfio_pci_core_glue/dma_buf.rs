// SPDX-License-Identifier: GPL-2.0

//! Exported dma-bufs: the buffer and its references, its reservation lock,
//! attachments, and the dma-buf ops as the safe [`Exporter`] trait with
//! their C trampolines ([`DmaBufOps`]).

use core::{
    marker::PhantomData,
    pin::Pin,
    ptr::{self, NonNull},
};
use kernel::{
    bindings, build_error,
    error::{from_err_ptr, VTABLE_DEFAULT_ERROR},
    ffi::{c_int, c_void},
    prelude::*,
    types::Opaque,
};

use super::{
    dma::{DataDirection, Device},
    mm::{Fault, FaultResult, VmaNew},
    scatterlist::SGTable,
};

// The C shim, `vfio_pci_dmabuf_shim.c`: the helpers this module wraps.
#[allow(improper_ctypes)]
extern "C" {
    fn vfio_pci_dmabuf_shim_export(
        ops: *const bindings::dma_buf_ops,
        size: usize,
        flags: c_int,
        priv_: *mut c_void,
    ) -> *mut bindings::dma_buf;
    fn vfio_pci_dmabuf_shim_mmap_setup(
        vma: *mut bindings::vm_area_struct,
        ops: *const bindings::vm_operations_struct,
        data: *mut c_void,
    );
}

/// A `struct dma_buf` exported by us, whose `priv` is a `T`.
///
/// # Invariants
///
/// The dma-buf is valid for as long as a reference to this wrapper exists,
/// was created by [`DmaBuf::export`] and its `priv` points to a valid,
/// pinned `T` until the `release` op.
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
    /// (the `release` op drops it, in place); on failure it is dropped here.
    pub(crate) fn export(size: usize, flags: c_int, data: Pin<KBox<T>>) -> Result<DmaBufRef<T>>
    where
        T: Exporter,
    {
        // SAFETY: The data is not moved: the box is taken back only to be
        // dropped, as a pinned box (`take_data`), or below.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(data) });
        // SAFETY: The ops table is a `static`; `raw` is a valid allocation.
        let ret = unsafe { vfio_pci_dmabuf_shim_export(&T::ops().0, size, flags, raw.cast()) };
        match from_err_ptr(ret).and_then(|p| NonNull::new(p).ok_or(EINVAL)) {
            // INVARIANT: A new dma-buf whose reference we own, with a `T`.
            Ok(p) => Ok(DmaBufRef(p, PhantomData)),
            Err(e) => {
                // SAFETY: On failure dma_buf_export() did not keep `raw`,
                // which came from `KBox::into_raw` of a pinned box above.
                drop(unsafe { Pin::new_unchecked(KBox::from_raw(raw)) });
                Err(e)
            }
        }
    }

    /// The private data, which stays in place until the `release` op.
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
    unsafe fn take_data(&self) -> Pin<KBox<T>> {
        // SAFETY: `priv` came from `KBox::into_raw` of a pinned box in
        // `export`, and the caller guarantees this is the only taker.
        unsafe { Pin::new_unchecked(KBox::from_raw((*self.as_raw()).priv_.cast::<T>())) }
    }

    /// The reservation object, set at export and never changed.
    fn resv(&self) -> *mut bindings::dma_resv {
        // SAFETY: Valid dma-buf (type invariant); only this field is read.
        unsafe { ptr::addr_of!((*self.as_raw()).resv).read() }
    }

    /// Takes the reservation lock.
    pub(crate) fn lock(&self) -> ResvGuard<'_, T> {
        // SAFETY: The dma-buf's reservation object; a sleeping lock taken
        // without an acquire context (so it cannot fail), released by the
        // guard.
        unsafe { bindings::dma_resv_lock(self.resv(), ptr::null_mut()) };
        // INVARIANT: Taken just above, held until the guard is dropped.
        ResvGuard(ResvLocked(self))
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

/// Proof that the reservation lock of one [`DmaBuf`] is held: what state
/// guarded by that lock asks for.
///
/// # Invariants
///
/// The reservation lock of `0` is held while the proof lives.
pub(crate) struct ResvLocked<'a, T>(&'a DmaBuf<T>);

impl<'a, T> ResvLocked<'a, T> {
    /// A proof for a lock that C holds, as around the `map_dma_buf` and
    /// `unmap_dma_buf` ops. Lockdep checks that it is held now.
    ///
    /// # Safety
    ///
    /// The caller holds `dmabuf`'s reservation lock for `'a`.
    pub(crate) unsafe fn assume(dmabuf: &'a DmaBuf<T>) -> Self {
        // SAFETY: The dma-buf's reservation object; only asserts (lockdep)
        // that it is held.
        unsafe { bindings::dma_resv_assert_held(dmabuf.resv()) };
        // INVARIANT: Held, per the caller.
        ResvLocked(dmabuf)
    }

    /// The dma-buf whose lock is held.
    pub(crate) fn dmabuf(&self) -> &'a DmaBuf<T> {
        self.0
    }

    /// Tells every dynamic importer to drop its mappings and map again
    /// (`dma_buf_move_notify()`).
    pub(crate) fn move_notify(&self) {
        // SAFETY: Valid dma-buf with its reservation lock held.
        unsafe { bindings::dma_buf_move_notify(self.0.as_raw()) }
    }
}

/// The reservation lock of a [`DmaBuf`], taken by [`DmaBuf::lock`] and
/// released on drop; the proof that it is held meanwhile.
pub(crate) struct ResvGuard<'a, T>(ResvLocked<'a, T>);

impl<'a, T> core::ops::Deref for ResvGuard<'a, T> {
    type Target = ResvLocked<'a, T>;
    fn deref(&self) -> &ResvLocked<'a, T> {
        &self.0
    }
}

impl<T> Drop for ResvGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The lock was taken in `DmaBuf::lock`.
        unsafe { bindings::dma_resv_unlock(self.0 .0.resv()) }
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
        unsafe { Device::from_raw(ptr::addr_of!((*self.as_raw()).dev).read()) }
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

    /// The exporter's per-attachment value (0 until the `attach` op set
    /// one with [`NewAttachment::set_exporter_value`]).
    pub(crate) fn exporter_value(&self) -> usize {
        // SAFETY: As for `dmabuf`: `priv` is the exporter's, written only
        // in the `attach` op, before the attachment is published.
        unsafe { ptr::addr_of!((*self.as_raw()).priv_).read() as usize }
    }
}

/// An attachment in the `attach` op, before the dma-buf core publishes it:
/// the only place its exporter value may be written.
pub(crate) struct NewAttachment<'a, T>(&'a Attachment<T>);

impl<T> core::ops::Deref for NewAttachment<'_, T> {
    type Target = Attachment<T>;
    fn deref(&self) -> &Attachment<T> {
        self.0
    }
}

impl<T> NewAttachment<'_, T> {
    /// Sets the exporter's per-attachment value.
    pub(crate) fn set_exporter_value(&self, v: usize) {
        // SAFETY: `priv` belongs to the exporter; this is the `attach` op
        // (the only constructor is its trampoline), which runs before the
        // attachment is published to anyone else.
        unsafe { ptr::addr_of_mut!((*self.as_raw()).priv_).write(v as *mut c_void) };
    }
}

impl<T: Exporter> DmaBuf<T> {
    /// The dma-buf, if it was exported with `T`; `None` for a dma-buf of any
    /// other exporter.
    ///
    /// # Safety
    ///
    /// `ptr` is a valid dma-buf for `'a`.
    pub(crate) unsafe fn from_raw_if_ours<'a>(ptr: *mut bindings::dma_buf) -> Option<&'a Self> {
        // SAFETY: Valid dma-buf; its `ops` is set at export and never
        // changes.
        let ops = unsafe { ptr::addr_of!((*ptr).ops).read() };
        // SAFETY: Only `DmaBuf::<T>::export` exports with `T::ops()`: the
        // dma-buf was exported with a `T`.
        ptr::eq(ops, &T::ops().0).then(|| unsafe { Self::from_raw(ptr) })
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
        // published and outlives it.
        let dmabuf = unsafe { ptr::addr_of!((*ptr).dmabuf).read() };
        // SAFETY: As just said, valid for `'a`. A dma-buf of ours has
        // attachments to it.
        unsafe { DmaBuf::<T>::from_raw_if_ours(dmabuf) }.map(|_| unsafe { Self::from_raw(ptr) })
    }
}

/// The exporter of a dma-buf whose private data is a `Self`: the dma-buf ops
/// as safe functions, named as the C ops, with their C trampolines in
/// [`DmaBufOps`]. Optional ops follow `#[vtable]`: an op the exporter does
/// not implement is absent (NULL) from the table. Pinning is refused (the
/// memory is revocable); vmap is refused (no op); CPU mappings, if
/// [`Self::mmap`] is implemented, get their pages from [`Self::fault`].
/// The ops run in any task, concurrently, each with shared access to the
/// data: an exporter is `Send + Sync`.
#[vtable]
pub(crate) trait Exporter: Sized + Send + Sync {
    /// The exporter's ops table, a `static` of [`DmaBufOpsTable::of`]: its
    /// address tells this exporter's dma-bufs from any other's.
    fn ops() -> &'static DmaBufOpsTable;
    /// What a table returned by [`Self::map_dma_buf`] keeps mapped for the
    /// importer, undone when the table is dropped.
    type Mapping: Send;
    /// A new attachment; an error refuses it. Without it, every importer
    /// may attach.
    fn attach(_attach: &NewAttachment<'_, Self>) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// The table of DMA addresses for `attach`, with the mapping they
    /// belong to; the dma-buf's reservation lock is held (`resv`).
    fn map_dma_buf(
        attach: &Attachment<Self>,
        resv: &ResvLocked<'_, Self>,
        dir: DataDirection,
    ) -> Result<SGTable<Self::Mapping>>;
    /// Undoes [`Self::map_dma_buf`], reservation lock held: dropping
    /// `table` frees it and undoes its mapping.
    fn unmap_dma_buf(
        attach: &Attachment<Self>,
        resv: &ResvLocked<'_, Self>,
        table: SGTable<Self::Mapping>,
        dir: DataDirection,
    );
    /// The last reference is gone; the private data is dropped after this,
    /// with or without the op.
    fn release(_dmabuf: &DmaBuf<Self>) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// A CPU mapping of the buffer's pages `vm_pgoff ..` (the dma-buf core
    /// checked that they exist); an error refuses it. On success the
    /// mapping is made uncached, `VM_IO | VM_PFNMAP`, and its pages come from
    /// [`Self::fault`]. Without it, CPU mappings are refused.
    fn mmap(_dmabuf: &DmaBuf<Self>, _vma: &VmaNew) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
    /// A CPU access to a page that is not mapped yet; required with
    /// [`Self::mmap`].
    fn fault(_dmabuf: &DmaBuf<Self>, _fault: &Fault) -> FaultResult {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
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
    const OPS: bindings::dma_buf_ops = {
        // A CPU mapping gets its pages from `fault`.
        assert!(
            !T::HAS_MMAP || T::HAS_FAULT,
            "an Exporter with mmap needs fault"
        );
        bindings::dma_buf_ops {
            attach: if T::HAS_ATTACH {
                Some(Self::attach)
            } else {
                None
            },
            pin: Some(Self::pin),
            unpin: Some(Self::unpin),
            map_dma_buf: Some(Self::map_dma_buf),
            unmap_dma_buf: Some(Self::unmap_dma_buf),
            // Always: it gives the private data back.
            release: Some(Self::release),
            mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
            // SAFETY: All-zero is a valid `dma_buf_ops`: the remaining ops
            // are absent (NULL), so vmap is refused.
            ..unsafe { core::mem::zeroed() }
        }
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
        match T::attach(&NewAttachment(unsafe { Attachment::from_raw(att) })) {
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
    /// `att` is an attachment to a dma-buf exported with `T`, whose dma-buf's reservation
    /// lock the caller holds.
    unsafe extern "C" fn map_dma_buf(
        att: *mut bindings::dma_buf_attachment,
        dir: DataDirection,
    ) -> *mut bindings::sg_table {
        // SAFETY: Per the function's contract.
        let attach = unsafe { Attachment::from_raw(att) };
        // SAFETY: The caller holds the reservation lock for the call.
        let resv = unsafe { ResvLocked::assume(attach.dmabuf()) };
        match T::map_dma_buf(attach, &resv, dir) {
            // `unmap_dma_buf` takes the box back.
            Ok(table) => table.into_raw(),
            Err(e) => e.to_ptr(),
        }
    }

    /// # Safety
    ///
    /// `att` is an attachment to a dma-buf exported with `T` and `sgt` a table `map_dma_buf`
    /// returned for it, handed back once, reservation lock held.
    unsafe extern "C" fn unmap_dma_buf(
        att: *mut bindings::dma_buf_attachment,
        sgt: *mut bindings::sg_table,
        dir: DataDirection,
    ) {
        // SAFETY: `sgt` came from `SGTable::into_raw` in `map_dma_buf` and is
        // handed back once.
        let table = unsafe { SGTable::<T::Mapping>::from_raw(sgt) };
        // SAFETY: Per the function's contract.
        let attach = unsafe { Attachment::from_raw(att) };
        // SAFETY: The caller holds the reservation lock for the call.
        let resv = unsafe { ResvLocked::assume(attach.dmabuf()) };
        T::unmap_dma_buf(attach, &resv, table, dir);
    }

    /// # Safety
    ///
    /// `dmabuf` was exported with `T`; called once, when its last reference
    /// is dropped.
    unsafe extern "C" fn release(dmabuf: *mut bindings::dma_buf) {
        // SAFETY: Per the function's contract.
        let dmabuf = unsafe { DmaBuf::<T>::from_raw(dmabuf) };
        if T::HAS_RELEASE {
            T::release(dmabuf);
        }
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
        let (buf, area) = unsafe { (DmaBuf::<T>::from_raw(dmabuf), VmaNew::from_raw(vma)) };
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
