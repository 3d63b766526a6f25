//! Link settings for binaries that run libtorch trials (`sweep-agent`, and `sweep` with the embedded
//! agent). Shared by both crates through `build = "../agent/build.rs"`.
//!
//! - `--no-as-needed -ltorch`: without it the linker drops `libtorch_cuda` (no symbol is referenced
//!   directly) and CUDA silently stays unavailable.
//! - an rpath to the libtorch the binary was built against, so it runs without LD_LIBRARY_PATH.
//!   On a GPU node with its own PyTorch, LD_LIBRARY_PATH still takes precedence over a RUNPATH.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        // Built without libtorch (the CLI with --no-default-features): nothing to link.
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
}
