// SPDX-License-Identifier: GPL-2.0

//! A DMA-address-only scatter-gather table (`struct sg_table`), as an
//! importer's map op gets it: no `struct page`, no CPU addresses.

use core::ptr;
use kernel::{bindings, error::to_result, prelude::*};

/// A DMA-address-only scatter-gather table being filled: no `struct page`,
/// no CPU addresses; each entry carries a DMA address and length.
///
/// # Invariants
///
/// `table` has `left` unfilled entries at its end and `next` is the first
/// of them (NULL once full).
pub(crate) struct SgTableBuilder {
    table: SGTable,
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
            table: SGTable(table),
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
    pub(crate) fn finish(self) -> Result<SGTable> {
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
pub(crate) struct SGTable(KBox<bindings::sg_table>);

impl SGTable {
    /// Hands the table over as a raw pointer; [`DmaBufOps::unmap`] takes it
    /// back.
    pub(super) fn into_raw(self) -> *mut bindings::sg_table {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; move the box out.
        KBox::into_raw(unsafe { ptr::read(&this.0) })
    }

    /// Takes back a table that [`Self::into_raw`] handed over.
    ///
    /// # Safety
    ///
    /// `ptr` came from [`Self::into_raw`] and is taken back once.
    pub(super) unsafe fn from_raw(ptr: *mut bindings::sg_table) -> Self {
        // SAFETY: Per the caller, a box of a full table (type invariant)
        // given up by `into_raw`, taken back once.
        SGTable(unsafe { KBox::from_raw(ptr) })
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

impl Drop for SGTable {
    fn drop(&mut self) {
        // SAFETY: Allocated with sg_alloc_table() (type invariant).
        unsafe { bindings::sg_free_table(&mut *self.0) };
    }
}
