//! Builds the small C++ shim over libtorch APIs that tch does not wrap (bf16 autocast, CUDA
//! allocator statistics, CUDA graphs), against
//! the headers of the libtorch tch links, and sets the link arguments of `../link_torch.rs` for
//! this crate's test binaries.

include!("../link_torch.rs");

fn main() {
    emit_torch_link_args();
    let lib = libtorch_lib().expect("torch-sys provides DEP_TCH_LIBTORCH_LIB");
    let root = std::path::Path::new(&lib).parent().expect("libtorch's lib folder has a parent").to_path_buf();
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/cuda_memory.cpp");
    println!("cargo:rerun-if-changed=csrc/cuda_graph.cpp");
    // The CUDA runtime headers come with the PyTorch wheel's nvidia packages, next to torch/.
    let cuda_include = root.parent().expect("site-packages").join("nvidia/cu13/include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/autocast.cpp")
        .file("csrc/cuda_memory.cpp")
        .file("csrc/cuda_graph.cpp")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .include(cuda_include)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("sweep_torch_shim");
    // The allocator statistics live in c10_cuda and CUDA graphs in torch_cuda, which the wheel
    // ships even for CPU-only use.
    println!("cargo:rustc-link-lib=dylib=c10_cuda");
    println!("cargo:rustc-link-lib=dylib=torch_cuda");
}
