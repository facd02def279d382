//! `knock`: port-knocking client, a drop-in replacement for the classic `knock` (knockd 0.8),
//! with fwknop-compatible SPA and rotating sequences.
//!
//! Modules: [`cli`] (arguments, mode choice, validation), [`spa`] (SPA options, fwknoprc,
//! packets, key generation), [`rotating`] (rotating sequences), [`env`] (environment and files
//! seen by validation), [`services`] (service names), [`resolve`] (host resolution, target
//! choice), [`send`] (sockets), [`run`] (running each mode, exit codes).

mod cli;
mod env;
mod resolve;
mod rotating;
mod run;
mod send;
mod services;
mod spa;

fn main() -> std::process::ExitCode {
    run::main()
}
