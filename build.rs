//! Links the binaries with packed relative relocations (`-z pack-relative-relocs`, DT_RELR) on
//! Linux: the executable's relocation table shrinks from about 1.4 MB, which the loader reads
//! whole at every start and which stays resident, to a few KB. GNU ld emits them only when the
//! C library supports them (glibc 2.36 and later), so the binary still runs on older systems.
//! Nothing else is built here.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
