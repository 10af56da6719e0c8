//! Unit text: the `[Install]` and dependency parsers never panic, and every
//! symlink they produce lies in the unit directory and points at the unit.
//! Input: the unit name on the first line (`foo@.service` if it is not a
//! valid one), then the unit file.
#![no_main]

use berth::systemd::{Dependencies, Install, UnitName};
use libfuzzer_sys::fuzz_target;

const DIR: &str = "/etc/systemd/system";

fuzz_target!(|input: &str| {
    let (name, text) = input.split_once('\n').unwrap_or(("", input));
    let Ok(unit) = UnitName::parse(name).or_else(|_| UnitName::parse("foo@.service")) else {
        return;
    };
    let _ = Dependencies::parse(text, &unit);
    if let Ok(install) = Install::parse(text, &unit) {
        if let Ok(links) = install.symlinks(DIR) {
            for link in links {
                let rest = link.link.strip_prefix("/etc/systemd/system/").unwrap();
                assert!(!rest
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == ".."));
                assert_eq!(link.target, format!("{DIR}/{unit}"));
            }
        }
    }
});
