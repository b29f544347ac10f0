//! `cropscode login` reads the token from stdin (or `--token-file`), writes it
//! to `~/.cropscode/credentials.json` with mode 0600, and nothing ever prints
//! it; `cropscode logout` removes it.

mod common;
use common::*;

#[test]
fn login_status_logout() {
    let home = Home::new("login");
    let run = home.run_with_stdin(
        &["login", "--url", "wss://orchestrator.example/worker"],
        &[],
        Some(&format!("  {TOKEN}  \n")),
    );
    run.assert_ok();
    assert!(!run.all().contains(TOKEN), "login printed the token:\n{}", run.all());

    let creds = home.path(".cropscode/credentials.json");
    let text = std::fs::read_to_string(&creds).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["token"], TOKEN, "stored trimmed");
    assert_eq!(json["orchestratorUrl"], "wss://orchestrator.example/worker");
    #[cfg(unix)]
    {
        assert_eq!(mode_of(&creds), 0o600);
        assert_eq!(mode_of(&home.path(".cropscode")), 0o700);
    }

    let run = home.run(&["status", "--offline"], &[("LOG_LEVEL", "trace")]);
    run.assert_ok();
    let token = run.line("WORKER_TOKEN");
    assert!(token.contains("set") && token.contains("credentials.json"), "{token}");
    assert!(run.line("ORCHESTRATOR_WS_URL").contains("credentials.json"), "{}", run.stdout);
    assert!(!run.all().contains(TOKEN), "status printed the token:\n{}", run.all());

    // A worker that cannot connect logs its attempts; none of them shows the token.
    let data = home.path("data");
    let run = home.run_for(
        &["worker", "--url", "ws://127.0.0.1:9/worker", "--backoff-max", "1s", "--data-dir", data.to_str().unwrap()],
        &[("LOG_LEVEL", "trace")],
        std::time::Duration::from_millis(2500),
    );
    assert!(run.stderr.contains("127.0.0.1:9") || run.stderr.to_lowercase().contains("connect"), "{}", run.all());
    assert!(!run.all().contains(TOKEN), "the worker logged the token:\n{}", run.all());

    let run = home.run(&["logout"], &[]);
    run.assert_ok();
    assert!(!creds.exists());
    let run = home.run(&["status", "--offline"], &[]);
    assert!(run.line("WORKER_TOKEN").contains("not set"), "{}", run.stdout);
    home.run(&["logout"], &[]).assert_ok();
}

#[test]
fn login_from_a_token_file_keeps_the_stored_url() {
    let home = Home::new("login-file");
    home.run_with_stdin(&["login", "--url", "wss://o.example/w"], &[], Some("first-token\n")).assert_ok();
    let file = home.path("token.txt");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    home.run(&["login", "--token-file", file.to_str().unwrap()], &[]).assert_ok();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.path(".cropscode/credentials.json")).unwrap()).unwrap();
    assert_eq!(json["token"], TOKEN);
    assert_eq!(json["orchestratorUrl"], "wss://o.example/w");
}

#[test]
fn empty_token_or_insecure_url_is_refused() {
    let home = Home::new("login-bad");
    let run = home.run_with_stdin(&["login"], &[], Some("\n"));
    assert_eq!(run.code, Some(2), "{}", run.all());
    let run = home.run_with_stdin(&["login", "--url", "ws://example.com/w"], &[], Some(&format!("{TOKEN}\n")));
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stderr.contains("wss://"), "{}", run.stderr);
    assert!(!home.path(".cropscode/credentials.json").exists());
}

#[cfg(unix)]
#[test]
fn credentials_readable_by_others_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new("login-perms");
    home.run_with_stdin(&["login", "--url", "wss://o.example/w"], &[], Some(&format!("{TOKEN}\n"))).assert_ok();
    let creds = home.path(".cropscode/credentials.json");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = home.run(&["status", "--offline"], &[]);
    assert_eq!(run.code, Some(2), "{}", run.all());
    assert!(run.stderr.contains("chmod 600"), "{}", run.stderr);
    assert!(!run.all().contains(TOKEN));
}
