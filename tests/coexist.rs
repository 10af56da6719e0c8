//! Containers that ship the same host paths, offline into temporary roots:
//! six images shaped like atomic's Kubernetes family (the apiserver,
//! controller-manager, scheduler, proxy and kubelet all ship
//! `/etc/kubernetes/config`; the apiserver and kubeadm both ship
//! `/usr/local/bin/kubectl`; kubelet and kubeadm ship empty directories),
//! the operator's own files, hostfs symlinks and empty directories, and the
//! failpoint + SIGKILL harness over installs and uninstalls of shared paths.
//!
//! Needs root; without it each test prints one line and returns (or fails
//! under `BERTH_TEST_REQUIRE_ALL=1`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use common::deploy::{fail_and_kill_each, layout, read, snapshot, Case};
use common::oci::{Compression, Image, Layer};
use common::{require_root, Berth};

/// `/etc/kubernetes/config` as the Kubernetes packages ship it.
const KUBE_CONFIG: &str = "KUBE_LOGTOSTDERR=\"--logtostderr=true\"\nKUBE_LOG_LEVEL=\"--v=0\"\nKUBE_MASTER=\"--master=http://127.0.0.1:8080\"\n";

const KUBECTL: &str = "#!/bin/sh\necho kubectl\n";

const SERVICE: &str = "\
[Unit]
Description=$NAME ($COMPONENT)

[Service]
ExecStart=$EXEC_START
ExecStop=$EXEC_STOP
Restart=on-failure
WorkingDirectory=$DESTDIR

[Install]
WantedBy=multi-user.target
";

/// One image of the family: `component`'s binary, service and config
/// templates, and its hostfs: `files` (path, content, mode), `empty` dirs.
struct Kube {
    layer: Layer,
    dirs: BTreeSet<String>,
}

impl Kube {
    fn new(component: &str, mounts: &str) -> Kube {
        let config = format!(
            r#"{{
  "ociVersion": "1.0.2",
  "process": {{"user": {{"uid": 0, "gid": 0}}, "args": ["/usr/bin/{component}", "--name=$NAME"], "cwd": "/"}},
  "root": {{"path": "rootfs", "readonly": true}},
  "mounts": [{mounts}]
}}
"#
        );
        let manifest =
            format!(r#"{{"version": "1.0", "defaultValues": {{"COMPONENT": "{component}"}}}}"#);
        let k = Kube {
            layer: Layer::new(),
            dirs: BTreeSet::new(),
        };
        k.file(&format!("usr/bin/{component}"), "#!/bin/sh\n", 0o755)
            .file("exports/service.template", SERVICE, 0o644)
            .file("exports/config.json.template", &config, 0o644)
            .file("exports/manifest.json", &manifest, 0o644)
    }

    fn dir(mut self, path: &str, mode: u32) -> Kube {
        let mut cur = String::new();
        for c in path.split('/') {
            cur = if cur.is_empty() {
                c.to_string()
            } else {
                format!("{cur}/{c}")
            };
            if self.dirs.insert(cur.clone()) {
                let m = if cur == path { mode } else { 0o755 };
                self.layer = self.layer.dir(&cur, m);
            }
        }
        self
    }

    fn file(self, path: &str, content: &str, mode: u32) -> Kube {
        let mut k = match path.rsplit_once('/') {
            Some((parent, _)) => self.dir(parent, 0o755),
            None => self,
        };
        k.layer = k.layer.file(path, content, mode);
        k
    }

    fn hostfs(self, path: &str, content: &str, mode: u32) -> Kube {
        self.file(&format!("exports/hostfs/{path}"), content, mode)
    }

    fn empty(self, path: &str, mode: u32) -> Kube {
        self.dir(&format!("exports/hostfs/{path}"), mode)
    }

    fn link(mut self, path: &str, target: &str) -> Kube {
        let full = format!("exports/hostfs/{path}");
        if let Some((parent, _)) = full.rsplit_once('/') {
            self = self.dir(parent, 0o755);
        }
        self.layer = self.layer.symlink(&full, target);
        self
    }

    fn image(self) -> Image {
        Image::new(vec![self.layer.build(Compression::Gzip)]).cmd(&["/bin/sh"])
    }
}

