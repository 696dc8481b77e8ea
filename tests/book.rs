//! Checks the book's includes, which mdBook itself does not: it renders a missing
//! file or anchor as an empty block, without an error.
//!
//! Fails when an include does not resolve or resolves to nothing, when a Rust
//! block in a chapter holds anything but includes (code is never pasted), when an
//! example or a compile-fail lesson appears in no chapter, or when a chapter is
//! missing from `SUMMARY.md`.

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
