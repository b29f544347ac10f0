//! A [`WorkerEngine`] on one test engine, driven command by command as the session would:
//! typed `Command`s decoded from JSON params, the execution stream collected.
//!
//! Each test gets its own worker id (`w-<run>`) and tenants (`acme-<n>`, `globex-<n>`), so
//! tests running at the same time never see each other's containers. Dropping the
//! [`WorkerTest`] removes every container carrying the worker id or the run label, and
//! the images and volumes the test registered.

use std::time::{Duration, Instant};

use cropscode_core::Step;
use cropscode_core::protocol::{Command, ErrorCode, WireError};
use cropscode_core::traits::Engine;
use cropscode_engine::WorkerEngine;
use cropscode_engine_api::{Endpoint, ListContainers, RemoveContainer};
use futures_lite::StreamExt;
use serde_json::Value;

use super::{TestEngine, Which, socket};

/// What one command did: its progress reports and its outcome.
#[derive(Debug)]
pub struct Ran {
    pub progress: Vec<Value>,
    pub outcome: Result<Value, WireError>,
}

impl Ran {
    pub fn ok(self) -> Value {
        match self.outcome {
            Ok(value) => value,
            Err(error) => panic!("expected success, got {error:?}"),
        }
    }

    pub fn err(self) -> WireError {
        match self.outcome {
            Ok(value) => panic!("expected an error, got {value}"),
            Err(error) => error,
        }
    }
}

pub struct WorkerTest {
    /// The raw client and run label (and cleanup of directly made containers).
    pub t: TestEngine,
    pub worker: WorkerEngine,
    pub worker_id: String,
    /// Two tenants unique to this test.
    pub acme: String,
    pub globex: String,
    images: std::sync::Mutex<Vec<String>>,
    volumes: std::sync::Mutex<Vec<String>>,
}

impl WorkerTest {
    pub async fn new(which: Which, test: &str) -> WorkerTest {
        WorkerTest::with_endpoint(which, test, Endpoint::Unix(socket(which).into())).await
    }

    /// A worker that reaches the test engine at `endpoint` (e.g. through a proxy).
    pub async fn with_endpoint(which: Which, test: &str, endpoint: Endpoint) -> WorkerTest {
        let t = TestEngine::new(which, test);
        let short = t.run.rsplit('-').take(2).collect::<Vec<_>>().join("-");
        let worker_id = format!("w-{}", t.run);
        let worker = WorkerEngine::with_endpoint(endpoint, &worker_id).await;
        WorkerTest {
            acme: format!("acme-{short}"),
            globex: format!("globex-{short}"),
            t,
            worker,
            worker_id,
            images: Default::default(),
            volumes: Default::default(),
        }
    }

    /// Runs the command `name` with `params` to its end.
    pub async fn run(&self, name: &str, params: Value) -> Ran {
        let command = Command::decode(name, params).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let steps: Vec<Step> = self.worker.execute(command).collect().await;
        let mut progress = Vec::new();
        let mut outcome = None;
        for step in steps {
            match step {
                Step::Progress(value) => {
                    assert!(outcome.is_none(), "progress after Done");
                    progress.push(value);
                }
                Step::Done(done) => {
                    assert!(outcome.is_none(), "two Done steps");
                    outcome = Some(done);
                }
            }
        }
        Ran { progress, outcome: outcome.expect("the execution ended without Done") }
    }

    pub async fn ok(&self, name: &str, params: Value) -> Value {
        self.run(name, params.clone()).await.outcome.unwrap_or_else(|e| panic!("{name} {params}: {e:?}"))
    }

    pub async fn err(&self, name: &str, params: Value) -> WireError {
        match self.run(name, params.clone()).await.outcome {
            Ok(value) => panic!("{name} {params}: expected an error, got {value}"),
            Err(error) => error,
        }
    }

    /// Asserts an error code.
    pub async fn fails(&self, name: &str, params: Value, code: ErrorCode) -> WireError {
        let error = self.err(name, params.clone()).await;
        assert_eq!(error.code, code, "{name} {params}: {error:?}");
        error
    }

    /// Creates and starts a sleeping busybox container of `tenant` named `name` through the
    /// worker; returns its id.
    pub async fn running(&self, tenant: &str, name: &str) -> String {
        self.running_from(tenant, name, super::BUSYBOX).await
    }

    pub async fn running_from(&self, tenant: &str, name: &str, image: &str) -> String {
        let created = self
            .ok(
                "container.create",
                serde_json::json!({"image": image, "tenant": tenant, "name": name, "command": ["sleep", "300"]}),
            )
            .await;
        let id = created["containerId"].as_str().expect("containerId").to_owned();
        self.ok("container.start", serde_json::json!({"containerId": id})).await;
        id
    }

    /// Registers an image for removal at the end.
    pub fn image(&self, tag: &str) {
        self.images.lock().unwrap().push(tag.to_owned());
    }

    /// Registers a volume for removal at the end.
    pub fn volume(&self, name: &str) {
        self.volumes.lock().unwrap().push(name.to_owned());
    }

    /// Waits until the running count is `expected` (it follows engine events).
    pub async fn wait_running(&self, expected: u32) {
        let count = || self.worker.containers_running().expect("the worker engine counts running containers");
        let deadline = Instant::now() + Duration::from_secs(10);
        while count() != expected {
            assert!(Instant::now() < deadline, "containersRunning stayed {} (expected {expected})", count());
            smol::Timer::after(Duration::from_millis(20)).await;
        }
    }

    async fn cleanup(&self) {
        let e = &self.t.engine;
        let mine = ListContainers {
            all: true,
            labels: vec![format!("cropscode.worker={}", self.worker_id)],
            ..Default::default()
        };
        if let Ok(containers) = e.list_containers(&mine).await {
            for c in containers {
                let _ = e.remove_container(&c.id, RemoveContainer { force: true, volumes: true }).await;
            }
        }
        let images = std::mem::take(&mut *self.images.lock().unwrap());
        for image in images {
            let _ = e.remove_image(&image, true).await;
        }
        let volumes = std::mem::take(&mut *self.volumes.lock().unwrap());
        for volume in volumes {
            let _ = e.remove_volume(&volume, true).await;
        }
    }
}

impl Drop for WorkerTest {
    fn drop(&mut self) {
        smol::block_on(self.cleanup());
    }
}

/// Defines `NAME::docker` and `NAME::podman` tests running `body(&WorkerTest)`.
#[macro_export]
macro_rules! worker_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn docker() {
                smol::block_on(async {
                    let w = common::worker::WorkerTest::new(common::Which::Docker, stringify!($name)).await;
                    ($body)(&w).await;
                });
            }

            #[test]
            fn podman() {
                smol::block_on(async {
                    let w = common::worker::WorkerTest::new(common::Which::Podman, stringify!($name)).await;
                    ($body)(&w).await;
                });
            }
        }
    };
}
