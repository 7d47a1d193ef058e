//! Shows an export's per-blob progress events: a bar redrawn in place on a
//! terminal, one plain line per finished blob otherwise (logs, pipes, CI).

use std::io::Write;

use crate::progress::Progress;

/// Width of the bar in characters.
const BAR: u64 = 24;

/// Counts of what happened to the blobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Blobs written (to the output or the registry).
    pub written: u64,
    pub written_bytes: u64,
    /// Blobs the registry had already.
    pub skipped: u64,
    /// Blobs mounted from another repository.
    pub mounted: u64,
}

pub struct ProgressView<W: Write> {
    out: W,
    tty: bool,
    /// The blob and the bar position last drawn, to redraw only on change.
    drawn: Option<(String, u64)>,
    tally: Tally,
}

impl ProgressView<std::io::Stderr> {
    /// On stderr, with bars when it is a terminal.
    pub fn stderr() -> Self {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        ProgressView::new(std::io::stderr(), tty)
    }
}

/// `sha256:0123456789ab`.
fn short(digest: &str) -> &str {
    let end = digest.find(':').map(|i| i + 13).unwrap_or(12);
    &digest[..end.min(digest.len())]
}

/// Bytes in binary units (`1.5 MiB`).
pub fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

impl<W: Write> ProgressView<W> {
    pub fn new(out: W, tty: bool) -> Self {
        ProgressView {
            out,
            tty,
            drawn: None,
            tally: Tally::default(),
        }
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    fn line(&mut self, text: &str) {
        // Display is best effort: a closed stderr must not fail the export.
        if self.tty && self.drawn.take().is_some() {
            let _ = write!(self.out, "\r\x1b[2K");
        }
        let _ = writeln!(self.out, "{text}");
    }

    pub fn event(&mut self, p: &Progress) {
        match p {
            Progress::Writing {
                digest,
                done,
                total,
            } => {
                if !self.tty || *total == 0 {
                    return;
                }
                let filled = (done * BAR / total).min(BAR);
                if self.drawn.as_ref() == Some(&(digest.clone(), filled)) {
                    return;
                }
                let bar: String = (0..BAR)
                    .map(|i| if i < filled { '#' } else { '.' })
                    .collect();
                let _ = write!(
                    self.out,
                    "\r\x1b[2K{} [{bar}] {} / {}",
                    short(digest),
                    human(*done),
                    human(*total)
                );
                let _ = self.out.flush();
                self.drawn = Some((digest.clone(), filled));
            }
            Progress::Done { digest, total } => {
                self.tally.written += 1;
                self.tally.written_bytes += total;
                self.line(&format!("{}: done ({})", short(digest), human(*total)));
            }
            Progress::Skipped { digest, total } => {
                self.tally.skipped += 1;
                self.line(&format!(
                    "{}: skipped, already present ({})",
                    short(digest),
                    human(*total)
                ));
            }
            Progress::Mounted { digest, total } => {
                self.tally.mounted += 1;
                self.line(&format!("{}: mounted ({})", short(digest), human(*total)));
            }
        }
    }

    /// Ends any bar in progress and prints the totals.
    pub fn finish(&mut self) {
        let t = self.tally;
        if t.written + t.skipped + t.mounted == 0 {
            return;
        }
        self.line(&format!(
            "blobs: {} written ({}), {} skipped, {} mounted",
            t.written,
            human(t.written_bytes),
            t.skipped,
            t.mounted
        ));
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn plain_lines_without_a_terminal() {
        let mut v = ProgressView::new(Vec::new(), false);
        v.event(&Progress::Writing {
            digest: D.into(),
            done: 10,
            total: 2048,
        });
        v.event(&Progress::Done {
            digest: D.into(),
            total: 2048,
        });
        v.event(&Progress::Skipped {
            digest: D.into(),
            total: 5,
        });
        v.finish();
        let text = String::from_utf8(v.out.clone()).unwrap();
        assert_eq!(
            text,
            "sha256:0123456789ab: done (2.0 KiB)\n\
             sha256:0123456789ab: skipped, already present (5 B)\n\
             blobs: 1 written (2.0 KiB), 1 skipped, 0 mounted\n"
        );
        assert_eq!(v.tally().skipped, 1);
    }

    #[test]
    fn bars_on_a_terminal_redraw_only_on_change() {
        let mut v = ProgressView::new(Vec::new(), true);
        for done in [0, 1, 2, 512, 1024] {
            v.event(&Progress::Writing {
                digest: D.into(),
                done,
                total: 1024,
            });
        }
        v.event(&Progress::Done {
            digest: D.into(),
            total: 1024,
        });
        let text = String::from_utf8(v.out).unwrap();
        // 0, 1 and 2 bytes of 1024 draw the same empty bar once.
        assert_eq!(text.matches("\r\x1b[2K").count(), 4);
        assert!(text.contains("[############............] 512 B / 1.0 KiB"));
        assert!(text.ends_with("\r\x1b[2Ksha256:0123456789ab: done (1.0 KiB)\n"));
    }
}
