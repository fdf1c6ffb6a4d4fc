//! What the children write into their pages.
//!
//! Every page written here is a whole 4 KiB page of 512 little-endian words whose
//! word 1 is a *tag* saying what kind of page it is. Pages of different kinds therefore
//! never compare equal, and no page written here is all zeros (every tag is non-zero):
//!
//! | kind | word 0 | word 1 | words 2.. |
//! |---|---|---|---|
//! | numbered content `T` | `T` | [`NUMBERED`] | a pattern derived from `T` only |
//! | unique page | run nonce | [`UNIQUE`] | process, page index, then a pattern of all three |
//!
//! Writers change pages in place with a *marker* in the first four words (tag, then
//! values that make the page unlike any other page of the run), or by incrementing the
//! first byte (`byte` mode), or by rewriting the original content (`restore`).

/// Bytes in a page; the workload format counts 4 KiB pages.
pub(super) const PAGE: usize = 4096;

pub(super) const NUMBERED: u64 = 0x6d65_6d73_696d_4e55; // "memsimNU"
pub(super) const UNIQUE: u64 = 0x6d65_6d73_696d_554e; // "memsimUN"
/// Marker of a `random` writer's write.
pub(super) const RANDOM: u64 = 0x6d65_6d73_696d_524e; // "memsimRN"
/// Marker of a `flip_once` writer's write.
pub(super) const FLIP: u64 = 0x6d65_6d73_696d_464c; // "memsimFL"

/// SplitMix64's output function: a fixed bijective scrambling of a 64-bit value.
pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn put(page: &mut [u8], word: usize, value: u64) {
    page[word * 8..word * 8 + 8].copy_from_slice(&value.to_le_bytes());
}

/// Fills `page` with numbered content `t`: equal for equal `t`, different for
/// different `t` (word 0), never zero (word 1).
pub(super) fn numbered(page: &mut [u8], t: u64) {
    let seed = mix(t ^ NUMBERED);
    for (i, word) in page.chunks_exact_mut(8).enumerate() {
        let value = match i {
            0 => t,
            1 => NUMBERED,
            _ => mix(seed.wrapping_add(i as u64)),
        };
        word.copy_from_slice(&value.to_le_bytes());
    }
}

/// Fills `page` with a page equal to no other page: unique to this run (`nonce`), this
/// process and this page index.
pub(super) fn unique(page: &mut [u8], nonce: u64, process: u64, index: u64) {
    let seed = mix(nonce ^ mix(process ^ mix(index)));
    for (i, word) in page.chunks_exact_mut(8).enumerate() {
        let value = match i {
            0 => nonce,
            1 => UNIQUE,
            2 => process,
            3 => index,
            _ => mix(seed.wrapping_add(i as u64)),
        };
        word.copy_from_slice(&value.to_le_bytes());
    }
}

/// Overwrites the first four words with a writer's marker: `tag`, then `a`, `b`, `c`.
/// Distinct `(tag, a, b, c)` make pages distinct whatever the rest holds.
pub(super) fn marker(page: &mut [u8], tag: u64, a: u64, b: u64, c: u64) {
    put(page, 0, a);
    put(page, 1, tag);
    put(page, 2, b);
    put(page, 3, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Vec<u8> {
        vec![0; PAGE]
    }

    fn filled(t: u64) -> Vec<u8> {
        let mut p = page();
        numbered(&mut p, t);
        p
    }

    #[test]
    fn equal_numbers_give_equal_pages_and_distinct_numbers_distinct_ones() {
        let ids = [0, 1, 2, 50, 59, 255, 256, 1 << 32, u64::MAX];
        for &a in &ids {
            assert_eq!(filled(a), filled(a));
            for &b in &ids {
                if a != b {
                    assert_ne!(filled(a), filled(b), "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn no_page_is_the_zero_page() {
        let zero = page();
        for t in [0, 1, 7, u64::MAX] {
            assert_ne!(filled(t), zero, "content {t}");
        }
        let mut u = page();
        unique(&mut u, 0, 0, 0);
        assert_ne!(u, zero);
        let mut m = page();
        marker(&mut m, FLIP, 0, 0, 0);
        assert_ne!(m, zero);
    }

    #[test]
    fn unique_pages_differ_from_each_other_and_from_numbered_ones() {
        let mut seen = std::collections::HashSet::new();
        for process in 0..3 {
            for index in 0..200 {
                let mut u = page();
                unique(&mut u, 42, process, index);
                assert!(seen.insert(u), "duplicate unique page {process}/{index}");
            }
        }
        for t in 0..1000 {
            assert!(!seen.contains(&filled(t)), "unique page equals content {t}");
        }
        // Another run (nonce) never repeats a page of this one.
        let mut u = page();
        unique(&mut u, 43, 0, 0);
        assert!(!seen.contains(&u));
    }

    #[test]
    fn a_byte_increment_never_turns_a_content_into_another_one() {
        for t in 0..300 {
            let mut p = filled(t);
            p[0] = p[0].wrapping_add(1);
            for other in 0..300 {
                assert_ne!(p, filled(other), "{t}+1 byte == {other}");
            }
        }
    }

    #[test]
    fn markers_make_pages_distinct() {
        let mut a = filled(1);
        let mut b = filled(1);
        marker(&mut a, RANDOM, 5, 0, 1);
        marker(&mut b, RANDOM, 5, 0, 2);
        assert_ne!(a, b);
        assert_ne!(a, filled(1));
        let mut f = filled(1);
        marker(&mut f, FLIP, 5, 0, 1);
        assert_ne!(f, a, "flip and random markers differ by tag");
    }
}
