//! A Kubernetes object from the input as JSON, of the kind its first byte
//! picks (each group convention Phalanx reads, a pod, a node, a
//! coscheduling PodGroup), through the conversion the scheduler applies to
//! what it watches: errors name a field, nothing panics.
#![no_main]

use k8s_openapi::api::core::v1 as core;
use kube::core::DynamicObject;
use libfuzzer_sys::fuzz_target;
use phalanx_kube::{PodGroup, convert, groups};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let kinds = groups::Kind::ALL.len();
    let pick = usize::from(pick) % (kinds + 3);
    if let Some(kind) = groups::Kind::ALL.get(pick) {
        if let Ok(obj) = serde_json::from_slice::<DynamicObject>(body) {
            let _ = groups::parse(*kind, &obj);
        }
        return;
    }
    match pick - kinds {
        0 => {
            if let Ok(p) = serde_json::from_slice::<core::Pod>(body) {
                let _ = convert::pod(&p, None);
                let _ = groups::size_annotation(&p);
            }
        }
        1 => {
            if let Ok(n) = serde_json::from_slice::<core::Node>(body) {
                let _ = convert::node(&n, "phalanx.dev/rack", None);
            }
        }
        _ => {
            if let Ok(pg) = serde_json::from_slice::<PodGroup>(body) {
                let _ = convert::pod_group(&pg);
            }
        }
    }
});
