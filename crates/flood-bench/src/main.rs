//! flood-bench: how a port-knocking daemon behaves under a flood of spoofed first knocks, our
//! knockd side by side with knockd 0.8. Linux only, run as root; see docs/flood-bench.md.

#[cfg(target_os = "linux")]
mod bench;
#[cfg(target_os = "linux")]
mod cli;
#[cfg(target_os = "linux")]
mod frame;
#[cfg(target_os = "linux")]
mod generator;
#[cfg(target_os = "linux")]
mod json;
#[cfg(target_os = "linux")]
mod legit;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod sources;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("flood-bench runs on Linux only (network namespaces, AF_PACKET)");
    std::process::ExitCode::FAILURE
}
