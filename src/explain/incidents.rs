//! Single events told with their context: VMs starting, stopping and migrating, guest
//! OOM kills and what led to them, the balloon driver running out of puff, processes
//! coming back, the host OOM killer, ksmtuned switching ksmd on and off (or dying),
//! and what an admin did.

use crate::metrics::{Event, EventKind};

use super::detail;
use super::format::{clock, size, span};
use super::run::Run;
use super::Item;

pub(super) fn items(run: &Run) -> Vec<Item> {
    run.events()
        .filter_map(|(seq, e)| {
            let (kind, body) = match e.kind {
                EventKind::VmStart => ("start", started(run, e)),
                EventKind::VmStop => ("stop", stopped(run, e)),
                EventKind::MigrationStart => (
                    "migration",
                    "live migration starts (lock: migrate — pvestatd leaves its balloon alone)"
                        .to_string(),
                ),
                EventKind::MigrationEnd => (
                    "migration",
                    "migration done; pvestatd manages its balloon again".to_string(),
                ),
                EventKind::GuestOomKill => ("oom", guest_oom(run, e)),
                EventKind::DeflateOnOom => (
                    "deflate",
                    format!(
                        "deflate-on-oom: the balloon gives back {} instead of an OOM kill",
                        size(e.value.unsigned_abs())
                    ),
                ),
                EventKind::BalloonOutOfPuff => (
                    "puff",
                    format!(
                        "balloon driver out of puff: cannot allocate {} for the balloon \
                         (no free memory left in the guest); it keeps retrying",
                        size(e.value.unsigned_abs())
                    ),
                ),
                EventKind::ProcessRestart => ("restart", restarted(run, seq, e)),
                EventKind::HostOomKill => ("host oom", host_oom(e)),
                EventKind::KsmStart | EventKind::KsmStop => {
                    if let Some(said) = e.detail.strip_prefix("MOM: ") {
                        return Some(Item::host(e.t_s, seq, "ksm", "MOM", said.to_string()));
                    }
                    return Some(Item::host(e.t_s, seq, "ksm", "ksmtuned", ksm(run, seq, e)));
                }
                EventKind::KsmtunedExit => {
                    let said = e.detail.strip_prefix("ksmtuned ").unwrap_or(&e.detail);
                    return Some(Item::host(
                        e.t_s,
                        seq,
                        "ksmtuned",
                        "ksmtuned",
                        said.to_string(),
                    ));
                }
                EventKind::AdminAction => {
                    let said = e.detail.strip_prefix("admin: ").unwrap_or(&e.detail);
                    return Some(Item::host(e.t_s, seq, "admin", "admin", said.to_string()));
                }
                EventKind::MomRoundFailed => {
                    let said = e.detail.strip_prefix("MOM: ").unwrap_or(&e.detail);
                    return Some(Item::host(e.t_s, seq, "mom", "MOM", said.to_string()));
                }
                EventKind::BalloonTarget
                | EventKind::ReclaimCache
                | EventKind::SwapOut
                | EventKind::HostSwapOut => return None,
            };
            Some(Item::vm(e.t_s, seq, kind, e.vmid, body))
        })
        .collect()
}

/// `started with 4.0 GiB, balloon minimum 1.5 GiB: qemu-server sets the balloon to the
/// minimum at start` — and whatever keeps pvestatd from managing it.
fn started(run: &Run, e: &Event) -> String {
    let Some(c) = run.config(e.vmid) else {
        return format!("started with {}", size(e.value.unsigned_abs()));
    };
    let mut s = format!("started with {}", size(c.memory));
    if c.swap > 0 {
        s.push_str(&format!(" and {} of swap", size(c.swap)));
    }
    let min = c.balloon_min.filter(|&m| m > 0);
    match (c.balloon_device, min) {
        (false, _) => s.push_str("; no balloon device"),
        (true, None) => s.push_str("; no balloon minimum, so pvestatd leaves it alone"),
        (true, Some(_)) if !c.balloon_driver => s.push_str(&format!(
            ", balloon minimum {}, but no balloon driver in the guest: it stays at {}",
            size(min.unwrap_or(0)),
            size(c.memory)
        )),
        (true, Some(m)) if run.sc.mom.is_some() => {
            s.push_str(&format!(
                ", guaranteed memory {} (MOM never shrinks it below)",
                size(m)
            ));
        }
        (true, Some(m)) => {
            s.push_str(&format!(
                ", balloon minimum {}: qemu-server sets the balloon to it at start",
                size(m)
            ));
            if c.shares == 0 {
                s.push_str("; shares 0, so pvestatd never moves it");
            } else if c.shares != 1000 {
                s.push_str(&format!("; shares {}", c.shares));
            }
        }
    }
    if !e.detail.is_empty() {
        s.push_str(&format!("; {}", e.detail));
    }
    s
}

fn stopped(run: &Run, e: &Event) -> String {
    match run.vm_before(e.vmid, e.t_s) {
        Some(s) => format!(
            "stopped; its QEMU gives {} of guest RAM back to the host",
            size(s.host_resident_bytes)
        ),
        None => "stopped".to_string(),
    }
}

