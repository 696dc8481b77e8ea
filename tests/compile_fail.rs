//! The compile-fail lessons: every program in `tests/ui/fail` must fail to
//! compile with exactly the diagnostics in its `.stderr` file, and its fixed twin
//! in `tests/ui/fixed` must compile and run. Each twin's `main` serves its fix
//! over loopback and asserts on what a client gets back (see
//! `tests/ui/support/loopback.rs`), so a run that exits 0 has seen the fix work.
//!
//! When a newer compiler words a message differently, regenerate the files with
//! `TRYBUILD=overwrite cargo test --test compile_fail`, then read the diff before
//! committing.
//!
//! `WS_LESSONS_SHOW=e0502 cargo test --test compile_fail` shows lessons instead
//! (see `tests/ui/show.rs`): it compiles only those, and prints each one.

use std::collections::BTreeSet;
use std::path::Path;

// `WS_LESSONS_SHOW`, and its tests.
#[path = "ui/show.rs"]
mod show;

// ANCHOR: lessons
#[test]
fn compile_fail_lessons() {
    if std::env::var_os(show::VARIABLE).is_some() {
        show::to_terminal(
            "compile_fail_lessons: skipped; only the lessons shown are \
             compiled\n",
        );
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/fixed/*.rs");
}
// ANCHOR_END: lessons

fn names(dir: &str, extension: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .map(|path| {
            path.file_stem()
                .expect("a file name")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// `tests/ui/fail/NAME.stderr`, if there is one.
fn recorded_output(name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/ui/fail/{name}.stderr"));
    std::fs::read_to_string(path).ok()
}

#[test]
fn every_mistake_has_a_fixed_twin_and_recorded_output() {
    let mistakes = names("tests/ui/fail", "rs");
    let fixes = names("tests/ui/fixed", "rs");
    let outputs = names("tests/ui/fail", "stderr");
    assert!(!mistakes.is_empty(), "no lessons found");
    assert_eq!(
        mistakes.symmetric_difference(&fixes).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "every tests/ui/fail/NAME.rs needs tests/ui/fixed/NAME.rs, and the other \
         way round"
    );
    assert_eq!(
        mistakes.symmetric_difference(&outputs).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "every tests/ui/fail/NAME.rs needs its reviewed NAME.stderr"
    );
}

#[test]
fn each_lesson_is_named_after_the_code_it_teaches() {
    for name in names("tests/ui/fail", "rs") {
        let Some(stderr) = recorded_output(&name) else {
            continue;
        };
        let code = name.split('_').next().expect("a name").to_uppercase();
        if code == "NO" {
            assert!(
                !stderr.contains("error["),
                "{name}: expected no error code:\n{stderr}"
            );
        } else {
            assert!(
                stderr.contains(&format!("error[{code}]")),
                "{name}: expected {code}:\n{stderr}"
            );
        }
    }
}

#[test]
fn recorded_output_names_no_machine_path() {
    for name in names("tests/ui/fail", "stderr") {
        let stderr = recorded_output(&name).expect("recorded output");
        // trybuild writes `$DIR/...` and `$CARGO/...`; a word such as `/home`
        // came from one machine.
        let absolute = stderr.split_whitespace().find(|word| {
            let mut chars = word.chars();
            chars.next() == Some('/')
                && chars.next().is_some_and(char::is_alphabetic)
                || word.contains(env!("CARGO_MANIFEST_DIR"))
        });
        assert_eq!(absolute, None, "{name}.stderr names a machine's path");
    }
}
