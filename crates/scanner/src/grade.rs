//! The health grade of an image, after Red Hat's Container Health Index: it depends on
//! how long the oldest unapplied fix for a Critical or Important (High) vulnerability
//! has been published.
//!
//! | grade | Critical fix published | Important fix published |
//! |---|---|---|
//! | A | no unapplied fix | no unapplied fix |
//! | B | ≤ 7 days ago | ≤ 30 days ago |
//! | C | ≤ 30 days | ≤ 90 days |
//! | D | ≤ 90 days | ≤ 12 months |
//! | E | ≤ 12 months | — |
//! | F | older | older |

use serde::Serialize;

use crate::date::Date;
use crate::matcher::Finding;
use crate::severity::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Grade {
    A,
    B,
    C,
    D,
    E,
    F,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub current_grade: Grade,
    /// The first day on which the grade will be worse if nothing is fixed.
    pub next_drop_date: Option<Date>,
}

/// (maximum age in days, grade) steps, per severity; older than the last step is F.
fn steps(severity: Severity) -> &'static [(i64, Grade)] {
    match severity {
        Severity::Critical => &[
            (7, Grade::B),
            (30, Grade::C),
            (90, Grade::D),
            (365, Grade::E),
        ],
        Severity::High => &[(30, Grade::B), (90, Grade::C), (365, Grade::D)],
        _ => &[],
    }
}

fn grade_at(steps: &[(i64, Grade)], age: i64) -> Grade {
    steps
        .iter()
        .find(|(days, _)| age <= *days)
        .map_or(Grade::F, |(_, g)| *g)
}

/// Grades findings on `today`. Only fixable Critical and High findings count; a fix with
/// no known date counts as published today.
pub fn health(findings: &[Finding], today: Date) -> Health {
    let counted: Vec<(&[(i64, Grade)], Date)> = findings
        .iter()
        .filter(|f| f.fixed_version.is_some())
        .map(|f| (steps(f.severity), f.fix_published.unwrap_or(today)))
        .filter(|(steps, _)| !steps.is_empty())
        .collect();
    let current = counted
        .iter()
        .map(|(steps, fixed)| grade_at(steps, today.days_since(*fixed).max(0)))
        .max()
        .unwrap_or(Grade::A);
    // Each finding pushes the grade below `current` the day after its last step that is
    // no worse than `current`.
    let next_drop_date = counted
        .iter()
        .filter_map(|(steps, fixed)| {
            let last_ok = steps
                .iter()
                .filter(|(_, g)| *g <= current)
                .map(|(d, _)| *d)
                .max()?;
            Some(fixed.add_days(last_ok + 1))
        })
        .filter(|d| *d > today)
        .min();
    Health {
        current_grade: current,
        next_drop_date,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::PackageType;

    fn finding(severity: Severity, fixed: &str) -> Finding {
        Finding {
            id: "X".into(),
            aliases: vec![],
            severity,
            summary: None,
            kind: PackageType::Deb,
            package: "p".into(),
            version: "1".into(),
            fixed_version: Some("2".into()),
            fix_published: Date::parse(fixed),
            layer: "l".into(),
            links: vec![],
        }
    }

    fn day(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    #[test]
    fn thresholds() {
        let today = day("2024-12-31");
        let grade = |f: Vec<Finding>| health(&f, today);
        assert_eq!(grade(vec![]).current_grade, Grade::A);
        let critical = |age: i64| finding(Severity::Critical, &today.add_days(-age).to_string());
        let high = |age: i64| finding(Severity::High, &today.add_days(-age).to_string());
        for (age, g) in [
            (0, Grade::B),
            (7, Grade::B),
            (8, Grade::C),
            (30, Grade::C),
            (31, Grade::D),
            (90, Grade::D),
            (91, Grade::E),
            (365, Grade::E),
            (366, Grade::F),
        ] {
            assert_eq!(
                grade(vec![critical(age)]).current_grade,
                g,
                "critical {age}"
            );
        }
        for (age, g) in [
            (30, Grade::B),
            (31, Grade::C),
            (90, Grade::C),
            (91, Grade::D),
            (365, Grade::D),
            (366, Grade::F),
        ] {
            assert_eq!(grade(vec![high(age)]).current_grade, g, "high {age}");
        }
        // Medium findings and findings without a fix do not count.
        let mut unfixed = critical(400);
        unfixed.fixed_version = None;
        assert_eq!(
            grade(vec![finding(Severity::Medium, "2000-01-01"), unfixed]).current_grade,
            Grade::A
        );
    }

    #[test]
    fn next_drop_date() {
        let today = day("2024-06-01");
        // High fixed 20 days ago: B until day 30, C from day 31.
        let h = health(&[finding(Severity::High, "2024-05-12")], today);
        assert_eq!(
            (h.current_grade, h.next_drop_date),
            (Grade::B, Some(day("2024-06-12")))
        );
        // A critical at C (10 days old) and a high at B: the critical drops first, to D
        // on its day 31.
        let h = health(
            &[
                finding(Severity::Critical, "2024-05-22"),
                finding(Severity::High, "2024-05-31"),
            ],
            today,
        );
        assert_eq!(
            (h.current_grade, h.next_drop_date),
            (Grade::C, Some(day("2024-06-22")))
        );
        // F cannot drop further.
        let h = health(&[finding(Severity::High, "2020-01-01")], today);
        assert_eq!((h.current_grade, h.next_drop_date), (Grade::F, None));
        // No date: counted as fixed today.
        let mut undated = finding(Severity::Critical, "");
        undated.fix_published = None;
        let h = health(&[undated], today);
        assert_eq!(
            (h.current_grade, h.next_drop_date),
            (Grade::B, Some(day("2024-06-09")))
        );
    }
}
