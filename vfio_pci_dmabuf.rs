// SPDX-License-Identifier: GPL-2.0

//! vfio-pci dma-buf exporter for PCI BAR memory.
//!
//! `VFIO_DEVICE_FEATURE_DMA_BUF` turns a list of page-aligned ranges of one
//! memory BAR into a dma-buf, so that another device's driver can DMA into
//! the BAR peer-to-peer. The buffer's bytes are the ranges concatenated in
//! the order given.
//!
//! Importers must be dynamic (`move_notify`) and allow peer-to-peer; each
//! gets DMA addresses for the path between its device and the BAR: PCI bus
//! addresses through a switch; through a host bridge that allows P2P, one
//! IOVA range for the whole buffer where an IOMMU translates the importer's
//! DMA (the DMA IOVA API), a `dma_map_resource()` per contiguous run where
//! none does; a refusal otherwise. The CPU may map the buffer too (`mmap()`
//! of the dma-buf: one mapping, pages faulted in as vfio-pci's BAR mmap
//! does).
//!
//! Access is revoked, with `move_notify` and by zapping every CPU mapping,
//! whenever vfio-pci zaps the user's BAR mappings (memory decode off,
//! resets, low power) and given back once the BAR is usable again; it is
//! revoked for good when the device is closed. Locking: the device's
//! `memory_lock` protects its list of buffers and each buffer's `revoked`
//! state (written with it held for writing, read by CPU faults with it
//! held for reading); each buffer's reservation lock is also held to change
//! `revoked` and the buffer's link to the device, which a fault reads under
//! it alone. The order is `memory_lock`, then the reservation lock.
//!
//! See `Documentation/driver-api/vfio-pci-dmabuf.rst`.

use core::sync::atomic::{AtomicUsize, Ordering};
use kernel::{
    bindings,
    ffi::{c_int, c_void},
    prelude::*,
    uaccess::UserSlice,
};

mod vfio_pci_core_glue;
mod vfio_pci_dmabuf_ranges;

use vfio_pci_core_glue::{
    check_feature, read_ranges, resched_every, Attachment, CoreDevice, DataDirection, DeviceLink,
    DmaBuf, DmaBufOpsTable, Exporter, Fault, FaultResult, IovaMapping, IovaRange, Listed, Mappings,
    MemoryLocked, NewAttachment, Provider, ResourceMappings, ResvLocked, SGTable, SgTableBuilder,
    VmaNew, FAULT_SIGBUS,
};
use vfio_pci_dmabuf_ranges::{
    bar_offset, check_in_bar, check_lengths, ends, runs, segment_count, span, Limits, Range,
    RangeError, Segments, MAX_RANGES, MAX_SEGMENTS,
};

const __LOG_PREFIX: &[u8] = b"vfio_pci_dmabuf\0";

/// `EOPNOTSUPP`, which `kernel::error::code` does not name in 6.12.
fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as c_int))
}

/// `EOVERFLOW`, which `kernel::error::code` does not name in 6.12.
fn eoverflow() -> Error {
    Error::from_errno(-(bindings::EOVERFLOW as c_int))
}

/// Size of `struct vfio_device_feature_dma_buf` without its ranges.
const HEADER_SIZE: usize = core::mem::size_of::<bindings::vfio_device_feature_dma_buf>();
const RANGE_SIZE: usize = core::mem::size_of::<Range>();
const _: () = assert!(RANGE_SIZE == core::mem::size_of::<bindings::vfio_region_dma_range>());
const _: () = assert!(HEADER_SIZE == 16);

/// The exporter's state of one dma-buf (its `priv`), pinned in place for
/// the dma-buf's life.
struct Buffer {
    /// The buffer's relation to its device: its entry in the device's list,
    /// with a hold on the device, until the device is closed or the buffer
    /// released; and whether it is revoked.
    link: DeviceLink,
    /// The BAR's peer-to-peer provider: used only while the device's driver
    /// is bound (a registration held).
    provider: Provider,
    /// CPU physical address that the ranges' offsets count from.
    phys: u64,
    /// PCI bus address of `phys`.
    bus: u64,
    ranges: KVVec<Range>,
    /// The lowest offset and the highest end of the ranges: a device that
    /// reaches both reaches them all.
    span: (u64, u64),
    /// Where each range ends in the buffer, to find a faulting page's range.
    ends: KVVec<u64>,
    /// The range the last CPU fault found: where the next one looks first.
    fault_hint: AtomicUsize,
    /// The buffer's size: the ranges' lengths added up.
    size: u64,
    /// Importers' mappings not yet unmapped.
    mappings: Mappings,
}

