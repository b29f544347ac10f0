//! `images.list`, `image.check`, `image.delete`, `image.build`.
//!
//! A build sends the Dockerfile and the inline context files as one tar (built in memory;
//! the request's paths cannot leave the context) to the engine's classic builder, and
//! streams its output back as `progress` (`phase: build`; base image pulls during the
//! build as `phase: pull`). The image is tagged with `tag` and labelled
//! `cropscode.managed=true`, `cropscode.built-by=<worker id>` and `cropscode.tenant` (see
//! [`super::naming::image_labels`] for why images never carry `cropscode.worker`).

use cropscode_core::protocol::ErrorCode;
use cropscode_core::protocol::commands::{
    ImageBuild, ImageBuildResult, ImageCheck, ImageCheckResult, ImageDelete, ImageDeleteResult, ImageProgress,
    ImageSummary, ImagesList, ImagesListResult, LABEL_MANAGED, ProgressPhase,
};

use cropscode_engine_api::{BuildOptions, EngineError, ImageDeleted, ListImages, TarBuilder};

use super::WorkerEngine;
use super::naming::{LABEL_BUILT_BY, image_labels};
use crate::execution::ProgressSink;
use crate::outcome::{Failure, Outcome};

/// Where the request's Dockerfile goes in the context.
const DOCKERFILE: &str = "Dockerfile";

impl WorkerEngine {
    pub(crate) async fn images_list(&self, request: ImagesList) -> Outcome<ImagesListResult> {
        let client = self.shared.client().await?;
        let me = self.shared.worker_id();
        let filter = ListImages { references: request.filter.into_iter().collect(), ..ListImages::default() };
        let images = client
            .list_images(&filter)
            .await?
            .into_iter()
            .map(|image| {
                let label = |key: &str| image.labels.get(key).map(String::as_str);
                let built =
                    label(LABEL_MANAGED) == Some("true") && me.is_some() && label(LABEL_BUILT_BY) == me.as_deref();
                let managed = built || self.pulled.contains(&image.id);
                ImageSummary {
                    image_id: image.id,
                    tags: image.repo_tags.into_iter().filter(|t| t != "<none>:<none>").collect(),
                    digests: image.repo_digests.into_iter().filter(|d| d != "<none>@<none>").collect(),
                    size_bytes: u64::try_from(image.size).unwrap_or(0),
                    created_at: image.created,
                    managed,
                }
            })
            .collect();
        Ok(ImagesListResult { images })
    }

