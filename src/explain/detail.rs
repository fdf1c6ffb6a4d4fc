//! Figures that an event carries only in its `detail` text.
//!
//! `events.csv` has one number per event (`value`); the OOM victim's name, what a kill
//! freed, a balloon's size before and after a command, and ksmtuned's free memory and
//! threshold are written into the detail sentence by `src/sim.rs`. Reading them back
//! here keeps the event log's format (a CSV users already script against) unchanged.
//! Every reader returns `None` when the text does not have the expected shape, and
//! the narration then falls back to the detail as it is; `tests/suite/explain.rs` checks on
//! a real run that every event of these kinds parses, so a change of wording in the
//! simulator shows up as a test failure rather than as vaguer sentences.

/// `guest OOM: {trigger} invoked oom-killer; killed {victim} (badness {n}), freed {m} MiB`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OomKill {
    pub trigger: String,
    pub victim: String,
    pub freed_mib: u64,
}

pub fn oom_kill(detail: &str) -> Option<OomKill> {
    let rest = detail.strip_prefix("guest OOM: ")?;
    let (trigger, rest) = rest.split_once(" invoked oom-killer; killed ")?;
    let (victim, rest) = rest.rsplit_once(" (badness ")?;
    let freed = rest.split_once("), freed ")?.1.strip_suffix(" MiB")?;
    Some(OomKill {
        trigger: trigger.to_string(),
        victim: victim.to_string(),
        freed_mib: freed.parse().ok()?,
    })
}

/// The process that hit an OOM with nothing left to kill.
pub fn oom_no_victim(detail: &str) -> Option<&str> {
    detail
        .strip_prefix("guest OOM: ")?
        .strip_suffix(" invoked oom-killer; no killable process")
}

/// `{process} restarted`.
pub fn restarted(detail: &str) -> Option<&str> {
    detail.strip_suffix(" restarted")
}

/// A balloon command's size before and after, MiB: `… {name} {from} MiB -> {to} MiB`.
pub fn balloon_command(detail: &str) -> Option<(u64, u64)> {
    let (head, to) = detail.rsplit_once(" -> ")?;
    let to = to.strip_suffix(" MiB")?.parse().ok()?;
    let from = head
        .strip_suffix(" MiB")?
        .rsplit_once(' ')?
        .1
        .parse()
        .ok()?;
    Some((from, to))
}

/// What ksmtuned compared when it switched ksmd on or off, MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ksmtuned {
    pub free_mib: u64,
    pub thres_mib: u64,
    pub committed_mib: u64,
}

/// `ksmtuned: free {f} MiB {<|>} thres {t} MiB {or|and} committed {c} MiB + thres …`.
pub fn ksmtuned(detail: &str) -> Option<Ksmtuned> {
    let rest = detail.strip_prefix("ksmtuned: free ")?;
    let (free, rest) = rest.split_once(" MiB ")?;
    let rest = rest.split_once("thres ")?.1;
    let (thres, rest) = rest.split_once(" MiB ")?;
    let rest = rest.split_once("committed ")?.1;
    let (committed, _) = rest.split_once(" MiB")?;
    Some(Ksmtuned {
        free_mib: free.parse().ok()?,
        thres_mib: thres.parse().ok()?,
        committed_mib: committed.parse().ok()?,
    })
}

/// The pace ksmtuned set when it started ksmd: `… KSM on: {n} pages every {ms} ms`.
pub fn ksm_sleep_ms(detail: &str) -> Option<u64> {
    detail
        .rsplit_once(" pages every ")?
        .1
        .strip_suffix(" ms")?
        .parse()
        .ok()
}

/// The host OOM killer's numbers: `… rss {r} MiB, swap {s} MiB; {m} MiB were missing`.
pub fn host_oom_missing_mib(detail: &str) -> Option<u64> {
    detail
        .strip_suffix(" MiB were missing")?
        .rsplit_once("; ")?
        .1
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_simulators_sentences() {
        let kill = "guest OOM: postgres invoked oom-killer; killed postgres (badness 1764391), freed 6878 MiB";
        assert_eq!(
            oom_kill(kill),
            Some(OomKill {
                trigger: "postgres".into(),
                victim: "postgres".into(),
                freed_mib: 6878
            })
        );
        assert_eq!(oom_kill("something else"), None);
        assert_eq!(
            oom_no_victim("guest OOM: job invoked oom-killer; no killable process"),
            Some("job")
        );
        assert_eq!(restarted("postgres restarted"), Some("postgres"));
        assert_eq!(
            balloon_command("pvestatd: goal -114 MiB; web-1 1536 MiB -> 1436 MiB"),
            Some((1536, 1436))
        );
        let on = "ksmtuned: free 12598 MiB < thres 12845 MiB or committed 49579 MiB + thres > total; KSM on: 300 pages every 25 ms";
        assert_eq!(
            ksmtuned(on),
            Some(Ksmtuned {
                free_mib: 12598,
                thres_mib: 12845,
                committed_mib: 49579
            })
        );
        assert_eq!(ksm_sleep_ms(on), Some(25));
        let host = "host OOM killer killed QEMU of VM 201 (db1): rss 9000 MiB, swap 0 MiB; 300 MiB were missing";
        assert_eq!(host_oom_missing_mib(host), Some(300));
    }
}
