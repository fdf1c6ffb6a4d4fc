//! VMs and templates: reading, layering (defaults < template < VM), cross-field
//! checks, and `count:` expansion.
//!
//! A template and a VM entry accept the same keys, so both are read into [`VmFields`],
//! where every key remembers where it was written. Layering is then a per-key choice,
//! and a rule that spans keys (balloon ≤ memory) is checked once per VM entry after
//! layering but reported at the line of the key that broke it — in the VM if it set the
//! key, else in its template — so the message points at the text to change.
//!
//! Clones made by `count:` share one entry, so they are checked once; only their vmids
//! are checked individually (range, duplicates against every other entry).

use std::collections::BTreeMap;

use super::located::{Node, Value};
use super::read::{
    boolean, choice, duration, fields, fraction, join, list, positive_duration, size, string,
    uint32, At, Ctx, Fields, Slot,
};
use super::units::{format_duration, format_size, Bare};
use super::workload::{workload, WorkloadSpec};
use super::{Content, Os, VmConfig};
use crate::engine::SimTime;

pub(crate) const MIN_VMID: u32 = 100;
pub(crate) const MAX_VMID: u32 = 999_999_999;
/// Upper bound for `count:`, far above what one host runs, to bound memory use.
pub(crate) const MAX_COUNT: u32 = 10_000;

/// Keys only a VM entry has: they identify the VM rather than describe it.
const VM_ONLY_KEYS: &[&str] = &["vmid", "name", "count", "template"];
const SHARED_KEYS: &[&str] = &[
    "os",
    "memory",
    "balloon",
    "shares",
    "balloon_driver",
    "deflate_on_oom",
    "free_page_reporting",
    "swap",
    "swappiness",
    "start_at",
    "stop_at",
    "migrations",
    "hugepages",
    "passthrough",
    "ksm",
    "content",
    "workload",
];
const CONTENT_KEYS: &[&str] = &[
    "kernel_shared",
    "cache_shared",
    "anon_shared",
    "family_shared",
    "zero_freed",
];
const MIGRATION_KEYS: &[&str] = &["at", "duration"];

/// A migration window `[start, end)`.
type Window = (SimTime, SimTime);

/// The keys a template or VM entry may set, each with where it was set.
#[derive(Clone, Debug, Default)]
pub(crate) struct VmFields {
    os: Slot<Os>,
    memory: Slot<u64>,
    balloon: Slot<u64>,
    shares: Slot<u32>,
    balloon_driver: Slot<bool>,
    deflate_on_oom: Slot<bool>,
    free_page_reporting: Slot<bool>,
    swap: Slot<u64>,
    swappiness: Slot<u32>,
    start_at: Slot<SimTime>,
    stop_at: Slot<SimTime>,
    migrations: Slot<Vec<At<Window>>>,
    hugepages: Slot<bool>,
    passthrough: Slot<bool>,
    ksm: Slot<bool>,
    content: Slot<ContentFields>,
    workload: Slot<WorkloadSpec>,
}

/// `content:` as written: each fraction falls back to the OS default on its own.
#[derive(Clone, Debug, Default)]
struct ContentFields {
    kernel_shared: Option<f64>,
    cache_shared: Option<f64>,
    anon_shared: Option<f64>,
    family_shared: Option<f64>,
    zero_freed: Option<bool>,
}

impl ContentFields {
    fn resolve(&self, os: Os) -> Content {
        let d = Content::default_for(os);
        Content {
            kernel_shared: self.kernel_shared.unwrap_or(d.kernel_shared),
            cache_shared: self.cache_shared.unwrap_or(d.cache_shared),
            anon_shared: self.anon_shared.unwrap_or(d.anon_shared),
            family_shared: self.family_shared.unwrap_or(d.family_shared),
            zero_freed: self.zero_freed.unwrap_or(d.zero_freed),
        }
    }
}

fn content(ctx: &mut Ctx, node: &Node, path: &str) -> Option<ContentFields> {
    let f = fields(ctx, node, path, CONTENT_KEYS)?;
    // Read every key before giving up on any, so that all problems are reported.
    let kernel_shared = f.slot(ctx, "kernel_shared", fraction);
    let cache_shared = f.slot(ctx, "cache_shared", fraction);
    let anon_shared = f.slot(ctx, "anon_shared", fraction);
    let family_shared = f.slot(ctx, "family_shared", fraction);
    let zero_freed = f.slot(ctx, "zero_freed", boolean);
    Some(ContentFields {
        kernel_shared: kernel_shared.optional()?,
        cache_shared: cache_shared.optional()?,
        anon_shared: anon_shared.optional()?,
        family_shared: family_shared.optional()?,
        zero_freed: zero_freed.optional()?,
    })
}

