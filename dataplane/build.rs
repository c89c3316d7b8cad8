//! Build script of baton-dataplane. It does nothing unless the `dpdk`
//! feature is on; then it finds the system's libdpdk (22.11) with
//! pkg-config, compiles the C shim in `dpdk-shim/` with the cc crate, and
//! generates Rust bindings for an allowlist of DPDK calls with bindgen
//! (see `src/port/dpdk/ffi.rs`). The default build needs neither libdpdk
//! nor clang.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DPDK").is_some() {
        #[cfg(feature = "dpdk")]
        dpdk::build();
    }
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::path::PathBuf;

    /// Functions of DPDK that `src/port/dpdk` calls, plus the shim's own.
    const FUNCTIONS: &[&str] = &[
        "baton_.*",
        "rte_eal_cleanup",
        "rte_eth_dev_configure",
        "rte_eth_rx_queue_setup",
        "rte_eth_tx_queue_setup",
        "rte_eth_dev_start",
        "rte_eth_dev_stop",
        "rte_eth_dev_close",
        "rte_eth_dev_count_avail",
        "rte_eth_dev_info_get",
        "rte_eth_dev_socket_id",
        "rte_eth_macaddr_get",
        "rte_eth_promiscuous_disable",
        "rte_eth_allmulticast_enable",
        "rte_eth_dev_get_port_by_name",
        "rte_pktmbuf_pool_create",
        "rte_mempool_free",
        "rte_strerror",
        "rte_thread_register",
        "rte_thread_unregister",
        "rte_vdev_init",
        "rte_vdev_uninit",
    ];

    /// Flags of DPDK's pkg-config file that tie the code to one CPU
    /// (Debian's says `-march=corei7`); the shim must build for any x86-64
    /// the Rust code runs on, so they are dropped.
    fn portable(flag: &str) -> bool {
        !(flag.starts_with("-march=") || flag.starts_with("-mcpu=") || flag.starts_with("-mtune="))
    }

    pub fn build() {
        let shim_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
            .join("dpdk-shim");
        println!(
            "cargo:rerun-if-changed={}",
            shim_dir.join("shim.h").display()
        );
        println!(
            "cargo:rerun-if-changed={}",
            shim_dir.join("shim.c").display()
        );

        let lib = match pkg_config::Config::new()
            .atleast_version("22.11")
            .cargo_metadata(false)
            .probe("libdpdk")
        {
            Ok(lib) => lib,
            Err(e) => panic!(
                "the `dpdk` feature needs libdpdk >= 22.11 found by pkg-config \
                 (Debian 12: apt-get install libdpdk-dev pkg-config clang libclang-dev): {e}"
            ),
        };
        // The raw cflags carry `-include rte_config.h`, which the crate's
        // parsed view drops; keep every flag but the CPU-specific ones.
        let cflags: Vec<String> = match std::process::Command::new(
            std::env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()),
        )
        .args(["--cflags", "libdpdk"])
        .output()
        {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter(|f| portable(f))
                .map(str::to_string)
                .collect(),
            _ => lib
                .include_paths
                .iter()
                .map(|p| format!("-I{}", p.display()))
                .collect(),
        };

        // The shim first: it is a static library whose undefined rte_*
        // symbols the DPDK shared libraries named below resolve, and the
        // linker (with --as-needed) only keeps a shared library that
        // resolves something already seen.
        let mut cc = cc::Build::new();
        cc.file(shim_dir.join("shim.c"))
            .include(&shim_dir)
            .warnings(true)
            .flag_if_supported("-Wno-unused-parameter");
        for f in &cflags {
            cc.flag(f);
        }
        // DPDK's inline rte_memcpy (pulled in by rte_mbuf.h) uses SSSE3
        // intrinsics, and the libraries we link were built for SSE4.2
        // (corei7) anyway, so a CPU without it could not run them: name
        // that instruction-set level instead of a CPU model.
        if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64") {
            cc.flag("-msse4.2");
        }
        cc.compile("baton_dpdk_shim");

        for p in &lib.link_paths {
            println!("cargo:rustc-link-search=native={}", p.display());
        }
        for l in &lib.libs {
            println!("cargo:rustc-link-lib=dylib={l}");
        }
        // rte_vdev_init/uninit live in the vdev bus driver, which
        // `--libs libdpdk` does not name (drivers are plugins); it is the
        // same file as the plugin the EAL loads, so it registers once.
        println!("cargo:rustc-link-lib=dylib=rte_bus_vdev");

        let mut b = bindgen::Builder::default()
            .header(shim_dir.join("shim.h").to_string_lossy())
            .clang_args(cflags.iter())
            .clang_arg(format!("-I{}", shim_dir.display()))
            // Only what we call, and the types those calls name.
            .allowlist_recursively(true)
            // The mbuf and mempool are touched only through the shim: keep
            // their (cache-aligned, union-heavy) layouts out of Rust.
            .opaque_type("rte_mbuf")
            .opaque_type("rte_mempool")
            .derive_default(true)
            .layout_tests(false)
            .generate_comments(false)
            .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
        for f in FUNCTIONS {
            b = b.allowlist_function(f);
        }
        b = b
            .allowlist_type("rte_eth_conf")
            .allowlist_type("rte_eth_dev_info")
            .allowlist_type("rte_ether_addr")
            .allowlist_var("RTE_MAX_ETHPORTS")
            .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE")
            .allowlist_var("RTE_PKTMBUF_HEADROOM");
        let bindings = match b.generate() {
            Ok(b) => b,
            Err(e) => {
                panic!("bindgen over dpdk-shim/shim.h failed (is libclang-dev installed?): {e}")
            }
        };
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
        if let Err(e) = bindings.write_to_file(out.join("dpdk_bindings.rs")) {
            panic!("writing the DPDK bindings: {e}");
        }
    }
}
