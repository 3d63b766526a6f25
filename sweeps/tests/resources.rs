//! `[resources]`: whole GPUs, shares of one GPU for packing, and fused groups, each refused with
//! the file and key named when out of range.

use std::path::Path;
use sweep_spec::{Fuse, Resources, SweepFile};

fn resources(table: &str) -> Result<Resources, String> {
    let text = format!("name = \"r\"\nworkload = \"mlp\"\n[resources]\n{table}\n");
    SweepFile::parse(&text, Path::new("r.toml"), Path::new(".")).map(|f| f.resources).map_err(|e| e.to_string())
}

#[test]
fn a_gpu_share_is_a_fraction_of_one_gpu() {
    assert_eq!(resources("gpu_share = 0.25").unwrap(), Resources { gpus: 1, fuse: Fuse::Off, gpu_share: Some(0.25) });
    assert_eq!(resources("gpus = 1\ngpu_share = 0.5").unwrap().gpu_share, Some(0.5));
    assert_eq!(resources("gpu_share = 1").unwrap(), Resources { gpus: 0, fuse: Fuse::Off, gpu_share: None });
    for bad in ["gpu_share = 0", "gpu_share = 1.5", "gpu_share = -0.1", "gpu_share = \"half\""] {
        let err = resources(bad).unwrap_err();
        assert!(err.contains("r.toml") && err.contains("resources.gpu_share"), "{bad}: {err}");
    }
    let err = resources("gpus = 2\ngpu_share = 0.5").unwrap_err();
    assert!(err.contains("gpus > 1"), "{err}");
    let err = resources("gpu = 1").unwrap_err();
    assert!(err.contains("resources.gpu") && err.contains("gpu_share"), "{err}");
}
