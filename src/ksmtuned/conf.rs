//! `/etc/ksmtuned.conf` and the values the daemon runs with.
//!
//! The script *sources* the file (`. /etc/ksmtuned.conf`): it is bash code that
//! normally only assigns variables. Afterwards each setting gets its default with
//! `${VAR:-default}`, so an empty assignment (`KSM_NPAGES_BOOST=`) means the default
//! too; only `PIDFILE` uses `${PIDFILE-…}`, which keeps an empty value (and then the
//! daemon cannot start, see [`super::Status::NotStarted`]).
//!
//! [`Config::parse`] accepts what such a file contains in practice and reads it the
//! way bash does: `KEY=value` assignments, several per line or with `export`, values
//! unquoted, in `'…'` or in `"…"`, backslash escapes, `#` comments at the start of a
//! word, `;` separators. The last assignment of a key wins. Everything else bash
//! could run — commands, `$` and backquote expansions, redirections, multi-line
//! values — is reported as not modelled instead of being guessed at. Keys the script
//! does not read are legal shell variables and listed in [`Config::unknown`].
//!
//! Numeric settings must be plain decimal integers (optionally signed, within
//! 64 bits), as the spec requires. bash itself would evaluate other text as an
//! arithmetic expression in some places and reject it in others (`010` is octal 8 in
//! `$[…]` but decimal 10 in `[ … ]`), so such values are reported, not modelled. A
//! carriage return at the end of a value (a file saved with DOS line endings) stays
//! part of the value in bash and breaks the script; it is reported as such.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Variant;

/// The settings a ksmtuned.conf assigns. `None` = unset or empty, i.e. the variant's
/// default (except `pidfile`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `KSM_MONITOR_INTERVAL`: the argument of `sleep` between cycles (seconds, or
    /// with an `s`/`m`/`h`/`d` suffix as GNU sleep reads it).
    pub monitor_interval: Option<Duration>,
    /// `KSM_NPAGES_BOOST`: added to `npages` when free memory is below the threshold.
    pub npages_boost: Option<i64>,
    /// `KSM_NPAGES_DECAY`: added to `npages` otherwise (negative by convention).
    pub npages_decay: Option<i64>,
    /// `KSM_NPAGES_MIN`: lower clamp of `npages`.
    pub npages_min: Option<i64>,
    /// `KSM_NPAGES_MAX`: upper clamp of `npages`.
    pub npages_max: Option<i64>,
    /// `KSM_SLEEP_MSEC`: ksmd's sleep in ms for a 16 GiB host, scaled by MemTotal.
    pub sleep_msec: Option<i64>,
    /// `KSM_THRES_COEF`: the threshold in percent of MemTotal.
    pub thres_coef: Option<i64>,
    /// `KSM_THRES_CONST`: the threshold's floor in KiB.
    pub thres_const: Option<i64>,
    /// `KSM_PS_METRIC`: the `ps` column summed into `committed`; only
    /// [`Variant::Proxmox`] reads it.
    pub ps_metric: Option<String>,
    /// `DEBUG`: non-empty turns on debug lines; no effect on the decisions.
    pub debug: Option<String>,
    /// `LOGFILE`: where debug lines go; no effect on the decisions.
    pub logfile: Option<String>,
    /// `PIDFILE`, as assigned (`Some("")` for an empty assignment): the daemon starts
    /// only if it can `touch` it, which an empty name never allows.
    pub pidfile: Option<String>,
    /// Other variables the file assigns, with their line numbers: harmless to the
    /// script, but usually typos of a setting's name.
    pub unknown: Vec<(usize, String)>,
}

/// The values a daemon runs with: a [`Config`] with the variant's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// `KSM_MONITOR_INTERVAL`, default 60 s.
    pub monitor_interval: Duration,
    /// `KSM_NPAGES_BOOST`, default 300.
    pub npages_boost: i64,
    /// `KSM_NPAGES_DECAY`, default -50.
    pub npages_decay: i64,
    /// `KSM_NPAGES_MIN`, default 64.
    pub npages_min: i64,
    /// `KSM_NPAGES_MAX`, default 1250.
    pub npages_max: i64,
    /// `KSM_SLEEP_MSEC`, default [`Variant::default_sleep_msec`] (100 on Proxmox, 10
    /// elsewhere).
    pub sleep_msec: i64,
    /// `KSM_THRES_COEF`, default 20 (%).
    pub thres_coef: i64,
    /// `KSM_THRES_CONST`, default 2048 (KiB).
    pub thres_const: i64,
    /// `KSM_PS_METRIC` on [`Variant::Proxmox`], default `pss`; `None` for the
    /// variants that do not read it.
    pub ps_metric: Option<String>,
}

