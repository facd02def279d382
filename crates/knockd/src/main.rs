use clap::Parser;

fn main() {
    let cli = knockd::cli::Cli::parse();
    std::process::exit(knockd::daemon::main(cli));
}
