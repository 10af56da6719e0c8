//! Tests of `regconf`.

use super::auth::*;
use super::certs::*;
use super::*;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn creds(u: &str, pw: &str) -> Option<Credentials> {
    Some(Credentials {
        username: u.into(),
        password: pw.into(),
    })
}

#[test]
fn parses_v2_format() {
    let text = r#"
unqualified-search-registries = ["registry.example:5000", "localhost"]
short-name-mode = "enforcing"

[[registry]]
location = "127.0.0.1:5443"
insecure = true

[[registry]]
prefix = "*.internal"
location = "mirror.internal"
insecure = true

[[registry]]
location = "evil.example"
blocked = true
[[registry.mirror]]
location = "m.example"
"#;
    let conf = parse(text, &p("/r.conf")).unwrap();
    assert_eq!(
        conf.unqualified_search,
        ["registry.example:5000", "localhost"]
    );
    assert_eq!(conf.insecure, ["127.0.0.1:5443", "*.internal"]);
    assert_eq!(conf.blocked, ["evil.example"]);
    assert!(conf.is_insecure("127.0.0.1:5443"));
    assert!(!conf.is_insecure("127.0.0.1:5000"));
    assert!(conf.is_insecure("a.b.internal:5000"));
    assert!(!conf.is_insecure("internal"));
    assert!(conf.is_blocked("evil.example/x/y"));
    assert!(!conf.is_blocked("evil.example.com/x"));
}

#[test]
fn parses_v1_format() {
    let text = r#"
[registries.search]
registries = ["quay.io", "docker.io"]
[registries.insecure]
registries = ["localhost:5000"]
[registries.block]
registries = ["bad.example/ns"]
"#;
    let conf = parse(text, &p("/r.conf")).unwrap();
    assert_eq!(conf.unqualified_search, ["quay.io", "docker.io"]);
    assert!(conf.is_insecure("localhost:5000"));
    assert!(conf.is_blocked("bad.example/ns/app"));
    assert!(!conf.is_blocked("bad.example/other"));
}

#[test]
fn rejects_bad_files_naming_file_and_line() {
    let err = parse(
        "a = 1\nunqualified-search-registries = [\"x\"\n",
        &p("/etc/r.conf"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RegConfError::Parse {
                line: Some(2..),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().starts_with("/etc/r.conf:"), "{err}");
    assert_eq!(err.kind(), ErrorKind::Usage);

    let err = parse(
        "\n\n[[registry]]\nlocation = \"x\"\ninsecure = \"yes\"\n",
        &p("/r.conf"),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("/r.conf:"), "{err}");

    let mixed = "unqualified-search-registries = []\n[registries.search]\nregistries = []\n";
    assert!(matches!(
        parse(mixed, &p("/r")),
        Err(RegConfError::MixedFormats { .. })
    ));
    let err = parse("[[registry]]\ninsecure = true\n", &p("/r")).unwrap_err();
    assert!(
        err.to_string().contains("neither location nor prefix"),
        "{err}"
    );
}

#[test]
fn drop_ins_override_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(
            dir.path(),
            "registries.conf",
            "unqualified-search-registries = [\"a.example\"]\n[[registry]]\nlocation = \"a.example\"\ninsecure = true\n",
        );
    let d = dir.path().join("registries.conf.d");
    write(
        &d,
        "20-b.conf",
        "unqualified-search-registries = [\"b.example\"]\n",
    );
    write(
        &d,
        "10-a.conf",
        "unqualified-search-registries = [\"ignored\"]\n",
    );
    write(
        &d,
        "30-c.conf",
        "[[registry]]\nlocation = \"a.example\"\ninsecure = false\n",
    );
    write(&d, "99-skip.txt", "not toml at all [");
    let files = registries_conf_files(None, &main, &d).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        ["registries.conf", "10-a.conf", "20-b.conf", "30-c.conf"]
    );
    let conf = load_files(&files).unwrap();
    assert_eq!(conf.unqualified_search, ["b.example"]);
    assert!(!conf.is_insecure("a.example"));

    // The environment override is read alone; missing files are empty.
    let only = registries_conf_files(Some(dir.path().join("nope.conf")), &main, &d).unwrap();
    assert_eq!(only, [dir.path().join("nope.conf")]);
    assert_eq!(load_files(&only).unwrap(), RegistriesConf::default());
    let none = registries_conf_files(None, &dir.path().join("x"), &dir.path().join("y")).unwrap();
    assert_eq!(load_files(&none).unwrap(), RegistriesConf::default());
}

