//! Seeded generator of varied `compute_alg1` inputs, shared by the property tests
//! and the differential tests against upstream Perl.
//!
//! Most cases look like real hosts (MiB-aligned or arbitrary byte sizes, 100 MiB
//! steps, goals from the dead-zone edges up to a TiB); a minority probe the corners:
//! undefined and zero fields, `migrate` and other locks, `shares` 0 or negative
//! (possibly a zero share total: upstream dies), guests below their minimum or above
//! `maxmem`, `balloon_min > maxmem`, freemem exactly at the 25 % threshold, odd
//! `maxchange` values, long drifts through an undefined `maxmem`, and a few cases
//! with values up to 2^58, where Perl's mix of integer and double arithmetic
//! matters. Those stay small enough that Perl's own
//! integers never overflow, so upstream's answers are exact integers.
//!
//! [`to_json`] writes a case in the replay format, choosing at random between
//! absent and `null` for undefined fields and between integers, integral floats and
//! canonical integer strings for numbers.

use std::collections::{BTreeMap, BTreeSet};

use memsim::autoballoon::VmStatus;
use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};

pub const MIB: i64 = 1 << 20;
pub const GIB: i64 = 1 << 30;

/// One allocator input; `maxchange: None` means pvestatd's default.
#[derive(Clone, Debug)]
pub struct Case {
    pub goal: i64,
    pub maxchange: Option<i64>,
    pub vms: BTreeMap<String, VmStatus>,
}

pub fn case(rng: &mut ChaCha8Rng) -> Case {
    match rng.random_range(0..100) {
        0..=5 => huge_case(rng),
        6..=7 => drift_case(rng),
        _ => host_case(rng),
    }
}

fn host_case(rng: &mut ChaCha8Rng) -> Case {
    let count = match rng.random_range(0..100) {
        0..=1 => 0,
        2..=71 => rng.random_range(1..=4),
        72..=97 => rng.random_range(5..=8),
        _ => rng.random_range(9..=24),
    };
    let mut vms: Vec<(String, VmStatus)> = vmids(rng, count)
        .into_iter()
        .map(|vmid| (vmid, host_vm(rng)))
        .collect();
    if vms.len() >= 2 && rng.random_bool(0.05) {
        cancel_shares(rng, &mut vms);
    }
    Case {
        goal: host_goal(rng),
        maxchange: maxchange(rng),
        vms: vms.into_iter().collect(),
    }
}

/// Gives two VMs opposite shares, so that a pool can have a zero share total
/// (upstream then dies with a division by zero).
fn cancel_shares(rng: &mut ChaCha8Rng, vms: &mut [(String, VmStatus)]) {
    let shares = rng.random_range(1..=50_000);
    let (first, rest) = vms.split_at_mut(1);
    let (a, b) = (
        &mut first[0].1,
        &mut rest[rng.random_range(0..rest.len())].1,
    );
    a.shares = Some(shares).filter(|&s| s != 1000 || rng.random_bool(0.5));
    b.shares = Some(-shares);
}

/// Distinct ids; mostly Proxmox-style numbers (so "1000" sorts before "999").
fn vmids(rng: &mut ChaCha8Rng, count: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    while ids.len() < count {
        let id = if rng.random_bool(0.95) {
            rng.random_range(100..1200).to_string()
        } else {
            format!("vm-{}", rng.random_range(0..50))
        };
        ids.insert(id);
    }
    ids
}

fn size(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    let bytes = rng.random_range(lo..=hi);
    if rng.random_bool(0.5) {
        bytes / MIB * MIB
    } else {
        bytes
    }
}

