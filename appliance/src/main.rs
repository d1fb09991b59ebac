//! The `vigil` binary: the command line at the edge of the appliance.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