#[test]
fn parses_creds_flag() {
    assert_eq!(parse_creds("u:p:q").ok(), creds("u", "p:q"));
    for (input, want) in [
        ("user", "a password is needed"),
        (":pw", "user name is empty"),
        ("user:", "password for user \"user\" is empty"),
    ] {
        let err = parse_creds(input).unwrap_err();
        assert!(err.to_string().contains(want), "{input}: {err}");
        assert_eq!(err.kind(), ErrorKind::Usage);
    }
    assert!(!format!("{:?}", creds("u", "secret")).contains("secret"));
}

#[test]
fn auth_file_search_order_follows_podman() {
    let env = AuthEnv {
        registry_auth_file: Some(p("/env/auth.json")),
        xdg_runtime_dir: None,
        xdg_config_home: None,
        docker_config: None,
        home: Some(p("/home/u")),
        uid: 0,
    };
    let paths =
        |files: Vec<AuthFile>| -> Vec<PathBuf> { files.into_iter().map(|f| f.path).collect() };
    assert_eq!(
        paths(auth_files(None, &env)),
        [
            p("/env/auth.json"),
            p("/run/containers/0/auth.json"),
            p("/home/u/.config/containers/auth.json"),
            p("/home/u/.docker/config.json"),
            p("/home/u/.dockercfg"),
        ]
    );
    let env = AuthEnv {
        xdg_runtime_dir: Some(p("/run/user/1000")),
        xdg_config_home: Some(p("/cfg")),
        docker_config: Some(p("/dc")),
        uid: 1000,
        ..env
    };
    let files = auth_files(Some(Path::new("/flag.json")), &env);
    assert!(files[0].required && files[0].path == p("/flag.json"));
    assert!(files[4].legacy);
    assert_eq!(
        paths(files),
        [
            p("/flag.json"),
            p("/run/user/1000/containers/auth.json"),
            p("/cfg/containers/auth.json"),
            p("/dc/config.json"),
            p("/home/u/.dockercfg"),
        ]
    );
    assert_eq!(auth_files(None, &AuthEnv::default()).len(), 1);
}

#[test]
fn most_specific_auth_key_wins() {
    let text = format!(
        r#"{{"auths": {{
                "reg.example:5000": {{"auth": "{}"}},
                "reg.example:5000/team": {{"auth": "{}"}},
                "reg.example:5000/team/app": {{}},
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "http://old.example/v1/": {{"username": "o", "password": "pw"}}
            }}}}"#,
        b64("host:h"),
        b64("team:t"),
        b64("hub:x:y")
    );
    let look = |reg: &str, repo: &str| lookup_auth(&text, &p("/a.json"), false, reg, repo).unwrap();
    assert_eq!(look("reg.example:5000", "team/app"), creds("team", "t"));
    assert_eq!(look("reg.example:5000", "other/app"), creds("host", "h"));
    assert_eq!(look("docker.io", "library/busybox"), creds("hub", "x:y"));
    assert_eq!(look("old.example", "a"), creds("o", "pw"));
    assert_eq!(look("reg.example", "team/app"), None);
    assert_eq!(
        lookup_auth("  \n", &p("/a"), false, "r", "x").unwrap(),
        None
    );
}

