//! Link flags for `berth-run`, the unit's main process (issue 16).
//!
//! `-z pack-relative-relocs` stores the binary's relative relocations as
//! RELR (a few KiB) instead of RELA (551 KiB): the loader reads all of them
//! at every start, so each berth-run maps ~0.5 MiB less and starts with
//! fewer page faults. It needs GNU ld ≥ 2.38 (or lld) and glibc ≥ 2.36 on
//! the running host; set `BERTH_NO_RELR=1` to build for an older one.

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_NO_RELR");
    let linux_gnu = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu && std::env::var_os("BERTH_NO_RELR").is_none() {
        println!("cargo:rustc-link-arg-bin=berth-run=-Wl,-z,pack-relative-relocs");
    }
}
