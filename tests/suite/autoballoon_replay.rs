//! `memsim replay autoballoon`: input handling, error reporting and output format.

use std::collections::BTreeMap;

use memsim::autoballoon::{compute_alg1, replay, ReplayStats, VmStatus, MAXCHANGE};

/// Runs replay on `input`; returns (stdout, stderr, stats).
fn run(input: &[u8]) -> (String, String, ReplayStats) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stats = replay(input, &mut out, &mut err).expect("in-memory I/O");
    let text = |bytes| String::from_utf8(bytes).expect("UTF-8 output");
    (text(out), text(err), stats)
}

/// upstream test state `status1` (decimal units) as a JSON `vms` object
const STATUS1: &str = r#"{"100": {"maxmem": 2000000000, "shares": 2000, "balloon": 1000000000,
    "balloon_min": 1000000000, "freemem": 0},
  "101": {"maxmem": 2000000000, "shares": 1000, "balloon": 1000000000,
    "balloon_min": 1000000000, "freemem": 0}}"#;

fn one_line(json: &str) -> String {
    json.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn answers_upstream_test_t2() {
    let input = one_line(&format!(
        r#"{{"id": 2, "goal": 90000000, "maxchange": 100000000, "vms": {STATUS1}}}"#
    ));
    let (out, err, stats) = run(input.as_bytes());
    assert_eq!(
        out,
        "{\"id\":2,\"res\":{\"100\":1060000000,\"101\":1030000000}}\n"
    );
    assert_eq!(err, "");
    assert_eq!(
        stats,
        ReplayStats {
            cases_ok: 1,
            lines_bad: 0
        }
    );
}

#[test]
fn output_matches_compute_alg1_with_default_maxchange() {
    let vm = |balloon, min, max| VmStatus {
        balloon: Some(balloon),
        balloon_min: Some(min),
        maxmem: Some(max),
        ..VmStatus::default()
    };
    let vms = BTreeMap::from([
        ("999".to_owned(), vm(3 << 30, 1 << 30, 4 << 30)),
        ("1000".to_owned(), vm(1 << 30, 1 << 30, 4 << 30)),
    ]);
    let expected = compute_alg1(&vms, 700 << 20, MAXCHANGE);
    assert_eq!(expected.len(), 2);
    let input = format!(
        r#"{{"goal": {}, "vms": {{"999": {{"balloon": {}, "balloon_min": {}, "maxmem": {}}},
            "1000": {{"balloon": {}, "balloon_min": {}, "maxmem": {}}}}}}}"#,
        700 << 20,
        3i64 << 30,
        1 << 30,
        4i64 << 30,
        1 << 30,
        1 << 30,
        4i64 << 30
    );
    let (out, err, _) = run(one_line(&input).as_bytes());
    assert_eq!(err, "");
    // no id given: none echoed; vmids sorted as strings, like pvestatd's sort
    assert_eq!(
        out,
        format!(
            "{{\"res\":{{\"1000\":{},\"999\":{}}}}}\n",
            expected["1000"], expected["999"]
        )
    );
}

#[test]
fn echoes_any_id() {
    let input = [
        r#"{"id": 7, "goal": 0, "vms": {}}"#,
        r#"{"id": "T1", "goal": 0, "vms": {}}"#,
        r#"{"id": {"run": [1, 2.5, null]}, "goal": 0, "vms": {}}"#,
        r#"{"id": null, "goal": 0, "vms": {}}"#,
        r#"{"goal": 0, "vms": {}}"#,
    ]
    .join("\n");
    let (out, err, stats) = run(input.as_bytes());
    assert_eq!(err, "");
    assert_eq!(stats.cases_ok, 5);
    let expected = [
        r#"{"id":7,"res":{}}"#,
        r#"{"id":"T1","res":{}}"#,
        r#"{"id":{"run":[1,2.5,null]},"res":{}}"#,
        r#"{"id":null,"res":{}}"#,
        r#"{"res":{}}"#,
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn null_means_undefined() {
    // shares null counts as 1000, maxchange null as 100 MiB, freemem null as "no
    // statistics"; a null balloon excludes the VM
    let input = one_line(
        r#"{"goal": 1073741824, "maxchange": null, "vms": {
            "1": {"balloon": 1073741824, "balloon_min": 1073741824, "maxmem": 4294967296,
                  "shares": null, "freemem": null, "lock": null},
            "2": {"balloon": null, "balloon_min": 1073741824, "maxmem": 4294967296}}}"#,
    );
    let (out, err, _) = run(input.as_bytes());
    assert_eq!(err, "");
    assert_eq!(out, "{\"res\":{\"1\":1178599424}}\n");
}

