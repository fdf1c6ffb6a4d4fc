//! The unstable tree of one NUMA node, as a compact hash table.
//!
//! Upstream's unstable tree is an rbtree of rmap_items sorted by their pages' current
//! contents, rebuilt every pass. A lookup meets an item whose page has the scanned
//! page's content (`unstable_tree_search_insert`). Here the table maps the checksum an
//! item had when it was inserted (its `oldchecksum`, unchanged while it sits in the tree)
//! to the item's page; the caller then compares current contents, as the rbtree walk
//! does. Each slot is one `u64`: checksum in the high half, global page index in the low
//! half (open addressing, linear probing, backward-shift deletion). The table is
//! re-sized at every pass start to the previous pass's size, so its memory follows the
//! number of pages that are candidates now, not the peak.

const EMPTY: u64 = u64::MAX;
/// Largest load before growing, in 1/1024.
const MAX_LOAD: usize = 820;

/// Checksum → global page index.
#[derive(Clone, Debug, Default)]
pub struct UnstableTable {
    slots: Vec<u64>,
    len: usize,
    /// Most entries held during the current pass.
    peak: usize,
}

impl UnstableTable {
    fn home(&self, key: u32) -> usize {
        // Checksums are already uniform: map onto the table by multiply-shift.
        ((u64::from(key.wrapping_mul(0x9e37_79b9)) * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// The page filed under `key`.
    pub fn get(&self, key: u32) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if (s >> 32) as u32 == key {
                return Some(s as u32);
            }
            i = self.next(i);
        }
    }

    /// Asks the CPU to fetch the slot where a lookup of `key` starts. The scanner calls
    /// it a few pages ahead: on a host-sized table nearly every lookup misses the
    /// cache, and the miss, not the probing, is what a scanned page costs.
    pub fn prefetch(&self, key: u32) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const u64 = &self.slots[self.home(key)];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetching is a hint that never faults; `slot` points into `slots`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(slot.cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// Files `page` under `key` (replacing what was there).
    pub fn insert(&mut self, key: u32, page: u32) {
        if (self.len + 1) * 1024 > self.slots.len() * MAX_LOAD {
            self.rebuild((self.len + 1) * 2);
        }
        let slot = (u64::from(key) << 32) | u64::from(page);
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                self.slots[i] = slot;
                self.len += 1;
                self.peak = self.peak.max(self.len);
                return;
            }
            if (s >> 32) as u32 == key {
                self.slots[i] = slot;
                return;
            }
            i = self.next(i);
        }
    }

    /// Removes `key` if it files `page`.
    pub fn remove(&mut self, key: u32, page: u32) {
        if self.slots.is_empty() {
            return;
        }
        let want = (u64::from(key) << 32) | u64::from(page);
        let mut i = self.home(key);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return;
            }
            if s == want {
                break;
            }
            i = self.next(i);
        }
        // Backward-shift deletion: pull later entries of the probe run into the hole.
        let mut hole = i;
        let mut j = self.next(i);
        loop {
            let s = self.slots[j];
            if s == EMPTY {
                break;
            }
            let h = self.home((s >> 32) as u32);
            // move s into the hole unless its home lies cyclically in (hole, j]
            let in_range = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !in_range {
                self.slots[hole] = s;
                hole = j;
            }
            j = self.next(j);
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    /// Throws the tree away for a new pass, sized for as many entries as the last pass
    /// held.
    pub fn reset(&mut self) {
        let want = (self.peak * 1024 / MAX_LOAD + 1).max(16);
        if self.slots.len() > 2 * want || self.slots.len() < want {
            self.slots = vec![EMPTY; want];
        } else {
            self.slots.fill(EMPTY);
        }
        self.len = 0;
        self.peak = 0;
    }

    /// Empties the table and frees its memory.
    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.len = 0;
        self.peak = 0;
    }

    fn rebuild(&mut self, entries: usize) {
        let cap = (entries * 1024 / MAX_LOAD + 1).max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; cap]);
        self.len = 0;
        for s in old.into_iter().filter(|s| *s != EMPTY) {
            self.insert((s >> 32) as u32, s as u32);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_like_a_map_under_random_operations() {
        let mut t = UnstableTable::default();
        let mut m: HashMap<u32, u32> = HashMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // few distinct keys so that collisions and deletions interleave
            let key = ((x % 5000) as u32).wrapping_mul(0x0101_0101);
            match x >> 62 {
                0 | 1 => {
                    t.insert(key, step);
                    m.insert(key, step);
                }
                2 => {
                    if let Some(&v) = m.get(&key) {
                        t.remove(key, v);
                        m.remove(&key);
                    }
                }
                _ => {
                    if step % 50_000 == 0 {
                        t.reset();
                        m.clear();
                    }
                }
            }
            assert_eq!(t.get(key), m.get(&key).copied());
            assert_eq!(t.len(), m.len());
        }
        for (k, v) in &m {
            assert_eq!(t.get(*k), Some(*v));
        }
    }
}
