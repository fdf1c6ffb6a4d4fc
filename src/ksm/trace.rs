//! A KSM trace: the counters of `/sys/kernel/mm/ksm` and of each process's
//! `/proc/<pid>/ksm_stat` over time, in the column layout of the real recordings
//! (`../shared/data/ksm-real/FORMAT.md`). The simulator and the real-kernel runner
//! both produce one, so they can be written, read back and compared alike.

use std::io::{Read, Write};

/// Global counters of one row (sysfs names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub full_scans: u64,
    pub pages_scanned: u64,
    pub pages_shared: u64,
    pub pages_sharing: u64,
    pub pages_unshared: u64,
    pub pages_volatile: u64,
    pub pages_skipped: u64,
    pub ksm_zero_pages: u64,
    pub general_profit: i64,
    pub stable_node_chains: u64,
    pub stable_node_dups: u64,
    pub pages_to_scan: u64,
}

/// One process's `ksm_stat` fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessCounters {
    pub ksm_rmap_items: u64,
    pub ksm_zero_pages: u64,
    pub ksm_merging_pages: u64,
    pub ksm_process_profit: i64,
}

/// One row: time since ksmd was started, the global counters, and per process its
/// counters (`None` once it has exited: empty cells).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub t_s: f64,
    pub counters: Counters,
    pub processes: Vec<Option<ProcessCounters>>,
}

/// A whole trace: process names (column prefixes) and rows in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    pub processes: Vec<String>,
    pub rows: Vec<Row>,
}

const GLOBAL: [&str; 13] = [
    "t_s",
    "full_scans",
    "pages_scanned",
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "pages_skipped",
    "ksm_zero_pages",
    "general_profit",
    "stable_node_chains",
    "stable_node_dups",
    "pages_to_scan",
];
/// The per-process columns, in order (each header cell is `<name>.<field>`).
pub(crate) const PER_PROCESS: [&str; 4] = [
    "ksm_rmap_items",
    "ksm_zero_pages",
    "ksm_merging_pages",
    "ksm_process_profit",
];

/// Trouble reading a trace CSV.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{0}")]
    Csv(#[from] csv::Error),
    #[error("line {line}: column `{column}`: {message}")]
    Cell {
        line: u64,
        column: String,
        message: String,
    },
    #[error("header: {0}")]
    Header(String),
}

impl Trace {
    /// The header row: global columns, then `<name>.<field>` per process.
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = GLOBAL.iter().map(|s| s.to_string()).collect();
        for p in &self.processes {
            h.extend(PER_PROCESS.iter().map(|f| format!("{p}.{f}")));
        }
        h
    }

    pub fn write_csv<W: Write>(&self, w: W) -> csv::Result<()> {
        let mut out = csv::Writer::from_writer(w);
        out.write_record(self.header())?;
        for row in &self.rows {
            out.write_record(row_cells(row))?;
        }
        out.flush()?;
        Ok(())
    }

    /// Reads a trace in the recordings' layout (as written by [`Trace::write_csv`] or
    /// by the real-kernel probe).
    pub fn read_csv<R: Read>(r: R) -> Result<Trace, TraceError> {
        let mut rd = csv::Reader::from_reader(r);
        let header: Vec<String> = rd.headers()?.iter().map(str::to_string).collect();
        let processes = process_names(&header)?;
        let mut rows = Vec::new();
        for rec in rd.records() {
            let rec = rec?;
            let line = rec.position().map_or(0, |p| p.line());
            rows.push(parse_row(&header, &rec, processes.len(), line)?);
        }
        Ok(Trace { processes, rows })
    }
}

fn row_cells(row: &Row) -> Vec<String> {
    let c = &row.counters;
    let mut cells = vec![
        format_time(row.t_s),
        c.full_scans.to_string(),
        c.pages_scanned.to_string(),
        c.pages_shared.to_string(),
        c.pages_sharing.to_string(),
        c.pages_unshared.to_string(),
        c.pages_volatile.to_string(),
        c.pages_skipped.to_string(),
        c.ksm_zero_pages.to_string(),
        c.general_profit.to_string(),
        c.stable_node_chains.to_string(),
        c.stable_node_dups.to_string(),
        c.pages_to_scan.to_string(),
    ];
    for p in &row.processes {
        match p {
            Some(p) => cells.extend([
                p.ksm_rmap_items.to_string(),
                p.ksm_zero_pages.to_string(),
                p.ksm_merging_pages.to_string(),
                p.ksm_process_profit.to_string(),
            ]),
            None => cells.extend(std::iter::repeat_n(String::new(), PER_PROCESS.len())),
        }
    }
    cells
}

