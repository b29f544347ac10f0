//! `images.list`, `image.check`, `image.delete`, `image.build`, and the
//! `progress` payload of image pulls and builds.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::CommandParams;
use super::bounds::*;
use super::container::validate_file;
use super::content::{EnvVars, InlineFile};
use super::validate::{self as check, Check, Index, Key};

/// `images.list`: the images present on the worker's engine.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesList {
    /// Only images whose reference matches this pattern (the engines'
    /// `reference` filter, e.g. `busybox`, `ghcr.io/acme/*:latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl CommandParams for ImagesList {
    const NAME: &'static str = "images.list";
    type Output = ImagesListResult;

    fn validate(&self) -> Check {
        if let Some(filter) = &self.filter {
            check::token(&"filter", filter, MAX_FILTER_BYTES)?;
        }
        Ok(())
    }
}

/// One image in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSummary {
    /// Image id (`sha256:…`).
    pub image_id: String,
    /// Tags, e.g. `busybox:latest`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Repository digests, e.g. `busybox@sha256:…`.
    #[serde(default)]
    pub digests: Vec<String>,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// The worker built or pulled it (only such images can be deleted through it).
    pub managed: bool,
}

/// Answer to `images.list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesListResult {
    /// The images.
    pub images: Vec<ImageSummary>,
}

/// `image.check`: is an image present locally?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageCheck {
    /// Image reference.
    pub image: String,
}

impl CommandParams for ImageCheck {
    const NAME: &'static str = "image.check";
    type Output = ImageCheckResult;

    fn validate(&self) -> Check {
        check::image_ref(&"image", &self.image)
    }
}

/// Answer to `image.check`. A missing image is `exists: false`, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageCheckResult {
    /// The reference asked about.
    pub image: String,
    /// Present locally.
    pub exists: bool,
    /// Its id, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Its size in bytes, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// `image.delete`: remove an image the worker built or pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDelete {
    /// Image reference or id.
    pub image: String,
    /// Remove even if stopped containers use it. Default `false`.
    #[serde(default)]
    pub force: bool,
}

impl CommandParams for ImageDelete {
    const NAME: &'static str = "image.delete";
    type Output = ImageDeleteResult;

    fn validate(&self) -> Check {
        check::image_ref(&"image", &self.image)
    }
}

/// Answer to `image.delete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDeleteResult {
    /// The reference asked about.
    pub image: String,
    /// Image and layer ids removed.
    #[serde(default)]
    pub deleted: Vec<String>,
    /// Tags removed.
    #[serde(default)]
    pub untagged: Vec<String>,
}

/// `image.build`: build an image from a Dockerfile and inline context files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuild {
    /// Reference to tag the result with, e.g. `acme/dev:1`.
    pub tag: String,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Tenant the build is for (recorded as a label of the image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Context files, paths relative to the context root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<InlineFile>,
    /// Build arguments (`ARG`), names `[A-Za-z_][A-Za-z0-9_]*`. `Debug` hides the values.
    #[serde(default, skip_serializing_if = "EnvVars::is_empty")]
    pub build_args: EnvVars,
    /// Labels for the image; keys under `cropscode.` are reserved for the worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Build stage to stop at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Network for `RUN` steps, e.g. `none` or `bridge`; absent: the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Always pull base images. Default `false`.
    #[serde(default)]
    pub pull: bool,
    /// Do not use the build cache. Default `false`.
    #[serde(default)]
    pub no_cache: bool,
}

impl CommandParams for ImageBuild {
    const NAME: &'static str = "image.build";
    type Output = ImageBuildResult;

    fn validate(&self) -> Check {
        check::image_ref(&"tag", &self.tag)?;
        check::non_empty(&"dockerfile", &self.dockerfile, MAX_DOCKERFILE_BYTES)?;
        if let Some(tenant) = &self.tenant {
            check::identifier(&"tenant", tenant)?;
        }
        check::count(&"context", self.context.len(), MAX_FILES)?;
        for (i, file) in self.context.iter().enumerate() {
            check::relative_path(&Key(&Index(&"context", i), "path"), &file.path)?;
            validate_file(&Index(&"context", i), file)?;
        }
        check::env(&"buildArgs", &self.build_args.0)?;
        check::labels(&"labels", &self.labels)?;
        if let Some(target) = &self.target {
            check::token(&"target", target, MAX_OPTION_BYTES)?;
        }
        if let Some(mode) = &self.network_mode {
            check::token(&"networkMode", mode, MAX_OPTION_BYTES)?;
        }
        Ok(())
    }

    fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

/// Answer to `image.build`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuildResult {
    /// The tag given.
    pub tag: String,
    /// The built image's id.
    pub image_id: String,
}

/// What an [`ImageProgress`] reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressPhase {
    /// An image (or layer) is being pulled.
    Pull,
    /// Build output.
    Build,
    /// A phase this version does not know.
    #[serde(other)]
    Other,
}

/// The `progress` payload of `container.create` (image pull) and `image.build`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageProgress {
    /// `pull` or `build`.
    pub phase: ProgressPhase,
    /// Pull: the engine's status (`Downloading`, `Pull complete`, …); build: a chunk of build output.
    pub message: String,
    /// Pull: the layer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// Pull: bytes of the layer done so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_bytes: Option<u64>,
    /// Pull: the layer's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
}