impl VmFields {
    fn read(ctx: &mut Ctx, f: &Fields) -> VmFields {
        let os = |n: &Node| {
            choice("os", &["linux", "windows"])(n).map(|o| match o {
                "windows" => Os::Windows,
                _ => Os::Linux,
            })
        };
        VmFields {
            os: f.slot(ctx, "os", os),
            memory: f.slot(ctx, "memory", positive_size(Bare::Mib)),
            balloon: f.slot(ctx, "balloon", size(Bare::Mib)),
            shares: f.slot(ctx, "shares", uint32(0, 50_000)),
            balloon_driver: f.slot(ctx, "balloon_driver", boolean),
            deflate_on_oom: f.slot(ctx, "deflate_on_oom", boolean),
            free_page_reporting: f.slot(ctx, "free_page_reporting", boolean),
            swap: f.slot(ctx, "swap", size(Bare::Reject)),
            swappiness: f.slot(ctx, "swappiness", uint32(0, 200)),
            start_at: f.slot(ctx, "start_at", duration),
            stop_at: f.slot(ctx, "stop_at", duration),
            migrations: f.nested(ctx, "migrations", migrations),
            hugepages: f.slot(ctx, "hugepages", boolean),
            passthrough: f.slot(ctx, "passthrough", boolean),
            ksm: f.slot(ctx, "ksm", boolean),
            content: f.nested(ctx, "content", content),
            workload: f.nested(ctx, "workload", workload),
        }
    }

    /// These fields where set, `base`'s elsewhere.
    fn over(&self, base: &VmFields) -> VmFields {
        VmFields {
            os: self.os.over(&base.os),
            memory: self.memory.over(&base.memory),
            balloon: self.balloon.over(&base.balloon),
            shares: self.shares.over(&base.shares),
            balloon_driver: self.balloon_driver.over(&base.balloon_driver),
            deflate_on_oom: self.deflate_on_oom.over(&base.deflate_on_oom),
            free_page_reporting: self.free_page_reporting.over(&base.free_page_reporting),
            swap: self.swap.over(&base.swap),
            swappiness: self.swappiness.over(&base.swappiness),
            start_at: self.start_at.over(&base.start_at),
            stop_at: self.stop_at.over(&base.stop_at),
            migrations: self.migrations.over(&base.migrations),
            hugepages: self.hugepages.over(&base.hugepages),
            passthrough: self.passthrough.over(&base.passthrough),
            ksm: self.ksm.over(&base.ksm),
            content: self.content.over(&base.content),
            workload: self.workload.over(&base.workload),
        }
    }
}

fn positive_size(bare: Bare) -> impl Fn(&Node) -> Result<u64, String> {
    move |node| match size(bare)(node)? {
        0 => Err("must be larger than 0".into()),
        bytes => Ok(bytes),
    }
}

/// `migrations: [{at: 30m, duration: 2m}, ...]`, sorted by start; overlaps reported.
fn migrations(ctx: &mut Ctx, node: &Node, path: &str) -> Option<Vec<At<Window>>> {
    let items = match list(node, "a list of {at, duration} windows") {
        Ok(items) => items,
        Err(message) => {
            ctx.report(node.line, path, message);
            return None;
        }
    };
    let read: Vec<Option<At<Window>>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| migration(ctx, item, &format!("{path}[{i}]")))
        .collect();
    let mut windows: Vec<At<Window>> = read.into_iter().collect::<Option<_>>()?;
    windows.sort_by_key(|w| w.value);
    let mut ok = true;
    for pair in windows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.value.0 < a.value.1 {
            let message = format!("window {} overlaps {} ({})", span(b), a.path, span(a));
            ctx.report_at(b, message);
            ok = false;
        }
    }
    ok.then_some(windows)
}