fn host_vm(rng: &mut ChaCha8Rng) -> VmStatus {
    let min = match rng.random_range(0..100) {
        0..=5 => None,
        6..=11 => Some(0),
        _ => Some(size(rng, 128 * MIB, 16 * GIB)),
    };
    let base = min.filter(|&m| m > 0).unwrap_or(GIB);
    let max = match rng.random_range(0..100) {
        0..=2 => None,
        3..=10 => Some(size(rng, 64 * MIB, base)), // balloon_min >= maxmem
        11..=20 => Some(base),
        _ => Some(base + size(rng, 0, 16 * GIB)),
    };
    let top = max.unwrap_or(base + 4 * GIB).max(base);
    let balloon = match rng.random_range(0..100) {
        0..=3 => None,
        4..=7 => Some(0),
        8..=22 => Some(base),
        23..=37 => Some(top),
        38..=44 => Some(size(rng, 1, base)), // below the minimum
        45..=49 => Some(top + size(rng, 1, 2 * GIB)),
        50..=52 => Some(rng.random_range(1..=200 * MIB)),
        53 => Some(-rng.random_range(1..=GIB)),
        _ => Some(size(rng, base, top)),
    };
    VmStatus {
        balloon,
        balloon_min: min,
        maxmem: max,
        shares: shares(rng),
        freemem: freemem(rng, base, top),
        lock: lock(rng),
    }
}

fn shares(rng: &mut ChaCha8Rng) -> Option<i64> {
    match rng.random_range(0..100) {
        0..=39 => None,
        40..=44 => Some(0),
        45..=47 => Some(-rng.random_range(1..=50_000)),
        48..=69 => [500, 1000, 2000, 3000].choose(rng).copied(),
        _ => Some(rng.random_range(1..=50_000)),
    }
}

fn freemem(rng: &mut ChaCha8Rng, min: i64, top: i64) -> Option<i64> {
    // the "enough free memory" test is freemem > balloon_min * 0.25
    let threshold = min / 4;
    match rng.random_range(0..100) {
        0..=19 => None,
        20..=39 => Some(0),
        40..=44 => Some(threshold),
        45..=47 => Some(threshold + 1),
        48..=49 => Some(-rng.random_range(1..=GIB)),
        _ => Some(size(rng, 0, top)),
    }
}

fn lock(rng: &mut ChaCha8Rng) -> Option<String> {
    let lock = match rng.random_range(0..100) {
        0..=5 => "migrate",
        6..=9 => "backup",
        10..=11 => "snapshot",
        12..=13 => "",
        14 => "0",
        _ => return None,
    };
    Some(lock.to_owned())
}

fn host_goal(rng: &mut ChaCha8Rng) -> i64 {
    let dead = 10 * MIB;
    let magnitude = match rng.random_range(0..100) {
        0..=5 => {
            return [0, dead, -dead, dead + 1, -dead - 1]
                .choose(rng)
                .copied()
                .unwrap_or(0)
        }
        6..=40 => size(rng, dead, 200 * MIB),
        41..=75 => size(rng, 200 * MIB, 8 * GIB),
        76..=95 => size(rng, 8 * GIB, 1024 * GIB),
        _ => rng.random_range(1 << 40..=1 << 50),
    };
    if rng.random_bool(0.5) {
        magnitude
    } else {
        -magnitude
    }
}

fn maxchange(rng: &mut ChaCha8Rng) -> Option<i64> {
    match rng.random_range(0..100) {
        0..=69 => None,
        70..=79 => Some(100_000_000),
        80..=91 => Some(rng.random_range(1..=GIB)),
        92..=94 => Some(0),
        95..=97 => Some(rng.random_range(1..=64) * 16 * MIB),
        _ => Some(-rng.random_range(1..=GIB)),
    }
}

