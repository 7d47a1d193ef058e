//! The README's conformance headline ("of N fixtures (C constructed, D recorded ...), E
//! archives are byte-identical, M are identical modulo compression ..., K give BuildKit's
//! error text and R its response map"), parsed into numbers, so that tests/conformance.rs
//! can demand exactly the counts it computes and the headline cannot drift.

use serde_json::Value;

/// Fixture counts by kind (tests/conformance/FORMAT.md).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub total: usize,
    pub constructed: usize,
    /// Recorded from a running buildkitd (`tests/conformance/buildkit-daemon`).
    pub recorded: usize,
    pub exact: usize,
    pub modulo_compression: usize,
    pub error: usize,
    pub response: usize,
}

impl Counts {
    /// Counts one fixture by its `expect` object.
    pub fn add(&mut self, expect: &Value, recorded: bool) {
        self.total += 1;
        if recorded {
            self.recorded += 1;
        } else {
            self.constructed += 1;
        }
        let kind = if expect["error"].is_string() {
            &mut self.error
        } else if !expect["tar"].is_string() {
            &mut self.response
        } else if expect["match"] == "modulo-compression" {
            &mut self.modulo_compression
        } else {
            &mut self.exact
        };
        *kind += 1;
    }

    /// One line for the test's tally.
    pub fn describe(&self) -> String {
        format!(
            "{} fixtures ({} constructed, {} recorded): {} byte-identical, {} modulo compression, \
             {} error texts, {} response-only",
            self.total,
            self.constructed,
            self.recorded,
            self.exact,
            self.modulo_compression,
            self.error,
            self.response
        )
    }
}

/// The counts the README's headline states. Each phrase must occur exactly once, with a
/// number right before it.
pub fn readme_counts(readme: &str) -> Result<Counts, String> {
    let text = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let number_before = |phrase: &str| -> Result<usize, String> {
        let hits = text.matches(phrase).count();
        if hits != 1 {
            return Err(format!("README.md says {phrase:?} {hits} times, not once"));
        }
        let at = text.find(phrase).unwrap_or(0);
        let word = text[..at].rsplit(' ').next().unwrap_or("");
        word.trim_start_matches('(')
            .parse()
            .map_err(|_| format!("README.md has {word:?}, not a number, before {phrase:?}"))
    };
    Ok(Counts {
        total: number_before(" fixtures (")?,
        constructed: number_before(" constructed, ")?,
        recorded: number_before(" recorded from a running buildkitd")?,
        exact: number_before(" archives are byte-identical")?,
        modulo_compression: number_before(" are identical modulo compression")?,
        error: number_before(" give BuildKit's error text")?,
        response: number_before(" its response map")?,
    })
}