fn migration(ctx: &mut Ctx, node: &Node, path: &str) -> Option<At<Window>> {
    let f = fields(ctx, node, path, MIGRATION_KEYS)?;
    let at = f.required(ctx, "at", duration);
    let length = f.required(ctx, "duration", positive_duration);
    let (at, length) = (at?.value, length?.value);
    Some(At {
        value: (at, at + length),
        line: node.line,
        path: path.to_string(),
    })
}

fn span(w: &At<Window>) -> String {
    format!(
        "{}..{}",
        format_duration(w.value.0),
        format_duration(w.value.1)
    )
}

/// Templates by name. A template with problems is kept (with its readable keys) so
/// VMs naming it are not also told it does not exist.
pub(crate) type Templates = BTreeMap<String, VmFields>;

pub(crate) fn templates(ctx: &mut Ctx, node: &Node) -> Templates {
    let mut out = Templates::new();
    let Value::Map(entries) = &node.value else {
        let message = format!(
            "expected a mapping of template names to VM keys, found {}",
            node.describe()
        );
        ctx.report(node.line, "templates", message);
        return out;
    };
    for (name, body) in entries {
        let path = join("templates", name);
        if out.contains_key(name) {
            ctx.report(body.line, &path, "duplicate template name");
            continue;
        }
        let allowed: Vec<&str> = VM_ONLY_KEYS.iter().chain(SHARED_KEYS).copied().collect();
        let Some(f) = fields(ctx, body, &path, &allowed) else {
            out.insert(name.clone(), VmFields::default());
            continue;
        };
        for key in VM_ONLY_KEYS.iter().filter(|k| f.get(k).is_some()) {
            let line = f.get(key).map_or(body.line, |n| n.line);
            let message = "belongs on a VM, not in a template (templates hold shared defaults)";
            ctx.report(line, &f.child(key), message);
        }
        out.insert(name.clone(), VmFields::read(ctx, &f));
    }
    out
}

/// What the VM checks need from the rest of the file; `None` where that is invalid.
pub(crate) struct Limits {
    pub host_memory: Option<u64>,
    pub duration: Option<SimTime>,
}

/// A VM entry's vmid and count, for the duplicate check.
struct Ids {
    path: String,
    vmid: At<u32>,
    count: u32,
}

impl Ids {
    /// The last vmid of the entry (clones past [`MAX_VMID`] are not made).
    fn last(&self) -> u32 {
        let last = u64::from(self.vmid.value) + u64::from(self.count) - 1;
        last.min(u64::from(MAX_VMID)) as u32
    }

    /// `vms[2]`, or `vms[2] (vmids 101..=103)` for an entry with clones.
    fn describe(&self) -> String {
        self.path.clone() + &self.coverage()
    }

    fn coverage(&self) -> String {
        match self.count {
            1 => String::new(),
            _ => format!(" (vmids {}..={} via count)", self.vmid.value, self.last()),
        }
    }
}

/// Reads `vms:`, expands `count:`, and returns the VMs sorted by vmid.
pub(crate) fn vms(
    ctx: &mut Ctx,
    node: &Node,
    templates: &Templates,
    limits: &Limits,
) -> Option<Vec<VmConfig>> {
    let items = match list(node, "a list of VMs") {
        Ok([]) => {
            ctx.report(
                node.line,
                "vms",
                "the list is empty: a scenario needs at least one VM",
            );
            return None;
        }
        Ok(items) => items,
        Err(message) => {
            ctx.report(node.line, "vms", message);
            return None;
        }
    };
    let mut ids = Vec::new();
    let mut out = Some(Vec::new());
    for (i, item) in items.iter().enumerate() {
        let (entry_ids, vms) = vm_entry(ctx, item, &format!("vms[{i}]"), templates, limits);
        ids.extend(entry_ids);
        out = out.zip(vms).map(|(mut all, vms)| {
            all.extend(vms);
            all
        });
    }
    check_duplicates(ctx, &ids);
    let mut out = out?;
    out.sort_by_key(|vm| vm.vmid);
    Some(out)
}

