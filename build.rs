//! Links the binaries as position-dependent executables (`-no-pie`) on Linux with glibc: the
//! loader then relocates nothing at start, so the binary's 1.6 MB of pointer tables
//! (`.data.rel.ro`, vtables and the like) stay clean pages of the file, shared and read only
//! where used, instead of every page copied and written at each start (the worker's peak
//! resident memory is 1.9 MiB less; docs/benchmarks.md). The code is still compiled
//! position-independent; the linker resolves its addresses at link time. The price: the
//! executable loads at a fixed address (no address randomisation of its own code; the
//! libraries, heap and stacks still move). Elsewhere (another C library, another system) the
//! binaries stay as rustc links them, and so they do when `AUTOSCALEBOT_PIE=1` is set at build
//! time (a policy that requires position-independent executables). Nothing else is built here.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=AUTOSCALEBOT_PIE");
    let pie_asked = std::env::var("AUTOSCALEBOT_PIE").is_ok_and(|value| value == "1");
    if !pie_asked
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        // After rustc's own `-pie`: the last of the two wins.
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