/// `guest OOM — killed postgres, badness 1764391, freed 6.7 GiB; the VM was at
/// 7.5 GiB of 16.0 GiB (balloon minimum 4.0 GiB)`.
fn guest_oom(run: &Run, e: &Event) -> String {
    let context = run.vm_before(e.vmid, e.t_s).map_or(String::new(), |s| {
        if s.actual_bytes <= s.balloon_min_bytes {
            format!(
                "; the balloon had squeezed it to its minimum, {} of {}",
                size(s.actual_bytes),
                size(s.maxmem_bytes)
            )
        } else {
            format!(
                "; the VM was at {} of {} (balloon minimum {})",
                size(s.actual_bytes),
                size(s.maxmem_bytes),
                size(s.balloon_min_bytes)
            )
        }
    });
    if let Some(k) = detail::oom_kill(&e.detail) {
        let asked = if k.trigger == k.victim {
            String::new()
        } else {
            format!(" ({} asked for memory)", k.trigger)
        };
        return format!(
            "guest OOM — killed {}, badness {}, freed {}{asked}{context}",
            k.victim,
            e.value,
            size(k.freed_mib << 20)
        );
    }
    if let Some(trigger) = detail::oom_no_victim(&e.detail) {
        return format!("guest OOM — {trigger} needs memory and no process can be killed{context}");
    }
    format!("{}{context}", e.detail)
}

/// `postgres restarted, 5m after it was killed`.
fn restarted(run: &Run, seq: usize, e: &Event) -> String {
    let Some(process) = detail::restarted(&e.detail) else {
        return e.detail.clone();
    };
    let killed = run.result.events[..seq].iter().rev().find(|k| {
        k.vmid == e.vmid
            && k.kind == EventKind::GuestOomKill
            && detail::oom_kill(&k.detail).is_some_and(|d| d.victim == process)
    });
    match killed {
        Some(k) => format!(
            "{process} restarted, {} after it was killed",
            span(e.t_s - k.t_s)
        ),
        None => format!("{process} restarted"),
    }
}

fn host_oom(e: &Event) -> String {
    let missing = detail::host_oom_missing_mib(&e.detail).map_or(String::new(), |m| {
        format!("; the host was {} short", size(m << 20))
    });
    format!(
        "host OOM killer kills its QEMU ({} of guest RAM resident{missing}); the VM is gone",
        size(e.value.unsigned_abs())
    )
}

/// ksmtuned's reason, in the script's own comparison, and what merging saves.
fn ksm(run: &Run, seq: usize, e: &Event) -> String {
    let start = e.kind == EventKind::KsmStart;
    let saved = run.host_at(e.t_s).map_or(0, |s| s.ksm_saved_bytes);
    let Some(k) = detail::ksmtuned(&e.detail) else {
        return e.detail.clone();
    };
    let (free, thres) = sizes_apart(k.free_mib, k.thres_mib);
    let reason = if !start {
        format!("host free {free} > threshold {thres}")
    } else if k.free_mib < k.thres_mib {
        format!("host free {free} < threshold {thres}")
    } else if e.detail.contains("the stop test failed") {
        format!(
            "host free {free} > threshold {thres}, but mawk printed a sum of 2 TiB or more as \
             text the script cannot compare, so it never stops KSM"
        )
    } else {
        let total = run.host_at(e.t_s).map_or(0, |s| s.mem_total_bytes);
        format!(
            "committed {} + threshold {thres} > total {}",
            size(k.committed_mib << 20),
            size(total)
        )
    };
    if start {
        let pace =
            detail::ksm_sleep_ms(&e.detail).map_or(String::new(), |ms| format!(" every {ms} ms"));
        let still = if saved > 0 {
            format!("; merged pages still save {}", size(saved))
        } else {
            String::new()
        };
        return format!(
            "{reason} → ksmd on, scanning {} pages{pace}{still}",
            e.value
        );
    }
    let since = run.result.events[..seq]
        .iter()
        .rev()
        .find(|k| k.kind == EventKind::KsmStart)
        .map_or(0.0, |k| k.t_s);
    let peak = run
        .host_between(since, e.t_s + 1e-9)
        .iter()
        .map(|s| s.ksm_saved_bytes)
        .max()
        .unwrap_or(saved)
        .max(saved);
    let peak = if size(peak) == size(saved) {
        String::new()
    } else {
        format!(" (peak {})", size(peak))
    };
    format!(
        "{reason} → ksmd off after running since {}; merging saves {}{peak}, and merged \
         pages stay merged",
        clock(since),
        size(saved)
    )
}

/// Two sizes in MiB written so that their order shows: `12.3 GiB` and `12.5 GiB`, or
/// `12843 MiB` and `12845 MiB` where rounding would print them alike.
fn sizes_apart(a_mib: u64, b_mib: u64) -> (String, String) {
    let (a, b) = (size(a_mib << 20), size(b_mib << 20));
    if a == b && a_mib != b_mib {
        (format!("{a_mib} MiB"), format!("{b_mib} MiB"))
    } else {
        (a, b)
    }
}
