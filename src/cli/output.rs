//! Output: results on stdout (human or `--json`), progress on stderr (bars on
//! a terminal, JSON lines with `--json`, nothing otherwise).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::GlobalOpts;
use crate::progress::{Event, Progress};

/// `s` with its control characters made visible, for printing text an image
/// (or a container's log) supplied in human output: C0 controls and DEL as
/// `\x1b`, C1 controls as `\u{9b}`; everything else as is. A terminal
/// escape sequence in a label then cannot move the cursor, retitle the
/// window or hide what follows. `--json` output needs none of this (serde
/// escapes controls).
pub fn escape_controls(s: &str) -> String {
    escape(s, false)
}

/// [`escape_controls`] for the text of a file shown whole (`--display`):
/// its newlines and tabs are kept, so it still reads as the file.
pub fn escape_controls_in_text(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, keep_lines: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let n = u32::from(c);
        if keep_lines && (c == '\n' || c == '\t') {
            out.push(c);
            continue;
        }
        if n < 0x20 || n == 0x7f {
            let _ = write!(out, "\\x{n:02x}");
        } else if (0x80..0xa0).contains(&n) {
            let _ = write!(out, "\\u{{{n:x}}}");
        } else {
            out.push(c);
        }
    }
    out
}

/// The `health:` line of `berth status`: where the check stands and the
/// last check's time, exit and output (escaped, on one line).
pub fn health_line(h: &crate::deploy::status::Health) -> String {
    use crate::runtime::health::Command;
    let cmd = match &h.check.command {
        Command::Exec(argv) => argv.join(" "),
        Command::Shell(s) => s.clone(),
    };
    let every = humantime::format_duration(h.check.interval);
    let Some(state) = &h.state else {
        return format!(
            "health: not running (checks `{}` every {every})",
            escape_controls(&cmd)
        );
    };
    let mut line = format!("health: {}", health_word(Some(state.status)));
    if state.failing_streak > 0 {
        line.push_str(&format!(" ({} failing)", state.failing_streak));
    }
    match &state.last {
        None => line.push_str(&format!("; no check yet (every {every})")),
        Some(c) => {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.at);
            let exit = c.exit.map_or("none".to_string(), |e| e.to_string());
            let output = escape_controls(c.output.trim_end());
            line.push_str(&format!(
                "; last check {}, exit {exit}: {output}",
                humantime::format_rfc3339_seconds(at)
            ));
        }
    }
    line
}

/// The HEALTH cell of `berth list`: `starting`, `healthy`, `unhealthy`, or
/// `-` without a running check.
pub fn health_word(s: Option<crate::runtime::health::Status>) -> &'static str {
    use crate::runtime::health::Status;
    match s {
        None => "-",
        Some(Status::Starting) => "starting",
        Some(Status::Healthy) => "healthy",
        Some(Status::Unhealthy) => "unhealthy",
    }
}

/// Prints one line to stdout.
pub fn println(s: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")
}

/// Prints a value as one pretty JSON document on stdout.
pub fn print_json<T: Serialize>(v: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v)?;
    writeln!(out)?;
    Ok(())
}

enum Mode {
    Quiet,
    JsonLines,
    /// Not a terminal (a log, the journal): one line per milestone, no bars.
    Lines,
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
        total: Mutex<Option<ProgressBar>>,
    },
}

/// Renders progress events the way the user asked for.
pub struct Renderer {
    mode: Mode,
}

impl Renderer {
    /// Picks the mode from the global options and whether stderr is a terminal.
    pub fn new(g: &GlobalOpts) -> Renderer {
        let mode = if g.json {
            Mode::JsonLines
        } else if g.quiet {
            Mode::Quiet
        } else if !std::io::stderr().is_terminal() {
            Mode::Lines
        } else {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
                total: Mutex::new(None),
            }
        };
        Renderer { mode }
    }

    /// Clears bars once the operation is over.
    pub fn finish(&self) {
        if let Mode::Bars { multi, .. } = &self.mode {
            let _ = multi.clear();
        }
    }
}

