//! The provisioning manifest loader (`manifest::parse`, the pure half of
//! `manifest::load`) and `Manifest::validate`: they never panic and stay
//! bounded (libFuzzer's -timeout and -rss_limit_mb), and a manifest that
//! loads and validates is written back as TOML, loads again to the same
//! entries and validates to the same order; that order puts every entry after
//! the entries it depends on.
#![no_main]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth::manifest::{parse, Manifest, ManifestFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let file = Path::new("/etc/berth/manifest.d/fuzz.toml");
    let Ok(entries) = parse(text, file) else {
        return;
    };
    let manifest = Manifest {
        source: PathBuf::from("/etc/berth/manifest.d"),
        entries,
    };
    let installed: BTreeSet<String> = ["etcd", "flannel"].map(String::from).into();
    let Ok(order) = manifest.validate(&installed) else {
        return;
    };
    let n = manifest.entries.len();
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "not a permutation");
    let position: Vec<usize> = {
        let mut p = vec![0; n];
        order.iter().enumerate().for_each(|(at, &i)| p[i] = at);
        p
    };
    for (i, l) in manifest.entries.iter().enumerate() {
        for d in l.entry.after.iter().chain(&l.entry.requires) {
            if let Some(j) = manifest.entries.iter().position(|m| &m.entry.name == d) {
                assert!(position[j] < position[i], "{} before {d}", l.entry.name);
            }
        }
    }
    let written = toml::to_string(&ManifestFile {
        containers: manifest.entries.iter().map(|l| l.entry.clone()).collect(),
    })
    .unwrap();
    let again = parse(&written, file).unwrap_or_else(|e| panic!("{written:?}: {e}"));
    assert_eq!(
        again.iter().map(|l| &l.entry).collect::<Vec<_>>(),
        manifest
            .entries
            .iter()
            .map(|l| &l.entry)
            .collect::<Vec<_>>()
    );
    let again = Manifest {
        source: manifest.source.clone(),
        entries: again,
    };
    assert_eq!(again.validate(&installed).ok(), Some(order));
});