fn component_file(name: &str) -> String {
    format!(
        "# {name} settings\n{}_ARGS=\"\"\n",
        name.to_uppercase().replace('-', "_")
    )
}

/// The six images, by container name, in install order.
fn family() -> Vec<(&'static str, Image)> {
    let shared = |component: &str, file: &str| {
        Kube::new(component, "")
            .hostfs("etc/kubernetes/config", KUBE_CONFIG, 0o644)
            .hostfs(
                &format!("etc/kubernetes/{file}"),
                &component_file(file),
                0o644,
            )
    };
    vec![
        (
            "kubernetes-apiserver",
            shared("kube-apiserver", "apiserver")
                .hostfs("usr/local/bin/kubectl", KUBECTL, 0o755)
                .image(),
        ),
        (
            "kubernetes-controller-manager",
            shared("kube-controller-manager", "controller-manager").image(),
        ),
        ("kubernetes-scheduler", shared("kube-scheduler", "scheduler").image()),
        ("kubernetes-proxy", shared("kube-proxy", "proxy").image()),
        (
            "kubernetes-kubelet",
            Kube::new(
                "kubelet",
                r#"{"destination": "/etc/cni/net.d", "type": "bind", "source": "/etc/cni/net.d", "options": ["rbind", "rw"]}"#,
            )
            .hostfs("etc/kubernetes/config", KUBE_CONFIG, 0o644)
            .hostfs("etc/kubernetes/kubelet", &component_file("kubelet"), 0o644)
            .empty("etc/cni/net.d", 0o755)
            .image(),
        ),
        (
            "kubeadm",
            Kube::new("kubeadm", "")
                .hostfs("usr/local/bin/kubectl", KUBECTL, 0o755)
                .hostfs("usr/local/bin/kubeadm", "#!/bin/sh\necho kubeadm\n", 0o755)
                .hostfs("etc/kubernetes/kubeadm-env", "KUBELET_KUBECONFIG_ARGS=\"\"\n", 0o644)
                .empty("etc/cni", 0o755)
                .empty("etc/kubernetes/pki", 0o700)
                .image(),
        ),
    ]
}

