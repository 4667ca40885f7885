//! Compiles this project's Pinpoint `.proto` files (proto/pinpoint/) into Rust with
//! protox (a pure-Rust protobuf compiler), so no system `protoc` is needed. Only gRPC
//! clients are generated: the bridge is an agent to the Pinpoint collector.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "proto/pinpoint";
    let mut files: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    println!("cargo:rerun-if-changed={dir}");
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(&files, [dir])?;
    tonic_prost_build::configure()
        // JSON views of what would be sent (the file exporter's pinpoint_json format).
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .type_attribute(".", "#[serde(rename_all = \"camelCase\")]")
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
