//! The Autobahn|Testsuite conformance cases against `01_echo` and
//! `08_production --echo`, and with `--features stacks` against lesson 01 on the
//! other stacks (`stacks/`), run by `kosoku` (a native runner of the Autobahn
//! case files, from PyPI).
//!
//! Needs `kosoku` on the PATH (or its path in `KOSOKU`), so it runs only with the
//! `autobahn` feature: `cargo test --features autobahn --test autobahn`. CI
//! installs kosoku and always runs it. Every case must end OK, NON-STRICT or
//! INFORMATIONAL, and the results must match the ones committed in `autobahn/`;
//! after a deliberate change, rerun with `AUTOBAHN_UPDATE=1` and review the diff.
#![cfg(feature = "autobahn")]

use ws_harness as common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{Program, Running};
use serde_json::Value;

/// Case id → "behavior / behaviorClose", as Autobahn's index.json reports them.
type Results = BTreeMap<String, String>;

/// permessage-deflate (sections 12 and 13) is an extension axum does not offer.
const EXCLUDED: [&str; 2] = ["12.*", "13.*"];

async fn conformance(program: Program, args: &[&str]) -> Results {
    let server = Running::start(program, args).await;
    let reports = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("autobahn")
        .join(program.name());
    let _ = std::fs::remove_dir_all(&reports);
    let kosoku = std::env::var("KOSOKU").unwrap_or_else(|_| "kosoku".into());
    let mut command = tokio::process::Command::new(&kosoku);
    command
        .arg(server.ws_url())
        .args(["-p", "2", "-o"])
        .arg(&reports);
    for pattern in EXCLUDED {
        command.args(["-x", pattern]);
    }
    let run = command.kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("the suite finishes within 10 minutes")
        .unwrap_or_else(|e| {
            panic!("cannot run {kosoku} (pip install kosoku==0.1.0): {e}")
        });
    println!("{}", String::from_utf8_lossy(&output.stdout));

    let index =
        std::fs::read_to_string(reports.join("index.json")).expect("index.json");
    let index: Value = serde_json::from_str(&index).expect("index.json is JSON");
    let (_agent, cases) = index
        .as_object()
        .and_then(|agents| agents.iter().next())
        .expect("one agent in index.json");
    cases
        .as_object()
        .expect("cases")
        .iter()
        .map(|(case, result)| {
            let behavior = result["behavior"].as_str().unwrap_or("?");
            let close = result["behaviorClose"].as_str().unwrap_or("?");
            (case.clone(), format!("{behavior} / {close}"))
        })
        .collect()
}

/// Checks every case's outcome, then compares with the committed results in
/// `autobahn/<name>.json`.
fn check(name: &str, results: &Results) {
    assert!(results.len() > 250, "only {} cases ran", results.len());
    let acceptable = ["OK", "NON-STRICT", "INFORMATIONAL"];
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, outcome)| {
            !outcome.split(" / ").all(|o| acceptable.contains(&o))
        })
        .collect();
    assert!(failed.is_empty(), "{name}: cases that failed: {failed:?}");

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("autobahn/{name}.json"));
    let actual = serde_json::to_string_pretty(results).expect("JSON") + "\n";
    if std::env::var_os("AUTOBAHN_UPDATE").is_some() {
        std::fs::write(&path, &actual).expect("write the expected results");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("no {}: run with AUTOBAHN_UPDATE=1", path.display())
    });
    let expected: Results =
        serde_json::from_str(&expected).expect("the expected results");
    let changed: Vec<_> = expected
        .iter()
        .filter(|(case, outcome)| results.get(*case) != Some(outcome))
        .map(|(case, outcome)| {
            format!("{case}: expected {outcome}, got {:?}", results.get(case))
        })
        .chain(
            results
                .keys()
                .filter(|c| !expected.contains_key(*c))
                .map(|c| format!("{c}: new")),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "{name}: results changed:\n{}",
        changed.join("\n")
    );
}

#[tokio::test]
async fn the_echo_server_of_lesson_01_conforms() {
    let results = conformance("01_echo".into(), &[]).await;
    check("01_echo", &results);
}

#[tokio::test]
async fn the_production_server_conforms_in_echo_mode() {
    // Limits raised to take the 16 MiB messages of section 9; no rate limit for
    // the suite.
    let args = [
        "--no-auth",
        "--echo",
        "--rate-limit",
        "0",
        "--max-message",
        "20MiB",
        "--max-frame",
        "20MiB",
    ];
    let results = conformance("08_production".into(), &args).await;
    check("08_production", &results);
}

/// Lesson 01 on another stack (`stacks/`), against `autobahn/<name>.json`.
#[cfg(feature = "stacks")]
async fn lesson_01_conforms_on(name: &'static str) {
    let results = conformance(Program::Stack(name), &[]).await;
    check(name, &results);
}

#[cfg(feature = "stacks")]
#[tokio::test]
async fn lesson_01_on_bare_tokio_tungstenite_conforms() {
    lesson_01_conforms_on("tungstenite_01_echo").await;
}

#[cfg(feature = "stacks")]
#[tokio::test]
async fn lesson_01_on_actix_web_conforms() {
    lesson_01_conforms_on("actix_01_echo").await;
}
