//! The worker refuses to start on a credentials file that another user owns or
//! that others can read, with a message saying how to fix it, and never shows
//! the token while refusing.

mod common;
use common::*;

#[cfg(unix)]
fn login(home: &Home) -> std::path::PathBuf {
    home.run_with_stdin(&["login", "--url", "wss://o.example/w"], &[], Some(&format!("{TOKEN}\n"))).assert_ok();
    home.path(".cropscode/credentials.json")
}

#[cfg(unix)]
#[test]
fn group_or_world_readable_credentials_stop_the_worker() {
    use std::os::unix::fs::PermissionsExt;
    for mode in [0o640, 0o604, 0o660] {
        let home = Home::new("creds-mode");
        let creds = login(&home);
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(mode)).unwrap();
        let data = home.path("data");
        let run = home.run(&["worker", "--data-dir", data.to_str().unwrap()], &[]);
        assert_eq!(run.code, Some(2), "mode {mode:o}: {}", run.all());
        assert!(run.stderr.contains(&format!("chmod 600 {}", creds.display())), "{}", run.stderr);
        assert!(!run.all().contains(TOKEN));
    }
}

#[cfg(unix)]
#[test]
fn credentials_owned_by_another_user_stop_the_worker() {
    use std::os::unix::fs::MetadataExt;
    let home = Home::new("creds-owner");
    let creds = login(&home);
    let me = std::fs::metadata(&creds).unwrap().uid();
    if me != 0 {
        // Giving a file away needs root; the mode check above runs everywhere.
        eprintln!("skipped: not running as root");
        return;
    }
    std::os::unix::fs::chown(&creds, Some(65534), None).unwrap();
    let data = home.path("data");
    let run = home.run(&["worker", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stderr.contains("belongs to uid 65534"), "{}", run.stderr);
    assert!(run.stderr.contains("cropscode login"), "says how to fix it: {}", run.stderr);
    assert!(!run.all().contains(TOKEN));
}
