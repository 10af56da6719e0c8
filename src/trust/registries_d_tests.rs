#![allow(clippy::disallowed_methods)] // the tests' own temp dirs
use super::*;

fn conf(files: &[&str]) -> Result<RegistriesD, RegistriesDError> {
    let files: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, t)| (PathBuf::from(format!("{i}.yaml")), t.to_string()))
        .collect();
    RegistriesD::parse(&files)
}

#[test]
fn scopes_go_from_specific_to_wildcards() {
    assert_eq!(
        docker_scopes("reg.example.com:5000/ns/app:1"),
        [
            "reg.example.com:5000/ns/app",
            "reg.example.com:5000/ns",
            "reg.example.com:5000",
            "*.example.com",
            "*.com"
        ]
    );
    assert_eq!(
        docker_scopes("localhost:5000/app@sha256:ab"),
        ["localhost:5000/app", "localhost:5000"]
    );
}

#[test]
fn most_specific_scope_wins() {
    let c = conf(&[
        "default-docker:\n  lookaside: file:///default\n",
        "docker:\n  r.example:\n    lookaside: https://host.example/sigs\n  r.example/ns:\n    sigstore: file:///ns\n    use-sigstore-attachments: true\n  '*.example':\n    lookaside: file:///wild\n",
    ])
    .unwrap();
    let ns = c.signature_config("r.example/ns/app:1");
    assert_eq!(ns.lookaside, "file:///ns");
    assert!(ns.use_sigstore_attachments);
    let host = c.signature_config("r.example/other:1");
    assert_eq!(host.lookaside, "https://host.example/sigs");
    assert!(!host.use_sigstore_attachments);
    assert_eq!(
        c.signature_config("q.example/a:1").lookaside,
        "file:///wild"
    );
    assert_eq!(
        c.signature_config("elsewhere.org/a:1").lookaside,
        "file:///default"
    );
    assert_eq!(
        conf(&[]).unwrap().signature_config("r.example/a:1"),
        SignatureConfig {
            lookaside: DEFAULT_LOOKASIDE.into(),
            use_sigstore_attachments: false
        }
    );
}

fn lookaside(c: &RegistriesD) -> String {
    c.signature_config("r.example/a:1").lookaside
}

fn write(dir: &Path, name: &str, lookaside: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(name),
        format!("default-docker:\n  lookaside: {lookaside}\n"),
    )
    .unwrap();
}

#[test]
fn a_root_reads_its_own_directory_and_only_yaml_files() {
    let root = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let sys = root.path().join(SYSTEM_DIR);
    let user = home.path().join(USER_DIR);
    write(&sys, "a.yaml", "file:///sys");
    write(&user, "a.yaml", "file:///user");
    std::fs::write(sys.join("ignored.yml"), "not: [yaml").unwrap();
    let at = Location::Default {
        home: Some(home.path().to_path_buf()),
    };
    let with_root = RegistriesD::load(&Root::open(root.path()).unwrap(), &at).unwrap();
    assert_eq!(lookaside(&with_root), "file:///sys");
    // Without --root, the user's directory wins.
    let slash = Root::open(Path::new("/")).unwrap();
    assert_eq!(
        lookaside(&RegistriesD::load(&slash, &at).unwrap()),
        "file:///user"
    );
    // --registries.d DIR is read on the host, whatever the root.
    let given = Location::Given(user.clone());
    let conf = RegistriesD::load(&Root::open(root.path()).unwrap(), &given).unwrap();
    assert_eq!(lookaside(&conf), "file:///user");
}

#[test]
fn links_in_a_root_never_reach_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host/etc/containers/registries.d");
    write(&host, "host.yaml", "file:///host");
    let root = tmp.path().join("root");
    let root_dir = || Root::open(&root).unwrap();
    let at = Location::Default { home: None };
    let etc = root.join("etc/containers");
    std::fs::create_dir_all(&etc).unwrap();
    // The directory is an absolute link to the host's: it resolves to
    // the root's own /host/..., which holds nothing.
    std::os::unix::fs::symlink(&host, etc.join("registries.d")).unwrap();
    let conf = RegistriesD::load(&root_dir(), &at).unwrap();
    assert_eq!(lookaside(&conf), DEFAULT_LOOKASIDE);
    // A `../` link stops at the root.
    std::fs::remove_file(etc.join("registries.d")).unwrap();
    std::os::unix::fs::symlink(
        "../../../host/etc/containers/registries.d",
        etc.join("registries.d"),
    )
    .unwrap();
    let conf = RegistriesD::load(&root_dir(), &at).unwrap();
    assert_eq!(lookaside(&conf), DEFAULT_LOOKASIDE);
    // The same target planted inside the root is what is read.
    write(
        &root.join(host.strip_prefix("/").unwrap()),
        "in-root.yaml",
        "file:///inside",
    );
    let conf = RegistriesD::load(&root_dir(), &at).unwrap();
    assert_eq!(lookaside(&conf), DEFAULT_LOOKASIDE);
    std::fs::remove_file(etc.join("registries.d")).unwrap();
    std::os::unix::fs::symlink(&host, etc.join("registries.d")).unwrap();
    let conf = RegistriesD::load(&root_dir(), &at).unwrap();
    assert_eq!(lookaside(&conf), "file:///inside");
    // A file linked out of the directory, absolute or `../`.
    let sys = root.join(SYSTEM_DIR);
    std::fs::remove_file(&sys).unwrap();
    std::fs::create_dir_all(&sys).unwrap();
    std::os::unix::fs::symlink(host.join("host.yaml"), sys.join("a.yaml")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../host/etc/containers/registries.d/host.yaml",
        sys.join("b.yaml"),
    )
    .unwrap();
    let conf = RegistriesD::load(&root_dir(), &at).unwrap();
    assert_eq!(lookaside(&conf), DEFAULT_LOOKASIDE);
    // Bounded, and named when refused.
    std::fs::write(sys.join("c.yaml"), vec![b'#'; MAX_FILE_SIZE as usize + 1]).unwrap();
    let e = RegistriesD::load(&root_dir(), &at).unwrap_err().to_string();
    assert!(e.contains("/etc/containers/registries.d/c.yaml"), "{e}");
    assert!(e.contains("larger than"), "{e}");
}

#[test]
fn a_scope_in_two_files_is_an_error() {
    let e = conf(&[
        "docker:\n  r.example:\n    lookaside: file:///a\n",
        "docker:\n  r.example:\n    lookaside: file:///b\n",
    ])
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("r.example is also configured in 0.yaml"),
        "{e}"
    );
    assert!(conf(&["default-docker: {}\n", "default-docker: {}\n"]).is_err());
    assert!(conf(&["docker: [1, 2]\n"]).is_err());
    assert!(conf(&["", "# only a comment\n"]).is_ok());
}
