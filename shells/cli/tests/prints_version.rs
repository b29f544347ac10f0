//! `cropscode --version` prints `cropscode <version>`.

mod common;
use common::*;

#[test]
fn version_flag() {
    let home = Home::new("version");
    let run = home.run(&["--version"], &[]);
    run.assert_ok();
    assert_eq!(run.stdout.trim(), format!("cropscode {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn help_lists_the_subcommands() {
    let home = Home::new("help");
    let run = home.run(&["--help"], &[]);
    run.assert_ok();
    for command in ["worker", "login", "logout", "status", "dev"] {
        assert!(run.stdout.contains(command), "{command} missing from:\n{}", run.stdout);
    }
}
