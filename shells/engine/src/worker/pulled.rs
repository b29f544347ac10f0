//! The images this worker pulled. Registry images carry no label of ours, so the worker
//! remembers their ids in `DATA_DIR/pulled-images.json` (in memory only without a data
//! directory) to tell them apart from the machine owner's own images: `image.delete`
//! removes only images the worker built (labelled `cropscode.built-by`) or pulled, and
//! `images.list` reports both as `managed`.
//!
//! Bounded: the newest [`MAX_TRACKED`] ids are kept. The file is rewritten atomically
//! (temporary file, then rename) on every change; a write failure is logged once per
//! change and the in-memory set stays right for this run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Most image ids remembered; the oldest are forgotten first.
pub const MAX_TRACKED: usize = 4096;

/// File name under `DATA_DIR`.
const FILE: &str = "pulled-images.json";

/// The ids (`sha256:…`) of the images this worker pulled, oldest first.
#[derive(Debug)]
pub(crate) struct PulledImages {
    path: Option<PathBuf>,
    ids: Mutex<Vec<String>>,
}

impl PulledImages {
    /// Loads the record under `data_dir`; a missing or unreadable file is an empty record.
    pub(crate) fn load(data_dir: Option<&Path>) -> PulledImages {
        let path = data_dir.map(|dir| dir.join(FILE));
        let ids = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|bytes| serde_json::from_slice::<Vec<String>>(&bytes).ok())
            .unwrap_or_default();
        PulledImages { path, ids: Mutex::new(ids) }
    }

    /// Whether the image with this id was pulled by this worker.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.lock().iter().any(|known| known == id)
    }

    /// Records a pulled image.
    pub(crate) fn add(&self, id: &str) {
        let mut ids = self.lock();
        if ids.iter().any(|known| known == id) {
            return;
        }
        ids.push(id.to_owned());
        let excess = ids.len().saturating_sub(MAX_TRACKED);
        ids.drain(..excess);
        self.save(&ids);
    }

    /// Forgets deleted images.
    pub(crate) fn remove(&self, deleted: &[String]) {
        let mut ids = self.lock();
        let before = ids.len();
        ids.retain(|id| !deleted.contains(id));
        if ids.len() != before {
            self.save(&ids);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn save(&self, ids: &[String]) {
        let Some(path) = &self.path else { return };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(ids).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(error) = write() {
            tracing::warn!(path = %path.display(), %error, "cannot record the images this worker pulled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("cropscode-pulled-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pulled = PulledImages::load(Some(&dir));
        pulled.add("sha256:a");
        pulled.add("sha256:b");
        pulled.add("sha256:a");
        let again = PulledImages::load(Some(&dir));
        assert!(again.contains("sha256:a") && again.contains("sha256:b") && !again.contains("sha256:c"));
        again.remove(&["sha256:a".to_owned()]);
        assert!(!PulledImages::load(Some(&dir)).contains("sha256:a"));

        let memory = PulledImages::load(None);
        for n in 0..MAX_TRACKED + 10 {
            memory.add(&format!("sha256:{n}"));
        }
        assert!(!memory.contains("sha256:0") && memory.contains(&format!("sha256:{}", MAX_TRACKED + 9)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