fn vm_entry(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    templates: &Templates,
    limits: &Limits,
) -> (Option<Ids>, Option<Vec<VmConfig>>) {
    let keys: Vec<&str> = VM_ONLY_KEYS.iter().chain(SHARED_KEYS).copied().collect();
    let Some(f) = fields(ctx, node, path, &keys) else {
        return (None, None);
    };
    let vmid = f.required(ctx, "vmid", uint32(MIN_VMID, MAX_VMID));
    let count = f.slot(ctx, "count", uint32(1, MAX_COUNT));
    let name = f.slot(ctx, "name", string).optional();
    let names: Vec<&str> = templates.keys().map(String::as_str).collect();
    let template = f.slot(ctx, "template", |n| {
        choice("template", &names)(n).map(str::to_string)
    });
    check_vmid_range(ctx, vmid.as_ref(), &count);
    let ids = vmid
        .clone()
        .zip(count.clone().or(1))
        .map(|(vmid, count)| Ids {
            path: path.to_string(),
            vmid,
            count,
        });
    let own = VmFields::read(ctx, &f);
    let config = match template {
        Slot::Invalid => None,
        Slot::Unset => resolve(ctx, &f, own, None, limits),
        Slot::Set(t) => {
            let base = templates.get(&t.value).cloned().unwrap_or_default();
            resolve(ctx, &f, own.over(&base), Some(t.value), limits)
        }
    };
    let vms = (|| {
        let (vmid, count, name) = (vmid?.value, count.or(1)?, name?);
        Some(expand(config?, vmid, count, name.as_deref()))
    })();
    (ids, vms)
}

fn check_vmid_range(ctx: &mut Ctx, vmid: Option<&At<u32>>, count: &Slot<u32>) {
    if let (Some(vmid), Slot::Set(count)) = (vmid, count) {
        let last = u64::from(vmid.value) + u64::from(count.value) - 1;
        if last > u64::from(MAX_VMID) {
            let message = format!(
                "vmid {} with count {} reaches {last}, above the largest vmid {MAX_VMID}",
                vmid.value, count.value
            );
            ctx.report_at(count, message);
        }
    }
}

/// Clones of one entry: vmids `vmid, vmid+1, ...`; names `<name>-1, <name>-2, ...` when
/// the entry is named and has clones, else `vm<vmid>`.
fn expand(config: VmConfig, vmid: u32, count: u32, name: Option<&str>) -> Vec<VmConfig> {
    (0..count)
        .map_while(|i| vmid.checked_add(i))
        .enumerate()
        .map(|(i, id)| VmConfig {
            vmid: id,
            name: match name {
                Some(n) if count == 1 => n.to_string(),
                Some(n) => format!("{n}-{}", i + 1),
                None => format!("vm{id}"),
            },
            ..config.clone()
        })
        .collect()
}

/// Reports each pair of entries whose vmid ranges overlap, at the later entry's vmid.
fn check_duplicates(ctx: &mut Ctx, entries: &[Ids]) {
    for (j, entry) in entries.iter().enumerate() {
        for earlier in &entries[..j] {
            let first = entry.vmid.value.max(earlier.vmid.value);
            if first <= entry.last().min(earlier.last()) {
                let message = format!("vmid {first} is already used by {}", earlier.describe());
                ctx.report_at(&entry.vmid, message + &entry.coverage());
            }
        }
    }
}

/// Applies defaults, checks rules spanning keys, and builds the VM (vmid and name are
/// filled in by [`expand`]).
fn resolve(
    ctx: &mut Ctx,
    f: &Fields,
    v: VmFields,
    template: Option<String>,
    limits: &Limits,
) -> Option<VmConfig> {
    let mut blame = Blame { ctx, vm: &f.path };
    let memory = match &v.memory {
        Slot::Set(at) => Some(at.value),
        Slot::Invalid => None,
        Slot::Unset => {
            let hint = if template.is_some() {
                " (set it on the VM or in its template)"
            } else {
                ""
            };
            f.missing(blame.ctx, "memory", hint);
            None
        }
    };
    blame.memory(&v, limits);
    blame.balloon(&v);
    blame.times(&v, limits);
    let workload = v.workload.or(WorkloadSpec::idle())?;
    let (workload, processes) = workload.build(memory?);
    let balloon = v.balloon.optional()?;
    let os = v.os.or(Os::Linux)?;
    Some(VmConfig {
        vmid: 0,
        name: String::new(),
        template,
        os,
        memory: memory?,
        balloon_device: balloon != Some(0),
        balloon_min: balloon.filter(|b| *b > 0),
        shares: v.shares.or(1000)?,
        balloon_driver: v.balloon_driver.or(true)?,
        deflate_on_oom: v.deflate_on_oom.or(false)?,
        free_page_reporting: v.free_page_reporting.or(false)?,
        swap: v.swap.or(0)?,
        swappiness: v.swappiness.or(60)?,
        start_at: v.start_at.or(SimTime::ZERO)?,
        stop_at: v.stop_at.optional()?,
        migrations: v
            .migrations
            .or(Vec::new())?
            .into_iter()
            .map(|w| w.value)
            .collect(),
        hugepages: v.hugepages.or(false)?,
        passthrough: v.passthrough.or(false)?,
        ksm: v.ksm.or(true)?,
        content: v.content.or(ContentFields::default())?.resolve(os),
        workload,
        processes,
    })
}

