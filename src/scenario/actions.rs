//! `actions:` — what an administrator does while the run goes on: stop or restart
//! ksmtuned (`systemctl stop|restart ksmtuned`) and write `/sys/kernel/mm/ksm` files
//! at a simulated time.
//!
//! Each write is checked by the same kernel model as the boot-time `ksm:` key, in
//! the order the run applies them: a kernel booted with the scenario's `ksm:` values
//! takes the actions' writes in time order, so a value that depends on an earlier one
//! (`pages_to_scan` while `advisor_mode` is `scan-time`: EINVAL) is refused as the
//! real write would be. Refusals that depend on the run itself (EBUSY for
//! `merge_across_nodes` while pages are shared) can only show in the run; they are
//! logged with the action.

use super::ksm::{kernel_accepts, ksmtuned, sysfs_writes};
use super::located::Node;
use super::read::{duration, fields, list, At, Ctx};
use super::units::format_duration;
use super::{AdminAction, KsmConfig, KsmtunedConfig};
use crate::engine::SimTime;
use crate::ksm::{Ksmd, Sysfs};

const ACTION_KEYS: &[&str] = &["at", "ksm", "ksmtuned"];

/// One entry as read, before the kernel checks its writes; `ok` is false when some
/// part of it was bad (reported), which still leaves its writes to be checked.
struct Entry {
    at: Option<At<SimTime>>,
    ksmtuned: Option<Option<KsmtunedConfig>>,
    ksm: Vec<At<Sysfs>>,
    ok: bool,
}

/// Reads the list; sorted by time (file order among equal times). `boot` and `end`
/// are `None` when those sections were invalid, which skips the checks needing them.
pub(super) fn actions(
    ctx: &mut Ctx,
    node: &Node,
    boot: Option<&KsmConfig>,
    end: Option<SimTime>,
) -> Option<Vec<AdminAction>> {
    let items = match list(node, "a list of {at, ksm, ksmtuned} actions") {
        Ok(items) => items,
        Err(message) => {
            ctx.report(node.line, "actions", message);
            return None;
        }
    };
    let mut entries: Vec<Entry> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| entry(ctx, item, &format!("actions[{i}]"), end))
        .collect();
    entries.sort_by_key(|e| e.at.as_ref().map(|at| at.value));
    let mut ok = entries.len() == items.len() && entries.iter().all(|e| e.ok);
    if let Some(boot) = boot {
        ok &= writes_accepted(ctx, boot, &entries);
    }
    if !ok {
        return None;
    }
    let actions = entries.into_iter().filter_map(|e| {
        Some(AdminAction {
            at: e.at?.value,
            ksmtuned: e.ksmtuned,
            ksm: e.ksm.into_iter().map(|w| w.value).collect(),
        })
    });
    Some(actions.collect())
}

/// `None` when the entry is no mapping.
fn entry(ctx: &mut Ctx, node: &Node, path: &str, end: Option<SimTime>) -> Option<Entry> {
    let f = fields(ctx, node, path, ACTION_KEYS)?;
    let at = f.required(ctx, "at", duration);
    let mut ok = at.is_some();
    if let (Some(at), Some(end)) = (&at, end) {
        if at.value > end {
            let message = format!(
                "{} is after the end of the run (duration {})",
                format_duration(at.value),
                format_duration(end)
            );
            ctx.report_at(at, message);
            ok = false;
        }
    }
    let ksm = f.get("ksm").map(|n| sysfs_writes(ctx, n, &f.child("ksm")));
    let tuned = f
        .get("ksmtuned")
        .map(|n| ksmtuned(ctx, n, &f.child("ksmtuned")));
    if ksm.is_none() && tuned.is_none() {
        let message = "an action needs `ksm:` (sysfs writes) or `ksmtuned:` (off or a variant)";
        ctx.report(f.line, path, message);
        ok = false;
    }
    ok &= !matches!(ksm, Some(None) | Some(Some((_, false)))) && !matches!(tuned, Some(None));
    Some(Entry {
        at,
        ksmtuned: tuned.flatten(),
        ksm: ksm.flatten().map(|(writes, _)| writes).unwrap_or_default(),
        ok,
    })
}

/// Whether a kernel booted with `boot`'s values takes every action's writes in time
/// order; each refusal is reported where it was written.
fn writes_accepted(ctx: &mut Ctx, boot: &KsmConfig, entries: &[Entry]) -> bool {
    let mut kernel = Ksmd::default();
    for w in boot.sysfs.writes() {
        // the boot values were accepted by the same model when `ksm:` was read
        let _ = kernel.set(SimTime::ZERO, w);
    }
    let mut ok = true;
    for e in entries {
        if let Some(at) = &e.at {
            ok &= kernel_accepts(ctx, &mut kernel, at.value, &e.ksm);
        }
    }
    ok
}