impl Settings {
    /// The values of an empty or absent configuration file.
    pub fn defaults(variant: Variant) -> Settings {
        Settings::new(variant, &Config::default())
    }

    /// `conf`'s values, the variant's default for each one unset or empty.
    pub fn new(variant: Variant, conf: &Config) -> Settings {
        Settings {
            monitor_interval: conf.monitor_interval.unwrap_or(Duration::from_secs(60)),
            npages_boost: conf.npages_boost.unwrap_or(300),
            npages_decay: conf.npages_decay.unwrap_or(-50),
            npages_min: conf.npages_min.unwrap_or(64),
            npages_max: conf.npages_max.unwrap_or(1250),
            sleep_msec: conf
                .sleep_msec
                .unwrap_or_else(|| variant.default_sleep_msec()),
            thres_coef: conf.thres_coef.unwrap_or(20),
            thres_const: conf.thres_const.unwrap_or(2048),
            ps_metric: (variant == Variant::Proxmox)
                .then(|| conf.ps_metric.clone().unwrap_or_else(|| "pss".to_owned())),
        }
    }
}

/// One problem in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfProblem {
    /// 1-based line number.
    pub line: usize,
    /// The variable concerned, when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "line {}: {key}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Why [`load_conf`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, in line order.
    #[error("{}", problem_lines(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfProblem>,
    },
}

/// `path:line: KEY: message`, one line per problem.
fn problem_lines(path: &Path, problems: &[ConfProblem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| match &p.key {
            Some(key) => format!("{}:{}: {key}: {}", path.display(), p.line, p.message),
            None => format!("{}:{}: {}", path.display(), p.line, p.message),
        })
        .collect();
    lines.join("\n")
}

/// Reads and parses a ksmtuned.conf. Bytes that are not UTF-8 are read as U+FFFD
/// (they can only matter inside values, which must then be integers or are inert).
pub fn load_conf(path: impl AsRef<Path>) -> Result<Config, ConfError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| ConfError::Io {
        path: path.to_owned(),
        source,
    })?;
    Config::parse(&String::from_utf8_lossy(&bytes)).map_err(|problems| ConfError::Invalid {
        path: path.to_owned(),
        problems,
    })
}

/// The variables the script reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    MonitorInterval,
    NpagesBoost,
    NpagesDecay,
    NpagesMin,
    NpagesMax,
    SleepMsec,
    ThresCoef,
    ThresConst,
    PsMetric,
    Debug,
    Logfile,
    Pidfile,
}

impl Key {
    fn from_name(name: &str) -> Option<Key> {
        Some(match name {
            "KSM_MONITOR_INTERVAL" => Key::MonitorInterval,
            "KSM_NPAGES_BOOST" => Key::NpagesBoost,
            "KSM_NPAGES_DECAY" => Key::NpagesDecay,
            "KSM_NPAGES_MIN" => Key::NpagesMin,
            "KSM_NPAGES_MAX" => Key::NpagesMax,
            "KSM_SLEEP_MSEC" => Key::SleepMsec,
            "KSM_THRES_COEF" => Key::ThresCoef,
            "KSM_THRES_CONST" => Key::ThresConst,
            "KSM_PS_METRIC" => Key::PsMetric,
            "DEBUG" => Key::Debug,
            "LOGFILE" => Key::Logfile,
            "PIDFILE" => Key::Pidfile,
            _ => return None,
        })
    }
}

/// The last assignment of each key: line, name as written, value.
type Assigned = BTreeMap<Key, (usize, String, String)>;

