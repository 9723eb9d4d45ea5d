//! Prints the PodGroup CustomResourceDefinition generated from the Rust type:
//! `cargo run -p phalanx-kube --example podgroup_crd > podgroup-crd.yaml`.

use kube::CustomResourceExt;

fn main() -> anyhow::Result<()> {
    print!(
        "{}",
        serde_yaml_ng::to_string(&phalanx_kube::PodGroup::crd())?
    );
    Ok(())
}