#[test]
fn accepts_integral_floats_and_canonical_integer_strings() {
    let plain = r#"{"goal": 52428800, "vms": {"1": {"balloon": 1073741824,
        "balloon_min": 1073741824, "maxmem": 4294967296, "shares": 1000}}}"#;
    let spelled = r#"{"goal": 5.24288e7, "vms": {"1": {"balloon": "1073741824",
        "balloon_min": 1073741824.0, "maxmem": "4294967296", "shares": 1e3}}}"#;
    let input = format!("{}\r\n{}\r\n", one_line(plain), one_line(spelled));
    let (out, err, stats) = run(input.as_bytes());
    assert_eq!(err, "");
    assert_eq!(stats.cases_ok, 2);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["{\"res\":{\"1\":1126170624}}"; 2]);
}

#[test]
fn bad_lines_are_reported_with_their_number_and_skipped() {
    let good = r#"{"id": "ok", "goal": 0, "vms": {}}"#;
    let lines: [&[u8]; 17] = [
        good.as_bytes(),
        b"",
        b"   ",
        b"{\"goal\": 0, \"vms\": {}",
        b"[1, 2]",
        br#"{"vms": {}}"#,
        br#"{"goal": null, "vms": {}}"#,
        br#"{"goal": 0}"#,
        br#"{"goal": 0, "vms": [1]}"#,
        br#"{"goal": 1.5, "vms": {}}"#,
        br#"{"goal": 9223372036854775808, "vms": {}}"#,
        br#"{"goal": 0, "vms": {"100": {"balloon": "007"}}}"#,
        br#"{"goal": 0, "vms": {"100": {"shares": true}}}"#,
        br#"{"goal": 0, "vms": {"100": {"lock": 1}}}"#,
        br#"{"goal": 0, "vms": {"100": 5}}"#,
        b"{\"goal\": 0, \"vms\": {\"\xff\": {}}}",
        good.as_bytes(),
    ];
    let (out, err, stats) = run(&lines.join(&b'\n'));
    assert_eq!(out, "{\"id\":\"ok\",\"res\":{}}\n".repeat(2));
    assert_eq!(
        stats,
        ReplayStats {
            cases_ok: 2,
            lines_bad: 13
        }
    );
    let messages: Vec<&str> = err.lines().collect();
    let expected: [(usize, &str); 13] = [
        (4, "invalid JSON: EOF while parsing an object"),
        (5, "expected a JSON object, got an array"),
        (6, "missing field `goal`"),
        (7, "missing field `goal`"),
        (8, "missing field `vms`"),
        (9, "`vms`: expected an object, got an array"),
        (10, "`goal`: 1.5 is not an integer"),
        (11, "`goal`: 9223372036854775808 is not an integer"),
        (
            12,
            "`vms.100.balloon`: string \"007\" is not a canonical decimal integer",
        ),
        (13, "`vms.100.shares`: expected an integer, got a boolean"),
        (14, "`vms.100.lock`: expected a string, got a number"),
        (15, "`vms.100`: expected an object, got a number"),
        (16, "not valid UTF-8"),
    ];
    assert_eq!(messages.len(), expected.len(), "{err}");
    for (message, (line, text)) in messages.iter().zip(expected) {
        let prefix = format!("line {line}: {text}");
        assert!(
            message.starts_with(&prefix),
            "{message:?} should start with {prefix:?}"
        );
    }
}

#[test]
fn empty_input_gives_nothing() {
    assert_eq!(
        run(b""),
        (String::new(), String::new(), ReplayStats::default())
    );
}