/// Seconds with at most 6 decimals, trailing zeros trimmed (`0.05`, `1.2345`, `3`).
fn format_time(t: f64) -> String {
    let s = format!("{t:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

fn process_names(header: &[String]) -> Result<Vec<String>, TraceError> {
    if header.len() < GLOBAL.len() || header[..GLOBAL.len()] != GLOBAL {
        return Err(TraceError::Header(format!(
            "expected the columns {} first",
            GLOBAL.join(",")
        )));
    }
    let rest = &header[GLOBAL.len()..];
    if rest.len() % PER_PROCESS.len() != 0 {
        return Err(TraceError::Header(
            "per-process columns come in groups of four".into(),
        ));
    }
    rest.chunks(PER_PROCESS.len())
        .map(|group| {
            let name = group[0]
                .rsplit_once('.')
                .map(|(n, _)| n.to_string())
                .unwrap_or_default();
            let ok = group
                .iter()
                .zip(PER_PROCESS)
                .all(|(col, f)| *col == format!("{name}.{f}"));
            if ok {
                Ok(name)
            } else {
                Err(TraceError::Header(format!(
                    "expected {name}.ksm_rmap_items … {name}.ksm_process_profit, found {}",
                    group.join(",")
                )))
            }
        })
        .collect()
}

fn parse_row(
    header: &[String],
    rec: &csv::StringRecord,
    nproc: usize,
    line: u64,
) -> Result<Row, TraceError> {
    let cell = |i: usize| rec.get(i).unwrap_or("").trim();
    let bad = |i: usize, message: String| TraceError::Cell {
        line,
        column: header.get(i).cloned().unwrap_or_default(),
        message,
    };
    let uint = |i: usize| {
        cell(i)
            .parse::<u64>()
            .map_err(|e| bad(i, format!("{:?}: {e}", cell(i))))
    };
    let int = |i: usize| {
        cell(i)
            .parse::<i64>()
            .map_err(|e| bad(i, format!("{:?}: {e}", cell(i))))
    };
    let t_s = cell(0)
        .parse::<f64>()
        .map_err(|e| bad(0, format!("{:?}: {e}", cell(0))))?;
    let counters = Counters {
        full_scans: uint(1)?,
        pages_scanned: uint(2)?,
        pages_shared: uint(3)?,
        pages_sharing: uint(4)?,
        pages_unshared: uint(5)?,
        pages_volatile: uint(6)?,
        pages_skipped: uint(7)?,
        ksm_zero_pages: uint(8)?,
        general_profit: int(9)?,
        stable_node_chains: uint(10)?,
        stable_node_dups: uint(11)?,
        pages_to_scan: uint(12)?,
    };
    let mut processes = Vec::with_capacity(nproc);
    for p in 0..nproc {
        let base = GLOBAL.len() + p * PER_PROCESS.len();
        if (base..base + PER_PROCESS.len()).all(|i| cell(i).is_empty()) {
            processes.push(None);
            continue;
        }
        processes.push(Some(ProcessCounters {
            ksm_rmap_items: uint(base)?,
            ksm_zero_pages: uint(base + 1)?,
            ksm_merging_pages: uint(base + 2)?,
            ksm_process_profit: int(base + 3)?,
        }));
    }
    Ok(Row {
        t_s,
        counters,
        processes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_real_recording_reads_and_round_trips() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ksm-real");
        let entries = std::fs::read_dir(&dir).expect("recordings are in the repository");
        let mut n = 0;
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".csv") || name.ends_with(".events.csv") {
                continue;
            }
            let trace = Trace::read_csv(std::fs::File::open(&p).unwrap()).unwrap();
            assert!(!trace.rows.is_empty(), "{name}");
            let mut out = Vec::new();
            trace.write_csv(&mut out).unwrap();
            let again = Trace::read_csv(out.as_slice()).unwrap();
            assert_eq!(trace.processes, again.processes, "{name}");
            assert_eq!(trace.rows.len(), again.rows.len(), "{name}");
            for (a, b) in trace.rows.iter().zip(&again.rows) {
                assert_eq!(a.counters, b.counters, "{name}");
                assert_eq!(a.processes, b.processes, "{name}");
                assert!((a.t_s - b.t_s).abs() < 1e-6, "{name}");
            }
            n += 1;
        }
        assert!(n >= 8, "read {n} recordings");
    }

    #[test]
    fn a_malformed_cell_names_line_and_column() {
        let csv = "t_s,full_scans,pages_scanned,pages_shared,pages_sharing,pages_unshared,pages_volatile,pages_skipped,ksm_zero_pages,general_profit,stable_node_chains,stable_node_dups,pages_to_scan\n0.1,0,0,x,0,0,0,0,0,0,0,0,100\n";
        let err = Trace::read_csv(csv.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("pages_shared"),
            "{err}"
        );
    }
}
