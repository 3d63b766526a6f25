//! Link settings for binaries that run libtorch trials; see `link_torch.rs`. Shared by the agent,
//! the CLI and the benchmark through `build = "../agent/build.rs"`.

include!("link_torch.rs");

fn main() {
    emit_torch_link_args();
}
