//! Links the trainer against the libtorch that torch-sys found, and
//! compiles the small C++ shim for what tch does not bind.

use std::path::PathBuf;

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
}
