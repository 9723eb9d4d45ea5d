//! The deployment under `manifests/` and the scripts under `hack/`, checked
//! against the types and the binary they configure. One test binary with a
//! module per concern, so CI links it once.

use std::path::{Path, PathBuf};

mod crd;
mod deployment;
mod examples;
mod flags;
mod kustomization;
mod on_apiserver;
mod parse;
mod rbac;
mod scripts;

/// The repository's `manifests/` directory.
fn manifests_dir() -> PathBuf {
    repo_root().join("manifests")
}

/// The repository's root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
