//! Compiles the XDP program into a libbpf skeleton that embeds the object, so that the binary
//! needs no clang or bpftool at run time.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/xvtep.bpf.c";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo")).join("xvtep.skel.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH is set by cargo");
    // <asm/types.h> and friends live in the multiarch include directory on Debian.
    let multiarch = format!("-I/usr/include/{arch}-linux-gnu");
    SkeletonBuilder::new()
        .source(SRC)
        .clang_args(["-O2", "-g", "-Wall", multiarch.as_str()])
        .build_and_generate(&out)
        .unwrap_or_else(|e| {
            panic!("building {SRC} failed: {e:#}\n(needs clang and the kernel headers: run scripts/setup.sh)")
        });
    println!("cargo:rerun-if-changed={SRC}");
}
