// Link settings for anything that runs libtorch: `sweep-agent`, `sweep` with the embedded agent,
// the benchmark, and the test binaries of `sweep-workloads`. Included by their build scripts.
//
// - `--no-as-needed -ltorch`: without it the linker drops `libtorch_cuda` (no symbol is referenced
//   directly) and CUDA silently stays unavailable.
// - an rpath to the libtorch the binary was built against, so it runs without LD_LIBRARY_PATH.
//   On a GPU node with its own PyTorch, LD_LIBRARY_PATH still takes precedence over a RUNPATH.

/// libtorch's lib folder, when this crate depends on torch-sys directly; None without libtorch.
fn libtorch_lib() -> Option<String> {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    std::env::var("DEP_TCH_LIBTORCH_LIB").ok()
}

fn emit_torch_link_args() {
    let Some(lib) = libtorch_lib() else {
        // Built without libtorch (the CLI with --no-default-features): nothing to link.
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
}
