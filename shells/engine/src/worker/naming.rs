//! Names and labels of the containers the worker creates.
//!
//! Tenants share one engine, so the name the orchestrator gives a container (`dev-alice`)
//! is not the name the engine sees: that is `cs-<tenant>.<name>` (`cs-acme.dev-alice`),
//! so two tenants can both have a `dev-alice`. The tenant part is escaped so that it never
//! contains a `.`: the first `.` after `cs-` always ends it, and no pair of (tenant, name)
//! can produce another pair's engine name. The orchestrator's name is kept in the
//! `cropscode.name` label and is what results and lists report.

use std::collections::BTreeMap;

use cropscode_core::protocol::commands::{LABEL_MANAGED, LABEL_TENANT, LABEL_WORKER};

/// Label holding the name the orchestrator gave the container (empty when it gave none).
pub const LABEL_NAME: &str = "cropscode.name";
/// Label naming the worker that built an image. Images do not carry `cropscode.worker`
/// (containers inherit their image's labels, so an image with it would make every
/// container created from it, by anyone, look like this worker's); builds set it empty.
pub const LABEL_BUILT_BY: &str = "cropscode.built-by";

/// The engine's name for the container `name` of `tenant`: `cs-<escaped tenant>.<name>`,
/// the tenant-scoped form the security policy uses for volumes too
/// ([`cropscode_core::policy::tenant_scoped_name`]).
///
/// Tenants are `[a-zA-Z0-9][a-zA-Z0-9_.:@-]*`, container names `[a-zA-Z0-9][a-zA-Z0-9_.-]*`
/// (the engines' own rule).
pub fn engine_name(tenant: &str, name: &str) -> String {
    cropscode_core::policy::tenant_scoped_name(tenant, name)
}

/// The labels a container of this worker carries: the request's own, then the worker's
/// (which win: keys under `cropscode.` are refused in requests anyway).
pub(crate) fn container_labels(
    requested: &BTreeMap<String, String>,
    worker_id: &str,
    tenant: &str,
    name: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = requested.clone();
    labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
    labels.insert(LABEL_WORKER.to_owned(), worker_id.to_owned());
    labels.insert(LABEL_TENANT.to_owned(), tenant.to_owned());
    // Always set, so a label inherited from the image cannot name the container.
    labels.insert(LABEL_NAME.to_owned(), name.unwrap_or_default().to_owned());
    labels
}

/// The labels of an image the worker builds.
pub(crate) fn image_labels(
    requested: &BTreeMap<String, String>,
    worker_id: &str,
    tenant: Option<&str>,
) -> BTreeMap<String, String> {
    let mut labels = requested.clone();
    labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
    labels.insert(LABEL_BUILT_BY.to_owned(), worker_id.to_owned());
    // Overrides a `LABEL cropscode.worker=…` in the Dockerfile: see `LABEL_BUILT_BY`.
    labels.insert(LABEL_WORKER.to_owned(), String::new());
    if let Some(tenant) = tenant {
        labels.insert(LABEL_TENANT.to_owned(), tenant.to_owned());
    }
    labels
}

/// Whether labels mark a container as this worker's (and the tenant's, when one is named).
pub(crate) fn is_owned(labels: &BTreeMap<String, String>, worker_id: &str, tenant: Option<&str>) -> bool {
    let is = |key: &str, value: &str| labels.get(key).is_some_and(|v| v == value);
    is(LABEL_MANAGED, "true") && is(LABEL_WORKER, worker_id) && tenant.is_none_or(|t| is(LABEL_TENANT, t))
}

/// Label filters selecting this worker's containers (of one tenant, when given).
pub(crate) fn owned_filters(worker_id: &str, tenant: Option<&str>) -> Vec<String> {
    let mut filters = vec![format!("{LABEL_MANAGED}=true"), format!("{LABEL_WORKER}={worker_id}")];
    if let Some(tenant) = tenant {
        filters.push(format!("{LABEL_TENANT}={tenant}"));
    }
    filters
}

/// The name results report: the orchestrator's (`cropscode.name`), else the engine's.
pub(crate) fn reported_name(labels: &BTreeMap<String, String>, engine_name: &str) -> String {
    match labels.get(LABEL_NAME) {
        Some(name) if !name.is_empty() => name.clone(),
        _ => engine_name.trim_start_matches('/').to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_names_are_namespaced_and_unambiguous() {
        assert_eq!(engine_name("acme", "dev-alice"), "cs-acme.dev-alice");
        assert_eq!(engine_name("a.b", "c"), "cs-a_db.c");
        assert_eq!(engine_name("team@acme.io:x_y", "n"), "cs-team_aacme_dio_cx_uy.n");
        // The pairs that naive joining would confuse stay apart.
        let pairs = [("a-b", "c"), ("a", "b-c"), ("a.b", "c"), ("a", "b.c"), ("a_d", "c"), ("a.", "c"), ("a_db", "c")];
        let names: std::collections::BTreeSet<_> = pairs.iter().map(|(t, n)| engine_name(t, n)).collect();
        assert_eq!(names.len(), pairs.len(), "{names:?}");
        for (tenant, name) in pairs {
            let engine = engine_name(tenant, name);
            assert!(engine.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)), "{engine}");
            let (escaped, rest) = engine["cs-".len()..].split_once('.').unwrap();
            assert_eq!(rest, name);
            assert!(!escaped.contains('.'));
        }
    }

    #[test]
    fn ownership_needs_managed_worker_and_tenant() {
        let labels = container_labels(&BTreeMap::new(), "w-1", "acme", Some("dev"));
        assert!(is_owned(&labels, "w-1", None));
        assert!(is_owned(&labels, "w-1", Some("acme")));
        assert!(!is_owned(&labels, "w-1", Some("other")));
        assert!(!is_owned(&labels, "w-2", None));
        let mut unmanaged = labels.clone();
        unmanaged.insert(LABEL_MANAGED.into(), "false".into());
        assert!(!is_owned(&unmanaged, "w-1", None));
        assert!(!is_owned(&BTreeMap::new(), "w-1", None));
        assert_eq!(reported_name(&labels, "/cs-acme.dev"), "dev");
    }

    #[test]
    fn images_never_carry_the_worker_label() {
        let mut requested = BTreeMap::new();
        requested.insert("com.acme".to_owned(), "1".to_owned());
        let labels = image_labels(&requested, "w-1", Some("acme"));
        assert!(!is_owned(&labels, "w-1", None));
        assert_eq!(labels.get(LABEL_BUILT_BY).map(String::as_str), Some("w-1"));
        assert_eq!(labels.get("com.acme").map(String::as_str), Some("1"));
    }
}
