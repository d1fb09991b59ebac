//! `cargo bench -p vigil --bench fuzz [TARGET...]`: a bounded fuzz run of every parser that
//! reads bytes from the network (tests/common/fuzz.rs), `VIGIL_FUZZ_INPUTS` inputs each
//! (20,000 by default; `VIGIL_FUZZ_SEED` picks another deterministic sequence). Prints, per
//! target, the inputs run, inputs a second and the findings (kept in target/fuzz-findings);
//! exits non-zero if there is any.

#[path = "../tests/common/fuzz.rs"]
mod fuzz;

use std::time::Duration;

use fuzz::{env_number, findings_dir, Runner, TARGETS};

fn main() {
    let inputs = env_number("VIGIL_FUZZ_INPUTS", 20_000);
    let seed = env_number("VIGIL_FUZZ_SEED", 1);
    let slow = Duration::from_millis(env_number("VIGIL_FUZZ_SLOW_MS", 1000));
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!("fuzz: {inputs} inputs per target, seed {seed}, an input over {slow:?} is a finding");
    let mut findings = 0;
    for name in TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let mut runner = Runner::new(name, slow);
        let report = runner.fuzz(inputs, seed);
        println!("{report}");
        for (why, path) in &report.findings {
            println!("    {}: {why}", path.display());
        }
        findings += report.findings.len();
    }
    if findings > 0 {
        println!(
            "fuzz: {findings} finding(s), kept in {}",
            findings_dir().display()
        );
        std::process::exit(1);
    }
    println!("fuzz: no findings");
}
