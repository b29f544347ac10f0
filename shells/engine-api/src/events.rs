//! The engine's event stream (`GET /events`): what happens to containers, as it happens.
//!
//! The worker follows it to keep its count of running containers exact without polling.
//! Both engines accept the `type` and `label` filters; event names differ (Docker `destroy`,
//! Podman `remove`; Podman adds `died`, `cleanup`, `init`), so callers match on
//! [`EngineEvent::action`] themselves instead of filtering by event name.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::client::{ApiRequest, EngineClient, Query};
use crate::containers::nullable;
use crate::error::Result;
use crate::framing::JsonStream;

/// Which events to follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Object types (`container`, `image`, `volume`); empty: all.
    pub types: Vec<String>,
    /// Label filters (`key` or `key=value`), all of which must match.
    pub labels: Vec<String>,
}

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EngineEvent {
    /// `container`, `image`, …
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// `create`, `start`, `die`, `destroy`, `exec_start: sh`, …
    #[serde(rename = "Action", default)]
    pub action: String,
    /// The object it happened to.
    #[serde(rename = "Actor", default)]
    pub actor: EventActor,
}

/// The object of an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EventActor {
    /// Its id.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Its labels and event details (`name`, `image`, `exitCode`).
    #[serde(rename = "Attributes", default, deserialize_with = "nullable")]
    pub attributes: BTreeMap<String, String>,
}

impl EngineClient {
    /// `GET /events` with filters: events from now on, one JSON value each, until the
    /// engine closes the stream (it stops or restarts). The stream holds a connection of
    /// its own for as long as it is read.
    pub async fn events(&self, filter: &EventFilter) -> Result<JsonStream<EngineEvent>> {
        let mut filters = BTreeMap::new();
        if !filter.types.is_empty() {
            filters.insert("type", &filter.types);
        }
        if !filter.labels.is_empty() {
            filters.insert("label", &filter.labels);
        }
        let query = if filters.is_empty() { Query::new() } else { Query::new().push_json("filters", &filters)? };
        let body = self.stream(ApiRequest::get(format!("/events{}", query.finish()))).await?;
        Ok(JsonStream::new(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_podman_events_parse() {
        let docker = r#"{"status":"die","id":"a07c","from":"busybox","Type":"container","Action":"die","Actor":{"ID":"a07c","Attributes":{"cropscode.managed":"true","exitCode":"137"}},"scope":"local","time":1,"timeNano":1}"#;
        let event: EngineEvent = serde_json::from_str(docker).unwrap();
        assert_eq!((event.kind.as_str(), event.action.as_str(), event.actor.id.as_str()), ("container", "die", "a07c"));
        assert_eq!(event.actor.attributes.get("exitCode").map(String::as_str), Some("137"));
        let podman = r#"{"status":"remove","id":"eabf","Type":"container","Action":"remove","Actor":{"ID":"eabf","Attributes":null}}"#;
        let event: EngineEvent = serde_json::from_str(podman).unwrap();
        assert_eq!(event.action, "remove");
        assert!(event.actor.attributes.is_empty());
    }
}
