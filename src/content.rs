//! Page contents: what each guest page holds, as a content id ksmd can compare.
//!
//! KSM merges pages with equal bytes, so the simulation gives every guest page that the
//! host backs a content id, kept in the VM's ksmd mm (QEMU's guest RAM is one private
//! anonymous mapping, madvised `MADV_MERGEABLE` by `mem-merge=on`). The guest model
//! moves page indices between owners (`guest::pages`); [`Contents::apply`] turns those
//! moves into what happens to the bytes:
//!
//! * a page the guest touches for the first time, or reuses for another owner, gets
//!   the new owner's content (a write: a merged page is copied first, COW);
//! * a page handed back to the host (balloon, free page reporting) is discarded
//!   (`MADV_DONTNEED`): nothing to merge any more. On THP-backed guest RAM a discard
//!   from the guest's scattered free pages splits its huge page's PMD; one from its
//!   contiguous free blocks takes whole huge pages (as the host model counts them);
//! * a page freed inside the guest keeps its last content (a merged page stays shared
//!   until ksmd next looks) — or is zeroed where the guest zeroes freed memory
//!   (Windows' zero-page thread, Linux `init_on_free=1`);
//! * moves between the hot and cold lists of one owner change nothing.
//!
//! Which contents match across VMs follows [`Content`]: clones of one template hold the
//! template's kernel, file and shared anonymous pages page for page; a part of those is
//! the OS family's (every template of the same OS); the rest is the VM's own. The
//! `k`-th page of a process's file working set is the `k`-th page of its files, so
//! clones running the same process cache equal pages; because the guest evicts and
//! refills that set from the top of a stack, a refault brings back the content that
//! was evicted.

use crate::engine::SimTime;
use crate::guest::{Guest, Owner, PageMove};
use crate::ksm::hash::mix64;
use crate::ksm::ksmd::ZERO_CONTENT;
use crate::ksm::thp::Region;
use crate::ksm::{KsmError, Ksmd, MmId, MmOptions};
use crate::scenario::{Content, VmConfig};

/// Kinds of content, so that equal ordinals of different kinds never collide.
#[derive(Clone, Copy)]
enum Kind {
    Kernel = 1,
    File = 2,
    Anon = 3,
    Stream = 4,
    Write = 5,
}

/// One running VM's page contents, kept in its ksmd mm.
#[derive(Clone, Debug)]
pub struct Contents {
    mm: MmId,
    cfg: Content,
    /// Key of the template's content (the VM's own when it has no template).
    template_key: u64,
    /// Key of the OS family's content.
    family_key: u64,
    /// Key of this boot of this VM: everything nobody else has.
    own_key: u64,
    /// Counter behind every fresh, unique content.
    fresh: u64,
    /// Per process: pages it holds in its file working set and in anonymous memory,
    /// which are the ordinals of the next pages it gets.
    cache_held: Vec<u64>,
    anon_held: Vec<u64>,
    /// Per process: its name's key (clones' processes match by name).
    proc_keys: Vec<u64>,
}

/// Whether QEMU's guest RAM can be merged at all: `mem-merge` on, and neither
/// hugetlbfs-backed (`vma_ksm_compatible` refuses `VM_HUGETLB`) nor pinned for
/// passthrough (KSM cannot write-protect a page pinned for DMA).
pub fn mergeable(vm: &VmConfig) -> bool {
    vm.ksm && !vm.hugepages && !vm.passthrough
}

