//! `$VAR` templates: parsing and rendering never panic; a parsed template
//! prints back as its source; an escaped text renders back to itself; the
//! per-file renderers never panic either.
#![no_main]

use std::borrow::Cow;
use std::collections::BTreeMap;

use berth::template::dollar::{escape, parse};
use berth::template::values::{resolve, Forced, HostDefaults, SetValue, Sources};
use berth::template::{render, FileKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(template) = parse("fuzz", text) {
        assert_eq!(template.to_string(), text);
        let rendered = template.render(|name| Some(Cow::Owned(format!("<{name}>"))));
        assert!(rendered.is_ok());
        if template.variables().is_empty() {
            let literal = template.render(|_| None).unwrap();
            assert_eq!(literal, text.replace("$$", "$"));
        }
        // Every variable gets (the start of) the input's last line as value.
        let value: String = text
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .filter(|c| !berth::template::values::is_forbidden_in_value(*c))
            .take(16)
            .collect();
        let set: Vec<SetValue> = template
            .variables()
            .into_iter()
            .filter(|n| !berth::template::values::is_forced(n))
            .map(|n| SetValue {
                name: n.to_string(),
                value: value.clone(),
            })
            .collect();
        let forced = Forced {
            name: "n".into(),
            destdir: "/d".into(),
            exec_start: "s".into(),
            exec_stop: "s".into(),
            exec_startpre: "s".into(),
            exec_stoppost: "s".into(),
            host_uid: 0,
            host_gid: 0,
            image_name: "i".into(),
            image_id: "d".into(),
        };
        let host = HostDefaults::system(String::new(), "r".into());
        let empty = BTreeMap::new();
        let values = resolve(&Sources {
            forced: &forced,
            set: &set,
            previous: &empty,
            host: &host,
            manifest: &empty,
            generated_uuid: "u",
        })
        .unwrap();
        for kind in [
            FileKind::Unit,
            FileKind::Tmpfiles,
            FileKind::Json,
            FileKind::Plain,
        ] {
            let _ = render(&template, &values, kind);
        }
    }
    let escaped = parse("fuzz", &escape(text)).unwrap();
    assert!(escaped.variables().is_empty());
    assert_eq!(escaped.render(|_| None).unwrap(), text);
});
