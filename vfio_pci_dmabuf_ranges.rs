// SPDX-License-Identifier: GPL-2.0

//! Range validation and DMA segment planning for the vfio-pci dma-buf exporter.
//!
//! Pure logic with no kernel dependencies (only `core`), so that the same
//! file is compiled into `vfio-pci-core` and tested on the host with
//! `cargo test` (see `tools/testing/selftests/vfio/ranges/`).
//!
//! A request names ranges of one BAR. [`validate`] checks them against the
//! BAR ([`check_lengths`] and [`check_in_bar`], in upstream's order) and
//! returns the buffer size. [`runs`] merges ranges that follow each
//! other in the BAR into physically contiguous runs, and [`Segments`] cuts a
//! run, once given its DMA address, into scatter-gather entries that respect
//! the importer's maximum segment size and segment boundary
//! ([`segment_count`] counts them without the walk). [`ends`] and
//! [`bar_offset`] find the BAR byte behind a byte of the buffer (CPU
//! mappings fault in one page at a time).

// Items are `pub` for the host crate; in the kernel the module is private.
#![allow(unreachable_pub)]

/// Most ranges one request may carry: 262144 (`1 << 18`), 1 GiB of 4 KiB
/// pages. The range list is kept for the buffer's lifetime (16 bytes a range).
pub const MAX_RANGES: u32 = 1 << 18;

/// Most entries the table of one importer's mapping of a buffer may have:
/// 1048576 (`1 << 20`, 32 MiB of scatterlist). More is refused with
/// `E2BIG` when the buffer is mapped, before anything is allocated: a
/// legal request (many overlapping ranges, an importer with small
/// segments) would otherwise ask for any amount of memory and time.
pub const MAX_SEGMENTS: u64 = 1 << 20;

/// One range of a BAR, as in `struct vfio_region_dma_range`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Range {
    /// Offset of the range from the start of the BAR, in bytes.
    pub offset: u64,
    /// Length of the range in bytes.
    pub length: u64,
}

/// Why [`validate`] refused a range list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Empty list or range, unaligned offset or length, lengths that add up
    /// to 2^63 or more, or a range past the end of the BAR (`EINVAL`).
    Invalid,
    /// The range's last byte is past the end of the address space: the
    /// BAR's start plus `offset + length` overflows (`EOVERFLOW`, as
    /// upstream).
    Overflow,
    /// The buffer would be larger than [`max_size`] allows (`E2BIG`).
    TooBig,
}

/// The largest buffer a BAR of `bar_size` bytes may give: the BAR's size,
/// or [`MAX_RANGES`] pages (the largest request of distinct single pages)
/// where the BAR is smaller. A bigger buffer repeats BAR bytes for no use
/// and would make an importer's mapping cost what the user asks (table
/// entries, IOMMU page tables), not what the device has.
pub fn max_size(bar_size: u64, page_size: u64) -> u64 {
    bar_size.max(u64::from(MAX_RANGES).saturating_mul(page_size))
}

/// Checks `ranges` against a BAR of `bar_size` bytes at address `bar_start`
/// and returns the total length of the buffer (the sum of the lengths):
/// [`check_lengths`], then [`check_in_bar`].
///
/// Every range must be non-empty, start and end on a multiple of `page_size`
/// (a power of two) and lie inside the BAR. Ranges may overlap and come in
/// any order, up to [`max_size`] in all. An empty list is refused.
// The exporter makes the two checks apart (it looks the BAR up between
// them, as upstream does); the host's tests and fuzzer call this.
#[allow(dead_code)]
pub fn validate(
    ranges: &[Range],
    bar_start: u64,
    bar_size: u64,
    page_size: u64,
) -> Result<u64, RangeError> {
    let total = check_lengths(ranges, page_size)?;
    check_in_bar(ranges, total, bar_start, bar_size, page_size)?;
    Ok(total)
}

/// The checks of a request that need no BAR, over every range, in the
/// order upstream makes them (so that a request with several faults gets
/// upstream's answer): no range is empty, each starts and ends on a
/// multiple of `page_size` (a power of two), and the lengths add up to less
/// than 2^63 (`Invalid` for each). Returns the total length.
pub fn check_lengths(ranges: &[Range], page_size: u64) -> Result<u64, RangeError> {
    let mask = page_size - 1;
    let mut total: u64 = 0;

    if ranges.is_empty() {
        return Err(RangeError::Invalid);
    }
    for r in ranges {
        if r.length == 0 || (r.offset | r.length) & mask != 0 {
            return Err(RangeError::Invalid);
        }
        total = total.checked_add(r.length).ok_or(RangeError::Invalid)?;
    }
    if total >> 63 != 0 {
        return Err(RangeError::Invalid);
    }
    Ok(total)
}

