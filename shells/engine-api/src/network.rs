//! Where a container can be reached on the network: its own addresses on its networks
//! and the host ports a container port is published on (`GET /containers/{id}/json`,
//! only the network settings read).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use crate::client::{ApiRequest, EngineClient, path_name};
use crate::containers::nullable;
use crate::error::Result;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkInspect {
    #[serde(default)]
    network_settings: NetworkSettings,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NetworkSettings {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
    #[serde(default, deserialize_with = "nullable")]
    networks: BTreeMap<String, Network>,
    #[serde(default, deserialize_with = "nullable")]
    ports: BTreeMap<String, Option<Vec<HostBinding>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Network {
    #[serde(rename = "IPAddress", default)]
    ip_address: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostBinding {
    #[serde(default)]
    host_ip: String,
    #[serde(default)]
    host_port: String,
}

/// Where a container's TCP port can be reached from the worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRoutes {
    /// The container's own addresses on its networks (reachable on Linux with a rootful engine).
    pub direct: Vec<SocketAddr>,
    /// Host ports the port is published on (reachable wherever the engine runs in a VM).
    pub published: Vec<SocketAddr>,
}

impl EngineClient {
    /// The addresses at which TCP `port` of container `id` can be reached.
    pub async fn port_routes(&self, id: &str, port: u16) -> Result<PortRoutes> {
        let inspect: NetworkInspect =
            self.call_json(ApiRequest::get(format!("/containers/{}/json", path_name(id)?))).await?;
        let settings = inspect.network_settings;
        let mut direct = Vec::new();
        let ips = settings.networks.values().map(|n| n.ip_address.as_str()).chain([settings.ip_address.as_str()]);
        for ip in ips {
            if let Ok(ip) = ip.parse::<IpAddr>() {
                let address = SocketAddr::new(ip, port);
                if !direct.contains(&address) {
                    direct.push(address);
                }
            }
        }
        let mut published = Vec::new();
        let bindings = settings.ports.get(&format!("{port}/tcp")).and_then(Option::as_ref);
        for binding in bindings.into_iter().flatten() {
            let Ok(host_port) = binding.host_port.parse::<u16>() else { continue };
            let ip = match binding.host_ip.parse::<IpAddr>() {
                Ok(ip) if !ip.is_unspecified() => ip,
                _ => IpAddr::from([127, 0, 0, 1]),
            };
            let address = SocketAddr::new(ip, host_port);
            if !published.contains(&address) {
                published.push(address);
            }
        }
        Ok(PortRoutes { direct, published })
    }
}
