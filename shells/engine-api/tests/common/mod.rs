//! Shared by the engine client's tests (and included by the worker engine's): finds the
//! test engines prepared by `tests/env/prepare.sh`, runs each test against Docker and
//! against Podman, and removes what a test created.
//!
//! Everything a test creates carries the label `cropscode.test=1` and a label unique to
//! the test run (`cropscode.test.run`), so cleanup removes exactly the test's own
//! containers even when tests run in parallel.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use cropscode_engine_api::{ContainerSpec, Endpoint, EngineClient, ListContainers, RemoveContainer};

pub const ENV_FILE: &str = "/run/cropscode-test/engines.env";
pub const BUSYBOX: &str = "cropscode-test/busybox:latest";

/// Which engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Docker,
    Podman,
}

fn env_file() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(ENV_FILE).unwrap_or_else(|e| {
        panic!("{ENV_FILE} is missing ({e}): run tests/env/prepare.sh (as root) to start the test engines")
    });
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

/// The socket of the engine, from the env file.
pub fn socket(which: Which) -> String {
    let vars = env_file();
    let key = match which {
        Which::Docker => "DOCKER_SOCK",
        Which::Podman => "PODMAN_SOCK",
    };
    vars.get(key).cloned().unwrap_or_else(|| panic!("{ENV_FILE} has no {key}: run tests/env/prepare.sh again"))
}

/// The local registry's address (`127.0.0.1:5000`).
pub fn registry() -> String {
    env_file()
        .get("REGISTRY")
        .cloned()
        .unwrap_or_else(|| panic!("{ENV_FILE} has no REGISTRY: rerun tests/env/prepare.sh"))
}

pub fn client(which: Which) -> EngineClient {
    EngineClient::new(Endpoint::Unix(socket(which).into()))
}

/// A test's view of one engine: the client, a unique run id, and cleanup on drop.
pub struct TestEngine {
    pub which: Which,
    pub engine: EngineClient,
    pub run: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestEngine {
    pub fn new(which: Which, test: &str) -> TestEngine {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let run = format!("{test}-{:?}-{}-{n}", which, std::process::id()).to_lowercase();
        TestEngine { which, engine: client(which), run }
    }

    /// A container name unique to this run.
    pub fn name(&self, suffix: &str) -> String {
        format!("cropscode-test-{}-{suffix}", self.run)
    }

    /// The labels every test container carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("cropscode.test".to_owned(), "1".to_owned()),
            ("cropscode.test.run".to_owned(), self.run.clone()),
        ])
    }

    /// The label filter selecting this run's containers.
    pub fn run_filter(&self) -> String {
        format!("cropscode.test.run={}", self.run)
    }

    /// A busybox container that sleeps, labelled for this run.
    pub fn sleeper(&self) -> ContainerSpec {
        ContainerSpec {
            image: BUSYBOX.to_owned(),
            cmd: Some(vec!["sleep".into(), "300".into()]),
            labels: self.labels(),
            ..ContainerSpec::default()
        }
    }

    /// Creates and starts a sleeping busybox container; returns its id.
    pub async fn running_container(&self) -> String {
        let created = self.engine.create_container(Some(&self.name("c")), &self.sleeper()).await.expect("create");
        self.engine.start_container(&created.id).await.expect("start");
        created.id
    }

    /// Removes every container of this run.
    pub async fn cleanup(&self) {
        let filter = ListContainers { all: true, labels: vec![self.run_filter()], ..Default::default() };
        let Ok(containers) = self.engine.list_containers(&filter).await else { return };
        for c in containers {
            let _ = self.engine.remove_container(&c.id, RemoveContainer { force: true, volumes: true }).await;
        }
    }
}

impl Drop for TestEngine {
    fn drop(&mut self) {
        smol::block_on(self.cleanup());
    }
}

/// Defines `NAME_docker` and `NAME_podman` tests running `body(TestEngine)`.
#[macro_export]
macro_rules! engine_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn docker() {
                let engine = common::TestEngine::new(common::Which::Docker, stringify!($name));
                smol::block_on(($body)(&engine));
            }

            #[test]
            fn podman() {
                let engine = common::TestEngine::new(common::Which::Podman, stringify!($name));
                smol::block_on(($body)(&engine));
            }
        }
    };
}
