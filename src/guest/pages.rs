//! Which guest page indices each owner holds, beside the guest's page counts.
//!
//! KSM merges individual pages by content, so the host side will need to know *which*
//! guest pages are touched, freed, or handed back — counts are not enough
//! (`docs/ksm-integration.md`, step 1). Every guest page has an index in
//! `0..memory / 4 KiB`; reserved and kernel pages are a fixed prefix, every other
//! index sits in exactly one owner's stack. [`super::Guest`] moves indices wherever
//! it moves counts, so each stack's length equals the matching count.
//!
//! Owners hold stacks of *runs* of consecutive indices rather than single indices:
//! the guest moves pages in bulk (a step can evict and re-read a few hundred thousand
//! cache pages), and a run moves as one entry, so a step costs the number of runs it
//! touches, not the number of pages, and an untouched VM costs one run.
//!
//! Swap is the guest's own: a swapped-out page's content lives on the guest's swap
//! disk, so its index goes back to the free pool and a swap-in takes a new one.
//! Swapped pages and refault shadows therefore stay counts only.

use std::ops::Range;

/// Who holds a guest page. Process numbers are positions in the VM's process list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    /// memmap, kernel image: the first indices, never in MemTotal.
    Reserved,
    /// Slab and friends: the indices after the reserved ones.
    Kernel,
    FreeUntouched,
    FreeScattered,
    FreeContig,
    /// Once-read page cache.
    CacheCold,
    /// A process's file working set.
    CacheHot(u32),
    AnonHot(u32),
    AnonCold(u32),
    /// Inflated into the balloon (handed back to the host).
    Balloon,
}

/// Pages that changed owner, in the order the guest moved them. What the host and
/// KSM will read from it:
///
/// * `from == FreeUntouched` and `to != Balloon`: newly touched, by `to`;
/// * `to == FreeUntouched` or `to == Balloon` from a touched owner: discarded to the
///   host (free page reporting, balloon inflation);
/// * `to` one of the touched free kinds: freed inside the guest (content stays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageMove {
    pub from: Owner,
    pub to: Owner,
    pub pages: Vec<u32>,
}

/// A booted guest's free memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BootFree {
    /// Zeroed at boot, all of it (Windows).
    Touched,
    /// Never touched, but for `boot_freed` pages freed after boot (Linux).
    Untouched { boot_freed: u64 },
}

/// Index stacks per owner. Stacks pop from the top: the most recently freed pages are
/// reused first, like the buddy allocator's hot pages.
#[derive(Clone, Debug)]
pub(super) struct Pages {
    reserved: Range<u32>,
    kernel: Range<u32>,
    untouched: Stack,
    scattered: Stack,
    contig: Stack,
    cache_cold: Stack,
    balloon: Stack,
    procs: Vec<ProcPages>,
    /// Moves since the last [`Pages::take_moves`], when recording.
    log: Option<Vec<PageMove>>,
}

#[derive(Clone, Debug, Default)]
struct ProcPages {
    cache_hot: Stack,
    anon_hot: Stack,
    anon_cold: Stack,
}

/// A stack of page indices kept as runs of consecutive indices; the top of the stack
/// is the end of the last run.
#[derive(Clone, Debug, Default)]
struct Stack {
    runs: Vec<Range<u32>>,
    len: u64,
}

impl Stack {
    fn push_run(&mut self, r: Range<u32>) {
        if r.is_empty() {
            return;
        }
        self.len += u64::from(r.end - r.start);
        match self.runs.last_mut() {
            Some(last) if last.end == r.start => last.end = r.end,
            _ => self.runs.push(r),
        }
    }

    /// Moves the top `n` (at most `len`) indices onto `dst`, also into `log` if given.
    fn move_top(&mut self, mut n: u64, dst: &mut Stack, mut log: Option<&mut Vec<u32>>) {
        while n > 0 {
            let last = self.runs.last_mut().expect("n <= len");
            let k = u64::from(last.end - last.start).min(n);
            let r = last.end - k as u32..last.end;
            last.end = r.start;
            if last.start == last.end {
                self.runs.pop();
            }
            self.len -= k;
            n -= k;
            if let Some(log) = log.as_deref_mut() {
                log.extend(r.clone());
            }
            dst.push_run(r);
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|r| r.clone())
    }

    /// The top `n` indices (fewer if the stack is shorter), top first.
    fn top(&self, n: u64) -> impl Iterator<Item = u32> + '_ {
        self.runs
            .iter()
            .rev()
            .flat_map(|r| r.clone().rev())
            .take(n as usize)
    }
}

/// How many pages of each free kind a [`Pages::take_free`] took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Taken {
    pub untouched: u64,
    pub scattered: u64,
    pub contig: u64,
}