impl Config {
    /// Parses the text of a ksmtuned.conf; on failure returns every problem found.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfProblem>> {
        let mut assigned = Assigned::new();
        let mut conf = Config::default();
        let mut problems = Vec::new();
        // bash ends lines at \n only: a \r stays in the value
        for (index, line) in text.split('\n').enumerate() {
            let number = index + 1;
            let result = lex(line).and_then(|commands| {
                commands.into_iter().try_for_each(|command| {
                    assignments(command, &mut |name, value| match Key::from_name(&name) {
                        Some(key) => {
                            assigned.insert(key, (number, name, value));
                        }
                        None => conf.unknown.push((number, name)),
                    })
                })
            });
            if let Err(message) = result {
                problems.push(ConfProblem {
                    line: number,
                    key: None,
                    message,
                });
            }
        }
        for (key, (line, name, value)) in assigned {
            if let Err(message) = conf.set(key, value) {
                problems.push(ConfProblem {
                    line,
                    key: Some(name),
                    message,
                });
            }
        }
        if problems.is_empty() {
            Ok(conf)
        } else {
            problems.sort_by_key(|p| p.line);
            Err(problems)
        }
    }

    fn set(&mut self, key: Key, value: String) -> Result<(), String> {
        match key {
            Key::MonitorInterval => self.monitor_interval = interval(&value)?,
            Key::NpagesBoost => self.npages_boost = integer(&value)?,
            Key::NpagesDecay => self.npages_decay = integer(&value)?,
            Key::NpagesMin => self.npages_min = integer(&value)?,
            Key::NpagesMax => self.npages_max = integer(&value)?,
            Key::SleepMsec => self.sleep_msec = integer(&value)?,
            Key::ThresCoef => self.thres_coef = integer(&value)?,
            Key::ThresConst => self.thres_const = integer(&value)?,
            Key::PsMetric => self.ps_metric = Some(value).filter(|v| !v.is_empty()),
            Key::Debug => self.debug = Some(value),
            Key::Logfile => self.logfile = Some(value),
            Key::Pidfile => self.pidfile = Some(value),
        }
        Ok(())
    }
}

/// A numeric setting: `None` when empty (the default applies).
fn integer(value: &str) -> Result<Option<i64>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    // unquoted in `[ … ]` and `echo`, spaces and tabs are split away; `$[…]` skips them
    let text = value.trim_matches([' ', '\t']);
    if text.ends_with('\r') {
        return Err(format!(
            "{value:?} ends in a carriage return (DOS line endings): bash keeps it in \
             the value and fails on it"
        ));
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{value:?} is not a decimal integer (bash would evaluate it as an \
             arithmetic expression or fail; not modelled)"
        ));
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(format!(
            "{value:?} has a leading zero: bash arithmetic reads it as octal but `[` \
             as decimal; not modelled"
        ));
    }
    if text == "-0" {
        return Err(
            "\"-0\" is not modelled (the kernel refuses it where it is written); write 0"
                .to_owned(),
        );
    }
    text.parse()
        .map(Some)
        .map_err(|_| format!("{value:?} is beyond bash's 64-bit integers"))
}

/// `KSM_MONITOR_INTERVAL` as `sleep $KSM_MONITOR_INTERVAL` (GNU coreutils) reads it:
/// a non-negative decimal number with an optional `s`, `m`, `h` or `d` suffix;
/// nanosecond resolution. `None` when empty.
fn interval(value: &str) -> Result<Option<Duration>, String> {
    if value.is_empty() {
        return Ok(None);
    }
    let text = value.trim_matches([' ', '\t']);
    let (number, unit) = match text.char_indices().last() {
        Some((at, 's')) => (&text[..at], 1),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 'h')) => (&text[..at], 3600),
        Some((at, 'd')) => (&text[..at], 86_400),
        _ => (text, 1),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let decimal = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if number.starts_with('-') {
        return Err(format!(
            "{value:?}: `sleep` rejects a negative interval and returns at once, so the \
             daemon would cycle without pause; not modelled"
        ));
    }
    if !decimal(whole) || !decimal(fraction) || (whole.is_empty() && fraction.is_empty()) {
        return Err(format!(
            "{value:?} is not an interval (a decimal number of seconds, optionally with \
             an s, m, h or d suffix)"
        ));
    }
    let nanos_of = |s: &str, scale: u128| -> Option<u128> {
        s.bytes()
            .try_fold(0u128, |n, b| {
                n.checked_mul(10)?.checked_add(u128::from(b - b'0'))
            })
            .and_then(|n| n.checked_mul(scale))
    };
    let fraction: String = fraction.chars().take(9).collect();
    let fraction_scale = 10u128.pow(9 - fraction.len() as u32);
    let nanos = nanos_of(whole, 1_000_000_000)
        .zip(nanos_of(&fraction, fraction_scale))
        .and_then(|(w, f)| w.checked_add(f))
        .and_then(|n| n.checked_mul(unit));
    let too_long = || format!("{value:?} is too long an interval");
    let nanos = nanos.ok_or_else(too_long)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Some(Duration::new(secs, (nanos % 1_000_000_000) as u32)))
}

