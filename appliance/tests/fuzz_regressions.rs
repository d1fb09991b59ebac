//! The fuzz harness (tests/common/fuzz.rs) as a test: every seed of `tests/fuzz/corpus` and
//! every kept finding of `tests/fuzz/regressions` replayed through its target (no panic, a
//! clear refusal or success, within the time bound), then a short fuzz run per target.
//! `cargo bench -p vigil --bench fuzz` runs the long one.

#[path = "common/fuzz.rs"]
mod fuzz;

use std::time::Duration;

use fuzz::{env_number, Runner, Verdict, TARGETS};

/// The per-input time bound here: more generous than the bench's, the test machine being
/// busy with other suites.
fn slow() -> Duration {
    Duration::from_millis(env_number("VIGIL_FUZZ_SLOW_MS", 3000))
}

#[test]
fn the_corpus_and_the_regressions_replay_cleanly() {
    let mut failures = Vec::new();
    for name in TARGETS {
        let mut runner = Runner::new(name, slow());
        let corpus = runner.corpus();
        assert!(!corpus.is_empty(), "{name}: no seed corpus");
        let mut accepted = 0;
        for (path, bytes) in corpus.iter().chain(&runner.regressions()) {
            match runner.run(bytes) {
                Ok(Verdict::Accepted(_)) => accepted += 1,
                Ok(Verdict::Refused(why)) => assert!(!why.trim().is_empty()),
                Err(why) => failures.push(format!("{}: {why}", path.display())),
            }
        }
        // Seeds are real client messages: most must get all the way through (a WS-Security
        // token verified, a Digest header accepted, a probe answered, a zip unpacked...).
        assert!(
            accepted * 2 >= corpus.len(),
            "{name}: only {accepted} of {} seeds accepted: the harness no longer reaches the parser's end",
            corpus.len()
        );
    }
    assert!(failures.is_empty(), "findings:\n{}", failures.join("\n"));
}

/// A short bounded run of one target; its findings fail the test, kept in target/fuzz-findings.
fn short_run(name: &str) {
    let inputs = env_number("VIGIL_FUZZ_TEST_INPUTS", 2000);
    let seed = env_number("VIGIL_FUZZ_SEED", 1);
    let mut runner = Runner::new(name, slow());
    let report = runner.fuzz(inputs, seed);
    eprintln!("{report}");
    let findings: Vec<String> = report
        .findings
        .iter()
        .map(|(why, path)| format!("{}: {why}", path.display()))
        .collect();
    assert!(
        findings.is_empty(),
        "{name} findings:\n{}",
        findings.join("\n")
    );
}

#[test]
fn fuzz_xml() {
    short_run("xml");
}

#[test]
fn fuzz_soap() {
    short_run("soap");
}

#[test]
fn fuzz_wsse() {
    short_run("wsse");
}

#[test]
fn fuzz_digest() {
    short_run("digest");
}

#[test]
fn fuzz_discovery() {
    short_run("discovery");
}

#[test]
fn fuzz_multipart() {
    short_run("multipart");
}

#[test]
fn fuzz_zip() {
    short_run("zip");
}

#[test]
fn fuzz_config() {
    short_run("config");
}

#[test]
fn fuzz_image() {
    short_run("image");
}