impl Pages {
    /// `ram` pages: `reserved` then `kernel` as a fixed prefix, the rest free —
    /// untouched, or touched in whole blocks when `touched_free` (Windows zeroes its
    /// RAM at boot). Of an untouched rest, the first `boot_freed` pages are touched
    /// scattered free pages: what Linux freed after boot.
    pub fn new(ram: u64, reserved: u64, kernel: u64, procs: usize, free: BootFree) -> Pages {
        let ram = u32::try_from(ram).expect("guest RAM fits in u32 pages (16 TiB)");
        let r = reserved as u32;
        let k = r + kernel as u32;
        let mut untouched = Stack::default();
        let mut scattered = Stack::default();
        let mut contig = Stack::default();
        match free {
            BootFree::Touched => contig.push_run(k..ram),
            BootFree::Untouched { boot_freed } => {
                let b = (k + boot_freed as u32).min(ram);
                untouched.push_run(b..ram);
                scattered.push_run(k..b);
            }
        }
        Pages {
            reserved: 0..r,
            kernel: r..k,
            untouched,
            scattered,
            contig,
            cache_cold: Stack::default(),
            balloon: Stack::default(),
            procs: vec![ProcPages::default(); procs],
            log: None,
        }
    }

    pub fn record(&mut self) {
        self.log.get_or_insert_with(Vec::new);
    }

    pub fn take_moves(&mut self) -> Vec<PageMove> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Pages `owner` holds now.
    pub fn len(&self, owner: Owner) -> u64 {
        match owner {
            Owner::Reserved => u64::from(self.reserved.end - self.reserved.start),
            Owner::Kernel => u64::from(self.kernel.end - self.kernel.start),
            _ => self.stack(owner).len,
        }
    }

    /// The `n` most recently placed indices of `owner` (a stack owner), newest first.
    pub fn top(&self, owner: Owner, n: u64) -> Vec<u32> {
        self.stack(owner).top(n).collect()
    }

    /// Every owner with its indices (empty owners left out).
    pub fn owners(&self) -> Vec<(Owner, Vec<u32>)> {
        let mut out: Vec<(Owner, Vec<u32>)> = vec![
            (Owner::Reserved, self.reserved.clone().collect()),
            (Owner::Kernel, self.kernel.clone().collect()),
        ];
        let mut stacks = vec![
            Owner::FreeUntouched,
            Owner::FreeScattered,
            Owner::FreeContig,
            Owner::CacheCold,
            Owner::Balloon,
        ];
        for i in 0..self.procs.len() as u32 {
            stacks.extend([Owner::CacheHot(i), Owner::AnonHot(i), Owner::AnonCold(i)]);
        }
        out.extend(
            stacks
                .into_iter()
                .map(|o| (o, self.stack(o).iter().collect())),
        );
        out.retain(|(_, v)| !v.is_empty());
        out
    }

    /// Moves `n` pages (at most what `from` holds) from `from` to `to`.
    pub fn mv(&mut self, from: Owner, to: Owner, n: u64) {
        debug_assert!(n <= self.len(from), "{from:?} holds fewer than {n} pages");
        let n = n.min(self.len(from));
        if n == 0 || from == to {
            return;
        }
        let mut logged = self.log.is_some().then(Vec::new);
        let mut src = std::mem::take(self.stack_mut(from));
        src.move_top(n, self.stack_mut(to), logged.as_mut());
        *self.stack_mut(from) = src;
        if let (Some(log), Some(pages)) = (self.log.as_mut(), logged) {
            log.push(PageMove { from, to, pages });
        }
    }

    /// Moves every page of `from` to `to`.
    pub fn mv_all(&mut self, from: Owner, to: Owner) {
        self.mv(from, to, self.len(from));
    }

    /// Takes up to `n` free pages for `to`, touched ones first: scattered, then
    /// contig, then untouched (the order `Free::take` counts them in).
    pub fn take_free(&mut self, n: u64, to: Owner) -> Taken {
        let scattered = n.min(self.len(Owner::FreeScattered));
        let contig = (n - scattered).min(self.len(Owner::FreeContig));
        let untouched = (n - scattered - contig).min(self.len(Owner::FreeUntouched));
        self.mv(Owner::FreeScattered, to, scattered);
        self.mv(Owner::FreeContig, to, contig);
        self.mv(Owner::FreeUntouched, to, untouched);
        Taken {
            untouched,
            scattered,
            contig,
        }
    }

    fn stack(&self, owner: Owner) -> &Stack {
        match owner {
            Owner::FreeUntouched => &self.untouched,
            Owner::FreeScattered => &self.scattered,
            Owner::FreeContig => &self.contig,
            Owner::CacheCold => &self.cache_cold,
            Owner::Balloon => &self.balloon,
            Owner::CacheHot(i) => &self.procs[i as usize].cache_hot,
            Owner::AnonHot(i) => &self.procs[i as usize].anon_hot,
            Owner::AnonCold(i) => &self.procs[i as usize].anon_cold,
            Owner::Reserved | Owner::Kernel => unreachable!("{owner:?} is a fixed range"),
        }
    }

    fn stack_mut(&mut self, owner: Owner) -> &mut Stack {
        match owner {
            Owner::FreeUntouched => &mut self.untouched,
            Owner::FreeScattered => &mut self.scattered,
            Owner::FreeContig => &mut self.contig,
            Owner::CacheCold => &mut self.cache_cold,
            Owner::Balloon => &mut self.balloon,
            Owner::CacheHot(i) => &mut self.procs[i as usize].cache_hot,
            Owner::AnonHot(i) => &mut self.procs[i as usize].anon_hot,
            Owner::AnonCold(i) => &mut self.procs[i as usize].anon_cold,
            Owner::Reserved | Owner::Kernel => unreachable!("{owner:?} is a fixed range"),
        }
    }
}