fn mode(root: &Path, p: &str) -> u32 {
    std::fs::symlink_metadata(root.join(p))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// A root with the images pulled and berth's state directories made (an
/// install and uninstall of nothing shared), and its snapshot.
fn prepared(
    images: &[(&str, Image)],
) -> (Berth, String, tempfile::TempDir, BTreeMap<String, String>) {
    let (src, keep) = layout(images);
    let b = Berth::new();
    let root = b.root();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    for (tag, _) in images {
        b.pull(&format!("{src}:{tag}"), &[]).ok();
    }
    std::fs::create_dir_all(root.join("var/lib/berth/containers")).unwrap();
    let before = snapshot(&root);
    (b, src, keep, before)
}

#[test]
fn the_kubernetes_family_installs_side_by_side_and_leaves_nothing() {
    if !require_root() {
        return;
    }
    let images = family();
    let (b, src, _keep, before) = prepared(&images);
    let root = b.root();
    let names: Vec<&str> = images.iter().map(|(n, _)| *n).collect();
    // The plan says what will happen to each hostfs path.
    b.run(&[
        "install",
        "--name",
        names[0],
        &format!("{src}:{}", names[0]),
    ])
    .ok();
    let plan = b.json(&[
        "install",
        "--display",
        "--name",
        "kubernetes-scheduler",
        &format!("{src}:kubernetes-scheduler"),
    ]);
    let actions: BTreeMap<&str, (&str, &str)> = plan["hostfs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["path"].as_str().unwrap(),
                (
                    h["action"].as_str().unwrap(),
                    h["message"].as_str().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        actions["/etc/kubernetes/config"],
        (
            "shared",
            "/etc/kubernetes/config is kubernetes-apiserver's, shared with kubernetes-scheduler"
        )
    );
    assert_eq!(actions["/etc/kubernetes/scheduler"].0, "write");
    for name in &names[1..] {
        let r = b.run(&["install", "--name", name, &format!("{src}:{name}")]);
        r.ok();
        if *name != "kubeadm" {
            assert!(
                r.stdout.contains(&format!(
                    "Shared /etc/kubernetes/config is kubernetes-apiserver's, shared with {name}"
                )),
                "{name}: {}",
                r.stdout
            );
        }
    }
    // Each container's own files, and the shared ones written once.
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    for f in [
        "apiserver",
        "controller-manager",
        "scheduler",
        "proxy",
        "kubelet",
    ] {
        assert_eq!(
            read(&root, &format!("etc/kubernetes/{f}")),
            component_file(f)
        );
    }
    assert_eq!(read(&root, "usr/local/bin/kubectl"), KUBECTL);
    assert_eq!(mode(&root, "usr/local/bin/kubectl"), 0o755);
    assert_eq!(
        read(&root, "usr/local/bin/kubeadm"),
        "#!/bin/sh\necho kubeadm\n"
    );
    assert!(root.join("etc/cni/net.d").is_dir());
    assert_eq!(mode(&root, "etc/kubernetes/pki"), 0o700);
    for (name, component) in names.iter().zip([
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kube-proxy",
        "kubelet",
        "kubeadm",
    ]) {
        let unit = read(&root, &format!("etc/systemd/system/{name}.service"));
        assert!(
            unit.contains(&format!("\nDescription={name} ({component})\n")),
            "{unit}"
        );
        assert!(
            unit.contains(&format!(
                "\nWorkingDirectory=/var/lib/berth/containers/{name}.0\n"
            )),
            "{unit}"
        );
        let config: serde_json::Value = serde_json::from_str(&read(
            &root,
            &format!("var/lib/berth/containers/{name}.0/config.json"),
        ))
        .unwrap();
        assert_eq!(
            config["process"]["args"],
            serde_json::json!([format!("/usr/bin/{component}"), format!("--name={name}")])
        );
    }
    // status: the shared file is the owner's, the empty directory is there.
    let states = |name: &str| -> BTreeMap<String, String> {
        b.json(&["status", name])["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let api = states("kubernetes-apiserver");
    assert_eq!(api["/etc/kubernetes/config"], "ok");
    let kubelet = states("kubernetes-kubelet");
    assert_eq!(kubelet["/etc/kubernetes/config"], "shared");
    assert_eq!(kubelet["/etc/cni/net.d"], "ok");
    let registry: serde_json::Value =
        serde_json::from_str(&read(&root, "var/lib/berth/hostfs.json")).unwrap();
    let config = &registry["paths"]["/etc/kubernetes/config"];
    assert_eq!(config["owner"], "kubernetes-apiserver");
    assert_eq!(config["users"].as_array().unwrap().len(), 5);
    assert_eq!(
        registry["paths"]["/usr/local/bin/kubectl"]["users"],
        serde_json::json!(["kubernetes-apiserver", "kubeadm"])
    );
    // Reverse order: the root is as before.
    for name in names.iter().rev() {
        b.run(&["uninstall", name]).ok();
    }
    assert_eq!(snapshot(&root), before);
}

#[test]
fn shared_paths_stay_until_their_last_user_goes() {
    if !require_root() {
        return;
    }
    let images = family();
    let (b, src, _keep, before) = prepared(&images);
    let root = b.root();
    for name in [
        "kubernetes-apiserver",
        "kubernetes-scheduler",
        "kubeadm",
        "kubernetes-kubelet",
    ] {
        b.run(&["install", "--name", name, &format!("{src}:{name}")])
            .ok();
    }
    // The owner goes first: its own files go, the shared ones stay and pass on.
    b.run(&["uninstall", "kubernetes-apiserver"]).ok().stderr_has(&[
        "/etc/kubernetes/config stays: it is kubernetes-scheduler's now, shared with kubernetes-kubelet",
        "/usr/local/bin/kubectl stays: it is kubeadm's now",
    ]);
    assert!(!root.join("etc/kubernetes/apiserver").exists());
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    assert_eq!(read(&root, "usr/local/bin/kubectl"), KUBECTL);
    b.run(&["uninstall", "kubeadm"]).ok();
    assert!(!root.join("usr/local/bin/kubectl").exists());
    assert!(!root.join("usr/local").exists());
    assert!(!root.join("etc/kubernetes/pki").exists());
    // kubelet still uses /etc/cni (the parent of its net.d).
    assert!(root.join("etc/cni/net.d").is_dir());
    b.run(&["uninstall", "kubernetes-scheduler"]).ok();
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    b.run(&["uninstall", "kubernetes-kubelet"]).ok();
    assert_eq!(snapshot(&root), before);
}

#[test]
fn the_operators_files_and_directories_are_left_alone() {
    if !require_root() {
        return;
    }
    let images = family();
    let (b, src, _keep, _) = prepared(&images);
    let root = b.root();
    std::fs::create_dir_all(root.join("etc/kubernetes")).unwrap();
    std::fs::write(root.join("etc/kubernetes/config"), "mine\n").unwrap();
    std::fs::set_permissions(
        root.join("etc/kubernetes/config"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("etc/cni/net.d")).unwrap();
    std::fs::set_permissions(
        root.join("etc/cni/net.d"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    let ino = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().ino();
    let (file_ino, dir_ino) = (ino("etc/kubernetes/config"), ino("etc/cni/net.d"));
    let before = snapshot(&root);
    let same = || {
        assert_eq!(read(&root, "etc/kubernetes/config"), "mine\n");
        assert_eq!(mode(&root, "etc/kubernetes/config"), 0o600);
        assert_eq!(ino("etc/kubernetes/config"), file_ino);
        assert_eq!(mode(&root, "etc/cni/net.d"), 0o750);
        assert_eq!(ino("etc/cni/net.d"), dir_ino);
    };
    b.run(&["install", "--name", "kubelet", &format!("{src}:kubernetes-kubelet")])
        .ok()
        .stderr_has(&[
            "kept /etc/kubernetes/config: exists and is not berth's; left in place (the image's version is not installed)",
            "kept /etc/cni/net.d: exists and is not berth's",
        ]);
    same();
    assert_eq!(
        read(&root, "etc/kubernetes/kubelet"),
        component_file("kubelet")
    );
    let info: serde_json::Value =
        serde_json::from_str(&read(&root, "var/lib/berth/containers/kubelet.0/info.json")).unwrap();
    let recorded: Vec<&str> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(recorded.contains(&"/etc/kubernetes/kubelet"));
    assert!(
        !recorded.contains(&"/etc/kubernetes/config"),
        "{recorded:?}"
    );
    assert!(!recorded.contains(&"/etc/cni/net.d"), "{recorded:?}");
    // A second container sharing the path does not take it over either.
    b.run(&[
        "install",
        "--name",
        "proxy",
        &format!("{src}:kubernetes-proxy"),
    ])
    .ok()
    .stderr_has(&["kept /etc/kubernetes/config: exists and is not berth's"]);
    b.run(&["uninstall", "proxy"]).ok();
    b.run(&["uninstall", "kubelet"]).ok();
    same();
    assert_eq!(snapshot(&root), before);
}

#[test]
fn hostfs_symlinks_and_empty_directories_come_and_go() {
    if !require_root() {
        return;
    }
    let flannel = Kube::new("flanneld", "")
        .empty("etc/flanneld", 0o755)
        .empty("var/lib/shared", 0o777)
        .hostfs("usr/local/bin/flanneld-ctl", "#!/bin/sh\n", 0o755)
        .link("usr/local/bin/fctl", "flanneld-ctl")
        .link("etc/flannel-hosts", "/etc/hosts")
        .image();
    // A file renamed below a symlink of the same image (OSTree itself
    // cannot hold a file below a symlink: the store makes it a directory).
    let mut through = Kube::new("evil", "")
        .link("etc/a", "/tmp")
        .hostfs("x/b", "x\n", 0o644);
    through.layer = through.layer.file(
        "exports/manifest.json",
        r#"{"renameFiles": {"/x": "/etc/a"}}"#,
        0o644,
    );
    let through = through.image();
    let below = Kube::new("below", "")
        .hostfs("etc/flannel-hosts/x", "x\n", 0o644)
        .image();
    let images = vec![("flannel", flannel), ("through", through), ("below", below)];
    let (b, src, _keep, before) = prepared(&images);
    let root = b.root();
    b.run(&["install", "--name", "flannel", &format!("{src}:flannel")])
        .ok();
    assert!(root.join("etc/flanneld").is_dir());
    assert_eq!(mode(&root, "etc/flanneld"), 0o755);
    // Group and world write are dropped from an empty directory's mode.
    assert_eq!(mode(&root, "var/lib/shared"), 0o755);
    assert_eq!(
        std::fs::read_link(root.join("usr/local/bin/fctl")).unwrap(),
        Path::new("flanneld-ctl")
    );
    // The target is the image's business: kept verbatim, never followed.
    assert_eq!(
        std::fs::read_link(root.join("etc/flannel-hosts")).unwrap(),
        Path::new("/etc/hosts")
    );
    let installed = snapshot(&root);
    // A file through a symlink of the same image: refused, naming it.
    b.run(&["install", "--name", "through", &format!("{src}:through")])
        .code(2)
        .stderr_has(&[
            "/exports/hostfs/x/b",
            "/etc/a/b",
            "symlink (/exports/hostfs/etc/a)",
        ]);
    // Or through one another container installed.
    b.run(&["install", "--name", "below", &format!("{src}:below")])
        .code(2)
        .stderr_has(&["/etc/flannel-hosts/x", "symlink /etc/flannel-hosts"]);
    assert_eq!(snapshot(&root), installed);
    // The operator puts a file into the empty directory: it stays, reported.
    std::fs::write(root.join("etc/flanneld/options"), "--iface=eth0\n").unwrap();
    b.run(&["uninstall", "flannel"]).ok().stderr_has(&[
        "kept /etc/flanneld: directory made by berth holds files that are not berth's",
    ]);
    assert_eq!(read(&root, "etc/flanneld/options"), "--iface=eth0\n");
    assert!(!root.join("usr/local").exists());
    assert!(!root.join("etc/flannel-hosts").exists());
    assert!(!root.join("var/lib/shared").exists());
    std::fs::remove_dir_all(root.join("etc/flanneld")).unwrap();
    assert_eq!(snapshot(&root), before);
}

#[test]
fn failure_or_kill_around_a_shared_path_leaves_the_previous_state() {
    if !require_root() {
        return;
    }
    let images: Vec<(&str, Image)> = family()
        .into_iter()
        .filter(|(n, _)| ["kubernetes-apiserver", "kubernetes-scheduler", "kubeadm"].contains(n))
        .collect();
    let (mut b, src, _keep, empty) = prepared(&images);
    let root = b.root();
    let api = format!("{src}:kubernetes-apiserver");
    let sched = format!("{src}:kubernetes-scheduler");
    let adm = format!("{src}:kubeadm");
    let install_api = ["install", "--name", "api", api.as_str()];
    let install_sched = ["install", "--name", "sched", sched.as_str()];
    let install_adm = ["install", "--name", "adm", adm.as_str()];
    let uninstall_api = ["uninstall", "api"];
    let uninstall_sched = ["uninstall", "sched"];
    let uninstall_adm = ["uninstall", "adm"];
    let mut cases: Vec<Case> = Vec::new();
    for step in ["checkout", "stage", "files", "commit", "reload"] {
        // A later user of a shared path, and one sharing a directory and kubectl.
        cases.push((step, &install_sched, vec![&install_api]));
        cases.push((step, &install_adm, vec![&install_api, &install_sched]));
    }
    for step in ["uninstall-files", "uninstall-staged", "uninstall-commit"] {
        // The owner (ownership would pass), and the last user.
        cases.push((
            step,
            &uninstall_api,
            vec![&install_api, &install_sched, &install_adm],
        ));
        cases.push((step, &uninstall_sched, vec![&install_sched]));
    }
    let uninstall_all = [&uninstall_adm, &uninstall_sched, &uninstall_api];
    fail_and_kill_each(&mut b, &cases, &empty, |b, _| {
        for u in uninstall_all {
            if root
                .join("var/lib/berth/containers")
                .join(u[1])
                .is_symlink()
            {
                b.run(u).ok();
            }
        }
    });
}

#[test]
fn updates_and_rollbacks_of_a_shared_path_follow_its_owner() {
    if !require_root() {
        return;
    }
    let v2 = format!("{KUBE_CONFIG}KUBE_ALLOW_PRIV=\"--allow-privileged=false\"\n");
    let with = |component: &str, file: &str, config: &str| {
        Kube::new(component, "")
            .hostfs("etc/kubernetes/config", config, 0o644)
            .hostfs(
                &format!("etc/kubernetes/{file}"),
                &component_file(file),
                0o644,
            )
            .image()
    };
    let images = vec![
        ("api1", with("kube-apiserver", "apiserver", KUBE_CONFIG)),
        ("api2", with("kube-apiserver", "apiserver", &v2)),
        ("sched1", with("kube-scheduler", "scheduler", KUBE_CONFIG)),
        ("sched2", with("kube-scheduler", "scheduler", &v2)),
    ];
    let (b, src, _keep, before) = prepared(&images);
    let root = b.root();
    b.run(&["install", "--name", "api", &format!("{src}:api1")])
        .ok();
    b.run(&["install", "--name", "sched", &format!("{src}:sched1")])
        .ok();
    // A user's update does not rewrite the owner's file.
    b.run(&["update", "sched", "--image", &format!("{src}:sched2")])
        .ok()
        .stderr_has(&[
            "kept /etc/kubernetes/config is api's, shared with sched; sched's version differs",
        ]);
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    // The owner's update does: the file is its own.
    b.run(&["update", "api", "--image", &format!("{src}:api2")])
        .ok();
    assert_eq!(read(&root, "etc/kubernetes/config"), v2);
    b.run(&["rollback", "api"]).ok();
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    b.run(&["rollback", "sched"]).ok();
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    // Still shared: the owner's uninstall leaves it to the other user.
    b.run(&["uninstall", "api"])
        .ok()
        .stderr_has(&["/etc/kubernetes/config stays: it is sched's now"]);
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    b.run(&["uninstall", "sched"]).ok();
    assert_eq!(snapshot(&root), before);
}

#[test]
fn installs_from_before_the_registry_are_adopted() {
    if !require_root() {
        return;
    }
    let images = family();
    let (b, src, _keep, before) = prepared(&images);
    let root = b.root();
    b.run(&[
        "install",
        "--name",
        "kubernetes-apiserver",
        &format!("{src}:kubernetes-apiserver"),
    ])
    .ok();
    // As an older berth left it: the files are recorded in info.json only.
    std::fs::remove_file(root.join("var/lib/berth/hostfs.json")).unwrap();
    let r = b.run(&[
        "install",
        "--name",
        "kubernetes-proxy",
        &format!("{src}:kubernetes-proxy"),
    ]);
    r.ok();
    assert!(
        r.stdout.contains(
            "/etc/kubernetes/config is kubernetes-apiserver's, shared with kubernetes-proxy"
        ),
        "{}",
        r.stdout
    );
    b.run(&["uninstall", "kubernetes-apiserver"]).ok();
    assert_eq!(read(&root, "etc/kubernetes/config"), KUBE_CONFIG);
    b.run(&["uninstall", "kubernetes-proxy"]).ok();
    assert_eq!(snapshot(&root), before);
}