// SAFETY: `link` is a field of the buffer, returned on every call.
unsafe impl Listed for Buffer {
    fn link(&self) -> &DeviceLink {
        &self.link
    }
}

/// Handles `VFIO_DEVICE_FEATURE` with `VFIO_DEVICE_FEATURE_DMA_BUF`.
fn feature_dma_buf(dev: &CoreDevice, flags: u32, arg: usize, argsz: usize) -> Result<c_int> {
    if !dev.export_allowed() {
        return Err(eopnotsupp());
    }
    if !check_feature(flags, argsz, bindings::VFIO_DEVICE_FEATURE_GET, HEADER_SIZE)? {
        return Ok(0);
    }

    let mut reader = UserSlice::new(arg, argsz).reader();
    let mut hdr = [0u8; HEADER_SIZE];
    reader.read_slice(&mut hdr)?;
    let word = |i: usize| u32::from_ne_bytes([hdr[i], hdr[i + 1], hdr[i + 2], hdr[i + 3]]);
    let (region, open_flags, req_flags, nr) = (word(0), word(4), word(8), word(12));

    // Upstream's order, so that a request with several faults gets the
    // same answer; the checks upstream lacks come after its own.
    if req_flags != 0 || nr == 0 {
        return Err(EINVAL);
    }
    if region >= bindings::VFIO_PCI_ROM_REGION_INDEX {
        return Err(ENODEV);
    }
    // A BAR the device does not have is ENODEV before the ranges are read,
    // an I/O BAR EINVAL once their lengths are checked.
    let bar = dev.pdev().memory_bar(region)?;
    if nr > MAX_RANGES {
        return Err(E2BIG);
    }
    let nr = nr as usize;
    if argsz < HEADER_SIZE + nr * RANGE_SIZE {
        return Err(EINVAL);
    }

    let list = read_ranges(&mut reader, nr)?;
    let range_error = |e| match e {
        RangeError::Invalid => EINVAL,
        RangeError::Overflow => eoverflow(),
        RangeError::TooBig => E2BIG,
    };
    // No arithmetic on the user's values before they are validated: with
    // CONFIG_RUST_OVERFLOW_CHECKS an overflow is a panic.
    let size = check_lengths(&list, bindings::PAGE_SIZE as u64).map_err(range_error)?;
    let bar = bar.ok_or(EINVAL)?;
    check_in_bar(&list, size, bar.phys, bar.len, bindings::PAGE_SIZE as u64)
        .map_err(range_error)?;
    // O_NONBLOCK is accepted, as upstream (it changes nothing a dma-buf
    // does); other file flags mean nothing for a dma-buf.
    if open_flags & !(bindings::O_ACCMODE | bindings::O_CLOEXEC | bindings::O_NONBLOCK) != 0 {
        return Err(EINVAL);
    }
    let mut range_ends = KVVec::with_capacity(nr, GFP_KERNEL_ACCOUNT)?;
    for (i, end) in ends(&list).enumerate() {
        range_ends.push(end, GFP_KERNEL_ACCOUNT)?;
        resched_every(i);
    }
    let buffer_size = size;
    let size = usize::try_from(size).map_err(|_| EINVAL)?;
    // Validated inside the BAR: there is a span.
    let ranges_span = span(&list).ok_or(EINVAL)?;

    // The driver's view of the ranges (its `get_dmabuf_phys()`): the BAR's
    // peer-to-peer provider and the physical run behind each range. A
    // buffer is kept as offsets from one physical base, so runs that do not
    // follow the ranges' offsets are refused.
    let (provider, phys) = dev.dmabuf_phys(region, &list)?;
    let base = phys_base(&list, &phys).ok_or(EINVAL)?;
    drop(phys);
    // SAFETY: The device is open (this is its ioctl): its driver is bound.
    let bus_offset = unsafe { provider.bus_offset() };

    // The BAR is vfio's before any of it is handed out: a range held by
    // another driver (a boot framebuffer) is refused as the mmap refuses it.
    dev.with_memory_lock(|locked| locked.claim_bar(region))?;

    let registration = dev.try_get_registration().ok_or(ENODEV)?;
    let buffer = KBox::pin(
        Buffer {
            link: DeviceLink::new(),
            provider,
            phys: base,
            bus: base.wrapping_add(bus_offset),
            ranges: list,
            span: ranges_span,
            ends: range_ends,
            fault_hint: AtomicUsize::new(0),
            size: buffer_size,
            mappings: Mappings::new(),
        },
        GFP_KERNEL_ACCOUNT,
    )?;
    let dmabuf = DmaBuf::export(size, open_flags as c_int, buffer)?;
    // Revoked unless the BARs are usable now; on failure our reference goes,
    // and the registration with it.
    dev.with_memory_lock(|locked| locked.link(&dmabuf.lock(), registration))?;

    // On failure our reference goes, and `release` cleans up.
    dmabuf.into_fd(open_flags as c_int)
}

