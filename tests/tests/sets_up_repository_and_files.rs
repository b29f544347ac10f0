//! `container.setup` clones a git repository into the container and writes files into
//! it, under the default security floor. The repository is a local bare one, served over
//! HTTP by a small server in this test, listening on the container network's gateway and
//! demanding Basic auth (so the clone only works if the worker hands the credential to
//! git); a second, shallow clone of a tag is made with `file://` from that first clone.
//! The files' contents, modes and owner (the container's user) are checked from inside
//! the container. The credential must not appear in the worker's logs or files, in
//! anything the worker sends, or anywhere in the container afterwards. A refused
//! credential is `forbidden`, a credential with a non-http URL `invalid_request`, and a
//! clone into a non-empty directory `conflict`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use cropscode_tests::orchestrator::Event;
use cropscode_tests::*;
use serde_json::{Value, json};

const CREDENTIAL: &str = "ghp_CRED_t3st_5e7c1d2b9a";
const WRONG_CREDENTIAL: &str = "ghp_WRONG_cred_77aa11bb";
const USERNAME: &str = "alice";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository with two commits on `main` and the lightweight tag `v1` on the
/// first; returns (bare repo path, commit of v1, commit of main).
fn make_repository(root: &Path) -> (PathBuf, String, String) {
    let bare = root.join("repo.git");
    let work = root.join("work");
    std::fs::create_dir_all(&work).expect("mkdir work");
    git(root, &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap_or_default()]);
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("README.md"), "version one\n").expect("write README");
    git(&work, &["add", "README.md"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let v1 = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["tag", "v1"]);
    std::fs::write(work.join("README.md"), "hello from the repository\n").expect("write README");
    git(&work, &["commit", "-q", "-am", "two"]);
    let main = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["push", "-q", bare.to_str().unwrap_or_default(), "main", "v1"]);
    git(&bare, &["update-server-info"]);
    (bare, v1, main)
}

/// Serves a bare repository with git's "dumb" HTTP protocol (static files), answering 401
/// to any request without the expected Basic credentials.
struct DumbGitServer {
    address: String,
    port: u16,
    authorized: Arc<AtomicU32>,
    refused: Arc<AtomicU32>,
    paths: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl DumbGitServer {
    fn start(bare: PathBuf, address: &str) -> DumbGitServer {
        let listener =
            TcpListener::bind((address, 0)).unwrap_or_else(|e| panic!("bind the git server on {address}: {e}"));
        let port = listener.local_addr().expect("local addr").port();
        let expected = format!("Basic {}", base64_encode(format!("{USERNAME}:{CREDENTIAL}").as_bytes()));
        let server = DumbGitServer {
            address: address.to_string(),
            port,
            authorized: Arc::default(),
            refused: Arc::default(),
            paths: Arc::default(),
            stop: Arc::default(),
        };
        let (authorized, refused, paths, stop) =
            (server.authorized.clone(), server.refused.clone(), server.paths.clone(), server.stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (bare, expected) = (bare.clone(), expected.clone());
                let (authorized, refused, paths) = (authorized.clone(), refused.clone(), paths.clone());
                std::thread::spawn(move || serve(stream, &bare, &expected, &authorized, &refused, &paths));
            }
        });
        server
    }

    fn url(&self) -> String {
        format!("http://{}:{}/repo.git", self.address, self.port)
    }
}

impl Drop for DumbGitServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((self.address.as_str(), self.port));
    }
}

fn serve(
    stream: TcpStream,
    bare: &Path,
    expected_auth: &str,
    authorized: &AtomicU32,
    refused: &AtomicU32,
    paths: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut auth_ok = false;
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("authorization") && value.trim() == expected_auth {
                    auth_ok = true;
                }
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        let _ = reader.read_exact(&mut body);
        let target = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        paths.lock().unwrap_or_else(|p| p.into_inner()).push(target.clone());
        let response = if !auth_ok {
            refused.fetch_add(1, Ordering::Relaxed);
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n".to_vec()
        } else {
            authorized.fetch_add(1, Ordering::Relaxed);
            let path = target.split('?').next().unwrap_or("").trim_start_matches("/repo.git/");
            match (path.contains(".."), std::fs::read(bare.join(path))) {
                (false, Ok(content)) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                        content.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&content);
                    r
                }
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            }
        };
        if writer.write_all(&response).is_err() {
            return;
        }
    }
}