/// The checks against the BAR, range by range in order, after
/// [`check_lengths`] gave `total`: a range whose last byte's address
/// (`bar_start + offset + length - 1`) is past the end of the address space
/// is `Overflow`, one past the end of the BAR `Invalid`; then a buffer
/// larger than [`max_size`] is `TooBig`.
pub fn check_in_bar(
    ranges: &[Range],
    total: u64,
    bar_start: u64,
    bar_size: u64,
    page_size: u64,
) -> Result<(), RangeError> {
    for r in ranges {
        let end = r.offset.checked_add(r.length).ok_or(RangeError::Overflow)?;
        bar_start.checked_add(end).ok_or(RangeError::Overflow)?;
        if end > bar_size {
            return Err(RangeError::Invalid);
        }
    }
    if total > max_size(bar_size, page_size) {
        return Err(RangeError::TooBig);
    }
    Ok(())
}

/// Iterator over the physically contiguous runs of a range list: ranges
/// where each one starts where the previous one ended are merged into one.
/// The concatenation of the runs covers the same bytes, in the same order,
/// as the ranges.
#[derive(Clone)]
pub struct Runs<'a> {
    rest: &'a [Range],
}

/// Returns the contiguous runs of `ranges` (see [`Runs`]).
pub fn runs(ranges: &[Range]) -> Runs<'_> {
    Runs { rest: ranges }
}

impl Iterator for Runs<'_> {
    type Item = Range;

    fn next(&mut self) -> Option<Range> {
        let (first, mut rest) = self.rest.split_first()?;
        let mut run = *first;
        while let Some((r, tail)) = rest.split_first() {
            // Validated ranges end inside the BAR, so neither sum overflows;
            // on any other list a run ends where one would.
            if run.offset.checked_add(run.length) != Some(r.offset) {
                break;
            }
            let Some(length) = run.length.checked_add(r.length) else {
                break;
            };
            run.length = length;
            rest = tail;
        }
        self.rest = rest;
        Some(run)
    }
}

/// The BAR offsets that `ranges` cover at the extremes: the lowest offset
/// and the highest end, so that every byte of every range lies in between;
/// `None` for no ranges or an end past `u64::MAX`. A device that can address
/// both ends as a straight span reaches every range.
pub fn span(ranges: &[Range]) -> Option<(u64, u64)> {
    let mut span: Option<(u64, u64)> = None;
    for r in ranges {
        let end = r.offset.checked_add(r.length)?;
        span = Some(match span {
            None => (r.offset, end),
            Some((lo, hi)) => (lo.min(r.offset), hi.max(end)),
        });
    }
    span
}

/// Where each range ends in the buffer: the running sum of the lengths of
/// `ranges`, one per range. For a list [`validate`] accepted the sums fit;
/// on any other list the iterator stops at the first sum that does not (it
/// never overflows: with overflow checks on, the kernel's default, an
/// overflow would be a panic).
pub fn ends(ranges: &[Range]) -> impl Iterator<Item = u64> + '_ {
    ranges.iter().scan(0u64, |end, r| {
        *end = end.checked_add(r.length)?;
        Some(*end)
    })
}

/// The BAR offset of byte `offset` of the buffer that `ranges` make, given
/// `ends` as [`ends`] returns them, and the index of the range that holds
/// it; `None` past the buffer's end. Range `hint` and the one after it are
/// tried first (a mapping is mostly touched in order: pass the index the
/// last call returned), then a binary search: logarithmic in the number of
/// ranges. Any `hint` gives the same answer. Lists and ends that do not
/// match give `None` or a wrong offset, never a panic.
pub fn bar_offset(
    ranges: &[Range],
    ends: &[u64],
    offset: u64,
    hint: usize,
) -> Option<(u64, usize)> {
    let holds = |i: usize| match (ranges.get(i), ends.get(i)) {
        (Some(r), Some(&end)) => {
            offset < end
                && end
                    .checked_sub(r.length)
                    .is_some_and(|start| offset >= start)
        }
        _ => false,
    };
    let i = [hint, hint.wrapping_add(1)]
        .into_iter()
        .find(|&i| holds(i))
        .unwrap_or_else(|| ends.partition_point(|&end| end <= offset));
    let range = ranges.get(i)?;
    let start = ends.get(i)?.checked_sub(range.length)?;
    Some((range.offset.checked_add(offset.checked_sub(start)?)?, i))
}