/// The physical address that the ranges' offsets count from, if each run
/// of `phys` is its range at that base.
fn phys_base(ranges: &[Range], phys: &[bindings::phys_vec]) -> Option<u64> {
    let first = ranges.first()?;
    let base = phys.first()?.paddr.checked_sub(first.offset)?;
    for (i, (range, run)) in ranges.iter().zip(phys).enumerate() {
        if base.checked_add(range.offset)? != run.paddr || range.length != run.len as u64 {
            return None;
        }
        resched_every(i);
    }
    (ranges.len() == phys.len()).then_some(base)
}

/// Revokes (`revoke`) or restores access to every buffer of `locked`'s
/// device. A revoke tells every importer of every buffer first, then waits,
/// with no time limit, for all their fences and then for every mapping to
/// be unmapped (an importer may unmap after `move_notify` returns, from a
/// work item, say): only then may the BAR go away. The unmaps flushed the
/// IOTLB, so no translation of a buffer survives its revocation. The
/// temporary revokes (reset, decode off, low power) wait as the permanent
/// one at close does: the BAR stops decoding in each. A revoke waits only
/// for the buffers whose state it changed (one already revoked was waited
/// for when it was, and cannot be mapped since), and skips buffers whose
/// file is being released: they have no importer or CPU mapping left, and
/// `release` unlinks them once it gets the lock.
///
/// A device that is not open has no importers (its buffers were revoked for
/// good at close) and no config state, so nothing is done or read.
fn move_all(locked: &MemoryLocked<'_>, revoke: bool) {
    if !locked.is_open() {
        return;
    }
    let usable = !revoke && locked.bar_usable();
    locked.for_each(|dmabuf: &DmaBuf<Buffer>| {
        let Some(file) = dmabuf.try_get_file() else {
            return;
        };
        // Importers are told only when the state changes; a revoke removes
        // every CPU mapping's pages before it returns (they fault back in
        // once usable).
        let resv = dmabuf.lock();
        let changed = locked.set_revoked(&resv, !usable);
        if changed {
            if !usable {
                file.zap_cpu_mappings();
            }
            resv.move_notify();
        }
        locked.set_revoking(&dmabuf.data().link, changed && !usable);
    });
    if !usable {
        // A buffer whose file is released meanwhile waits for the lock we
        // hold to leave the list (`DeviceLink`'s drop): it stays allocated.
        let mut reported = false;
        locked.for_each(|dmabuf: &DmaBuf<Buffer>| {
            if locked.revoking(&dmabuf.data().link) {
                locked.wait_idle(dmabuf, &mut reported)
            }
        });
        let mut reported = false;
        locked.for_each(|dmabuf: &DmaBuf<Buffer>| {
            if locked.take_revoking(&dmabuf.data().link) {
                locked.wait_unmapped(&dmabuf.data().mappings, &mut reported)
            }
        });
    }
}

/// Revokes every buffer of a closing device for good and detaches them.
fn cleanup(locked: &MemoryLocked<'_>) {
    move_all(locked, true);
    locked.for_each(|dmabuf: &DmaBuf<Buffer>| {
        // A buffer whose file is being released is left to its release,
        // which waits for the lock we hold to unlink it; it has no importers.
        if let Some(_file) = dmabuf.try_get_file() {
            // The closing caller holds its own reference on the device, so
            // this one can go under the lock.
            drop(locked.unlink(&dmabuf.lock()));
        }
    });
}

