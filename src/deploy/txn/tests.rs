//! The transaction undone, committed and recovered from its journal, in
//! temporary roots (some with links planted where the journal goes).

mod journal {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]
    use super::super::*;

    fn listing(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                let meta = p.symlink_metadata().unwrap();
                let what = if meta.is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else if meta.is_dir() {
                    stack.push(p.clone());
                    "dir".into()
                } else {
                    std::fs::read_to_string(&p).unwrap()
                };
                out.push((rel, what));
            }
        }
        out.sort();
        out
    }

    /// The steps, on the inside path `/d` below the transaction's root.
    fn scenario(t: &mut Transaction) {
        let dir = Path::new("/d");
        t.create_dir_all(&dir.join("a/b")).unwrap();
        t.put_file(&dir.join("a/b/f"), b"x", 0o644).unwrap();
        t.put_file(&dir.join("old"), b"first", 0o600).unwrap();
        // Replaced twice in one transaction (a group update's registry).
        t.put_file(&dir.join("old"), b"new", 0o600).unwrap();
        t.remove(&dir.join("gone")).unwrap();
        t.replace_symlink(&dir.join("link"), Path::new("b"))
            .unwrap();
        t.rename(&dir.join("moved"), &dir.join("a/moved")).unwrap();
    }

    fn setup(dir: &Path) {
        std::fs::write(dir.join("old"), "keep").unwrap();
        std::fs::write(dir.join("gone"), "here").unwrap();
        std::os::unix::fs::symlink("a", dir.join("link")).unwrap();
        std::fs::write(dir.join("moved"), "m").unwrap();
    }

    #[test]
    fn drop_undoes_and_commit_keeps() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        setup(&dir);
        let before = listing(&dir);
        let open = || Root::open(root.path()).unwrap();
        {
            let mut t = Transaction::new(open());
            scenario(&mut t);
            assert_ne!(listing(&dir), before);
        }
        assert_eq!(listing(&dir), before);
        let mut t = Transaction::new(open());
        scenario(&mut t);
        t.commit();
        let after = listing(&dir);
        assert!(after.contains(&("old".into(), "new".into())));
        assert!(after.contains(&("link".into(), "-> b".into())));
        assert!(!after
            .iter()
            .any(|(p, _)| p == "gone" || p.ends_with(REMOVED_SUFFIX)));
    }

    #[test]
    fn services_restarted_before_a_kill_are_handed_back() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        setup(&dir);
        let before = listing(&dir);
        let layout = Layout::system(root.path());
        // Killed in a's soak: its link was switched and it was restarted.
        let mut t = Transaction::journaled(&layout).unwrap();
        t.replace_symlink(Path::new("/d/link"), Path::new("b"))
            .unwrap();
        t.note_restart("a.service").unwrap();
        std::mem::forget(t);
        assert_eq!(
            recover_journal(&layout).unwrap(),
            Recovered::Undone(vec!["a.service".into()])
        );
        assert_eq!(listing(&dir), before);
        // Killed after the undo, while putting the services back: the
        // files are not undone twice, the services are still handed back.
        let mut t = Transaction::journaled(&layout).unwrap();
        scenario(&mut t);
        t.note_restart("a.service").unwrap();
        t.note_restart("b.service").unwrap();
        let aborted = t.abort();
        assert_eq!(listing(&dir), before);
        std::fs::write(dir.join("old"), "edited since").unwrap();
        std::mem::forget(aborted);
        assert_eq!(
            recover_journal(&layout).unwrap(),
            Recovered::Undone(vec!["a.service".into(), "b.service".into()])
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("old")).unwrap(),
            "edited since"
        );
        // Dropped normally, the journal goes.
        let mut t = Transaction::journaled(&layout).unwrap();
        t.note_restart("a.service").unwrap();
        drop(t.abort());
        assert_eq!(recover_journal(&layout).unwrap(), Recovered::Nothing);
    }

    #[test]
    fn journal_of_a_killed_transaction_is_undone_or_finished() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        setup(&dir);
        let before = listing(&dir);
        // Killed mid-way: the process dies without running Drop.
        let mut t = Transaction::journaled(&Layout::system(root.path())).unwrap();
        scenario(&mut t);
        std::mem::forget(t);
        assert_ne!(listing(&dir), before);
        assert_eq!(
            recover_journal(&Layout::system(root.path())).unwrap(),
            Recovered::Undone(vec![])
        );
        assert_eq!(listing(&dir), before);
        assert_eq!(
            recover_journal(&Layout::system(root.path())).unwrap(),
            Recovered::Nothing
        );
        // Killed after the commit line: finished, not undone.
        let mut t = Transaction::journaled(&Layout::system(root.path())).unwrap();
        scenario(&mut t);
        t.log(Step::Commit).unwrap();
        std::mem::forget(t);
        assert_eq!(
            recover_journal(&Layout::system(root.path())).unwrap(),
            Recovered::Finished
        );
        let after = listing(&dir);
        assert!(after.contains(&("old".into(), "new".into())));
        assert!(!after.iter().any(|(p, _)| p.ends_with(REMOVED_SUFFIX)));
    }

    #[test]
    fn a_step_journaled_but_never_done_undoes_cleanly() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        setup(&dir);
        let before = listing(&dir);
        let mut t = Transaction::journaled(&Layout::system(root.path())).unwrap();
        t.put_file(Path::new("/d/old"), b"new", 0o644).unwrap();
        // Journaled, then killed before the rename.
        t.log(Step::Removed {
            path: PathBuf::from("/d/gone"),
            staged: PathBuf::from(format!("/d/gone{REMOVED_SUFFIX}")),
        })
        .unwrap();
        std::mem::forget(t);
        recover_journal(&Layout::system(root.path())).unwrap();
        assert_eq!(listing(&dir), before);
    }
}

