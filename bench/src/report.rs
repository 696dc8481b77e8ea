//! The report: Markdown, a heading and a sentence about the machine, then a
//! section a scenario, each of paragraphs and tables.

use std::fmt::Display;

use crate::Plan;

/// The report's opening: its title, the machine it ran on, how busy it was, and
/// how the rounds go.
pub fn header(plan: &Plan) -> String {
    let rounds = match plan.rounds {
        1 => "1 round".to_owned(),
        n => format!("{n} rounds"),
    };
    format!(
        "# Benchmark results\n\n{} Load average (1, 5, 15 min) when the run started: {}.\n\nEach scenario runs each of its servers or settings once a round, in turn (A B C A B C ...), for {rounds}; the tables give the medians over the rounds, and a cell that lists values lists every round's.\n\n",
        machine(),
        load_average()
    )
}

/// The report's closing line: how busy the machine was when the run ended. Other
/// programs on the machine slow every server alike, as the rounds interleave
/// them, but they add noise.
pub fn footer() -> String {
    format!(
        "Load average (1, 5, 15 min) when the run ended: {}.\n",
        load_average()
    )
}

/// The first three fields of /proc/loadavg, as `0.52, 0.58, 0.59`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One line on the CPU, cores, memory, kernel and compiler: ratios from one
/// machine are only comparable with ratios from a like one.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    let kernel =
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "Machine: {cpu}, {cores} cores, {memory} GiB; Linux {}; {rustc}.",
        kernel.trim()
    )
}

/// One scenario's section: `## title`, then paragraphs and tables, a blank line
/// after each.
pub struct Section {
    text: String,
}

impl Section {
    /// A section headed `## title`, empty so far.
    pub fn new(title: &str) -> Section {
        Section {
            text: format!("## {title}\n\n"),
        }
    }

    /// A paragraph, written on one line as the committed reports have them.
    pub fn paragraph(&mut self, text: impl Display) {
        self.text += &format!("{text}\n\n");
    }

    /// A table, finished.
    pub fn table(&mut self, table: Table) {
        self.text += &table.text;
        self.text += "\n";
    }
}

impl From<Section> for String {
    fn from(section: Section) -> String {
        section.text
    }
}

/// A table cell that counts what went wrong over `rounds` rounds: "none in 3
/// rounds", or "2 dropped clients, 1 connection ended in 3 rounds". Each count
/// comes with what it counts, in the singular; counts of 0 are left out.
pub fn counts_in_rounds(counts: &[(u64, &str)], rounds: usize) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|&(n, what)| match n {
            1 => format!("1 {what}"),
            n => format!("{n} {what}s"),
        })
        .collect();
    let rounds = match rounds {
        1 => "1 round".to_owned(),
        n => format!("{n} rounds"),
    };
    if parts.is_empty() {
        format!("none in {rounds}")
    } else {
        format!("{} in {rounds}", parts.join(", "))
    }
}

/// A Markdown table, written row by row.
pub struct Table {
    text: String,
}

impl Table {
    /// A table with these column headings and no rows yet.
    pub fn new(columns: &[&str]) -> Table {
        Table {
            text: format!(
                "| {} |\n|{}\n",
                columns.join(" | "),
                "---|".repeat(columns.len())
            ),
        }
    }

    /// Adds a row; `cells` are the row's cells, written as `a | b | c`.
    pub fn row(&mut self, cells: std::fmt::Arguments) {
        self.text += &format!("| {cells} |\n");
    }
}