/// How an attachment's device reaches the BAR, decided at attach time and
/// kept as the attachment's exporter value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// PCI bus addresses, through a switch.
    Bus = 1,
    /// Through the host bridge, the importer's DMA untranslated: one
    /// `dma_map_resource()` per contiguous run.
    Host = 2,
    /// Through the host bridge and an IOMMU domain: one IOVA range for the
    /// whole buffer, each run linked into it.
    HostIova = 3,
    /// Not a PCI device: no table, as it has no path of its own. iommufd
    /// attaches so (its `/dev/iommu`) and asks for the physical range
    /// instead, with `vfio_pci_dma_buf_iommufd_map()`.
    NoTable = 4,
}

fn map_path(attach: &Attachment<Buffer>) -> Path {
    match attach.exporter_value() {
        1 => Path::Bus,
        2 => Path::Host,
        3 => Path::HostIova,
        _ => Path::NoTable,
    }
}

/// What an importer's table keeps mapped, undone when the table is dropped
/// (in `unmap`, or when a `map` fails half-way).
enum Mapping {
    /// PCI bus addresses: nothing to undo.
    Bus,
    /// One `dma_map_resource()` per contiguous run.
    Runs(ResourceMappings),
    /// The buffer's one IOVA range, held for its drop.
    Iova { _range: IovaMapping },
}

/// `map` through an IOMMU with the buffer's one IOVA range, `iova`: the runs
/// linked into it in buffer order and synchronised once; the table cuts it
/// only at the importer's limits. A table of more than [`MAX_SEGMENTS`]
/// entries is `E2BIG`, found before anything is linked. Any other failure
/// undoes what was linked and frees the range: `ENOMEM`.
fn map_one_iova(mut iova: IovaRange, buffer: &Buffer, limits: Limits) -> Result<SGTable<Mapping>> {
    let count = segment_count(iova.addr(), buffer.size, limits);
    if count > MAX_SEGMENTS {
        return Err(E2BIG);
    }
    for (i, run) in runs(&buffer.ranges).enumerate() {
        // SAFETY: A run of the buffer's ranges, which lie in its BAR
        // (checked at create). The BAR is claimed while the buffer is not
        // revoked (the device open), which `map_table` checked under the
        // reservation lock; a revocation, before the device lets the BAR go,
        // waits for the importers' unmaps, which drop the range.
        unsafe { iova.link(buffer.phys + run.offset, run.length) }.map_err(|_| ENOMEM)?;
        resched_every(i);
    }
    let iova = iova.sync().map_err(|_| ENOMEM)?;
    let segments = Segments::new(iova.addr(), buffer.size, limits);
    // SAFETY: The segments of the IOVA range just linked for this importer,
    // whose every byte maps the buffer's BAR (above), kept by the table.
    let table = unsafe { segment_table(count, segments, false) }?;
    table.finish(Mapping::Iova { _range: iova })
}

/// The importer's table of the `count` segments `segments` yields (counted
/// with [`segment_count`]), filled, for [`SgTableBuilder::finish`] to give
/// the mapping they belong to; `E2BIG` for more than [`MAX_SEGMENTS`].
///
/// # Safety
///
/// Every segment is a DMA address range of the importer reaching the
/// buffer's BAR for as long as the mapping the table will own lives, as
/// [`SgTableBuilder::push`] requires.
unsafe fn segment_table(
    count: u64,
    segments: impl Iterator<Item = (u64, u32)>,
    bus_addr: bool,
) -> Result<SgTableBuilder> {
    if count > MAX_SEGMENTS {
        return Err(E2BIG);
    }
    let mut table = SgTableBuilder::new(usize::try_from(count).map_err(|_| E2BIG)?)?;
    for (i, (addr, len)) in segments.enumerate() {
        // SAFETY: A segment of `segments` (caller's contract).
        unsafe { table.push(addr, len, bus_addr) }?;
        resched_every(i);
    }
    Ok(table)
}

