//! Images: list, inspect, remove, pull (streamed progress) and build (streamed output).
//!
//! Pull and build answer with JSON progress messages ([`Progress`]). Both engines report a
//! failure that happens after the answer started as a message with an `error` field and a
//! 200 status; [`ProgressStream`] turns that into an error, and an error that says the
//! image or manifest does not exist into a 404, so it maps to `not_found` like any other.

use std::collections::BTreeMap;

use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;

use crate::client::{ApiRequest, EngineClient, Query, path_name};
use crate::containers::nullable;
use crate::error::{EngineError, Result};
use crate::framing::JsonStream;

/// Which images to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListImages {
    /// Intermediate images too.
    pub all: bool,
    /// Label filters: `key` or `key=value`.
    pub labels: Vec<String>,
    /// Reference filters (`cropscode-test/*`, `busybox:latest`).
    pub references: Vec<String>,
}

/// One row of `GET /images/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// Image id (`sha256:…`).
    pub id: String,
    /// Tags (`name:tag`). Podman prefixes local images with `localhost/`.
    #[serde(default, deserialize_with = "nullable")]
    pub repo_tags: Vec<String>,
    /// Digests (`name@sha256:…`) of pulled images.
    #[serde(default, deserialize_with = "nullable")]
    pub repo_digests: Vec<String>,
    /// Creation time, seconds since the epoch.
    #[serde(default)]
    pub created: i64,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
}

/// `GET /images/{name}/json`, the fields the worker uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// Image id (`sha256:…`).
    pub id: String,
    /// Tags.
    #[serde(default, deserialize_with = "nullable")]
    pub repo_tags: Vec<String>,
    /// Digests.
    #[serde(default, deserialize_with = "nullable")]
    pub repo_digests: Vec<String>,
    /// Creation time (RFC 3339).
    #[serde(default)]
    pub created: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: i64,
    /// CPU architecture (`amd64`).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// The image's default configuration.
    #[serde(default)]
    pub config: ImageConfig,
}

/// The `Config` of an inspected image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    /// Default command.
    #[serde(default, deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    /// Default environment.
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<String>,
    /// Labels.
    #[serde(default, deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// The user the image runs as (`USER`); empty: root.
    #[serde(default)]
    pub user: String,
}

/// One entry of the answer to an image removal.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum ImageDeleted {
    /// A tag was removed.
    Untagged(String),
    /// An image (layer) was deleted.
    Deleted(String),
}

/// A progress message of a pull or build.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Progress {
    /// Pull: `Pulling fs layer`, `Downloading`, `Pull complete`, `Status: …`.
    pub status: Option<String>,
    /// Pull: the layer the status is about.
    pub id: Option<String>,
    /// Pull: a progress bar as text.
    pub progress: Option<String>,
    /// Pull: bytes done and total.
    #[serde(rename = "progressDetail")]
    pub progress_detail: Option<ProgressDetail>,
    /// Build: a piece of the build's output.
    pub stream: Option<String>,
    /// An error in band.
    pub error: Option<String>,
    /// Details of an in-band error.
    #[serde(rename = "errorDetail")]
    pub error_detail: Option<ErrorDetail>,
    /// Build: extra data, `{"ID": "sha256:…"}` for the built image.
    pub aux: Option<serde_json::Value>,
}

/// Bytes done of a pull step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct ProgressDetail {
    /// Done.
    pub current: Option<u64>,
    /// Expected.
    pub total: Option<u64>,
}

/// The detail of an in-band error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    /// Message.
    pub message: Option<String>,
}

/// Progress of a pull or build, message by message.
#[derive(Debug)]
pub struct ProgressStream {
    messages: JsonStream<Progress>,
    image_id: Option<String>,
}

impl ProgressStream {
    /// The next message, or `None` when the operation has finished. An in-band error is
    /// returned as an error (404 when the image does not exist).
    pub async fn next(&mut self) -> Option<Result<Progress>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(e) => return Some(Err(e)),
        };
        if let Some(error) = &message.error {
            let detail = message.error_detail.as_ref().and_then(|d| d.message.clone());
            return Some(Err(in_band_error(detail.unwrap_or_else(|| error.clone()))));
        }
        if let Some(id) = message.aux.as_ref().and_then(|aux| aux.get("ID")).and_then(|id| id.as_str()) {
            self.image_id = Some(id.to_owned());
        }
        Some(Ok(message))
    }

    /// Reads the stream to its end, handing each message to `each`; returns the built
    /// image's id when the engine reported one.
    pub async fn finish(mut self, mut each: impl FnMut(&Progress)) -> Result<Option<String>> {
        while let Some(message) = self.next().await {
            each(&message?);
        }
        Ok(self.image_id)
    }

    /// The id of the built image, once a build has reported it.
    pub fn image_id(&self) -> Option<&str> {
        self.image_id.as_deref()
    }
}

fn in_band_error(message: String) -> EngineError {
    let lower = message.to_ascii_lowercase();
    let missing = ["manifest unknown", "not found", "no such image", "does not exist", "name unknown"];
    if missing.iter().any(|m| lower.contains(m)) {
        EngineError::Api { status: 404, message }
    } else {
        EngineError::Stream { message }
    }
}

