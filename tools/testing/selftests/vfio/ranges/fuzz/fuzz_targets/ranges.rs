// SPDX-License-Identifier: GPL-2.0
//! Fuzz target: arbitrary range lists and device limits through validation,
//! merging and splitting, checked against a byte-level reference model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ranges::{
    bar_offset, ends, max_size, runs, segment_count, validate, Limits, Range, RangeError, Segments,
};

const PAGE: u64 = 4096;

fn u64_at(d: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = d.get(i + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let bar = u64_at(data, 0) >> (u64_at(data, 0) & 63);
    let raw = Limits {
        max_seg: u64_at(data, 8) as u32,
        boundary_mask: (1u64 << (u64_at(data, 16) % 64)).wrapping_sub(1),
    };
    // Limits that fit no whole page are refused; the others are used as
    // the exporter uses them.
    let Some(limits) = raw.in_pages(PAGE) else {
        assert!((raw.max_seg != 0 && raw.max_seg < PAGE as u32) || raw.boundary_mask < PAGE - 1);
        return;
    };
    let list: Vec<Range> = data[24..]
        .chunks(16)
        .map(|c| {
            // Small offsets and lengths most of the time, raw values otherwise.
            let (o, l) = (u64_at(c, 0), u64_at(c, 8));
            if o & 1 == 0 {
                Range {
                    offset: (o >> 1) % 64 * PAGE,
                    length: (l % 8) * PAGE,
                }
            } else {
                Range {
                    offset: o,
                    length: l,
                }
            }
        })
        .collect();

    // Any list, valid or not, goes through every function without a panic
    // (overflow checks are on, as in the kernel's default configuration,
    // where a panic is a BUG()).
    let e: Vec<u64> = ends(&list).collect();
    assert!(e.len() <= list.len());
    for run in runs(&list) {
        let _ = Segments::new(run.offset, run.length, limits)
            .take(4)
            .count();
    }
    let _ = bar_offset(&list, &e, u64_at(data, 16), e.len());

    // Validation agrees with the rules, in upstream's order: every range's
    // shape and the sum first, then range by range against the BAR.
    let mut want = Ok(0u64);
    for r in &list {
        want = match want {
            Err(x) => Err(x),
            _ if r.length == 0 || (r.offset | r.length) % PAGE != 0 => Err(RangeError::Invalid),
            Ok(t) => t.checked_add(r.length).ok_or(RangeError::Invalid),
        };
    }
    if list.is_empty() || matches!(want, Ok(t) if t >= 1 << 63) {
        want = Err(RangeError::Invalid);
    }
    if let Ok(total) = want {
        for r in &list {
            let e = match r.offset.checked_add(r.length) {
                None => Some(RangeError::Overflow),
                Some(end) if end > bar => Some(RangeError::Invalid),
                _ => None,
            };
            if let Some(e) = e {
                want = Err(e);
                break;
            }
        }
        if want.is_ok() && total > max_size(bar, PAGE) {
            want = Err(RangeError::TooBig);
        }
    }
    let got = validate(&list, 0, bar, PAGE);
    assert_eq!(got, want);
    let Ok(total) = got else { return };

    // Runs cover the same bytes in order; segments cover each run exactly,
    // within the limits.
    let mut covered = 0u64;
    let mut expect = list
        .iter()
        .flat_map(|r| (0..r.length / PAGE).map(move |p| r.offset + p * PAGE));
    for run in runs(&list) {
        for p in 0..run.length / PAGE {
            assert_eq!(expect.next(), Some(run.offset + p * PAGE));
        }
        let base = run.offset.wrapping_mul(3); // any DMA address
        let mut next = base;
        assert_eq!(
            segment_count(base, run.length, limits),
            Segments::new(base, run.length, limits).count() as u64
        );
        for (a, l) in Segments::new(base, run.length, limits) {
            assert_eq!(a, next);
            assert!(l > 0 && l <= limits.max_seg);
            assert_eq!((a | u64::from(l)) % PAGE, 0);
            let last = a.wrapping_add(u64::from(l) - 1);
            assert_eq!(a | limits.boundary_mask, last | limits.boundary_mask);
            next = a.wrapping_add(u64::from(l));
            covered += u64::from(l);
        }
    }
    assert_eq!(expect.next(), None);
    assert_eq!(covered, total);
});
