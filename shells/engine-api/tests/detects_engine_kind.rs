//! Ping and `GET /version` tell Docker from Podman and settle the API version.

mod common;

use common::{TestEngine, Which};
use cropscode_engine_api::EngineKind;

engine_test!(detects_engine_kind, async |t: &TestEngine| {
    t.engine.ping().await.expect("ping");
    let version = t.engine.version().await.expect("version");
    let expected = match t.which {
        Which::Docker => EngineKind::Docker,
        Which::Podman => EngineKind::Podman,
    };
    assert_eq!(version.kind, expected, "{version:?}");
    assert!(!version.version.is_empty());
    assert_eq!(version.os, "linux");
    assert_eq!(t.engine.api_version(), "1.41");
    eprintln!(
        "{:?}: {} {} (API {}, min {:?})",
        t.which, version.kind, version.version, version.api_version, version.min_api_version
    );
});
