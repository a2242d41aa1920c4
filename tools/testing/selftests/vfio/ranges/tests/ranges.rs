// SPDX-License-Identifier: GPL-2.0
//! Unit and property tests of the exporter's range validation and segment
//! planning, against a byte-by-byte reference model.

use proptest::prelude::*;
use ranges::{
    bar_offset, check_lengths, ends, max_size, runs, segment_count, span, validate, Limits, Range,
    RangeError, Segments, MAX_RANGES,
};

const PAGE: u64 = 4096;

fn r(offset: u64, length: u64) -> Range {
    Range { offset, length }
}

#[test]
fn validate_errno_rows() {
    let bar = 64 << 20;
    assert_eq!(validate(&[], 0, bar, PAGE), Err(RangeError::Invalid));
    assert_eq!(validate(&[r(0, 0)], 0, bar, PAGE), Err(RangeError::Invalid));
    assert_eq!(
        validate(&[r(1, PAGE)], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    assert_eq!(
        validate(&[r(0, PAGE + 1)], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    assert_eq!(
        validate(&[r(u64::MAX - PAGE + 1, PAGE)], 0, bar, PAGE),
        Err(RangeError::Overflow)
    );
    assert_eq!(
        validate(&[r(bar, PAGE)], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    assert_eq!(
        validate(&[r(bar - PAGE, 2 * PAGE)], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    // A buffer is at most its BAR's size, or MAX_RANGES pages (1 GiB).
    let g = 1u64 << 30;
    assert_eq!(max_size(bar, PAGE), g);
    assert_eq!(max_size(8 * g, PAGE), 8 * g);
    let whole = vec![r(0, bar); (g / bar) as usize];
    assert_eq!(validate(&whole, 0, bar, PAGE), Ok(g));
    let more = vec![r(0, bar); (g / bar) as usize + 1];
    assert_eq!(validate(&more, 0, bar, PAGE), Err(RangeError::TooBig));
    let huge = vec![r(0, bar); MAX_RANGES as usize];
    assert_eq!(validate(&huge, 0, bar, PAGE), Err(RangeError::TooBig));
    // The last page of the BAR is fine, one past it is not.
    assert_eq!(validate(&[r(bar - PAGE, PAGE)], 0, bar, PAGE), Ok(PAGE));
    // Total overflow with ranges that are each valid in a huge BAR.
    let huge = 1u64 << 63;
    assert_eq!(
        validate(&[r(0, huge), r(0, huge)], 0, u64::MAX, PAGE),
        Err(RangeError::Invalid)
    );
    // The overflow covers the BAR's start, as upstream: a range that ends
    // past the end of the address space overflows, one past the BAR only
    // is out of it.
    let start = 0x2_0000_0000u64;
    let off = u64::MAX - start - PAGE + 1;
    assert_eq!(
        validate(&[r(off, 2 * PAGE)], start, u64::MAX - start, PAGE),
        Err(RangeError::Overflow)
    );
    assert_eq!(
        validate(&[r(bar, PAGE)], start, bar, PAGE),
        Err(RangeError::Invalid)
    );
    // Overlapping and repeated ranges are allowed; the size is the sum.
    assert_eq!(
        validate(
            &[r(0, 2 * PAGE), r(PAGE, PAGE), r(0, 2 * PAGE)],
            0,
            bar,
            PAGE
        ),
        Ok(5 * PAGE)
    );
}

// Several faults in one request: upstream's answer. Every range's shape
// and the sum of the lengths come first, then each range against the BAR.
#[test]
fn validate_reports_faults_in_upstreams_order() {
    let bar = 64 << 20;
    let wraps = r(u64::MAX - PAGE + 1, 2 * PAGE);
    assert_eq!(validate(&[wraps], 0, bar, PAGE), Err(RangeError::Overflow));
    assert_eq!(
        validate(&[wraps, r(0, PAGE / 8)], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    assert_eq!(
        validate(&[r(bar, PAGE), r(0, 0)], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    assert_eq!(
        validate(&[r(bar, PAGE), wraps], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    assert_eq!(
        validate(&[wraps, r(bar, PAGE)], 0, bar, PAGE),
        Err(RangeError::Overflow)
    );
    // offset + length wraps, and so do the lengths' sum: the sum first
    assert_eq!(
        validate(&[r(0, PAGE), r(PAGE, u64::MAX - PAGE + 1)], 0, bar, PAGE),
        Err(RangeError::Invalid)
    );
    // lengths of 2^63 or more in all, each range in a huge BAR
    assert_eq!(
        validate(&[r(0, 1 << 62), r(0, 1 << 62)], 0, u64::MAX, PAGE),
        Err(RangeError::Invalid)
    );
    assert_eq!(check_lengths(&[r(0, 1 << 62)], PAGE), Ok(1 << 62));
}

#[test]
fn max_ranges_is_documented_value() {
    assert_eq!(MAX_RANGES, 262_144);
    let v: Vec<Range> = (0..MAX_RANGES as u64).map(|i| r(i * PAGE, PAGE)).collect();
    assert_eq!(
        validate(&v, 0, MAX_RANGES as u64 * PAGE, PAGE),
        Ok(MAX_RANGES as u64 * PAGE)
    );
    // Page-sized ranges that follow each other merge into one run.
    assert_eq!(runs(&v).count(), 1);
}

#[test]
fn merging() {
    let v = [
        r(0, PAGE),
        r(PAGE, PAGE),
        r(4 * PAGE, PAGE),
        r(5 * PAGE, PAGE),
        r(0, PAGE),
    ];
    let got: Vec<Range> = runs(&v).collect();
    assert_eq!(got, vec![r(0, 2 * PAGE), r(4 * PAGE, 2 * PAGE), r(0, PAGE)]);
}

#[test]
fn splitting() {
    let lim = Limits {
        max_seg: 65536,
        boundary_mask: u64::MAX,
    };
    let s: Vec<(u64, u32)> = Segments::new(0x1000_0000, 3 * 65536 + PAGE, lim).collect();
    assert_eq!(
        s,
        vec![
            (0x1000_0000, 65536),
            (0x1001_0000, 65536),
            (0x1002_0000, 65536),
            (0x1003_0000, 4096)
        ]
    );
    let lim = Limits {
        max_seg: u32::MAX,
        boundary_mask: 0xffff,
    };
    let s: Vec<(u64, u32)> = Segments::new(0xf000, 0x12000, lim).collect();
    assert_eq!(
        s,
        vec![(0xf000, 0x1000), (0x10000, 0x10000), (0x20000, 0x1000)]
    );
    // max_seg 0 means no limit below 4 GiB - 1; the top of the address space
    // with no boundary does not overflow.
    let lim = Limits {
        max_seg: 0,
        boundary_mask: u64::MAX,
    };
    let s: Vec<(u64, u32)> = Segments::new(u64::MAX - 2 * PAGE + 1, 2 * PAGE, lim).collect();
    assert_eq!(s, vec![(u64::MAX - 2 * PAGE + 1, 2 * PAGE as u32)]);
}

#[test]
fn whole_pages_over_4gib() {
    // UINT_MAX, the common max_seg (and what 0 means): an 8 GiB run is cut
    // into page-aligned entries, not 0xffffffff-byte ones.
    for max_seg in [u32::MAX, 0] {
        let lim = Limits {
            max_seg,
            boundary_mask: u64::MAX,
        }
        .in_pages(PAGE)
        .unwrap();
        let base = 0x2_0000_0000;
        let s: Vec<(u64, u32)> = Segments::new(base, 8 << 30, lim).collect();
        let top = (u32::MAX as u64 & !(PAGE - 1)) as u32;
        assert_eq!(
            s,
            vec![
                (base, top),
                (base + top as u64, top),
                (base + 2 * top as u64, 2 * PAGE as u32)
            ]
        );
    }
    // A limit below one page, or a boundary inside a page, fits no page.
    for (max_seg, boundary_mask) in [(PAGE as u32 - 1, u64::MAX), (512, u64::MAX), (65536, 0x7ff)] {
        let lim = Limits {
            max_seg,
            boundary_mask,
        };
        assert_eq!(lim.in_pages(PAGE), None);
    }
    let lim = Limits {
        max_seg: 65536 + 100,
        boundary_mask: 0xffff,
    };
    assert_eq!(
        lim.in_pages(PAGE),
        Some(Limits {
            max_seg: 65536,
            boundary_mask: 0xffff
        })
    );
}

/// Checks that the segments of a page-aligned run of `len` bytes at `base`
/// cover it in order, each a whole number of pages within the limits.
fn check_whole_pages(base: u64, len: u64, lim: Limits) -> Result<(), TestCaseError> {
    let mut next = base;
    for (a, l) in Segments::new(base, len, lim) {
        prop_assert_eq!(a, next);
        prop_assert!(l > 0 && l <= lim.max_seg);
        prop_assert_eq!(a % PAGE, 0);
        prop_assert_eq!(u64::from(l) % PAGE, 0);
        let last = a + u64::from(l) - 1;
        prop_assert_eq!(a | lim.boundary_mask, last | lim.boundary_mask);
        next = a + u64::from(l);
    }
    prop_assert_eq!(next, base + len);
    Ok(())
}

/// Reference model: the buffer's bytes, as BAR offsets, one per page.
fn pages_of_ranges(v: &[Range]) -> Vec<u64> {
    v.iter()
        .flat_map(|r| (0..r.length / PAGE).map(move |i| r.offset + i * PAGE))
        .collect()
}

// A request's lengths may sum past 2^64 (two ranges of 2^63): nothing
// overflows, whether the list was validated or not (overflow checks are on
// here as in the kernel's default configuration, where a panic is a BUG()).
#[test]
fn sums_past_2_64_do_not_overflow() {
    let v = [r(0, 1 << 63), r(0, 1 << 63)];
    assert_eq!(validate(&v, 0, 64 << 20, PAGE), Err(RangeError::Invalid));
    assert_eq!(validate(&v, 0, u64::MAX, PAGE), Err(RangeError::Invalid));
    assert_eq!(ends(&v).collect::<Vec<_>>(), vec![1 << 63]);
    let w = [r(0, 1 << 63), r(1 << 63, 1 << 63)];
    assert_eq!(runs(&w).count(), 2);
    assert_eq!(bar_offset(&v, &[1, 2], 1, 0), None);
}

fn ranges_strategy() -> impl Strategy<Value = Vec<Range>> {
    prop::collection::vec((0u64..64, 1u64..8), 1..64)
        .prop_map(|v| v.into_iter().map(|(o, l)| r(o * PAGE, l * PAGE)).collect())
}

proptest! {
    // Arbitrary, unvalidated lists and ends: no function panics.
    #[test]
    fn any_input_no_panic(v in prop::collection::vec((any::<u64>(), any::<u64>()), 0..16),
                          e in prop::collection::vec(any::<u64>(), 0..16),
                          off in any::<u64>(), hint in any::<usize>()) {
        let v: Vec<Range> = v.into_iter().map(|(o, l)| r(o, l)).collect();
        let _ = validate(&v, off, u64::MAX, PAGE);
        prop_assert!(ends(&v).count() <= v.len());
        prop_assert!(runs(&v).count() <= v.len());
        let _ = bar_offset(&v, &e, off, hint);
        let _ = span(&v);
    }

    // The closed form counts what the walk yields, for any address (also
    // one whose run wraps past 2^64), length and limits.
    #[test]
    fn segment_count_is_the_walk(addr in prop_oneof![any::<u64>(),
                                                     any::<u64>().prop_map(|a| a & !(PAGE - 1))],
                                 length in prop_oneof![0u64..(1 << 24),
                                                       (0u64..(1 << 12)).prop_map(|p| p * PAGE)],
                                 max_seg in prop_oneof![Just(0u32), (1u32 << 10)..(1 << 20),
                                                        (1u32 << 20)..=u32::MAX,
                                                        (1u32..256).prop_map(|p| p << 12)],
                                 bound_shift in 10u32..65) {
        let boundary_mask = if bound_shift == 64 { u64::MAX } else { (1u64 << bound_shift) - 1 };
        let lim = Limits { max_seg, boundary_mask };
        prop_assert_eq!(segment_count(addr, length, lim),
                        Segments::new(addr, length, lim).count() as u64);
    }

    #[test]
    fn runs_keep_bytes_and_order(v in ranges_strategy()) {
        let merged: Vec<Range> = runs(&v).collect();
        prop_assert!(merged.len() <= v.len());
        prop_assert_eq!(pages_of_ranges(&merged), pages_of_ranges(&v));
        // Maximal: no two consecutive runs could have been merged.
        for w in merged.windows(2) {
            prop_assert_ne!(w[0].offset + w[0].length, w[1].offset);
        }
    }

    #[test]
    fn span_holds_every_range_tightly(v in ranges_strategy()) {
        match span(&v) {
            None => prop_assert!(v.is_empty()),
            Some((lo, hi)) => {
                for r in &v {
                    prop_assert!(lo <= r.offset && r.offset + r.length <= hi);
                }
                // Tight: some range starts at the low end, some ends at the high one.
                prop_assert!(v.iter().any(|r| r.offset == lo));
                prop_assert!(v.iter().any(|r| r.offset + r.length == hi));
            }
        }
    }

    #[test]
    fn segments_respect_limits(base in 0u64..(1 << 40), len_pages in 1u64..2048,
                               seg_shift in 12u32..32, bound_shift in 12u32..40) {
        let base = base & !(PAGE - 1);
        let len = len_pages * PAGE;
        let lim = Limits { max_seg: (1u64 << seg_shift).min(u32::MAX as u64) as u32,
                           boundary_mask: (1u64 << bound_shift) - 1 };
        let mut next = base;
        let mut total = 0u64;
        let mut n = 0u64;
        for (a, l) in Segments::new(base, len, lim) {
            prop_assert_eq!(a, next);
            prop_assert!(l > 0 && l <= lim.max_seg);
            prop_assert_eq!(a >> bound_shift, (a + l as u64 - 1) >> bound_shift);
            next = a + l as u64;
            total += l as u64;
            n += 1;
        }
        prop_assert_eq!(total, len);
        // Minimal: a segment is only cut where a limit forces it.
        let max = (lim.max_seg as u64).min(lim.boundary_mask + 1);
        prop_assert!(n <= len.div_ceil(max) + 1);
    }

    // Any max_seg (not only page multiples) and boundary: whole pages, or
    // a refusal when not even one page fits.
    #[test]
    fn segments_are_whole_pages(base in 0u64..(1 << 40), len_pages in 1u64..2048,
                                max_seg in any::<u32>(), bound_shift in 0u32..41) {
        let raw = Limits { max_seg, boundary_mask: (1u64 << bound_shift) - 1 };
        match raw.in_pages(PAGE) {
            None => prop_assert!((max_seg != 0 && max_seg < PAGE as u32) || bound_shift < 12),
            Some(lim) => check_whole_pages(base & !(PAGE - 1), len_pages * PAGE, lim)?,
        }
    }

    // Runs of 4 to 32 GiB above 4 GiB, with the large limits real
    // importers have.
    #[test]
    fn segments_over_4gib_are_whole_pages(base_pages in (1u64 << 20)..(1 << 28),
                                          len_pages in (1u64 << 20)..(1 << 23),
                                          max_seg in prop_oneof![Just(0u32), Just(u32::MAX),
                                                                 (1u32 << 28)..=u32::MAX],
                                          bound_shift in 32u32..65) {
        let boundary_mask = if bound_shift == 64 { u64::MAX } else { (1u64 << bound_shift) - 1 };
        let lim = Limits { max_seg, boundary_mask }.in_pages(PAGE).unwrap();
        check_whole_pages(base_pages * PAGE, len_pages * PAGE, lim)?;
    }

    // Every page of the buffer finds its BAR page, in request order (ranges
    // overlap and repeat here), whatever the hint; nothing past the end.
    #[test]
    fn bar_offset_finds_every_page(v in ranges_strategy(),
                                   hints in prop::collection::vec(any::<usize>(), 8)) {
        let e: Vec<u64> = ends(&v).collect();
        let pages = pages_of_ranges(&v);
        prop_assert_eq!(e.len(), v.len());
        let mut last = 0;
        for (k, want) in pages.iter().enumerate() {
            let off = k as u64 * PAGE;
            // in order, each call given the last answer's range
            let (got, i) = bar_offset(&v, &e, off, last).unwrap();
            prop_assert_eq!(got, *want);
            prop_assert!(off < e[i] && off >= e[i] - v[i].length);
            last = i;
            for h in hints.iter().map(|h| h % (v.len() + 2)).chain([usize::MAX]) {
                prop_assert_eq!(bar_offset(&v, &e, off, h).map(|x| x.0), Some(*want));
                prop_assert_eq!(bar_offset(&v, &e, off + PAGE - 1, h).map(|x| x.0),
                                Some(*want + PAGE - 1));
            }
        }
        let total = pages.len() as u64 * PAGE;
        for h in [0, v.len() - 1, v.len(), usize::MAX] {
            prop_assert_eq!(bar_offset(&v, &e, total, h), None);
            prop_assert_eq!(bar_offset(&v, &e, u64::MAX, h), None);
        }
    }

    #[test]
    fn validate_accepts_exactly_the_in_bar_ranges(v in ranges_strategy(), bar_pages in 1u64..80) {
        let bar = bar_pages * PAGE;
        let ok = v.iter().all(|r| r.offset + r.length <= bar);
        match validate(&v, 0, bar, PAGE) {
            Ok(total) => {
                prop_assert!(ok);
                prop_assert_eq!(total, v.iter().map(|r| r.length).sum::<u64>());
            }
            Err(e) => { prop_assert!(!ok); prop_assert_eq!(e, RangeError::Invalid); }
        }
    }
}