#[test]
fn legacy_dockercfg_and_bad_entries() {
    let text = format!(
        r#"{{"https://legacy.example/v1/": {{"auth": "{}", "email": "x"}}}}"#,
        b64("l:p")
    );
    assert_eq!(
        lookup_auth(&text, &p("/h/.dockercfg"), true, "legacy.example", "a/b").unwrap(),
        creds("l", "p")
    );
    let bad = r#"{"auths": {"r.example": {"auth": "!!!"}}}"#;
    let err = lookup_auth(bad, &p("/a.json"), false, "r.example", "x").unwrap_err();
    assert!(
        matches!(&err, RegConfError::BadAuthEntry { key, .. } if key == "r.example"),
        "{err}"
    );
    let nocolon = format!(
        r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
        b64("nocolon")
    );
    assert!(lookup_auth(&nocolon, &p("/a"), false, "r.example", "x").is_err());
    let err = lookup_auth("{\"auths\": [", &p("/a.json"), false, "r", "x").unwrap_err();
    assert!(err.to_string().starts_with("/a.json: "), "{err}");
}

#[test]
fn first_file_with_a_match_wins_and_helpers_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let helper = write(
        dir.path(),
        "helper.json",
        r#"{"credsStore": "desktop", "credHelpers": {"r.example": "pass"}, "auths": {"r.example": {}}}"#,
    );
    let other = write(
        dir.path(),
        "other.json",
        &format!(
            r#"{{"auths": {{"x.example": {{"auth": "{}"}}}}}}"#,
            b64("x:x")
        ),
    );
    let good = write(
        dir.path(),
        "good.json",
        &format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            b64("g:1")
        ),
    );
    let later = write(
        dir.path(),
        "later.json",
        &format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            b64("l:2")
        ),
    );
    let f = |path: PathBuf, required: bool| AuthFile {
        path,
        required,
        legacy: false,
    };
    let files = [
        f(dir.path().join("missing.json"), false),
        f(helper, false),
        f(other, false),
        f(good, false),
        f(later, false),
    ];
    assert_eq!(
        find_credentials_in(&files, "r.example", "a").unwrap(),
        creds("g", "1")
    );
    assert_eq!(
        find_credentials_in(&files, "none.example", "a").unwrap(),
        None
    );
    let err = find_credentials_in(&[f(dir.path().join("gone.json"), true)], "r.example", "a")
        .unwrap_err();
    assert!(matches!(err, RegConfError::AuthFileMissing { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Usage);
}

#[test]
fn reads_ca_certs_from_first_existing_dir() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    write(&b.join("127.0.0.1:5443"), "2.crt", "two");
    write(&b.join("127.0.0.1:5443"), "1.crt", "one");
    write(&b.join("127.0.0.1:5443"), "client.cert", "c");
    write(&b.join("127.0.0.1:5443"), "client.key", "k");
    write(&b.join("other:1"), "x.crt", "x");
    let bases = [a.clone(), b.clone()];
    assert_eq!(
        ca_certs_from("127.0.0.1:5443", None, &bases).unwrap(),
        [b"one".to_vec(), b"two".to_vec()]
    );
    assert!(ca_certs_from("nothing:1", None, &bases).unwrap().is_empty());
    // An existing but empty directory in an earlier base stops the search.
    std::fs::create_dir_all(a.join("other:1")).unwrap();
    assert!(ca_certs_from("other:1", None, &bases).unwrap().is_empty());

    let flag = b.join("127.0.0.1:5443");
    assert_eq!(ca_certs_from("ignored", Some(&flag), &[]).unwrap().len(), 2);
    let err = ca_certs_from("r", Some(&dir.path().join("none")), &bases).unwrap_err();
    assert!(matches!(err, RegConfError::CertDir { .. }), "{err}");
    for bad in ["", "..", "a/b"] {
        assert!(matches!(
            ca_certs_from(bad, None, &bases),
            Err(RegConfError::BadRegistryName { .. })
        ));
    }
}
