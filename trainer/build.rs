//! Links the trainer against the libtorch that torch-sys found, and
//! compiles the small C++ shims for what tch does not bind.

use std::path::{Path, PathBuf};

fn main() {
    // torch-sys declares `links = "tch"`, so its library folder reaches us here.
    let lib = PathBuf::from(std::env::var("DEP_TCH_LIBTORCH_LIB").expect(
        "DEP_TCH_LIBTORCH_LIB unset: build with LIBTORCH_USE_PYTORCH=1 and scripts/libtorch.sh's venv first on PATH",
    ));
    // Without --no-as-needed the linker drops libtorch.so (nothing names its
    // symbols directly), and with it the CUDA backend registration: CUDA
    // would then silently be unavailable.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-L{}", lib.display());
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());

    let include = lib.parent().expect("libtorch lib has a parent").join("include");
    cc::Build::new()
        .cpp(true)
        .file("csrc/shim.cpp")
        .include(&include)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("curate_trainer_shim");
    println!("cargo:rerun-if-changed=csrc/shim.cpp");
    distributed(&lib, &include);
}

/// c10d's Gloo and NCCL process groups. Their symbols are in libtorch, but
/// the wheel ships neither Gloo's headers (Debian's libgloo-dev has them;
/// scripts/libtorch.sh installs it) nor CUDA's (NCCL support is compiled
/// only where they are present, see `nccl_includes`).
fn distributed(lib: &Path, include: &Path) {
    let gloo = std::env::var_os("CURATE_GLOO_INCLUDE").map_or_else(|| PathBuf::from("/usr/include"), PathBuf::from);
    if !gloo.join("gloo/config.h").is_file() {
        panic!(
            "{}: no Gloo headers (gloo/config.h), which c10d's ProcessGroupGloo needs: run scripts/libtorch.sh \
             (it installs Debian's libgloo-dev) or point CURATE_GLOO_INCLUDE at a folder holding gloo/",
            gloo.display()
        );
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("csrc/distributed.cpp")
        .include(include)
        .include(include.join("torch/csrc/api/include"))
        .include(&gloo)
        .flag("-std=c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("USE_C10D_GLOO", None)
        .warnings(false);
    if let Some(dirs) = nccl_includes(lib) {
        for dir in dirs {
            build.include(dir);
        }
        build.define("USE_C10D_NCCL", None).define("USE_CUDA", None).define("CURATE_NCCL", None);
        // ProcessGroupNCCL and the CUDA device switch live in these two.
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-lc10_cuda");
        println!("cargo:warning=curate-train: NCCL support compiled in (CUDA headers found)");
    }
    build.compile("curate_trainer_distributed");
    println!("cargo:rerun-if-changed=csrc/distributed.cpp");
    println!("cargo:rerun-if-env-changed=CURATE_GLOO_INCLUDE");
    println!("cargo:rerun-if-env-changed=CURATE_CUDA_INCLUDE");
}

/// The CUDA runtime and NCCL headers of the PyTorch wheel's own NVIDIA
/// packages (`nvidia/cu13`, `nvidia/nccl`), complete once
/// `pip install "cuda-toolkit[crt,cccl]==13.0.2"` added `crt/host_config.h`;
/// or the folders in `CURATE_CUDA_INCLUDE` (colon-separated).
fn nccl_includes(lib: &Path) -> Option<Vec<PathBuf>> {
    if let Some(dirs) = std::env::var_os("CURATE_CUDA_INCLUDE") {
        return Some(std::env::split_paths(&dirs).collect());
    }
    let nvidia = lib.parent()?.parent()?.join("nvidia");
    let dirs = vec![nvidia.join("cu13/include"), nvidia.join("nccl/include")];
    let complete = dirs[0].join("cuda_runtime.h").is_file()
        && dirs[0].join("crt/host_config.h").is_file()
        && dirs[1].join("nccl.h").is_file();
    complete.then_some(dirs)
}
