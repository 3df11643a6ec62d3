//! Severity normalized across sources: a distribution's or database's own word for it
//! when the record has one, else the CVSS v3 base score computed from the vector.

use serde::Serialize;

use crate::osv::{Affected, Record, SeverityScore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    Unknown,
    Negligible,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Vendor words: Debian's `unimportant`, Red Hat's `Important`, GitHub's `MODERATE`, …
    pub fn from_word(word: &str) -> Option<Severity> {
        Some(match word.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" => Severity::Low,
            "negligible" | "unimportant" | "none" => Severity::Negligible,
            _ => return None,
        })
    }

    /// CVSS qualitative rating of a base score.
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Negligible,
        }
    }

    /// The severity of a record for one of its affected entries: the entry's own word
    /// (`ecosystem_specific` / `database_specific.severity`, as Debian, Ubuntu and GitHub
    /// write it), then the record's, then a CVSS v3 vector.
    pub fn of(record: &Record, affected: &Affected) -> Severity {
        let word = |v: &Option<serde_json::Value>| {
            v.as_ref()
                .and_then(|v| v.get("severity"))
                .and_then(|s| s.as_str())
                .and_then(Severity::from_word)
        };
        word(&affected.ecosystem_specific)
            .or_else(|| word(&affected.database_specific))
            .or_else(|| word(&record.database_specific))
            .or_else(|| cvss(&affected.severity))
            .or_else(|| cvss(&record.severity))
            .unwrap_or(Severity::Unknown)
    }
}

fn cvss(scores: &[SeverityScore]) -> Option<Severity> {
    scores
        .iter()
        .filter(|s| s.kind == "CVSS_V3")
        .find_map(|s| cvss3_base_score(&s.score))
        .map(Severity::from_score)
}

/// The CVSS v3.0/v3.1 base score of a vector such as
/// `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H` (9.8), per the specification's
/// formulas; `None` if a base metric is missing or invalid.
pub fn cvss3_base_score(vector: &str) -> Option<f64> {
    let mut metrics = vector.split('/');
    if !metrics.next()?.starts_with("CVSS:3") {
        return None;
    }
    let mut get = std::collections::HashMap::new();
    for m in metrics {
        let (k, v) = m.split_once(':')?;
        get.insert(k, v);
    }
    let changed = match *get.get("S")? {
        "U" => false,
        "C" => true,
        _ => return None,
    };
    let av = match *get.get("AV")? {
        "N" => 0.85,
        "A" => 0.62,
        "L" => 0.55,
        "P" => 0.2,
        _ => return None,
    };
    let ac = match *get.get("AC")? {
        "L" => 0.77,
        "H" => 0.44,
        _ => return None,
    };
    let pr = match (*get.get("PR")?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let ui = match *get.get("UI")? {
        "N" => 0.85,
        "R" => 0.62,
        _ => return None,
    };
    let cia = |k: &str| match *get.get(k)? {
        "H" => Some(0.56),
        "L" => Some(0.22),
        "N" => Some(0.0),
        _ => None,
    };
    let iss = 1.0 - (1.0 - cia("C")?) * (1.0 - cia("I")?) * (1.0 - cia("A")?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Some(0.0);
    }
    let base = if changed {
        1.08 * (impact + exploitability)
    } else {
        impact + exploitability
    };
    Some(round_up(base.min(10.0)))
}

/// CVSS v3.1's Roundup: the smallest one-decimal number not below the input, computed
/// on integers so that floating-point noise (4.000000000001) does not round up.
fn round_up(x: f64) -> f64 {
    let int = (x * 100_000.0).round() as i64;
    if int % 10_000 == 0 {
        int as f64 / 100_000.0
    } else {
        ((int / 10_000) + 1) as f64 / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss3_scores_from_the_specification_examples() {
        let cases = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H", 5.9),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 6.4),
        ];
        for (v, want) in cases {
            assert_eq!(cvss3_base_score(v), Some(want), "{v}");
        }
        assert_eq!(cvss3_base_score("CVSS:3.1/AV:N"), None);
        assert_eq!(cvss3_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P"), None);
        assert_eq!(Severity::from_score(9.8), Severity::Critical);
        assert_eq!(Severity::from_word("MODERATE"), Some(Severity::Medium));
        assert_eq!(
            Severity::from_word("unimportant"),
            Some(Severity::Negligible)
        );
    }
}