/// DMA segment limits of an importing device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest segment, as `dma_get_max_seg_size()` (0 is taken as 4 GiB - 1).
    pub max_seg: u32,
    /// Segment boundary mask, as `dma_get_seg_boundary()`: no segment may
    /// cross an address that is a multiple of `boundary_mask + 1`.
    pub boundary_mask: u64,
}

impl Limits {
    /// The limits for a table of whole pages: `max_seg` (0 taken as
    /// 4 GiB - 1) rounded down to a multiple of `page_size` (a power of two),
    /// so that runs which start and end on page boundaries are cut only on
    /// page boundaries. `None` when no segment can hold a whole page: a
    /// `max_seg` below one page, or a segment boundary that is not a
    /// multiple of one.
    pub fn in_pages(self, page_size: u64) -> Option<Limits> {
        let mask = page_size - 1;
        let max_seg = match self.max_seg {
            0 => u32::MAX,
            m => m,
        };
        let max_seg = u32::try_from(u64::from(max_seg) & !mask).ok()?;
        if max_seg == 0 || self.boundary_mask.wrapping_add(1) & mask != 0 {
            return None;
        }
        Some(Limits {
            max_seg,
            boundary_mask: self.boundary_mask,
        })
    }
}

/// How many segments [`Segments::new`]`(addr, length, limits)` yields,
/// computed in closed form (the cost does not grow with `length`).
pub fn segment_count(addr: u64, length: u64, limits: Limits) -> u64 {
    let max_seg = u64::from(match limits.max_seg {
        0 => u32::MAX,
        m => m,
    });
    let pieces = |len: u64| len.div_ceil(max_seg);
    let mask = limits.boundary_mask;
    // Bytes from `addr` to the next boundary; `None` when that is 2^64.
    let Some(first) = (mask - (addr & mask)).checked_add(1) else {
        return pieces(length);
    };
    if length <= first {
        return pieces(length);
    }
    let rest = length - first;
    // Between boundaries: whole chunks of `mask + 1` bytes, then the tail.
    // A chunk of 2^64 bytes holds all of `rest`.
    let (whole, tail) = match mask.checked_add(1) {
        Some(chunk) => (rest / chunk, rest % chunk),
        None => (0, rest),
    };
    let per_chunk = mask.checked_add(1).map_or(0, pieces);
    pieces(first)
        .saturating_add(whole.saturating_mul(per_chunk))
        .saturating_add(pieces(tail))
}

/// Iterator over the scatter-gather segments `(dma_address, length)` of one
/// contiguous run at a DMA address: each segment is at most
/// [`Limits::max_seg`] long and does not cross a segment boundary. With
/// limits from [`Limits::in_pages`] and a page-aligned `addr` and length,
/// every segment starts and ends on a page boundary.
#[derive(Clone)]
pub struct Segments {
    addr: u64,
    left: u64,
    limits: Limits,
}

impl Segments {
    /// Segments of `length` bytes starting at DMA address `addr`.
    pub fn new(addr: u64, length: u64, limits: Limits) -> Self {
        Segments {
            addr,
            left: length,
            limits,
        }
    }
}

impl Iterator for Segments {
    type Item = (u64, u32);

    fn next(&mut self) -> Option<(u64, u32)> {
        if self.left == 0 {
            return None;
        }
        let max_seg = match self.limits.max_seg {
            0 => u32::MAX,
            m => m,
        };
        let mut len = self.left.min(u64::from(max_seg));
        // Bytes from `addr` to the next boundary; `None` when that is 2^64.
        let to_boundary =
            (self.limits.boundary_mask - (self.addr & self.limits.boundary_mask)).checked_add(1);
        if let Some(b) = to_boundary {
            len = len.min(b);
        }
        let seg = (self.addr, len as u32);
        self.addr = self.addr.wrapping_add(len);
        self.left -= len;
        Some(seg)
    }
}
