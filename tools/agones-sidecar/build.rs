//! Generates the server side of the Agones SDK's gRPC services from the vendored protos
//! (proto/, unmodified from the `agones` 1.61.0 crate): the SDK crate builds only the client.
//! Only with the `grpc` feature, so that the default workspace build needs no protoc.

fn main() {
    #[cfg(feature = "grpc")]
    {
        println!("cargo:rerun-if-changed=proto");
        tonic_build::configure()
            .build_client(false)
            .build_server(true)
            .compile_protos(
                &["proto/sdk/sdk.proto", "proto/sdk/beta/beta.proto"],
                &["proto/googleapis", "proto/grpc-gateway", "proto/sdk", "proto/sdk/beta"],
            )
            .expect("compile the Agones SDK protos (needs protoc: apt-get install protobuf-compiler libprotobuf-dev)");
    }
}
