//! Compiles `proto/rivet/v1/*.proto` with tonic and writes a file descriptor set for
//! gRPC reflection. `PROTOC` overrides the vendored protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from("proto");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(proto_dir.join("rivet/v1"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    protos.sort();
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    println!("cargo:rerun-if-changed=proto/rivet/v1");
    println!("cargo:rerun-if-env-changed=PROTOC");

    let mut config = tonic_prost_build::Config::new();
    let mut includes = vec![proto_dir.clone()];
    match std::env::var_os("PROTOC") {
        Some(protoc) => {
            config.protoc_executable(protoc);
        }
        None => {
            config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
            includes.push(protoc_bin_vendored::include_path()?);
        }
    }

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // `RunnerService.Connect` would clash with the generated `connect` constructor, so
    // clients are built from a `Channel` with `new` instead.
    tonic_prost_build::configure()
        .build_transport(false)
        .file_descriptor_set_path(out_dir.join("rivet_descriptor.bin"))
        .compile_with_config(config, &protos, &includes)?;
    Ok(())
}