mod rooted {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]
    use super::super::*;

    #[test]
    fn put_file_leaves_an_unrelated_tmp_and_undo_restores_all() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/f"), "old").unwrap();
        std::fs::write(root.path().join("etc/f.tmp"), "operator's").unwrap();
        std::fs::create_dir_all(root.path().join("etc/g.tmp/tree")).unwrap();
        {
            let mut t = Transaction::new(Root::open(root.path()).unwrap());
            t.put_file(Path::new("/etc/f"), b"new", 0o644).unwrap();
            t.put_file(Path::new("/etc/g"), b"new", 0o644).unwrap();
            assert_eq!(
                std::fs::read_to_string(root.path().join("etc/f")).unwrap(),
                "new"
            );
        }
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/f")).unwrap(),
            "old"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/f.tmp")).unwrap(),
            "operator's"
        );
        assert!(root.path().join("etc/g.tmp/tree").is_dir());
        assert!(!root.path().join("etc/g").exists());
    }

    #[test]
    fn a_journal_of_host_paths_from_an_older_berth_is_undone() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        std::fs::create_dir_all(root.join("var/lib/berth")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/new"), "made").unwrap();
        std::fs::write(root.join("etc/old.~berth-removed~"), "kept").unwrap();
        let journal = format!(
            "{}\n{}\n",
            serde_json::json!({"step": "removed", "path": root.join("etc/old"),
                "staged": root.join("etc/old.~berth-removed~")}),
            serde_json::json!({"step": "created", "path": root.join("etc/new")}),
        );
        std::fs::write(root.join("var/lib/berth/journal"), journal).unwrap();
        let layout = Layout::system(&root);
        assert_eq!(recover_journal(&layout).unwrap(), Recovered::Undone(vec![]));
        assert!(!root.join("etc/new").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("etc/old")).unwrap(),
            "kept"
        );
    }

    #[test]
    fn a_journal_symlink_is_refused_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        std::fs::create_dir_all(root.join("var/lib/berth")).unwrap();
        let victim = tmp.path().join("x/ld.so.preload");
        std::os::unix::fs::symlink(&victim, root.join("var/lib/berth/journal")).unwrap();
        let e = Transaction::journaled(&Layout::system(&root)).unwrap_err();
        assert!(e.to_string().contains("/var/lib/berth/journal"), "{e}");
        assert!(!victim.exists());
        assert!(!tmp.path().join("x").exists());
    }
}
