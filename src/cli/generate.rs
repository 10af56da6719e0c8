//! `berth generate` (hidden): man pages and shell completions from the clap
//! definitions, so they can never disagree with `--help`. `make install`
//! runs it with the binary it just built.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, CommandFactory, Subcommand, ValueEnum};

use super::{GlobalOpts, Opt};

/// Generate man pages or shell completions (used by `make install`).
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// What to generate.
    #[command(subcommand)]
    pub what: What,
}

/// What `berth generate` writes.
#[derive(Debug, Subcommand)]
pub enum What {
    /// Write one man page per verb (berth.1, berth-pull.1, berth-install.1, …) into DIR.
    Man {
        /// The directory to write the pages to (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the completion script for SHELL on stdout.
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },
}

/// The shells berth ships completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash (bash-completion).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// Runs `berth generate`.
pub fn run(_g: &GlobalOpts, a: &GenerateArgs) -> anyhow::Result<()> {
    match &a.what {
        What::Man { dir } => write_man_pages(dir),
        What::Completions { shell } => {
            let script = completions(*shell);
            let mut out = std::io::stdout().lock();
            out.write_all(&script)
                .and_then(|()| out.flush())
                .context("writing the completion script to stdout")
        }
    }
}

/// Renders the man pages: `(file name, roff)` for berth and every visible
/// verb, nested verbs included (`berth-images-inspect.1`).
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    fn walk(cmd: &clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
        let man = clap_mangen::Man::new(cmd.clone()).manual("berth manual");
        let mut page = Vec::new();
        man.render(&mut page)
            .with_context(|| format!("rendering the man page of {}", cmd.get_name()))?;
        out.push((man.get_filename(), page));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, out)?;
        }
        Ok(())
    }
    let mut cmd = Opt::command().disable_help_subcommand(true);
    // Gives each verb its display name (berth-pull) and its global flags.
    cmd.build();
    let mut pages = Vec::new();
    walk(&cmd, &mut pages)?;
    Ok(pages)
}

fn write_man_pages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, page) in man_pages()? {
        let path = dir.join(&name);
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!("wrote {}", path.display());
    }
    Ok(())
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = without_hidden_verbs(&Opt::command());
    let mut script = Vec::new();
    // Into memory first: clap_complete panics when its writer fails.
    clap_complete::generate(shell, &mut cmd, "berth", &mut script);
    script
}

/// berth's command without its hidden verbs, which clap_complete would
/// otherwise offer.
fn without_hidden_verbs(full: &clap::Command) -> clap::Command {
    let visible = full.get_subcommands().filter(|s| !s.is_hide_set()).cloned();
    let mut cmd = clap::Command::new("berth")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(visible);
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(pages: &[(String, Vec<u8>)], name: &str) -> String {
        let (_, roff) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} among {:?}", names(pages)));
        // roff escapes '-' as '\-'.
        String::from_utf8_lossy(roff).replace('\\', "")
    }

    fn names(pages: &[(String, Vec<u8>)]) -> Vec<&str> {
        pages.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn one_man_page_per_verb() {
        let pages = man_pages().unwrap();
        let names = names(&pages);
        for want in [
            "berth.1",
            "berth-pull.1",
            "berth-install.1",
            "berth-run.1",
            "berth-run-once.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(names.contains(&"berth-images-inspect.1"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("generate")), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
    }

    #[test]
    fn install_page_documents_set_and_global_flags() {
        let pages = man_pages().unwrap();
        let install = page(&pages, "berth-install.1");
        assert!(install.contains("--set"), "{install}");
        assert!(install.contains("--root"), "{install}");
        assert!(install.contains("berth-install"), "{install}");
        let once = page(&pages, "berth-run-once.1");
        assert!(once.contains("tmpfiles.template"), "{once}");
        let top = page(&pages, "berth.1");
        assert!(top.contains("install"), "{top}");
    }

    #[test]
    fn completions_name_the_verbs() {
        let bash = String::from_utf8(completions(Shell::Bash)).unwrap();
        assert!(bash.contains("install"), "{bash}");
        assert!(bash.contains("--set"));
        assert!(!bash.contains("generate"), "hidden verb offered");
        for shell in [Shell::Zsh, Shell::Fish] {
            let s = String::from_utf8(completions(shell)).unwrap();
            assert!(s.contains("install") && s.contains("berth"), "{shell:?}");
            assert!(!s.contains("generate"), "{shell:?} offers the hidden verb");
        }
    }
}
