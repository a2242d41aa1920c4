// SPDX-License-Identifier: GPL-2.0

//! A DMA-address-only scatter-gather table (`struct sg_table`), as an
//! importer's map op gets it: no `struct page`, no CPU addresses. The table
//! owns the DMA mapping its addresses belong to, so that giving the table
//! back undoes the mapping, and nothing is rebuilt from the entries the
//! importer saw.

use core::{mem::ManuallyDrop, ptr};
use kernel::{bindings, error::to_result, prelude::*};

/// A DMA-address-only scatter-gather table being filled: each entry carries
/// a DMA address and length.
///
/// # Invariants
///
/// `table` was allocated with `sg_alloc_table()`, has `left` unfilled
/// entries at its end and `next` is the first of them (NULL once full).
pub(crate) struct SgTableBuilder {
    table: bindings::sg_table,
    next: *mut bindings::scatterlist,
    left: u32,
}

impl SgTableBuilder {
    /// Allocates a table of `nents` entries, charged to the caller's memory
    /// cgroup.
    pub(crate) fn new(nents: usize) -> Result<Self> {
        let nents = u32::try_from(nents).map_err(|_| E2BIG)?;
        // SAFETY: All-zero is a valid, empty `sg_table`.
        let mut table = unsafe { core::mem::zeroed::<bindings::sg_table>() };
        // SAFETY: `table` is a valid empty table. The entries it points to
        // do not point back to it, so it may move once allocated.
        to_result(unsafe {
            bindings::sg_alloc_table(&mut table, nents, bindings::GFP_KERNEL_ACCOUNT)
        })?;
        let next = table.sgl;
        // INVARIANT: Allocated with sg_alloc_table(); all `nents` unfilled.
        Ok(SgTableBuilder {
            table,
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
    /// PCI bus address when `bus_address`, else mapped for the importer by
    /// the mapping [`Self::finish`] will be given), and stays so for as long
    /// as the table lives: the importer will DMA to it.
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

    /// The full table, owning `mapping`, the DMA mapping its entries'
    /// addresses belong to. On failure the mapping is dropped (undone).
    pub(crate) fn finish<M>(self, mapping: M) -> Result<SGTable<M>> {
        if self.left != 0 {
            return Err(EINVAL);
        }
        let mut owned = KBox::new(
            Owned {
                // SAFETY: All-zero is a valid, empty `sg_table`, replaced below.
                table: unsafe { core::mem::zeroed() },
                mapping,
            },
            GFP_KERNEL_ACCOUNT,
        )?;
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is neither used nor dropped again: its table moves
        // out once, into the box.
        owned.table = unsafe { ptr::read(&this.table) };
        // INVARIANT: Allocated with sg_alloc_table() and full (checked).
        Ok(SGTable(owned))
    }
}

impl Drop for SgTableBuilder {
    fn drop(&mut self) {
        // SAFETY: Allocated with sg_alloc_table() (type invariant).
        unsafe { bindings::sg_free_table(&mut self.table) };
    }
}

/// A table and the mapping it owns; the table first, so that a pointer to
/// it is one to the whole.
#[repr(C)]
struct Owned<M> {
    table: bindings::sg_table,
    mapping: M,
}

/// A DMA-address table made by [`SgTableBuilder`], lent to an importer
/// between the `map_dma_buf` and `unmap_dma_buf` ops, with the DMA mapping `M` its entries
/// belong to. Dropping it frees the table, then undoes the mapping.
///
/// Named after upstream's `kernel::scatterlist::SGTable`.
///
/// # Invariants
///
/// `0.table` was allocated with `sg_alloc_table()` and every entry is
/// filled.
pub(crate) struct SGTable<M>(KBox<Owned<M>>);

impl<M> SGTable<M> {
    /// Hands the table over as a raw pointer; [`Self::from_raw`] takes it
    /// back.
    pub(super) fn into_raw(self) -> *mut bindings::sg_table {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is neither used nor dropped again; move the box out.
        let owned = KBox::into_raw(unsafe { ptr::read(&this.0) });
        // `table` is the first field of the `repr(C)` struct.
        owned.cast()
    }

    /// Takes back a table that [`Self::into_raw`] handed over.
    ///
    /// # Safety
    ///
    /// `ptr` came from [`Self::into_raw`] of an `SGTable<M>` and is taken
    /// back once.
    pub(super) unsafe fn from_raw(ptr: *mut bindings::sg_table) -> Self {
        // SAFETY: Per the caller, the first field of a box of an `Owned<M>`
        // given up by `into_raw`, taken back once.
        SGTable(unsafe { KBox::from_raw(ptr.cast::<Owned<M>>()) })
    }

    /// The DMA mapping the table's addresses belong to.
    pub(crate) fn mapping(&self) -> &M {
        &self.0.mapping
    }
}

impl<M> Drop for SGTable<M> {
    fn drop(&mut self) {
        // SAFETY: Allocated with sg_alloc_table() (type invariant). The
        // mapping is dropped after this, with the box.
        unsafe { bindings::sg_free_table(&mut self.0.table) };
    }
}
