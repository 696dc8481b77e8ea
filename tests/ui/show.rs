//! `WS_LESSONS_SHOW=NAME cargo test --test compile_fail`: a compile-fail lesson
//! shown to a reader, which a normal run does not do. The mistake, what rustc
//! says about it, the fix, and the lines that changed from one to the other.
//! NAME is a lesson's name or its start: `e0502` shows both E0502 lessons.
//!
//! What rustc says is not taken on trust from the recorded `.stderr`: the
//! lessons shown are compiled first, by trybuild, which fails the run if rustc's
//! output differs from the recorded one in any character; only then is that
//! output printed. The fixed twin is compiled and run, and its check must pass.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// The environment variable that names the lessons to show.
pub const VARIABLE: &str = "WS_LESSONS_SHOW";

/// Lines of context kept around each change in a diff.
const CONTEXT: usize = 2;

#[test]
fn show_the_lessons_named_by_ws_lessons_show() {
    if let Ok(wanted) = std::env::var(VARIABLE) {
        let all = super::names("tests/ui/fail", "rs");
        show(&lessons_named(&wanted, &all));
    }
}

/// The lessons of `all` whose name starts with `wanted`. When none does, prints
/// the list of every lesson and panics.
fn lessons_named(wanted: &str, all: &BTreeSet<String>) -> Vec<String> {
    let found: Vec<String> = all
        .iter()
        .filter(|name| !wanted.is_empty() && name.starts_with(wanted))
        .cloned()
        .collect();
    if found.is_empty() {
        let mut list = format!(
            "\n{VARIABLE}={wanted:?} names no lesson. Name one of these, or the \
             start of a name (e0502 shows both E0502 lessons):\n\n"
        );
        for name in all {
            list += &format!("  {name}\n");
        }
        to_terminal(&list);
        panic!("{VARIABLE}={wanted:?} names no lesson (the list is above)");
    }
    found
}

/// Writes `text` straight to the terminal: the test harness keeps what a test
/// prints with `print!` to itself, unless the test fails.
pub fn to_terminal(text: &str) {
    let mut terminal = std::io::stdout().lock();
    terminal
        .write_all(text.as_bytes())
        .expect("write to stdout");
}

/// Compiles the lessons `names` (the mistake must fail with its recorded
/// output, the fix must compile and pass its check), then prints each one.
fn show(names: &[String]) {
    let cases = trybuild::TestCases::new();
    for name in names {
        cases.compile_fail(format!("tests/ui/fail/{name}.rs"));
        cases.pass(format!("tests/ui/fixed/{name}.rs"));
    }
    drop(cases); // trybuild works here, and panics on any difference
    // Straight to the terminal: the test harness keeps `print!` from a passing
    // test to itself.
    for name in names {
        to_terminal(&render(name));
    }
}

/// What is shown for the lesson `name`.
fn render(name: &str) -> String {
    let mistake_path = format!("tests/ui/fail/{name}.rs");
    let output_path = format!("tests/ui/fail/{name}.stderr");
    let fix_path = format!("tests/ui/fixed/{name}.rs");
    let mistake = read(&mistake_path);
    let fix = read(&fix_path);
    let rule = "=".repeat(78);
    let mut text = format!("\n{rule}\n{name}\n{rule}\n\n");
    text += &format!("The mistake, {mistake_path}:\n\n{mistake}\n");
    text += &format!(
        "What rustc says about it: trybuild compiled the mistake just now (the\n\
         \"ok\" above), and rustc's output was exactly this, the recorded\n\
         {output_path}\n\
         (trybuild writes paths as $DIR and $CARGO):\n\n{}\n",
        read(&output_path)
    );
    text += &format!(
        "The fix, {fix_path},\ncompiled and run just now; its check passed:\n\n\
         {fix}\n"
    );
    text += "What changed from the mistake to the fix, in their code (without the\n\
             opening comments, and without the fix's check): - mistake, + fix\n\n";
    let before: Vec<&str> = code(&mistake, "fn main()").collect();
    let after: Vec<&str> = code(&fix, "// The check").collect();
    for line in diff(&before, &after) {
        text += &line;
        text += "\n";
    }
    text
}

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The lines of a lesson's file between its opening comment and the first
/// line that starts with `end`.
fn code<'a>(file: &'a str, end: &'a str) -> impl Iterator<Item = &'a str> {
    file.lines()
        .skip_while(|line| line.starts_with("//") || line.is_empty())
        .take_while(move |line| !line.starts_with(end))
}

/// A line diff from `old` to `new`: `-` only in old, `+` only in new, and two
/// space-led lines of context around each change; `...` stands for the rest.
fn diff(old: &[&str], new: &[&str]) -> Vec<String> {
    // common[i][j]: the length of the longest common subsequence of old[i..]
    // and new[j..].
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut marked: Vec<(char, &str)> = Vec::new();
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            marked.push((' ', old[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < old.len()
            && (j == new.len() || common[i + 1][j] >= common[i][j + 1])
        {
            marked.push(('-', old[i]));
            i += 1;
        } else {
            marked.push(('+', new[j]));
            j += 1;
        }
    }
    let changed: Vec<usize> = (0..marked.len())
        .filter(|&at| marked[at].0 != ' ')
        .collect();
    let near = |at: usize| changed.iter().any(|&c| c.abs_diff(at) <= CONTEXT);
    let mut lines = Vec::new();
    for (at, (mark, line)) in marked.iter().enumerate() {
        if near(at) {
            lines.push(format!("{mark} {line}").trim_end().to_owned());
        } else if lines.last().is_none_or(|last| last != "...") {
            lines.push("...".to_owned());
        }
    }
    lines
}

#[test]
fn every_lesson_shows_what_its_fix_changed() {
    for name in super::names("tests/ui/fail", "rs") {
        let shown = render(&name);
        let diff = shown
            .lines()
            .skip_while(|line| !line.starts_with("What changed"));
        let marks: BTreeSet<char> =
            diff.filter_map(|line| line.chars().next()).collect();
        assert!(
            marks.contains(&'-') && marks.contains(&'+'),
            "{name}: no change between the mistake and the fix:\n{shown}"
        );
    }
}