/// Builds the importer's table: one entry per segment of each contiguous
/// run, at bus addresses or at addresses mapped through the DMA API; of
/// the buffer's one IOVA range where an IOMMU translates, unless no range of
/// the buffer's size is free (then a mapping per run, as without an IOMMU).
fn map_table(
    attach: &Attachment<Buffer>,
    resv: &ResvLocked<'_, Buffer>,
    dir: DataDirection,
) -> Result<SGTable<Mapping>> {
    let buffer = resv.dmabuf().data();
    if resv.revoked() {
        return Err(ENODEV);
    }
    let dev = attach.dev();
    // Whole pages only: an importer that cannot take one page per entry is
    // refused.
    let limits = dev
        .dma_limits()
        .in_pages(bindings::PAGE_SIZE as u64)
        .ok_or(EINVAL)?;
    let path = map_path(attach);
    if path == Path::NoTable {
        return Err(eopnotsupp());
    }
    // Through an IOMMU the IOVA range is allocated within the importer's
    // DMA mask.
    if path == Path::HostIova {
        let first = buffer.ranges.first().ok_or(EINVAL)?;
        if let Some(iova) = dev.iova_range(buffer.phys + first.offset, buffer.size, dir) {
            return map_one_iova(iova, buffer, limits);
        }
    }
    let bus_path = path == Path::Bus;
    // An importer whose DMA mask does not reach the BAR (a 32-bit device,
    // a BAR above 4 GiB, no IOMMU to translate) is refused: it would
    // address something else.
    let (base, translated) = if bus_path {
        (buffer.bus, false)
    } else {
        (buffer.phys, true)
    };
    // The device's limit is an upper bound: reaching the span's highest
    // byte is reaching every run.
    let (lo, hi) = buffer.span;
    if !dev.reaches(base + lo, hi - lo, translated) {
        return Err(EINVAL);
    }

    // On the host-bridge path, each run mapped through the DMA API, undone
    // when `mapping` is dropped (on failure, or with the table). The bus
    // path maps nothing: a run's address is the BAR's bus address plus its
    // offset.
    let mapping = if bus_path {
        Mapping::Bus
    } else {
        let mut maps = dev.resource_mappings(dir, runs(&buffer.ranges).count())?;
        for (i, run) in runs(&buffer.ranges).enumerate() {
            // SAFETY: A run of the buffer's ranges, in its BAR (checked at
            // create), claimed while the buffer is not revoked (checked
            // above, as for `map_one_iova`); kept by the table.
            unsafe { maps.map(buffer.phys + run.offset, run.length) }?;
            resched_every(i);
        }
        Mapping::Runs(maps)
    };

    // Each run's DMA address: the one the DMA API gave it, or the BAR's
    // bus address plus its offset.
    let maps = match &mapping {
        Mapping::Runs(maps) => Some(maps),
        _ => None,
    };
    let run_addrs = || {
        runs(&buffer.ranges).enumerate().map(move |(i, run)| {
            match maps.and_then(|maps| maps.addr(i)) {
                Some(addr) => (addr, run.length),
                None => (buffer.bus + run.offset, run.length),
            }
        })
    };
    let mut count = 0u64;
    for (i, (addr, length)) in run_addrs().enumerate() {
        count = count.saturating_add(segment_count(addr, length, limits));
        resched_every(i);
    }
    let segments = run_addrs().flat_map(|(addr, length)| Segments::new(addr, length, limits));
    // SAFETY: Each run's bus address in the BAR, which the importer reaches
    // through the switch (the path checked at attach), or its address mapped
    // for the importer just above, kept by the table.
    let table = unsafe { segment_table(count, segments, bus_path) }?;
    table.finish(mapping)
}

static BUFFER_OPS: DmaBufOpsTable = DmaBufOpsTable::of::<Buffer>();

