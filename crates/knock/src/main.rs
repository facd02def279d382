//! `knock`: port-knocking client, a drop-in replacement for the classic `knock` (knockd 0.8).
//!
//! Modules: [`cli`] (arguments, validation), [`services`] (service names), [`resolve`] (host
//! resolution, target choice), [`send`] (sockets), [`run`] (the knock loop and exit codes).

mod cli;
mod resolve;
mod run;
mod send;
mod services;

fn main() -> std::process::ExitCode {
    run::main()
}
