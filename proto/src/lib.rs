//! The `phalanx.fluxion.v1` gRPC API: messages, the `Fluxion` client and
//! server, and the encoded file descriptor set for server reflection.
#![forbid(unsafe_code)]

/// Generated messages, client (`fluxion_client`) and server (`fluxion_server`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("phalanx.fluxion.v1");
}

/// The encoded `FileDescriptorSet` of `fluxion.proto`, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fluxion_descriptor.bin"));

/// Full name of the service, as used by the health and reflection services.
pub const SERVICE_NAME: &str = "phalanx.fluxion.v1.Fluxion";

#[cfg(test)]
mod tests {
    use prost::Message;

    #[test]
    fn descriptor_set_names_the_service() {
        let fds = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET)
            .expect("build.rs writes a valid descriptor set");
        let file = fds
            .file
            .iter()
            .find(|f| f.package() == "phalanx.fluxion.v1")
            .expect("the package is in the set");
        let service = &file.service[0];
        assert_eq!(
            format!("{}.{}", file.package(), service.name()),
            super::SERVICE_NAME
        );
        let names: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            [
                "Match",
                "Cancel",
                "Info",
                "Stat",
                "Resources",
                "Jobs",
                "UpdateGraph",
                "Session"
            ]
        );
        let session = &service.method[7];
        assert!(session.client_streaming() && session.server_streaming());
    }

    #[test]
    fn match_request_round_trips() {
        use super::v1::*;
        let req = MatchRequest {
            request: Some(match_request::Request::Pods(PodGroup {
                templates: vec![PodTemplate {
                    name: "worker".into(),
                    count: 8,
                    cpu_millis: 2000,
                    gpus: 1,
                    ..Default::default()
                }],
            })),
            operation: Operation::AllocateOrelseReserve as i32,
            ..Default::default()
        };
        let back = MatchRequest::decode(req.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back, req);
    }
}
