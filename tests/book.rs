//! Checks the book's includes, which mdBook itself does not: it renders a missing
//! file or anchor as an empty block, without an error.
//!
//! Fails when an include does not resolve or resolves to nothing, when a Rust
//! block in a chapter holds anything but includes (code is never pasted), when an
//! example or a compile-fail lesson appears in no chapter, when a chapter is
//! missing from `SUMMARY.md`, when a lesson's reading list disagrees with its
//! files, or when the performance chapter quotes a figure the benchmark's record
//! does not hold.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn files(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("cannot read {dir}: {e}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    found
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .expect("a name")
        .to_string_lossy()
        .into_owned()
}

/// A chapter's or an example's name without its extension: `10_rooms_client`
/// for `10_rooms_client.md` and for the folder `examples/10_rooms_client`.
fn stem_of(path: &Path) -> String {
    path.file_stem()
        .expect("a name")
        .to_string_lossy()
        .into_owned()
}

/// Every chapter: the Markdown files of book/src, except SUMMARY.md.
fn chapters() -> Vec<PathBuf> {
    files("book/src", "md")
        .into_iter()
        .filter(|path| !path.ends_with("SUMMARY.md"))
        .collect()
}

/// One `{{#include path[:anchor | :start:end]}}` directive.
struct Include {
    chapter: PathBuf,
    /// The directive's argument as written, `path[:selector]`.
    argument: String,
    target: PathBuf,
    selector: Option<String>,
}

fn includes(chapter: &Path) -> Vec<Include> {
    let text = read(chapter);
    let mut found = Vec::new();
    for (start, _) in text.match_indices("{{#") {
        let rest = &text[start + 3..];
        let end = rest.find("}}").expect("an include directive ends with }}");
        let mut words = rest[..end].split_whitespace();
        let directive = words.next().unwrap_or_default();
        assert!(
            matches!(directive, "include" | "rustdoc_include"),
            "{}: unknown directive {{{{#{directive}",
            chapter.display()
        );
        let argument = words.next().expect("an include names a file");
        let (path, selector) = match argument.split_once(':') {
            Some((path, selector)) => (path, Some(selector.to_owned())),
            None => (argument, None),
        };
        let dir = chapter.parent().expect("a chapter is in a folder");
        found.push(Include {
            chapter: chapter.to_owned(),
            argument: argument.to_owned(),
            target: dir.join(path),
            selector,
        });
    }
    found
}