impl Contents {
    /// QEMU starts: a new mm of the guest's RAM, madvised mergeable, with the contents
    /// the booted guest already holds (kernel, Linux's freed boot memory; Windows'
    /// zeroed RAM). `boot` numbers
    /// the VM's starts, so a restarted VM does not find its old private contents.
    /// `thp`: the host backs guest RAM with transparent huge pages.
    pub fn boot(
        ksmd: &mut Ksmd,
        now: SimTime,
        vm: &VmConfig,
        (boot, thp): (u64, bool),
        guest: &Guest,
    ) -> Result<Contents, KsmError> {
        let ram = u32::try_from(vm.memory / 4096).map_err(|_| KsmError::TooManyPages(u32::MAX))?;
        let opts = MmOptions {
            thp,
            ..MmOptions::default()
        };
        let mm = ksmd.add_mm(ram, opts)?;
        let template = vm.template.as_deref().map_or_else(
            || key_of(&format!("vm/{}", vm.vmid)),
            |t| key_of(&format!("template/{t}")),
        );
        let c = Contents {
            mm,
            cfg: vm.content,
            template_key: template,
            family_key: key_of(&format!("os/{:?}", vm.os)),
            own_key: key_of(&format!("vm/{}/boot/{boot}", vm.vmid)),
            fresh: 0,
            cache_held: vec![0; vm.processes.len()],
            anon_held: vec![0; vm.processes.len()],
            proc_keys: vm.processes.iter().map(|p| key_of(&p.name)).collect(),
        };
        for (owner, pages) in guest.page_owners() {
            for page in pages {
                match owner {
                    Owner::Reserved | Owner::Kernel => {
                        let content = c.kernel_page(page);
                        ksmd.write_page(mm, page, content)?;
                    }
                    // Windows zeroed its RAM; Linux freed boot memory holds what boot
                    // put there (zeros with init_on_free).
                    Owner::FreeScattered | Owner::FreeContig => {
                        let content = if c.cfg.zero_freed {
                            ZERO_CONTENT
                        } else {
                            c.kernel_page(page)
                        };
                        ksmd.write_page(mm, page, content)?;
                    }
                    _ => {}
                }
            }
        }
        ksmd.madvise_mergeable(now, mm, 0, ram)?;
        Ok(c)
    }

    pub fn mm(&self) -> MmId {
        self.mm
    }

    /// Carries the guest's page moves of one step over to the page contents. Returns
    /// how many of the scattered pages handed back lay in huge pages KSM had split:
    /// those 4 KiB pages are freed at once, not held for the deferred split.
    pub fn apply(&mut self, ksmd: &mut Ksmd, moves: &[PageMove]) -> Result<u64, KsmError> {
        let mut freed_at_once = 0;
        for m in moves {
            freed_at_once += self.apply_move(ksmd, m)?;
        }
        Ok(freed_at_once)
    }

    /// The guest's processes wrote these pages: each gets a fresh content.
    pub fn write(&mut self, ksmd: &mut Ksmd, pages: &[u32]) -> Result<(), KsmError> {
        for &page in pages {
            let content = self.unique(Kind::Write);
            ksmd.write_page(self.mm, page, content)?;
        }
        Ok(())
    }

    fn apply_move(&mut self, ksmd: &mut Ksmd, m: &PageMove) -> Result<u64, KsmError> {
        let n = m.pages.len() as u64;
        self.forget(m.from, m.to, n);
        let backed = !matches!(m.from, Owner::FreeUntouched | Owner::Balloon);
        let mut freed_at_once = 0;
        match m.to {
            Owner::FreeUntouched | Owner::Balloon if backed => {
                for &page in &m.pages {
                    if m.from != Owner::FreeContig {
                        freed_at_once += u64::from(self.ksm_split(ksmd, page));
                        ksmd.split_huge_pmd(self.mm, page)?;
                    }
                    ksmd.unmap(self.mm, page, page + 1)?;
                }
            }
            Owner::FreeUntouched | Owner::Balloon => {}
            Owner::FreeScattered | Owner::FreeContig => {
                if self.cfg.zero_freed && !is_free(m.from) {
                    for &page in &m.pages {
                        ksmd.write_page(self.mm, page, ZERO_CONTENT)?;
                    }
                }
            }
            to if same_holder(m.from, to) => {}
            to => {
                for &page in &m.pages {
                    let content = self.content_for(to);
                    ksmd.write_page(self.mm, page, content)?;
                }
            }
        }
        Ok(freed_at_once)
    }

    /// Whether `page` lies in a huge page that KSM split into 4 KiB pages.
    fn ksm_split(&self, ksmd: &Ksmd, page: u32) -> bool {
        ksmd.huge_regions(self.mm)
            .is_some_and(|h| h.state(page) == Region::Split)
    }

    /// Present guest pages the host maps with huge pages (`AnonHugePages`).
    pub fn anon_huge_pages(&self, ksmd: &Ksmd) -> u64 {
        ksmd.huge_regions(self.mm).map_or(0, |h| h.huge_pages())
    }