/// What to build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Tags for the result (`name:tag`).
    pub tags: Vec<String>,
    /// Path of the Dockerfile inside the context (`Dockerfile` when empty).
    pub dockerfile: String,
    /// Labels set on the result.
    pub labels: BTreeMap<String, String>,
    /// `ARG` values.
    pub build_args: BTreeMap<String, String>,
    /// Do not use the build cache.
    pub no_cache: bool,
    /// Build stage to stop at.
    pub target: Option<String>,
    /// Network for `RUN` steps (`none`, `bridge`, `host`).
    pub network_mode: Option<String>,
    /// Always pull base images.
    pub pull: bool,
}

impl EngineClient {
    /// `GET /images/json`.
    pub async fn list_images(&self, options: &ListImages) -> Result<Vec<ImageSummary>> {
        let mut query = Query::new();
        if options.all {
            query = query.push("all", "1");
        }
        let mut filters = BTreeMap::new();
        if !options.labels.is_empty() {
            filters.insert("label", &options.labels);
        }
        if !options.references.is_empty() {
            filters.insert("reference", &options.references);
        }
        if !filters.is_empty() {
            query = query.push_json("filters", &filters)?;
        }
        self.call_json(ApiRequest::get(format!("/images/json{}", query.finish()))).await
    }

    /// `GET /images/{name}/json`; a missing image is a 404.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        self.call_json(ApiRequest::get(format!("/images/{}/json", path_name(name)?))).await
    }

    /// `DELETE /images/{name}`. `force` removes it even when containers use it (Docker)
    /// or untags it from all its names.
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<ImageDeleted>> {
        let query = if force { Query::new().push("force", "1") } else { Query::new() };
        let request = ApiRequest::new(Method::DELETE, format!("/images/{}{}", path_name(name)?, query.finish()));
        self.call_json(request).await
    }

    /// `POST /images/create?fromImage=…`: pulls an image (`latest` when the reference has
    /// no tag or digest). Read the returned stream to the end for the pull to complete.
    pub async fn pull_image(&self, reference: &str) -> Result<ProgressStream> {
        let (name, tag) = split_reference(path_name(reference)?);
        let mut query = Query::new().push("fromImage", name);
        if let Some(tag) = tag {
            query = query.push("tag", tag);
        }
        let body = self.stream(ApiRequest::post(format!("/images/create{}", query.finish()))).await?;
        Ok(ProgressStream { messages: JsonStream::new(body), image_id: None })
    }

    /// `POST /build` with a tar of the context (see [`crate::TarBuilder`]): builds an
    /// image with the classic builder, output streamed. Read the stream to the end.
    pub async fn build_image(&self, options: &BuildOptions, context: Bytes) -> Result<ProgressStream> {
        let mut query = Query::new();
        for tag in &options.tags {
            query = query.push("t", path_name(tag)?);
        }
        if !options.dockerfile.is_empty() {
            query = query.push("dockerfile", &options.dockerfile);
        }
        if !options.labels.is_empty() {
            query = query.push_json("labels", &options.labels)?;
        }
        if !options.build_args.is_empty() {
            query = query.push_json("buildargs", &options.build_args)?;
        }
        if options.no_cache {
            query = query.push("nocache", "1");
        }
        if let Some(target) = &options.target {
            query = query.push("target", target);
        }
        if let Some(mode) = &options.network_mode {
            query = query.push("networkmode", mode);
        }
        if options.pull {
            query = query.push("pull", "1");
        }
        query = query.push("rm", "1").push("forcerm", "1");
        let request = ApiRequest::post(format!("/build{}", query.finish())).tar(context);
        let body = self.stream(request).await?;
        Ok(ProgressStream { messages: JsonStream::new(body), image_id: None })
    }

    /// Whether the image is present locally.
    pub async fn image_exists(&self, name: &str) -> Result<bool> {
        match self.inspect_image(name).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Splits `name[:tag]` or `name@digest`; a reference with neither gets `latest`, because
/// an empty tag asks the engine for every tag of the repository.
fn split_reference(reference: &str) -> (&str, Option<&str>) {
    if reference.contains('@') {
        return (reference, None);
    }
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&reference[..at], Some(&reference[at + 1..]))
        }
        None => (reference, Some("latest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_always_name_a_tag_or_digest() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(split_reference("busybox:1.36"), ("busybox", Some("1.36")));
        assert_eq!(split_reference("127.0.0.1:5000/a/b"), ("127.0.0.1:5000/a/b", Some("latest")));
        assert_eq!(split_reference("127.0.0.1:5000/a/b:v1"), ("127.0.0.1:5000/a/b", Some("v1")));
        assert_eq!(split_reference("a/b@sha256:00"), ("a/b@sha256:00", None));
    }

    #[test]
    fn in_band_errors_for_missing_images_are_404() {
        assert!(in_band_error("manifest for x:nope not found: manifest unknown".into()).is_not_found());
        assert!(!in_band_error("disk full".into()).is_not_found());
    }

    #[test]
    fn removal_answers_parse() {
        let answer: Vec<ImageDeleted> =
            serde_json::from_str(r#"[{"Untagged":"a:latest"},{"Deleted":"sha256:00"}]"#).unwrap();
        assert_eq!(answer, vec![ImageDeleted::Untagged("a:latest".into()), ImageDeleted::Deleted("sha256:00".into())]);
    }
}
