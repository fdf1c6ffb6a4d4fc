//! `sweep.csv`: one row per run, in run order — its id, its parameter values, every
//! figure of its summary, and the peak memused as a percentage.
//!
//! The summary's columns come from serde, not from a list kept here, so a field added
//! to [`Summary`] shows up in sweep.csv by itself: each top-level field is a column in
//! declaration order, a list is joined with `;`, a nested structure is written as JSON.

use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{Definition, Run};
use crate::metrics::{RunResult, Summary};

/// Computed by the sweep from the host samples: the summary has memused in bytes,
/// which cannot be compared across swept host sizes, and pvestatd steers by percent.
const PEAK_PCT: &str = "peak_memused_pct";

/// The content of sweep.csv.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub header: Vec<String>,
    /// In run order.
    pub rows: Vec<Row>,
}

/// One run's line of sweep.csv.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The run's index in run order.
    pub index: usize,
    /// Its grid point.
    pub point: usize,
    /// The CSV fields, one per header column.
    pub cells: Vec<String>,
}

pub(super) fn header(def: &Definition) -> Vec<String> {
    let mut header = vec!["run".to_string()];
    header.extend(def.parameters.iter().map(|p| p.path.clone()));
    header.extend(
        summary_fields(&Summary::default())
            .into_iter()
            .map(|(k, _)| k),
    );
    header.push(PEAK_PCT.to_string());
    header
}

pub(super) fn row(def: &Definition, run: &Run, result: &RunResult) -> Row {
    let mut cells = vec![run.id.clone()];
    let coordinates = def.coordinates(run.point);
    cells.extend(
        def.parameters
            .iter()
            .zip(coordinates)
            .map(|(p, i)| p.values[i].clone()),
    );
    cells.extend(summary_fields(&result.summary).iter().map(|(_, v)| cell(v)));
    cells.push(peak_memused_pct(result));
    Row {
        index: run.index,
        point: run.point,
        cells,
    }
}

/// The columns a heatmap can show: those whose values are numbers.
pub(super) fn metric_columns() -> Vec<String> {
    summary_fields(&Summary::default())
        .into_iter()
        .filter(|(_, v)| v.is_number())
        .map(|(k, _)| k)
        .chain([PEAK_PCT.to_string()])
        .collect()
}

pub(super) fn to_csv(table: &Table) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&table.header)?;
    for row in &table.rows {
        w.write_record(&row.cells)?;
    }
    Ok(w.into_inner().map_err(|e| e.into_error())?)
}

/// The highest memused over MemTotal of the run, in percent with two decimals; empty
/// for a run without samples.
fn peak_memused_pct(result: &RunResult) -> String {
    result
        .host
        .iter()
        .filter(|s| s.mem_total_bytes > 0)
        .map(|s| s.memused_bytes as f64 * 100.0 / s.mem_total_bytes as f64)
        .reduce(f64::max)
        .map(|pct| format!("{pct:.2}"))
        .unwrap_or_default()
}

fn cell(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(";"),
        other => other.to_string(),
    }
}

/// The top-level fields of `summary` in declaration order, with their values.
fn summary_fields(summary: &Summary) -> Vec<(String, Json)> {
    // serde_json's own map sorts its keys (unless its `preserve_order` feature is on,
    // which would change other JSON the crate writes); reading the JSON text back
    // through an order-keeping visitor keeps the struct's order.
    serde_json::to_string(summary)
        .and_then(|text| serde_json::from_str::<Fields>(&text))
        .map(|f| f.0)
        .unwrap_or_default()
}

struct Fields(Vec<(String, Json)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry()? {
            fields.push(entry);
        }
        Ok(Fields(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_columns_keep_the_struct_order_and_join_lists() {
        let summary = Summary {
            scenario: "s".into(),
            guest_oom_victims: vec!["201/postgres".into(), "301/job".into()],
            host_oom_victims: vec![105],
            time_above_target_s: 12.5,
            ..Summary::default()
        };
        let fields = summary_fields(&summary);
        assert_eq!(fields[0].0, "scenario");
        assert_eq!(fields[1].0, "seed");
        let get = |key: &str| cell(&fields.iter().find(|(k, _)| k == key).unwrap().1);
        assert_eq!(get("guest_oom_victims"), "201/postgres;301/job");
        assert_eq!(get("host_oom_victims"), "105");
        assert_eq!(get("time_above_target_s"), "12.5");
        let metrics = metric_columns();
        assert!(metrics.contains(&"guest_oom_kills".to_string()));
        assert!(!metrics.contains(&"guest_oom_victims".to_string()));
        assert!(!metrics.contains(&"scenario".to_string()));
    }
}