    pub(crate) async fn image_check(&self, request: ImageCheck) -> Outcome<ImageCheckResult> {
        let client = self.shared.client().await?;
        match client.inspect_image(&request.image).await {
            Ok(image) => Ok(ImageCheckResult {
                image: request.image,
                exists: true,
                image_id: Some(image.id),
                size_bytes: u64::try_from(image.size).ok(),
            }),
            Err(e) if e.is_not_found() => {
                Ok(ImageCheckResult { image: request.image, exists: false, image_id: None, size_bytes: None })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Only images this worker built or pulled: never the machine owner's own images.
    pub(crate) async fn image_delete(&self, request: ImageDelete) -> Outcome<ImageDeleteResult> {
        let client = self.shared.client().await?;
        let image = client.inspect_image(&request.image).await?;
        let me = self.shared.worker_id();
        let built = image.config.labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
            && me.is_some()
            && image.config.labels.get(LABEL_BUILT_BY) == me.as_ref();
        if !built && !self.pulled.contains(&image.id) {
            return Err(Failure::wire(
                ErrorCode::Forbidden,
                format!(
                    "image `{}` was not built or pulled by this worker; it deletes only its own images",
                    request.image
                ),
            ));
        }
        let answer = client.remove_image(&request.image, request.force).await?;
        let (mut deleted, mut untagged) = (Vec::new(), Vec::new());
        for entry in answer {
            match entry {
                ImageDeleted::Deleted(id) => deleted.push(digest_id(id)),
                ImageDeleted::Untagged(tag) => untagged.push(tag),
                // Nothing else the engine reports belongs in the result.
                _ => {}
            }
        }
        self.pulled.remove(&deleted);
        tracing::info!(image = %request.image, "deleted image");
        Ok(ImageDeleteResult { image: request.image, deleted, untagged })
    }

    pub(crate) async fn image_build(&self, request: ImageBuild, progress: &ProgressSink) -> Outcome<ImageBuildResult> {
        let client = self.shared.client().await?;
        let Some(me) = self.shared.worker_id() else {
            return Err(Failure::wire(ErrorCode::EngineUnavailable, "the worker has no id yet (not registered)"));
        };
        if request.context.iter().any(|file| file.path.trim_start_matches("./") == DOCKERFILE) {
            return Err(Failure::wire(
                ErrorCode::InvalidRequest,
                "`context` must not contain `Dockerfile`: the Dockerfile is the `dockerfile` field",
            ));
        }
        let mut context = TarBuilder::new();
        context.file(DOCKERFILE, request.dockerfile.as_bytes(), 0o644)?;
        for file in &request.context {
            let bytes = file
                .bytes()
                .map_err(|why| Failure::wire(ErrorCode::InvalidRequest, format!("`{}`: {why}", file.path)))?;
            context.file(&file.path, &bytes, file.mode())?;
        }
        let options = BuildOptions {
            tags: vec![request.tag.clone()],
            dockerfile: DOCKERFILE.into(),
            labels: image_labels(&request.labels, &me, request.tenant.as_deref()),
            build_args: request.build_args.0.clone(),
            no_cache: request.no_cache,
            target: request.target.clone(),
            network_mode: request.network_mode.clone(),
            pull: request.pull,
        };
        let mut stream = client.build_image(&options, context.finish().into()).await?;
        while let Some(message) = stream.next().await {
            let message = message.map_err(build_failure)?;
            let report = if let Some(output) = message.stream {
                ImageProgress {
                    phase: ProgressPhase::Build,
                    message: output,
                    layer: None,
                    current_bytes: None,
                    total_bytes: None,
                }
            } else if let Some(status) = message.status {
                let detail = message.progress_detail.unwrap_or_default();
                ImageProgress {
                    phase: ProgressPhase::Pull,
                    message: status,
                    layer: message.id,
                    current_bytes: detail.current,
                    total_bytes: detail.total,
                }
            } else {
                continue;
            };
            progress.report(&report);
        }
        // The tag is the reliable way to the id on both engines (Podman reports no `aux`).
        let image = client.inspect_image(&request.tag).await?;
        tracing::info!(tag = %request.tag, image = %image.id, "built image");
        Ok(ImageBuildResult { tag: request.tag, image_id: image.id })
    }
}

/// An image id as Docker writes it (`sha256:<hex>`); Podman leaves out the algorithm.
fn digest_id(id: String) -> String {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) { format!("sha256:{id}") } else { id }
}

/// A build that fails in a step (a `RUN` exiting non-zero, a bad instruction) is a request
/// the engine cannot build: `invalid_request` with the engine's message. A missing base
/// image stays `not_found`; a broken connection stays `engine_unavailable`.
fn build_failure(error: EngineError) -> Failure {
    match error {
        EngineError::Stream { message } => Failure::wire(ErrorCode::InvalidRequest, format!("build failed: {message}")),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_ids_name_their_algorithm() {
        let hex = "4d9c0a4b833206e6efe4c18e01406e1ba4e9f77d8c6edee154030b037869a35f";
        assert_eq!(digest_id(hex.into()), format!("sha256:{hex}"));
        assert_eq!(digest_id(format!("sha256:{hex}")), format!("sha256:{hex}"));
        assert_eq!(digest_id("abc".into()), "abc");
    }
}