/// Reports cross-field problems at the key that caused them; when that key came from a
/// template, the message names the VM entry it broke.
struct Blame<'c, 'a, 'p> {
    ctx: &'c mut Ctx<'a>,
    vm: &'p str,
}

impl Blame<'_, '_, '_> {
    fn report<T>(&mut self, at: &At<T>, message: String) {
        let inside = at.path.starts_with(&format!("{}.", self.vm));
        let suffix = if inside {
            String::new()
        } else {
            format!(" (for {})", self.vm)
        };
        self.ctx.report_at(at, message + &suffix);
    }

    fn memory(&mut self, v: &VmFields, limits: &Limits) {
        if let (Slot::Set(m), Some(host)) = (&v.memory, limits.host_memory) {
            if m.value > host {
                let message = format!(
                    "{} is larger than the host's memory {}",
                    format_size(m.value),
                    format_size(host)
                );
                self.report(m, message);
            }
        }
    }

    fn balloon(&mut self, v: &VmFields) {
        if let (Slot::Set(b), Slot::Set(m)) = (&v.balloon, &v.memory) {
            if b.value > m.value {
                let message = format!(
                    "minimum {} is larger than memory {}",
                    format_size(b.value),
                    format_size(m.value)
                );
                self.report(b, message);
            }
        }
    }

    fn times(&mut self, v: &VmFields, limits: &Limits) {
        let start = match &v.start_at {
            Slot::Set(s) => {
                self.start_before_end(s, limits);
                s.value
            }
            Slot::Unset => SimTime::ZERO,
            Slot::Invalid => return,
        };
        let stop = match &v.stop_at {
            Slot::Set(s) => self.stop_after_start(s, start, limits).then_some(s.value),
            Slot::Unset => None,
            Slot::Invalid => return,
        };
        if let Slot::Set(windows) = &v.migrations {
            for w in &windows.value {
                self.window_inside_run(w, start, stop, limits);
            }
        }
    }

    fn start_before_end(&mut self, s: &At<SimTime>, limits: &Limits) {
        if let Some(end) = limits.duration.filter(|end| s.value >= *end) {
            let message = format!(
                "{} is not before the end of the run (duration {})",
                format_duration(s.value),
                format_duration(end)
            );
            self.report(s, message);
        }
    }

    /// Checks `stop_at`; true when it is usable as the VM's end.
    fn stop_after_start(&mut self, s: &At<SimTime>, start: SimTime, limits: &Limits) -> bool {
        if s.value <= start {
            let message = format!(
                "{} is not after start_at {}",
                format_duration(s.value),
                format_duration(start)
            );
            self.report(s, message);
            return false;
        }
        if let Some(end) = limits.duration.filter(|end| s.value > *end) {
            let message = format!(
                "{} is after the end of the run (duration {})",
                format_duration(s.value),
                format_duration(end)
            );
            self.report(s, message);
        }
        true
    }

    fn window_inside_run(
        &mut self,
        w: &At<Window>,
        start: SimTime,
        stop: Option<SimTime>,
        limits: &Limits,
    ) {
        if w.value.0 < start {
            let message = format!(
                "window {} starts before the VM (start_at {})",
                span(w),
                format_duration(start)
            );
            self.report(w, message);
        }
        let end = match (stop, limits.duration) {
            (Some(stop), _) => Some((
                stop,
                format!("before the VM stops (stop_at {})", format_duration(stop)),
            )),
            (None, Some(d)) => Some((
                d,
                format!("within the run (duration {})", format_duration(d)),
            )),
            (None, None) => None,
        };
        if let Some((_, what)) = end.filter(|(end, _)| w.value.1 > *end) {
            self.report(w, format!("window {} does not end {what}", span(w)));
        }
    }
}
