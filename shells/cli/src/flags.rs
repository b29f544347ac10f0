//! The configuration flags shared by `cropscode worker` and `cropscode status`.
//!
//! argh has no flattening, so [`config_flags!`] stamps the same option fields
//! into each subcommand's struct, plus a `config_flags()` that hands them to
//! the layering as [`Flags`](crate::config::Flags). Every flag is a string
//! here: parsing happens in `config`, so a bad flag reads like a bad
//! environment variable ("HEARTBEAT_INTERVAL (flag --heartbeat-interval): …").
//! There is deliberately no token flag: argv is readable by every user.

/// Declares an argh subcommand struct with the configuration flags and the
/// given extra fields.
macro_rules! config_flags {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($fields:tt)*
        }
    ) => {
        #[derive(argh::FromArgs, Debug)]
        $(#[$meta])*
        pub struct $name {
            /// orchestrator WebSocket URL, wss://host/path (ORCHESTRATOR_WS_URL)
            #[argh(option)]
            pub url: Option<String>,
            /// worker name shown by the orchestrator; default: the hostname (WORKER_NAME)
            #[argh(option)]
            pub name: Option<String>,
            /// byom or fleet (AGENT_MODE)
            #[argh(option)]
            pub mode: Option<String>,
            /// fleet configuration file; default: /etc/cropscode/agent.yaml (Windows:
            /// %ProgramData%\cropscode\agent.yaml) (AGENT_CONFIG)
            #[argh(option)]
            pub config: Option<String>,
            /// directory for the agent's data (DATA_DIR)
            #[argh(option)]
            pub data_dir: Option<String>,
            /// path of the podman binary (PODMAN_PATH)
            #[argh(option)]
            pub podman_path: Option<String>,
            /// auto, docker or podman: the engine serving commands when both answer (CONTAINER_ENGINE)
            #[argh(option)]
            pub container_engine: Option<String>,
            /// baseline, restricted or none (SECURITY_FLOOR)
            #[argh(option)]
            pub security_floor: Option<String>,
            /// extra CA certificate (PEM) trusted for the orchestrator (ORCHESTRATOR_CA_FILE)
            #[argh(option)]
            pub ca_file: Option<String>,
            /// text or json (LOG_FORMAT)
            #[argh(option)]
            pub log_format: Option<String>,
            /// log filter, e.g. info or warn,cropscode_core=debug (LOG_LEVEL)
            #[argh(option)]
            pub log_level: Option<String>,
            /// time between heartbeats, e.g. 10s (HEARTBEAT_INTERVAL)
            #[argh(option)]
            pub heartbeat_interval: Option<String>,
            /// silence after which the connection is replaced, e.g. 45s (LIVENESS_TIMEOUT)
            #[argh(option)]
            pub liveness_timeout: Option<String>,
            /// wait for the orchestrator's acknowledgement, e.g. 15s (REGISTER_TIMEOUT)
            #[argh(option)]
            pub register_timeout: Option<String>,
            /// longest reconnect delay, e.g. 30s (BACKOFF_MAX)
            #[argh(option)]
            pub backoff_max: Option<String>,
            /// randomised fraction of each reconnect delay, 0 to 1 (BACKOFF_JITTER)
            #[argh(option)]
            pub backoff_jitter: Option<String>,
            /// host directories, comma-separated, under which bind mounts are allowed (ALLOWED_BIND_ROOTS)
            #[argh(option)]
            pub allowed_bind_roots: Option<String>,
            /// host ports containers may publish, e.g. 1024-65535 (HOST_PORT_RANGE)
            #[argh(option)]
            pub host_port_range: Option<String>,
            /// how long a detached terminal stays alive, e.g. 10m (TERMINAL_IDLE_TIMEOUT)
            #[argh(option)]
            pub terminal_idle_timeout: Option<String>,
            /// endpoint the containers depend on, probed for the heartbeat: http://…, https://… or
            /// tcp://host:port (GATEWAY_URL)
            #[argh(option)]
            pub gateway_url: Option<String>,
            /// pause between two gateway probes, e.g. 30s (GATEWAY_PROBE_INTERVAL)
            #[argh(option)]
            pub gateway_probe_interval: Option<String>,
            /// longest time one gateway probe may take, e.g. 5s (GATEWAY_TIMEOUT)
            #[argh(option)]
            pub gateway_timeout: Option<String>,
            /// serve /healthz, /readyz and /metrics here, e.g. 127.0.0.1:9464 (HEALTH_ADDR)
            #[argh(option)]
            pub health_addr: Option<String>,
            /// set to 1 to let --health-addr be a non-loopback address (HEALTH_ALLOW_REMOTE)
            #[argh(option)]
            pub health_allow_remote: Option<String>,
            $($fields)*
        }

        impl $name {
            /// The configuration flags that were given.
            pub fn config_flags(&self) -> $crate::config::Flags {
                use $crate::config::Key;
                let mut flags = $crate::config::Flags::default();
                flags
                    .set(Key::OrchestratorWsUrl, self.url.as_ref())
                    .set(Key::WorkerName, self.name.as_ref())
                    .set(Key::AgentMode, self.mode.as_ref())
                    .set(Key::AgentConfig, self.config.as_ref())
                    .set(Key::DataDir, self.data_dir.as_ref())
                    .set(Key::PodmanPath, self.podman_path.as_ref())
                    .set(Key::ContainerEngine, self.container_engine.as_ref())
                    .set(Key::SecurityFloor, self.security_floor.as_ref())
                    .set(Key::OrchestratorCaFile, self.ca_file.as_ref())
                    .set(Key::LogFormat, self.log_format.as_ref())
                    .set(Key::LogLevel, self.log_level.as_ref())
                    .set(Key::HeartbeatInterval, self.heartbeat_interval.as_ref())
                    .set(Key::LivenessTimeout, self.liveness_timeout.as_ref())
                    .set(Key::RegisterTimeout, self.register_timeout.as_ref())
                    .set(Key::BackoffMax, self.backoff_max.as_ref())
                    .set(Key::BackoffJitter, self.backoff_jitter.as_ref())
                    .set(Key::AllowedBindRoots, self.allowed_bind_roots.as_ref())
                    .set(Key::HostPortRange, self.host_port_range.as_ref())
                    .set(Key::TerminalIdleTimeout, self.terminal_idle_timeout.as_ref())
                    .set(Key::GatewayUrl, self.gateway_url.as_ref())
                    .set(Key::GatewayProbeInterval, self.gateway_probe_interval.as_ref())
                    .set(Key::GatewayTimeout, self.gateway_timeout.as_ref())
                    .set(Key::HealthAddr, self.health_addr.as_ref())
                    .set(Key::HealthAllowRemote, self.health_allow_remote.as_ref());
                flags
            }
        }
    };
}

pub(crate) use config_flags;