#[vtable]
impl Exporter for Buffer {
    fn ops() -> &'static DmaBufOpsTable {
        &BUFFER_OPS
    }

    type Mapping = Mapping;

    /// Dynamic peer-to-peer importers only, while the buffer is usable; a
    /// PCI importer's path to the BAR is decided here, and one with none is
    /// refused.
    fn attach(attach: &NewAttachment<'_, Buffer>) -> Result {
        if !attach.is_dynamic() || !attach.peer2peer() {
            return Err(eopnotsupp());
        }
        let dmabuf = attach.dmabuf();
        // Keeps the device's driver bound, and so the BAR's provider, while
        // its map type is read; none once the device was closed.
        let registration = {
            let resv = dmabuf.lock();
            if resv.revoked() {
                return Err(ENODEV);
            }
            if !attach.dev().is_pci() {
                attach.set_exporter_value(Path::NoTable as usize);
                return Ok(());
            }
            resv.registration().ok_or(ENODEV)?
        };
        // SAFETY: The registration keeps the provider's driver bound.
        let path = match unsafe { dmabuf.data().provider.map_type(attach.dev()) } {
            bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_BUS_ADDR => Path::Bus,
            bindings::pci_p2pdma_map_type_PCI_P2PDMA_MAP_THRU_HOST_BRIDGE => {
                if attach.dev().dma_translated() {
                    Path::HostIova
                } else {
                    Path::Host
                }
            }
            _ => {
                registration.dev().pdev().log_refused(attach.dev());
                return Err(eopnotsupp());
            }
        };
        attach.set_exporter_value(path as usize);
        Ok(())
    }

    /// The importer's table of the buffer (see [`map_table`]), counted
    /// until it is unmapped: a revocation waits for that.
    fn map_dma_buf(
        attach: &Attachment<Buffer>,
        resv: &ResvLocked<'_, Buffer>,
        dir: DataDirection,
    ) -> Result<SGTable<Mapping>> {
        let table = map_table(attach, resv, dir)?;
        resv.dmabuf().data().mappings.get();
        Ok(table)
    }

    /// Undoes `map_dma_buf`: dropping the table unmaps the runs or the
    /// buffer's IOVA range. No translation of the BAR is left behind: on a
    /// lazy IOMMU domain the IOTLB is flushed now, not by the flush queue's
    /// timer. Then a revocation waiting for the last mapping may go on.
    fn unmap_dma_buf(
        attach: &Attachment<Buffer>,
        resv: &ResvLocked<'_, Buffer>,
        table: SGTable<Mapping>,
        _dir: DataDirection,
    ) {
        let mapped = !matches!(table.mapping(), Mapping::Bus);
        drop(table);
        if mapped {
            attach.dev().flush_iotlb();
        }
        resv.dmabuf().data().mappings.put();
    }

    // No `release`: the buffer leaves its device's list as it is dropped
    // (`DeviceLink`'s drop).

    /// Shared mappings only, as vfio-pci's BAR mmap; a buffer whose device
    /// was closed (revoked for good) cannot be mapped. Write access follows
    /// the file's mode (the VFS refuses `PROT_WRITE` on an `O_RDONLY` buffer,
    /// now and through `mprotect()`), sizes and offsets past the buffer are
    /// refused by the dma-buf core.
    fn mmap(dmabuf: &DmaBuf<Buffer>, vma: &VmaNew) -> Result {
        if !vma.shared() {
            return Err(EINVAL);
        }
        if dmabuf.lock().registration().is_none() {
            return Err(ENODEV);
        }
        Ok(())
    }

    /// Inserts the BAR page behind the faulting page of the buffer, under
    /// the device's `memory_lock` held for reading, as vfio-pci's BAR mmap
    /// does: a revoke waits for the insertion and then zaps it; an access
    /// while revoked gets `SIGBUS`; an access during a reset waits for it.
    fn fault(dmabuf: &DmaBuf<Buffer>, fault: &Fault) -> FaultResult {
        let buffer = dmabuf.data();
        let page = bindings::PAGE_SIZE as u64;
        let hint = buffer.fault_hint.load(Ordering::Relaxed);
        let Some((offset, range)) = fault
            .pgoff()
            .checked_mul(page)
            .and_then(|off| bar_offset(&buffer.ranges, &buffer.ends, off, hint))
        else {
            return FAULT_SIGBUS;
        };
        buffer.fault_hint.store(range, Ordering::Relaxed);
        // Holds the device while its lock is taken; none once it was closed.
        // The reservation lock goes first: it nests inside `memory_lock`.
        let reg = dmabuf.lock().registration();
        let Some(reg) = reg else {
            return FAULT_SIGBUS;
        };
        reg.dev().with_memory_lock_read(|locked| {
            if locked.revoked(&buffer.link) {
                FAULT_SIGBUS
            } else {
                // SAFETY: A page of the buffer's ranges, in its BAR (checked
                // at create), of the device whose lock is held. Not revoked,
                // under `memory_lock` held for reading: the device is open,
                // the BAR claimed and decoding; every revocation zaps the
                // buffer's CPU mappings.
                unsafe { fault.insert_pfn(locked, (buffer.phys + offset) / page) }
            }
        })
    }
}