/// The line a milestone gets where there are no bars; `None` for byte counts and the
/// like.
fn milestone(event: &Event) -> Option<String> {
    match event {
        Event::Resolved {
            reference,
            layers,
            to_fetch,
            ..
        } if *to_fetch > 0 => Some(format!(
            "pulling {reference}: {layers} layers, {to_fetch} bytes to fetch"
        )),
        Event::Retry {
            what,
            attempt,
            reason,
        } => Some(format!(
            "retrying {} (attempt {attempt}): {reason}",
            short(what)
        )),
        Event::Entry { name, action, step } => Some(format!("{action:<12} {name:<20} {step}")),
        _ => None,
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

impl Progress for Renderer {
    fn event(&self, event: Event) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Lines => {
                if let Some(line) = milestone(&event) {
                    eprintln!("{line}");
                }
            }
            Mode::JsonLines => {
                if matches!(event, Event::LayerBytes { .. }) {
                    return;
                }
                if let Ok(line) = serde_json::to_string(&event) {
                    eprintln!("{line}");
                }
            }
            Mode::Bars { multi, bars, total } => {
                let Ok(mut bars) = bars.lock() else { return };
                let style = ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec}",
                )
                .map(|s| s.progress_chars("=> "))
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                match event {
                    Event::Resolved { to_fetch, .. } if to_fetch > 0 => {
                        let bar = multi.add(ProgressBar::new(to_fetch));
                        bar.set_style(style);
                        bar.set_prefix("total");
                        if let Ok(mut t) = total.lock() {
                            *t = Some(bar);
                        }
                    }
                    Event::LayerStarted { digest, size } => {
                        let bar = multi.insert(0, ProgressBar::new(size));
                        bar.set_style(style);
                        bar.set_prefix(short(&digest).to_string());
                        bars.insert(digest, bar);
                    }
                    Event::LayerBytes { digest, bytes } => {
                        if let Some(b) = bars.get(&digest) {
                            let delta = bytes.saturating_sub(b.position());
                            b.set_position(bytes);
                            if let Ok(t) = total.lock() {
                                if let Some(t) = t.as_ref() {
                                    t.inc(delta);
                                }
                            }
                        }
                    }
                    Event::LayerStored { digest, .. } => {
                        if let Some(b) = bars.remove(&digest) {
                            b.finish_and_clear();
                            let _ = multi.println(format!("{:>12} stored", short(&digest)));
                        }
                    }
                    e @ (Event::Retry { .. } | Event::Entry { .. }) => {
                        if let Some(line) = milestone(&e) {
                            let _ = multi.println(line);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_is_one_escaped_line() {
        use crate::deploy::status::Health;
        use crate::runtime::health::{Check, Command, Config, State, Status};
        let check = Config {
            command: Command::Shell("curl -f x".into()),
            interval: std::time::Duration::from_secs(30),
            timeout: std::time::Duration::from_secs(5),
            start_period: std::time::Duration::ZERO,
            retries: 3,
        };
        let mut h = Health { check, state: None };
        assert_eq!(
            health_line(&h),
            "health: not running (checks `curl -f x` every 30s)"
        );
        h.state = Some(State {
            status: Status::Healthy,
            failing_streak: 1,
            checks: 4,
            last: Some(Check {
                at: 1_796_360_000,
                exit: Some(7),
                output: "no\n\x1b[2Jroute\n".into(),
            }),
        });
        assert_eq!(
            health_line(&h),
            "health: healthy (1 failing); last check 2026-12-04T04:53:20Z, exit 7: \
             no\\x0a\\x1b[2Jroute"
        );
        assert_eq!(health_word(None), "-");
        assert_eq!(health_word(Some(Status::Unhealthy)), "unhealthy");
    }

    #[test]
    fn controls_are_escaped_and_the_rest_kept() {
        let table = [
            ("plain text", "plain text"),
            ("\x1b]0;owned\x07", "\\x1b]0;owned\\x07"),
            ("\x1b[2J", "\\x1b[2J"),
            ("a\nb\tc\rd", "a\\x0ab\\x09c\\x0dd"),
            ("del\x7f", "del\\x7f"),
            ("csi\u{9b}31m", "csi\\u{9b}31m"),
            ("caf\u{e9} \u{2192} \\ \"q\"", "caf\u{e9} \u{2192} \\ \"q\""),
        ];
        for (input, want) in table {
            assert_eq!(escape_controls(input), want, "{input:?}");
        }
    }

    #[test]
    fn file_text_keeps_its_lines_and_tabs() {
        assert_eq!(
            escape_controls_in_text("[Unit]\n\tx=\x1b[2J\r\n"),
            "[Unit]\n\tx=\\x1b[2J\\x0d\n"
        );
    }
}