/// A shell word after quote removal; `assign` splits `NAME=value`.
struct ShellWord {
    text: String,
    /// Where the value starts, when the word began with an unquoted `NAME=`.
    assign: Option<usize>,
}

/// Splits one line into commands (separated by `;`) of words, like bash's parser,
/// rejecting what is not modelled.
fn lex(line: &str) -> Result<Vec<Vec<ShellWord>>, String> {
    let mut commands: Vec<Vec<ShellWord>> = vec![Vec::new()];
    let mut word: Option<ShellWord> = None;
    // true while the current word is an unquoted prefix that could be a NAME
    let mut bare = true;
    let mut chars = line.chars();
    let finish = |word: &mut Option<ShellWord>, commands: &mut Vec<Vec<ShellWord>>| {
        if let (Some(done), Some(command)) = (word.take(), commands.last_mut()) {
            command.push(done);
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => finish(&mut word, &mut commands),
            '#' if word.is_none() => break,
            ';' => {
                finish(&mut word, &mut commands);
                commands.push(Vec::new());
            }
            '$' | '`' => return Err(not_modelled(&format!("the expansion `{c}`"))),
            '|' | '&' | '<' | '>' | '(' | ')' => return Err(not_modelled(&format!("`{c}`"))),
            _ => {
                let w = word.get_or_insert_with(|| {
                    bare = true;
                    ShellWord {
                        text: String::new(),
                        assign: None,
                    }
                });
                match c {
                    '\'' => {
                        bare = false;
                        loop {
                            match chars.next() {
                                Some('\'') => break,
                                Some(q) => w.text.push(q),
                                None => {
                                    return Err(not_modelled("a quote continued on the next line"))
                                }
                            }
                        }
                    }
                    '"' => {
                        bare = false;
                        loop {
                            match chars.next() {
                                Some('"') => break,
                                Some(q @ ('$' | '`')) => {
                                    return Err(not_modelled(&format!("the expansion `{q}`")))
                                }
                                // inside "…" a backslash escapes only $ ` " \ and newline
                                Some('\\') => match chars.next() {
                                    Some(e @ ('"' | '\\' | '$' | '`')) => w.text.push(e),
                                    Some(e) => {
                                        w.text.push('\\');
                                        w.text.push(e);
                                    }
                                    None => {
                                        return Err(not_modelled(
                                            "a quote continued on the next line",
                                        ))
                                    }
                                },
                                Some(q) => w.text.push(q),
                                None => {
                                    return Err(not_modelled("a quote continued on the next line"))
                                }
                            }
                        }
                    }
                    '\\' => {
                        bare = false;
                        match chars.next() {
                            Some(e) => w.text.push(e),
                            None => return Err(not_modelled("a line continuation")),
                        }
                    }
                    '=' if bare && w.assign.is_none() && is_name(&w.text) => {
                        w.text.push('=');
                        w.assign = Some(w.text.len());
                    }
                    _ => w.text.push(c),
                }
            }
        }
    }
    finish(&mut word, &mut commands);
    Ok(commands)
}

fn not_modelled(what: &str) -> String {
    format!("{what}: not modelled (memsim reads ksmtuned.conf as plain assignments)")
}

/// Hands each assignment of one command to `assign`; anything but assignments (and
/// `export` of assignments or names) is an error.
fn assignments(
    command: Vec<ShellWord>,
    assign: &mut impl FnMut(String, String),
) -> Result<(), String> {
    let mut words = command.into_iter().peekable();
    let export = words
        .next_if(|w| w.text == "export" && w.assign.is_none())
        .is_some();
    for word in words {
        match word.assign {
            Some(at) => {
                let name = word.text[..at - 1].to_owned();
                assign(name, word.text[at..].to_owned());
            }
            // `export NAME` leaves the value as it is
            None if export && is_name(&word.text) => {}
            None => {
                return Err(not_modelled(&format!(
                    "`{}` is a command, not an assignment",
                    word.text
                )))
            }
        }
    }
    Ok(())
}

fn is_name(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
