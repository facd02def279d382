//! Runs a shell script on the host with a fresh lab, for manual exploration:
//!
//! ```text
//! cargo run -p netns-testkit --example lab_shell -- CLIENTS 'ip netns exec $NS_SRV ip addr'
//! ```
//!
//! The script sees `NS_SRV` (server namespace), `NS_C1`..`NS_C<n>` (clients) and `LAB_DIR` (the
//! lab's temporary directory). The lab is torn down when the script ends; the exit status is the
//! script's.

use netns_testkit::Lab;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(n), Some(script)) = (args.first(), args.get(1)) else {
        eprintln!("usage: lab_shell CLIENTS SCRIPT");
        std::process::exit(2);
    };
    let n: usize = match n.parse() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("lab_shell: bad client count {n:?}: {e}");
            std::process::exit(2);
        }
    };
    let lab = match Lab::new(n) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("lab_shell: {e}");
            std::process::exit(1);
        }
    };
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .env("NS_SRV", lab.server().name())
        .env("LAB_DIR", lab.dir());
    for (i, c) in lab.clients().iter().enumerate() {
        cmd.env(format!("NS_C{}", i + 1), c.name());
    }
    let code = match cmd.status() {
        Ok(st) => st.code().unwrap_or(1),
        Err(e) => {
            eprintln!("lab_shell: cannot run sh: {e}");
            1
        }
    };
    drop(lab);
    std::process::exit(code);
}
