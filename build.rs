//! The web listener embeds the playable page and the compiled TypeScript client
//! (`src/net/web.rs`, `include_dir!`), the metrics endpoint the operator console
//! (`src/metrics/http.rs`): rebuild when they change.

fn main() {
    println!("cargo:rerun-if-changed=clients/web");
    println!("cargo:rerun-if-changed=clients/typescript/dist");
    println!("cargo:rerun-if-changed=clients/console");
}