/// A pattern for `grep -E` that matches `secret` without containing it (so the check
/// itself does not put the secret into the exec's argv and the worker's logs).
fn pattern_for(secret: &str) -> String {
    let mut chars: Vec<char> = secret.chars().collect();
    let middle = chars.len() / 2;
    chars[middle] = '.';
    chars.into_iter().collect()
}

fn cat(t: &EngineRun, id: &str, path: &str) -> String {
    let out = t.ok("container.exec", json!({ "containerId": id, "command": ["cat", path] }));
    assert_eq!(out["exitCode"], 0, "cat {path}: {out}");
    out["stdout"].as_str().unwrap_or_default().to_string()
}

fn sh(t: &EngineRun, id: &str, script: &str) -> Value {
    t.ok("container.exec", json!({ "containerId": id, "command": ["sh", "-c", script] }))
}

fn setup(t: &EngineRun) {
    let host = TempDir::new("setup-repo");
    let (bare, v1, main) = make_repository(host.path());
    let tenant = t.tenant("acme");

    let created = t.ok(
        "container.create",
        json!({
            "image": GIT_IMAGE,
            "tenant": tenant,
            "name": t.name("dev"),
            "command": ["sleep", "3600"],
            "user": "1000:1000",
            "labels": t.labels(),
            "pull": "never",
        }),
    );
    let id = created["containerId"].as_str().expect("containerId").to_string();
    t.ok("container.start", json!({ "containerId": id }));
    // The host as the container sees it: its network's gateway.
    let inspect = t.inspect(&id).expect("inspect");
    let gateway = inspect["NetworkSettings"]["Gateway"].as_str().unwrap_or_default().to_string();
    assert!(!gateway.is_empty(), "no gateway in {}", inspect["NetworkSettings"]);
    let server = DumbGitServer::start(bare, &gateway);

    // Clone over HTTP with the credential, then write files.
    let script = base64_encode(b"#!/bin/sh\necho set up\n");
    let answer = t.command(
        "container.setup",
        json!({
            "containerId": id,
            "tenant": tenant,
            "repo": {"url": server.url(), "ref": "main", "username": USERNAME, "credential": CREDENTIAL},
            "targetDir": "/workspace/web",
            "files": [
                {"path": "/workspace/web/CLAUDE.md", "content": "# Project notes\n\nUse `make test`.\n"},
                {"path": "/workspace/web/bin/setup", "content": script, "encoding": "base64", "mode": 493},
                {"path": "/etc/cropscode-test/private.txt", "content": "outside the repository\n", "mode": 384},
            ],
        }),
    );
    let result = match answer.outcome() {
        Ok(v) => v.clone(),
        Err(e) => panic!("container.setup over http failed: {} {}", e.code, e.message),
    };
    assert_eq!(result["containerId"], id.as_str(), "{result}");
    assert_eq!(result["targetDir"], "/workspace/web", "{result}");
    assert_eq!(result["commit"], main.as_str(), "{result}");
    assert_eq!(result["filesWritten"], 3, "{result}");
    assert!(server.refused.load(Ordering::Relaxed) >= 1, "git was never asked for credentials");
    assert!(server.authorized.load(Ordering::Relaxed) >= 1, "git never presented {USERNAME}:<credential>");

    assert_eq!(cat(t, &id, "/workspace/web/README.md"), "hello from the repository\n");
    assert_eq!(cat(t, &id, "/workspace/web/CLAUDE.md"), "# Project notes\n\nUse `make test`.\n");
    assert_eq!(cat(t, &id, "/etc/cropscode-test/private.txt"), "outside the repository\n");
    let head = sh(t, &id, "cd /workspace/web && git rev-parse HEAD");
    assert_eq!(head["stdout"], format!("{main}\n"), "{head}");
    let run = t.ok("container.exec", json!({ "containerId": id, "command": ["/workspace/web/bin/setup"] }));
    assert_eq!(run["stdout"], "set up\n", "{run}");
    let modes =
        sh(t, &id, "stat -c %a /workspace/web/CLAUDE.md /workspace/web/bin/setup /etc/cropscode-test/private.txt");
    assert_eq!(modes["stdout"], "644\n755\n600\n", "{modes}");
    // As the container's user: the clone, the written files and the directories made for them.
    let owners = sh(
        t,
        &id,
        "stat -c %u /workspace/web /workspace/web/README.md /workspace/web/CLAUDE.md /etc/cropscode-test/private.txt",
    );
    assert_eq!(owners["stdout"], "1000\n1000\n1000\n1000\n", "{owners}");

    // The credential is nowhere: not in the result, not in anything the worker sent, not in
    // its logs or files, not in the container (remote URL, git config, helper files).
    assert!(!result.to_string().contains(CREDENTIAL), "the credential is in the result: {result}");
    for p in &answer.progress {
        assert!(!p.to_string().contains(CREDENTIAL), "the credential is in a progress report: {p}");
    }
    for event in t.orchestrator.events() {
        if let Event::Frame { text, .. } = &event.event {
            assert!(!text.contains(CREDENTIAL), "the worker sent the credential: {text:.200}");
        }
    }
    let paths = server.paths.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(paths.iter().all(|p| !p.contains(CREDENTIAL)), "the credential was in a URL: {paths:?}");
    let pattern = pattern_for(CREDENTIAL);
    let grep = sh(t, &id, &format!("grep -rlE '{pattern}' /workspace /root /tmp /home /etc 2>/dev/null; true"));
    assert_eq!(grep["stdout"], "", "the credential was left in the container: {grep}");

    // A shallow clone of a tag, from the first clone (file://).
    let shallow = t.ok(
        "container.setup",
        json!({
            "containerId": id,
            "repo": {"url": "file:///workspace/web", "ref": "v1", "depth": 1},
            "targetDir": "/workspace/shallow",
        }),
    );
    assert_eq!(shallow["commit"], v1.as_str(), "{shallow}");
    assert_eq!(shallow["filesWritten"], 0, "{shallow}");
    assert_eq!(cat(t, &id, "/workspace/shallow/README.md"), "version one\n");
    let count = sh(t, &id, "cd /workspace/shallow && git rev-list --count HEAD");
    assert_eq!(count["stdout"], "1\n", "depth 1: {count}");

    // Files only: no repository, no commit.
    let files_only = t
        .ok("container.setup", json!({ "containerId": id, "files": [{"path": "/opt/notes/a.txt", "content": "a\n"}] }));
    assert!(files_only["commit"].is_null(), "{files_only}");
    assert_eq!(files_only["filesWritten"], 1, "{files_only}");
    assert_eq!(cat(t, &id, "/opt/notes/a.txt"), "a\n");

    // A wrong credential: refused by the server, `forbidden`, and not echoed either.
    let wrong = t.fails_with(
        "forbidden",
        "container.setup",
        json!({
            "containerId": id,
            "repo": {"url": server.url(), "username": USERNAME, "credential": WRONG_CREDENTIAL},
            "targetDir": "/workspace/denied",
        }),
    );
    assert!(!wrong.message.contains(WRONG_CREDENTIAL), "the credential is in the error: {}", wrong.message);
    // No credential for a server that wants one: `forbidden` too.
    t.fails_with(
        "forbidden",
        "container.setup",
        json!({ "containerId": id, "repo": {"url": server.url()}, "targetDir": "/workspace/anonymous" }),
    );
    // A credential is for http(s) only.
    let e = t.fails_with(
        "invalid_request",
        "container.setup",
        json!({
            "containerId": id,
            "repo": {"url": "file:///workspace/web", "credential": WRONG_CREDENTIAL},
            "targetDir": "/workspace/file-with-credential",
        }),
    );
    assert!(!e.message.contains(WRONG_CREDENTIAL), "the credential is in the error: {}", e.message);
    // Cloning into a directory that is not empty: `conflict`, and the clone there is intact.
    t.fails_with(
        "conflict",
        "container.setup",
        json!({ "containerId": id, "repo": {"url": "file:///workspace/web"}, "targetDir": "/workspace/web" }),
    );
    assert_eq!(cat(t, &id, "/workspace/web/CLAUDE.md"), "# Project notes\n\nUse `make test`.\n");
    // The credential file of the refused clones is gone too.
    let grep = sh(t, &id, &format!("grep -rlE '{}' /tmp 2>/dev/null; true", pattern_for(WRONG_CREDENTIAL)));
    assert_eq!(grep["stdout"], "", "a credential was left in the container: {grep}");

    t.worker.assert_secret_absent(CREDENTIAL);
    t.worker.assert_secret_absent(WRONG_CREDENTIAL);
    t.worker.assert_token_absent();
}

engine_tests!(setup);