/// Few VMs with sizes up to 2^58 and positive shares: pools above 2^53, where Perl
/// divides exact quotients as integers and multiplies integral quotients below
/// 2^53 as integers, rounding only otherwise.
fn huge_case(rng: &mut ChaCha8Rng) -> Case {
    let count = rng.random_range(1..=4);
    let vms: BTreeMap<String, VmStatus> = vmids(rng, count)
        .into_iter()
        .map(|vmid| {
            let min = rng.random_range(1..=1 << 56);
            let max = min + rng.random_range(0..=1 << 57);
            // share totals of 16..32 put 2^57-byte quotients into [2^52, 2^53)
            let shares = [1, 2, 3, 7, 10, 16, 25, 1000, rng.random_range(1..=50_000)];
            let vm = VmStatus {
                balloon: Some(rng.random_range(1..=1 << 58)),
                balloon_min: Some(min),
                maxmem: Some(max),
                shares: shares.choose(rng).copied(),
                freemem: Some(rng.random_range(0..=1 << 58)).filter(|_| rng.random_bool(0.5)),
                lock: None,
            };
            (vmid, vm)
        })
        .collect();
    // small goals keep some shares unclamped, so their low bits show
    let reach = if rng.random_bool(0.5) {
        1 << 60
    } else {
        1 << 44
    };
    let mut goal = rng.random_range(-reach..=reach);
    if rng.random_bool(0.5) {
        // make the pool of all VMs divisible by their share total
        let pool: i64 = vms
            .values()
            .map(|vm| vm.balloon.unwrap_or(0) - vm.balloon_min.unwrap_or(0))
            .sum();
        let total: i64 = vms.values().map(|vm| vm.shares.unwrap_or(1000)).sum();
        goal -= (pool + goal).rem_euclid(total);
    }
    let maxchange = Some(rng.random_range(0..=1 << 58)).filter(|_| rng.random_bool(0.8));
    Case {
        goal,
        maxchange,
        vms,
    }
}

/// A host case plus one VM with a slightly negative `balloon` and no `maxmem`: its
/// target becomes `undef`, and upstream drifts for up to ~10^6 iterations before
/// the grow request ends (see `compute_alg1`).
fn drift_case(rng: &mut ChaCha8Rng) -> Case {
    let mut case = host_case(rng);
    let drifter = VmStatus {
        balloon: Some(-rng.random_range(64 * 1024..=16 * MIB)),
        balloon_min: Some(size(rng, 128 * MIB, 16 * GIB)),
        shares: shares(rng).filter(|&s| s > 0),
        ..VmStatus::default()
    };
    case.vms.insert("drift".to_owned(), drifter);
    case.goal = size(rng, GIB, 64 * GIB);
    case
}

/// The case as a replay input object, with `id` if given.
pub fn to_json(case: &Case, id: Option<Value>, rng: &mut ChaCha8Rng) -> Value {
    let mut fields = Map::new();
    if let Some(id) = id {
        fields.insert("id".to_owned(), id);
    }
    fields.insert("goal".to_owned(), number(rng, case.goal));
    let maxchange = case.maxchange.map(|m| number(rng, m));
    put(&mut fields, rng, "maxchange", maxchange);
    let vms = case
        .vms
        .iter()
        .map(|(vmid, vm)| (vmid.clone(), vm_json(vm, rng)))
        .collect();
    fields.insert("vms".to_owned(), Value::Object(vms));
    Value::Object(fields)
}

fn vm_json(vm: &VmStatus, rng: &mut ChaCha8Rng) -> Value {
    let mut fields = Map::new();
    let numbers = [
        ("balloon", vm.balloon),
        ("balloon_min", vm.balloon_min),
        ("maxmem", vm.maxmem),
        ("shares", vm.shares),
        ("freemem", vm.freemem),
    ];
    for (name, value) in numbers {
        let value = value.map(|v| number(rng, v));
        put(&mut fields, rng, name, value);
    }
    put(&mut fields, rng, "lock", vm.lock.clone().map(Value::String));
    Value::Object(fields)
}

/// Undefined fields are left out or written as `null`.
fn put(fields: &mut Map<String, Value>, rng: &mut ChaCha8Rng, name: &str, value: Option<Value>) {
    match value {
        Some(value) => {
            fields.insert(name.to_owned(), value);
        }
        None if rng.random_bool(0.3) => {
            fields.insert(name.to_owned(), Value::Null);
        }
        None => {}
    }
}

/// Mostly a JSON integer; sometimes an integral float or a canonical decimal
/// string. Floats stay below 2^49, so that their literal (with ".0") has at most 16
/// digits below 2^53, which serde_json reads exactly.
fn number(rng: &mut ChaCha8Rng, value: i64) -> Value {
    match rng.random_range(0..100) {
        0..=3 if value.unsigned_abs() < 1 << 49 => Value::from(value as f64),
        4..=7 => Value::String(value.to_string()),
        _ => Value::from(value),
    }
}
