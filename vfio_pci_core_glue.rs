// SPDX-License-Identifier: GPL-2.0

//! The FFI boundary of the vfio-pci dma-buf exporter.
//!
//! Raw pointers stop here. The modules below hold the thin safe wrappers
//! over the C objects the exporter works with, one kind of object each:
//!
//! - [`vfio`]: the vfio-pci core device, its list of dma-bufs, its
//!   `memory_lock` and the registration that keeps it bound;
//! - [`pci`]: the provider `pci_dev` and its memory BARs;
//! - [`dma`]: the importer's device as the DMA API sees it, and one IOVA
//!   range per buffer;
//! - [`dma_buf`]: exported dma-bufs, their reservation lock and
//!   attachments, and the dma-buf ops as the safe [`Exporter`] trait whose
//!   C trampolines live there;
//! - [`scatterlist`]: DMA-address-only scatter-gather tables;
//! - [`mm`]: CPU mappings of a dma-buf and their faults.
//!
//! Each module declares the helpers of the C shim (`vfio_pci_dmabuf_shim.c`)
//! it wraps; kernel structs whose bindings contain opaque fields are passed
//! by pointer only, as `bindings` itself does. The `extern "C"` entry points
//! that vfio-pci calls live in the crate root and convert their arguments
//! with the `from_raw` functions of these modules.

pub(crate) mod dma;
pub(crate) mod dma_buf;
pub(crate) mod mm;
pub(crate) mod pci;
pub(crate) mod scatterlist;
pub(crate) mod vfio;

pub(crate) use dma::{DataDirection, IovaMapping, IovaRange, ResourceMappings};
pub(crate) use dma_buf::{Attachment, DmaBuf, DmaBufOpsTable, Exporter, NewAttachment, ResvLocked};
pub(crate) use mm::{Fault, FaultResult, VmaNew, FAULT_SIGBUS};
pub(crate) use pci::Provider;
pub(crate) use scatterlist::{SGTable, SgTableBuilder};
pub(crate) use vfio::{
    check_feature, read_ranges, resched_every, CoreDevice, DeviceLink, Listed, Mappings,
    MemoryLocked,
};
