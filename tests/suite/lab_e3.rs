//! `lab_observed.md` E3: the real allocator on a small host. When the VM with the most
//! shares is clamped at its maximum under a small positive goal, `compute_alg1`
//! shrinks the others on a *grow* request and grows them back next round: a limit
//! cycle of balloon commands although the host has room.

use crate::common;

use common::*;
use memsim::metrics::EventKind;
use memsim::workload::Shape;

#[test]
fn a_grow_goal_with_the_big_share_vm_at_maxmem_makes_the_others_flap() {
    let guest = |vmid, shares| {
        let mut v = vm(
            vmid,
            512 * MIB,
            Some(256 * MIB),
            vec![process("app", Shape::Constant(48 * MIB), 0.5, 0)],
        );
        v.shares = shares;
        v
    };
    let mut sc = scenario(
        1600 * MIB,
        secs(1800),
        vec![guest(101, 1000), guest(102, 1000), guest(103, 2000)],
    );
    sc.host.reserved = 512 * MIB;
    sc.host.page_cache = 0;
    sc.host.qemu_overhead = 64 * MIB;
    sc.host.thp = memsim::scenario::Thp::Never;
    let r = memsim::sim::run(&sc);
    // Late in the run the goal is small and positive (host below target, all grown).
    let late: Vec<_> = r.host.iter().filter(|h| h.t_s >= 1200.0).collect();
    assert!(
        late.iter().all(|h| h.goal_bytes > 10 << 20),
        "goals {:?}",
        late.iter().map(|h| h.goal_bytes >> 20).collect::<Vec<_>>()
    );
    // db (103, 2000 shares) sits at maxmem; web and files keep being shrunk and grown.
    let cmds = |vmid, sign: i64| {
        r.events
            .iter()
            .filter(|e| e.kind == EventKind::BalloonTarget && e.vmid == vmid && e.t_s >= 1200.0)
            .filter(|e| e.value.signum() == sign)
            .count()
    };
    assert!(
        cmds(101, -1) >= 5 && cmds(101, 1) >= 5,
        "101 flaps: {} down, {} up",
        cmds(101, -1),
        cmds(101, 1)
    );
    assert_eq!(
        cmds(103, -1) + cmds(103, 1),
        0,
        "the big-share VM stays at maxmem"
    );
    // As in the lab (goal +147 MiB: 512 → 484.8 MiB), the shrink lands on the
    // proportional share min + (Σ(cur − min) + goal) / 4 of the all-VMs pass.
    let shrink = r
        .events
        .iter()
        .find(|e| {
            e.kind == EventKind::BalloonTarget && e.vmid == 101 && e.t_s >= 1200.0 && e.value < 0
        })
        .unwrap();
    let goal = r
        .host
        .iter()
        .find(|h| h.t_s == shrink.t_s)
        .unwrap()
        .goal_bytes;
    let want = 256 * MIB as i64 + (3 * 256 * MIB as i64 + goal) / 4;
    assert!(
        (512 * MIB as i64 + shrink.value - want).abs() < MIB as i64,
        "{}",
        shrink.detail
    );
}