// ---- Entry points called from C -------------------------------------------

/// `VFIO_DEVICE_FEATURE_DMA_BUF`: creates a dma-buf and returns its fd, or
/// returns 0 for a PROBE, or a negative errno.
///
/// # Safety
///
/// `vdev` is an open vfio-pci core device, valid for the duration of the
/// call; `arg` is a user pointer to `argsz` bytes.
#[no_mangle]
pub unsafe extern "C" fn vfio_pci_core_feature_dma_buf(
    vdev: *mut bindings::vfio_pci_core_device,
    flags: u32,
    arg: *mut c_void,
    argsz: usize,
) -> c_int {
    // SAFETY: Valid for the call, per the contract above.
    let dev = unsafe { CoreDevice::from_raw(vdev) };
    match feature_dma_buf(dev, flags, arg as usize, argsz) {
        Ok(v) => v,
        Err(e) => e.to_errno(),
    }
}

/// Revokes (`revoked`) or, if the BARs are usable, restores every dma-buf of
/// the device.
///
/// # Safety
///
/// `vdev` is a valid vfio-pci core device whose `memory_lock` the caller
/// holds for writing.
#[no_mangle]
pub unsafe extern "C" fn vfio_pci_dma_buf_move(
    vdev: *mut bindings::vfio_pci_core_device,
    revoked: bool,
) {
    // SAFETY: Valid device with memory_lock held, per the contract above.
    let locked = unsafe { MemoryLocked::assume(CoreDevice::from_raw(vdev)) };
    move_all(&locked, revoked);
}

/// `vfio_pci_dma_buf_iommufd_map()`: the CPU physical range behind `att`'s
/// buffer, for iommufd to map into an I/O address space itself. Only a
/// buffer of a single range has one: a buffer of several ranges is
/// `EOPNOTSUPP` (the ranges counted as requested, also those that follow
/// each other in the BAR, as upstream counts them), and so is any other
/// exporter's dma-buf; a revoked buffer is `ENODEV`.
///
/// # Safety
///
/// `att` is a valid attachment whose dma-buf's reservation lock the caller
/// holds; `phys` is valid for writes.
#[no_mangle]
pub unsafe extern "C" fn vfio_pci_dmabuf_iommufd_phys(
    att: *mut bindings::dma_buf_attachment,
    phys: *mut bindings::phys_vec,
) -> c_int {
    // SAFETY: Valid attachment, per the contract above.
    let Some(attach) = (unsafe { Attachment::<Buffer>::from_raw_if_ours(att) }) else {
        return eopnotsupp().to_errno();
    };
    // SAFETY: The caller holds the reservation lock for the call.
    let resv = unsafe { ResvLocked::assume(attach.dmabuf()) };
    if resv.revoked() {
        return ENODEV.to_errno();
    }
    let buffer = resv.dmabuf().data();
    let [range] = &buffer.ranges[..] else {
        return eopnotsupp().to_errno();
    };
    // The buffer's size was checked to fit a `usize` at create.
    let Ok(len) = usize::try_from(range.length) else {
        return EINVAL.to_errno();
    };
    // SAFETY: Valid for writes, per the contract above. The range was
    // validated inside the BAR: the addition does not overflow.
    unsafe {
        phys.write(bindings::phys_vec {
            paddr: buffer.phys + range.offset,
            len,
        })
    };
    0
}

/// Revokes every dma-buf of a closing device for good and detaches them.
///
/// # Safety
///
/// `vdev` is a valid vfio-pci core device being closed; the caller does not
/// hold its `memory_lock`.
#[no_mangle]
pub unsafe extern "C" fn vfio_pci_dma_buf_cleanup(vdev: *mut bindings::vfio_pci_core_device) {
    // SAFETY: Valid device, per the contract above.
    unsafe { CoreDevice::from_raw(vdev) }.with_memory_lock(cleanup);
}