    /// Updates the per-process page counts for `n` pages leaving `from` for `to`.
    fn forget(&mut self, from: Owner, to: Owner, n: u64) {
        if same_holder(from, to) {
            return;
        }
        match from {
            Owner::CacheHot(i) => sub(&mut self.cache_held[i as usize], n),
            Owner::AnonHot(i) | Owner::AnonCold(i) => sub(&mut self.anon_held[i as usize], n),
            _ => {}
        }
    }

    /// The content of the next page `owner` gets.
    fn content_for(&mut self, owner: Owner) -> u64 {
        match owner {
            Owner::CacheHot(i) => {
                let k = bump(&mut self.cache_held[i as usize]);
                let p = self.proc_keys[i as usize];
                self.ordinal_page(Kind::File, self.cfg.cache_shared, p, k)
            }
            Owner::AnonHot(i) | Owner::AnonCold(i) => {
                let k = bump(&mut self.anon_held[i as usize]);
                let p = self.proc_keys[i as usize];
                let h = mix64(p ^ k ^ salt(Kind::Anon));
                if below(h, self.cfg.anon_shared) {
                    self.shared(h)
                } else {
                    self.unique(Kind::Anon)
                }
            }
            Owner::Kernel | Owner::Reserved => self.unique(Kind::Kernel),
            _ => self.unique(Kind::Stream),
        }
    }

    fn kernel_page(&self, page: u32) -> u64 {
        self.ordinal_page(Kind::Kernel, self.cfg.kernel_shared, 0, u64::from(page))
    }

    /// Page `k` of a set the VM holds in the same order as its clones (kernel, a
    /// process's files): the template's (or family's) with probability `shared`,
    /// otherwise the VM's own — the same for every re-read of `k`.
    fn ordinal_page(&self, kind: Kind, shared: f64, proc_key: u64, k: u64) -> u64 {
        let h = mix64(proc_key ^ k ^ salt(kind));
        if below(h, shared) {
            self.shared(h)
        } else {
            nonzero(mix64(self.own_key ^ h))
        }
    }

    /// The shared content whose ordinal hashes to `h` (`mix64(proc_key ^ k ^ salt)`):
    /// the OS family's for a `family_shared` part of the ordinals, else the template's.
    fn shared(&self, h: u64) -> u64 {
        let base = if below(mix64(h ^ FAMILY_SALT), self.cfg.family_shared) {
            self.family_key
        } else {
            self.template_key
        };
        nonzero(mix64(base ^ h))
    }

    fn unique(&mut self, kind: Kind) -> u64 {
        self.fresh += 1;
        nonzero(mix64(self.own_key ^ mix64(self.fresh ^ salt(kind))))
    }
}

/// The three touched-free owners and the untouched one.
fn is_free(o: Owner) -> bool {
    matches!(
        o,
        Owner::FreeUntouched | Owner::FreeScattered | Owner::FreeContig
    )
}

/// Moves that keep a page with the same holder (hot ↔ cold of one process, a killed
/// process's file pages staying in the page cache): the bytes do not change.
fn same_holder(from: Owner, to: Owner) -> bool {
    match (from, to) {
        (Owner::AnonHot(a) | Owner::AnonCold(a), Owner::AnonHot(b) | Owner::AnonCold(b)) => a == b,
        (Owner::CacheHot(_) | Owner::CacheCold, Owner::CacheCold) => true,
        _ => from == to,
    }
}

fn bump(n: &mut u64) -> u64 {
    *n += 1;
    *n - 1
}

fn sub(n: &mut u64, k: u64) {
    *n = n.saturating_sub(k);
}

/// Per-kind salts, so that equal ordinals of different kinds hash apart.
const SALTS: [u64; 6] = {
    let mut s = [0; 6];
    let mut i = 0;
    while i < 6 {
        s[i] = mix64((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        i += 1;
    }
    s
};
/// Salt of the family-or-template choice.
const FAMILY_SALT: u64 = mix64(0x66616d);

fn salt(kind: Kind) -> u64 {
    SALTS[kind as usize]
}

/// Whether a hash falls in the lowest `fraction` of its range: 53 bits of `h` against
/// `fraction × 2^53` (exact in `f64`).
fn below(h: u64, fraction: f64) -> bool {
    ((h >> 11) as f64) < fraction * (1u64 << 53) as f64
}

/// Content ids other than the zero page's.
fn nonzero(h: u64) -> u64 {
    h.max(1)
}

/// FNV-1a of a name, mixed.
fn key_of(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix64(h)
}