/// What mdBook would insert for an include, without the anchor lines.
fn resolve(include: &Include) -> String {
    let text = read(&include.target);
    let lines: Vec<&str> = text.lines().collect();
    let is_anchor =
        |line: &str| line.contains("ANCHOR:") || line.contains("ANCHOR_END:");
    let selected: Vec<&str> = match include.selector.as_deref() {
        None => {
            // mdBook strips anchor lines only from anchored includes.
            assert!(
                !lines.iter().any(|line| is_anchor(line)),
                "{}: {} is included whole, and its ANCHOR lines would show",
                include.chapter.display(),
                include.target.display()
            );
            lines.clone()
        }
        Some(selector)
            if selector
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == ':') =>
        {
            let (from, to) =
                selector.split_once(':').unwrap_or((selector, selector));
            let from = from.parse::<usize>().map_or(0, |n| n.saturating_sub(1));
            let to = to.parse::<usize>().unwrap_or(lines.len()).min(lines.len());
            assert!(
                from < to,
                "{}: empty line range {selector}",
                include.chapter.display()
            );
            lines[from..to].to_vec()
        }
        Some(anchor) => {
            let starts = |line: &&str| {
                line.trim_start().trim_start_matches("//").trim()
                    == format!("ANCHOR: {anchor}")
            };
            let ends = |line: &&str| {
                line.trim_start().trim_start_matches("//").trim()
                    == format!("ANCHOR_END: {anchor}")
            };
            let from = lines.iter().position(starts).unwrap_or_else(|| {
                panic!(
                    "{}: no `ANCHOR: {anchor}` in {}",
                    include.chapter.display(),
                    include.target.display()
                )
            });
            let to = lines.iter().position(ends).unwrap_or_else(|| {
                panic!(
                    "{}: no `ANCHOR_END: {anchor}` in {}",
                    include.chapter.display(),
                    include.target.display()
                )
            });
            assert!(
                from < to,
                "{}: ANCHOR_END before ANCHOR for {anchor}",
                include.target.display()
            );
            lines[from + 1..to].to_vec()
        }
    };
    selected
        .into_iter()
        .filter(|line| !is_anchor(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_include_resolves_to_something() {
    let mut count = 0;
    for chapter in chapters() {
        for include in includes(&chapter) {
            assert!(
                include.target.is_file(),
                "{}: {} does not exist",
                chapter.display(),
                include.target.display()
            );
            let inserted = resolve(&include);
            assert!(
                !inserted.trim().is_empty(),
                "{}: {}:{} resolves to nothing",
                chapter.display(),
                include.target.display(),
                include.selector.as_deref().unwrap_or("")
            );
            count += 1;
        }
    }
    assert!(count > 0, "the book includes nothing");
}

// ANCHOR: captions
/// The longest listing: one longer than this is a listing a reader cannot
/// take in at once.
const MAX_LISTING_LINES: usize = 60;

/// The widest line of code the book's column shows without scrolling sideways.
const MAX_LISTING_COLUMNS: usize = 85;

/// Output recorded from a tool, shown as it printed it however wide: rustc's
/// (trybuild's `.stderr`) and insta's snapshots.
const RECORDED_OUTPUT: [&str; 2] = [".stderr", ".snap"];

/// Every include in a code fence is a listing, whatever its file: it must fit
/// on a page (in width, unless it is recorded output) and have a caption that
/// names its file.
#[test]
fn every_listing_has_a_caption_that_names_its_file_and_fits_on_a_page() {
    let root = root();
    let mut problems = Vec::new();
    for chapter in chapters() {
        let text = read(&chapter);
        let lines: Vec<&str> = text.lines().collect();
        for include in includes(&chapter) {
            let file = include.target.canonicalize().expect("the file exists");
            let file = file.strip_prefix(root).expect("under the root");
            let name = file.display().to_string();
            let here = format!("{}: the listing of {name}", chapter.display());
            let directive = format!("{}}}}}", include.argument);
            let at = lines.iter().position(|line| line.contains(&directive));
            let at = at.expect("the directive is in its chapter");
            if !lines[at.saturating_sub(1)].starts_with("```") {
                continue; // included as Markdown, not as a listing
            }
            let inserted = resolve(&include);
            let length = inserted.lines().count();
            if length > MAX_LISTING_LINES {
                problems.push(format!("{here} is {length} lines long"));
            }
            let recorded = RECORDED_OUTPUT.iter().any(|e| name.ends_with(e));
            for line in inserted.lines().filter(|_| !recorded) {
                let width = line.chars().count();
                if width > MAX_LISTING_COLUMNS {
                    problems.push(format!("{here} has {width} columns: {line}"));
                }
            }
            // A listing's caption starts on the second line after its fence.
            let caption: Vec<&str> = lines
                .get(at + 3..)
                .unwrap_or_default()
                .iter()
                .take_while(|line| !line.is_empty())
                .copied()
                .collect();
            let caption = caption.join(" ");
            let names_it = caption.contains(&format!("`{name}`"))
                || (name.ends_with(".stderr") && caption.contains("rustc"));
            if !caption.starts_with("*Listing ") || !names_it {
                problems.push(format!("{here}: no caption that names it"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
// ANCHOR_END: captions

#[test]
fn rust_blocks_hold_only_includes() {
    for chapter in chapters() {
        let text = read(&chapter);
        let mut in_rust_block = false;
        for (number, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if let Some(info) = trimmed.strip_prefix("```") {
                if in_rust_block {
                    in_rust_block = false;
                } else {
                    in_rust_block = info.starts_with("rust");
                }
                continue;
            }
            if in_rust_block && !trimmed.is_empty() {
                assert!(
                    trimmed.starts_with("{{#include")
                        || trimmed.starts_with("{{#rustdoc_include"),
                    "{}:{}: code is pasted into the book, not included: {line}",
                    chapter.display(),
                    number + 1
                );
            }
        }
    }
}

/// Paths (relative to the repository's root) that some chapter includes.
fn included_files() -> BTreeSet<PathBuf> {
    let root = root().canonicalize().expect("the root exists");
    chapters()
        .iter()
        .flat_map(|chapter| includes(chapter))
        .filter_map(|include| include.target.canonicalize().ok())
        .filter_map(|path| path.strip_prefix(&root).ok().map(Path::to_path_buf))
        .collect()
}

#[test]
fn every_example_and_every_compile_fail_lesson_is_in_the_book() {
    let included = included_files();
    // An example is a file (examples/NN_name.rs) or a folder (examples/NN_name/),
    // and every Rust file of a folder is part of the lesson, so each one must be
    // in the book.
    let folders = std::fs::read_dir(root().join("examples"))
        .expect("examples/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .flat_map(|folder| {
            files(&format!("examples/{}", name_of(&folder)), "rs")
        });
    let expected = files("examples", "rs")
        .into_iter()
        .chain(folders)
        .chain(files("tests/ui/fail", "rs"))
        .chain(files("tests/ui/fail", "stderr"))
        .chain(files("tests/ui/fixed", "rs"));
    for path in expected {
        let relative = path.strip_prefix(root()).expect("under the root");
        assert!(
            included.contains(relative),
            "{} appears in no chapter of the book",
            relative.display()
        );
    }
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary = read(&root().join("book/src/SUMMARY.md"));
    let linked: BTreeSet<String> = summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_owned)
        .collect();
    for target in &linked {
        assert!(
            root().join("book/src").join(target).is_file(),
            "SUMMARY.md links to {target}, which does not exist"
        );
    }
    for chapter in chapters() {
        let name = chapter
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        assert!(linked.contains(&name), "{name} is missing from SUMMARY.md");
    }
}

/// The header row of the table every lesson chapter opens with: the files to
/// read, and how long each is.
const READING_LIST_HEADER: &str = "| What to read | lines |";

/// The two-digit number a lesson's chapter and examples start with, as in
/// `05_dashboard.md` and `examples/05_dashboard/`.
fn lesson_number(name: &str) -> Option<&str> {
    let (number, _) = name.split_once('_')?;
    (number.len() == 2 && number.chars().all(|c| c.is_ascii_digit()))
        .then_some(number)
}

/// The lesson a file of `examples/` belongs to, by the folder or file it is in.
fn lesson_of(relative: &Path) -> Option<String> {
    let mut parts = relative.components();
    if parts.next()?.as_os_str() != "examples" {
        return None;
    }
    let first = parts.next()?.as_os_str().to_string_lossy().into_owned();
    lesson_number(&first).map(str::to_owned)
}

/// Where rustc finds `mod name;` declared in `file` without a `#[path]`.
fn module_file(file: &Path, name: &str) -> PathBuf {
    let dir = file.parent().expect("a file is in a folder");
    let stem = file.file_stem().expect("a name").to_string_lossy();
    let base = match stem.as_ref() {
        "main" | "mod" | "lib" => dir.to_path_buf(),
        _ => dir.join(stem.as_ref()),
    };
    let flat = base.join(format!("{name}.rs"));
    if flat.is_file() {
        flat
    } else {
        base.join(name).join("mod.rs")
    }
}

/// The files `file` pulls in: its `mod name;` declarations (with or without
/// `#[path]`) and its `include_str!`s. Inline modules (`mod tests { .. }`) are
/// part of the file itself.
fn pulled_in_by(file: &Path) -> Vec<PathBuf> {
    let dir = file.parent().expect("a file is in a folder");
    let quoted = |text: &str| text.split('"').nth(1).map(str::to_owned);
    let mut found = Vec::new();
    let mut path_attribute = None;
    for line in read(file).lines().map(str::trim) {
        for (at, _) in line.match_indices("include_str!(") {
            if let Some(name) = quoted(&line[at..]) {
                found.push(dir.join(name));
            }
        }
        if line.starts_with("#[path") {
            path_attribute = quoted(line);
            continue;
        }
        if line.starts_with("#[") || line.starts_with("//") {
            continue; // other attributes and comments keep the `#[path]`
        }
        let declaration = line
            .trim_start_matches("pub ")
            .trim_start_matches("pub(crate) ")
            .strip_prefix("mod ")
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = declaration {
            found.push(match path_attribute.take() {
                Some(path) => dir.join(path),
                None => module_file(file, name),
            });
        }
        path_attribute = None;
    }
    found
}

/// The files the chapter `chapter` teaches: those of every example with the
/// chapter's number (02's chapter covers both of 02's programs) but one that
/// has a chapter of its own (`10_rooms_client.md`), and every file they pull
/// in.
fn lesson_files(chapter: &str) -> BTreeSet<PathBuf> {
    let root = root().canonicalize().expect("the root exists");
    let number = lesson_number(chapter).expect("a lesson chapter");
    let own_chapters: BTreeSet<String> =
        chapters().iter().map(|chapter| stem_of(chapter)).collect();
    let mut waiting: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .expect("examples/")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            let name = stem_of(path);
            lesson_number(&name) == Some(number)
                && (name == chapter || !own_chapters.contains(&name))
        })
        .map(|path| {
            if path.is_dir() {
                path.join("main.rs")
            } else {
                path
            }
        })
        .collect();
    let mut seen = BTreeSet::new();
    while let Some(file) = waiting.pop() {
        let file = file
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let relative = file.strip_prefix(&root).expect("under the root");
        if seen.insert(relative.to_path_buf())
            && file.extension().is_some_and(|e| e == "rs")
        {
            waiting.extend(pulled_in_by(&file));
        }
    }
    seen
}

/// One row of a reading list: the file (the first `code` in the row) and what
/// the row says about it.
struct ReadingListRow {
    file: PathBuf,
    /// The first cell: the file, and "from lesson NN" for an earlier lesson's.
    label: String,
    lines: String,
}

/// The reading list of `chapter`, which must come before anything but the
/// chapter's title and its opening paragraphs.
fn reading_list(chapter: &Path) -> Result<Vec<ReadingListRow>, String> {
    let text = read(chapter);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.trim() == READING_LIST_HEADER)
        .ok_or(format!("it has no `{READING_LIST_HEADER}` table"))?;
    let opening = lines[1..at].iter().map(|line| line.trim_start());
    if let Some(line) = opening.into_iter().find(|line| {
        ["#", "```", "![", "{{#", "|"]
            .iter()
            .any(|s| line.starts_with(s))
    }) {
        return Err(format!("its reading list comes after `{line}`"));
    }
    let rows = lines[at + 2..]
        .iter()
        .take_while(|line| line.starts_with('|'));
    rows.map(|row| {
        let cells: Vec<&str> = row.trim_matches('|').split('|').collect();
        let [label, count] = cells[..] else {
            return Err(format!("a row that is not `| file | lines |`: {row}"));
        };
        let file = label
            .split('`')
            .nth(1)
            .ok_or(format!("a row without a `file`: {row}"))?;
        Ok(ReadingListRow {
            file: PathBuf::from(file),
            label: label.trim().to_owned(),
            lines: count.trim().to_owned(),
        })
    })
    .collect()
}

/// Every lesson chapter opens with its files and their line counts; each
/// count is the file's, and the list names every file the lesson's examples
/// are built from, marking another lesson's with "from lesson NN".
#[test]
fn every_lesson_opens_with_its_files_and_their_line_counts() {
    let mut problems = Vec::new();
    let mut lessons = 0;
    for chapter in chapters() {
        let name = name_of(&chapter);
        let Some(number) = lesson_number(&name) else {
            continue;
        };
        lessons += 1;
        let here = chapter.strip_prefix(root()).expect("under the root");
        let here = here.display();
        let rows = match reading_list(&chapter) {
            Ok(rows) if !rows.is_empty() => rows,
            Ok(_) => {
                problems.push(format!("{here}: its reading list is empty"));
                continue;
            }
            Err(problem) => {
                problems.push(format!("{here}: {problem}"));
                continue;
            }
        };
        for row in &rows {
            let file = row.file.display();
            let Ok(text) = std::fs::read_to_string(root().join(&row.file)) else {
                problems
                    .push(format!("{here}: lists {file}, which does not exist"));
                continue;
            };
            let count = text.lines().count();
            if row.lines != count.to_string() {
                problems.push(format!(
                    "{here}: lists {file} with {} lines; it has {count}",
                    row.lines
                ));
            }
            let mark = lesson_of(&row.file)
                .filter(|lesson| lesson != number)
                .map(|lesson| format!("from lesson {lesson}"));
            let marked = row.label.contains("from lesson");
            match &mark {
                Some(mark) if !row.label.contains(mark.as_str()) => {
                    problems.push(format!("{here}: {file} should say \"{mark}\""))
                }
                None if marked => problems.push(format!(
                    "{here}: {file} is this lesson's, not from another"
                )),
                _ => {}
            }
        }
        let listed: BTreeSet<PathBuf> =
            rows.into_iter().map(|row| row.file).collect();
        let expected = lesson_files(&stem_of(&chapter));
        for file in expected.difference(&listed) {
            let count = read(&root().join(file)).lines().count();
            problems.push(format!(
                "{here}: the reading list misses {} ({count} lines), which \
                 the lesson's examples are built from",
                file.display()
            ));
        }
        for file in listed.difference(&expected) {
            if file.starts_with("examples") {
                problems.push(format!(
                    "{here}: lists {}, which the lesson's examples do not use",
                    file.display()
                ));
            }
        }
    }
    assert!(lessons >= 11, "only {lessons} lesson chapters");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The benchmark's record, which the performance chapter quotes.
const RESULTS: &str = "bench/results/latest.md";

/// The units of a measured figure, as in `7.3 KB`, `13 ms` or `0.88x`.
const UNITS: [&str; 6] = [" µs", " ms", " KB", " MiB", " MB", "x"];

/// `text` with the thousands separators of its numbers taken out, as the
/// record writes them: `1,317.0 MiB` becomes `1317.0 MiB`.
fn without_separators(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        let separator = *c == ','
            && i > 0
            && digit(i - 1)
            && (1..=3).all(|k| digit(i + k))
            && !digit(i + 4);
        if !separator {
            out.push(*c);
        }
    }
    out
}

/// The numbers in `text` (separators taken out), each with its unit when one
/// of `UNITS` follows it: `["142757", "6.9 µs", "0.88x"]`.
fn numbers(text: &str) -> Vec<String> {
    let text = without_separators(text);
    let mut found = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        let before = rest[..start].chars().next_back();
        let from_start = &rest[start..];
        let length = from_start
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(from_start.len());
        let number = from_start[..length].trim_end_matches('.');
        let tail = &from_start[number.len()..];
        rest = tail;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue; // part of a name, such as `01_echo` or `p99`
        }
        let unit = UNITS.iter().find(|unit| {
            tail.strip_prefix(**unit).is_some_and(|after| {
                !after.starts_with(|c: char| c.is_alphanumeric())
            })
        });
        found.push(format!("{number}{}", unit.copied().unwrap_or_default()));
    }
    found
}

/// Whether `figure` is a number with a unit, a measurement wherever it stands.
fn has_unit(figure: &str) -> bool {
    !figure.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Whether `figure` occurs in `record` as a whole figure, not as part of a
/// larger number (`3 ms` is not in `13 ms`).
fn records(record: &str, figure: &str) -> bool {
    record.match_indices(figure).any(|(at, _)| {
        let before = record[..at].chars().next_back();
        let mut after = record[at + figure.len()..].chars();
        let (next, then) = (after.next(), after.next());
        let longer_before =
            before.is_some_and(|c| c.is_ascii_digit() || c == '.');
        let decimals_after =
            next == Some('.') && then.is_some_and(|c| c.is_ascii_digit());
        let longer_after =
            next.is_some_and(char::is_alphanumeric) || decimals_after;
        !(longer_before || longer_after)
    })
}

/// The record's sections by their headings, each with its text.
fn record_sections(record: &str) -> Vec<(String, String)> {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in record.lines() {
        match line.strip_prefix("## ") {
            Some(heading) => sections.push((heading.to_owned(), String::new())),
            None => {
                if let Some((_, text)) = sections.last_mut() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
    }
    sections
}

/// The performance chapter quotes the record and nothing else: every figure
/// of a table appears in the section of the record its caption names (`from
/// "Echo"`), and every measured figure of its prose (a number with a unit of
/// `UNITS`) appears in the record. A new run that changes a figure fails here
/// until the chapter follows it.
#[test]
fn the_performance_chapter_quotes_the_recorded_results() {
    let record = without_separators(&read(&root().join(RESULTS)));
    let sections = record_sections(&record);
    let chapter = read(&root().join("book/src/performance.md"));
    let lines: Vec<&str> = chapter.lines().collect();
    let mut problems = Vec::new();
    let missing = |line: usize, figure: &str, place: &str| {
        format!(
            "book/src/performance.md:{}: {figure} is not in {place} of {RESULTS}",
            line + 1
        )
    };
    let mut tables = 0;
    let mut at = 0;
    while at < lines.len() {
        if !lines[at].starts_with('|') {
            // A bare number in prose is a count or a setting, not a result.
            for figure in numbers(lines[at]).into_iter().filter(|f| has_unit(f)) {
                if !records(&record, &figure) {
                    problems.push(missing(at, &figure, "any section"));
                }
            }
            at += 1;
            continue;
        }
        tables += 1;
        let table: Vec<usize> = (at..lines.len())
            .take_while(|&i| lines[i].starts_with('|'))
            .collect();
        let end = at + table.len();
        let caption: String = lines[end + 1..]
            .iter()
            .take_while(|line| !line.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let names: Vec<&str> = caption
            .split_once("(from ")
            .map(|(_, from)| from.split('"').skip(1).step_by(2).collect())
            .unwrap_or_default();
        if !caption.starts_with("*Table ") || names.is_empty() {
            problems.push(format!(
                "book/src/performance.md:{}: a table without a caption that \
                 says which section of the record it is (from \"...\")",
                at + 1
            ));
        }
        let mut source = String::new();
        for name in &names {
            match sections.iter().find(|(heading, _)| heading == name) {
                Some((_, text)) => source.push_str(text),
                None => problems.push(format!(
                    "book/src/performance.md:{}: {RESULTS} has no section \"{name}\"",
                    end + 2
                )),
            }
        }
        // The header row and the separator row hold no figures.
        for &row in &table[2..] {
            for cell in lines[row].trim_matches('|').split('|') {
                for figure in numbers(cell) {
                    // A cell that is one number is a result (messages/s);
                    // a number inside words is a label (`32 of 33`).
                    let whole = without_separators(cell.trim()) == figure;
                    if (whole || has_unit(&figure)) && !records(&source, &figure)
                    {
                        let place = format!("the section {names:?}");
                        problems.push(missing(row, &figure, &place));
                    }
                }
            }
        }
        at = end;
    }
    assert!(tables >= 5, "the performance chapter has {tables} tables");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
