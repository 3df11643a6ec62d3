//! Matching an inventory against OSV records: a package is affected when its version is
//! in an `introduced`–`fixed` range (or up to `last_affected`), or in the record's
//! explicit version list, for the package's ecosystem (`Debian:12`, `PyPI`, …).

use std::cmp::Ordering;
use std::collections::HashSet;

use serde::Serialize;

use crate::Inventory;
use crate::date::Date;
use crate::osv::{Database, Event, Range, Record};
use crate::packages::{Package, PackageType};
use crate::severity::Severity;
use crate::version::Scheme;

/// One vulnerability affecting one installed package.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub id: String,
    pub aliases: Vec<String>,
    pub severity: Severity,
    pub summary: Option<String>,
    #[serde(rename = "type")]
    pub kind: PackageType,
    /// The installed package's name (the advisory may name its source package).
    pub package: String,
    pub version: String,
    /// The first version that fixes it, when one is known ("fix available").
    pub fixed_version: Option<String>,
    /// The day the fix was published, from the record's `published` date (see
    /// [`fix_date`]).
    pub fix_published: Option<Date>,
    /// Digest of the layer that introduced the package.
    pub layer: String,
    pub links: Vec<String>,
}

/// The ecosystem, name and version under which advisories know a package. OS packages
/// are known by their source package (Debian source, Alpine origin) in the
/// distribution's release; they match nothing without a detected distribution.
fn advisory_identity<'a>(
    p: &'a Package,
    distro_ecosystem: Option<&str>,
) -> Option<(String, &'a str, &'a str)> {
    let distro = |families: &[&str]| {
        distro_ecosystem
            .filter(|e| families.iter().any(|f| e.split(':').next() == Some(f)))
            .map(str::to_string)
    };
    Some(match p.kind {
        PackageType::Deb => (
            distro(&["Debian", "Ubuntu"])?,
            &p.source_name,
            &p.source_version,
        ),
        PackageType::Apk => (distro(&["Alpine"])?, &p.source_name, &p.version),
        PackageType::Rpm => (
            distro(&["Red Hat", "Rocky Linux", "AlmaLinux", "openSUSE"])?,
            &p.name,
            &p.version,
        ),
        PackageType::Python => ("PyPI".into(), &p.name, &p.version),
        PackageType::Npm => ("npm".into(), &p.name, &p.version),
        // Go advisories write versions without the `v` of module versions.
        PackageType::Go => (
            "Go".into(),
            &p.name,
            p.version.strip_prefix('v').unwrap_or(&p.version),
        ),
        PackageType::Rust => ("crates.io".into(), &p.name, &p.version),
        PackageType::Java => ("Maven".into(), &p.name, &p.version),
    })
}

/// Every (vulnerability, package) pair, sorted by severity (worst first), then id.
pub fn match_inventory(inventory: &Inventory, db: &Database) -> Vec<Finding> {
    let distro_ecosystem = inventory.distro.as_ref().and_then(|d| d.ecosystem());
    let mut seen = HashSet::new();
    let mut findings = Vec::new();
    for p in &inventory.packages {
        let Some((ecosystem, name, version)) = advisory_identity(p, distro_ecosystem.as_deref())
        else {
            continue;
        };
        let scheme = Scheme::for_ecosystem(&ecosystem);
        for (record, affected) in db.affecting(&ecosystem, name) {
            let Some(fixed) = affects(scheme, version, &affected.ranges, &affected.versions) else {
                continue;
            };
            if !seen.insert((record.id.clone(), p.kind, p.name.clone(), p.version.clone())) {
                continue;
            }
            findings.push(Finding {
                id: record.id.clone(),
                aliases: record.aliases.clone(),
                severity: Severity::of(record, affected),
                summary: record.summary.clone(),
                kind: p.kind,
                package: p.name.clone(),
                version: p.version.clone(),
                fixed_version: fixed,
                fix_published: fix_date(record),
                layer: p.layer.clone(),
                links: links(record),
            });
        }
    }
    findings.sort_by(|a, b| (b.severity, &a.id, &a.package).cmp(&(a.severity, &b.id, &b.package)));
    findings
}

/// The record's reference URLs, each once.
fn links(record: &Record) -> Vec<String> {
    let mut seen = HashSet::new();
    record
        .references
        .iter()
        .filter(|r| seen.insert(r.url.as_str()))
        .map(|r| r.url.clone())
        .collect()
}

/// When the fix became available. OSV has no field for it: `published` is used, which
/// for distribution advisories (a DSA, an RHSA) is the day the fixed packages were
/// released, and for language advisories usually the disclosure that came with the fixed
/// release; `modified` stands in when there is no `published`. `None` when the record
/// has neither (Alpine secdb conversions): the grade then counts the fix as published
/// on the day of the scan.
pub fn fix_date(record: &Record) -> Option<Date> {
    record
        .published
        .as_deref()
        .or(record.modified.as_deref())
        .and_then(Date::parse)
}

/// `Some(fixed version)` when `version` is affected, the fixed version being the first
/// fix above it (`None` inside the `Some` when no fix is known).
pub fn affects(
    scheme: Option<Scheme>,
    version: &str,
    ranges: &[Range],
    versions: &[String],
) -> Option<Option<String>> {
    let mut fix: Option<Option<String>> = None;
    for range in ranges {
        let scheme = match range.kind.as_str() {
            "SEMVER" => Scheme::Semver,
            "ECOSYSTEM" => match scheme {
                Some(s) => s,
                None => continue,
            },
            _ => continue, // GIT ranges name commits, not versions
        };
        if let Some(fixed) = in_range(scheme, version, &range.events) {
            fix = Some(match (fix.flatten(), fixed) {
                (Some(a), Some(b)) => Some(if scheme.compare(&a, &b).is_le() { a } else { b }),
                (a, b) => a.or(b),
            });
        }
    }
    if fix.is_none() {
        let listed = versions
            .iter()
            .any(|v| v == version || scheme.is_some_and(|s| s.compare(v, version).is_eq()));
        if listed {
            return Some(None);
        }
    }
    fix
}

/// The OSV evaluation of one range: events sorted by version (`introduced: "0"` first),
/// the last one at or below the version decides.
fn in_range(scheme: Scheme, version: &str, events: &[Event]) -> Option<Option<String>> {
    fn point(e: &Event) -> Option<&str> {
        e.introduced
            .as_deref()
            .or(e.fixed.as_deref())
            .or(e.last_affected.as_deref())
    }
    let mut events: Vec<&Event> = events.iter().filter(|e| point(e).is_some()).collect();
    let zero = |e: &Event| e.introduced.as_deref() == Some("0");
    events.sort_by(|a, b| match (zero(a), zero(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => scheme.compare(point(a).unwrap_or(""), point(b).unwrap_or("")),
    });
    let mut affected = false;
    for e in &events {
        if let Some(i) = &e.introduced {
            if i == "0" || scheme.compare(version, i).is_ge() {
                affected = true;
            }
        } else if let Some(f) = &e.fixed {
            if scheme.compare(version, f).is_ge() {
                affected = false;
            }
        } else if let Some(l) = &e.last_affected
            && scheme.compare(version, l).is_gt()
        {
            affected = false;
        }
    }
    affected.then(|| {
        events
            .iter()
            .filter_map(|e| e.fixed.as_deref())
            .find(|f| scheme.compare(f, version).is_gt())
            .map(str::to_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(introduced: Option<&str>, fixed: Option<&str>, last: Option<&str>) -> Event {
        Event {
            introduced: introduced.map(Into::into),
            fixed: fixed.map(Into::into),
            last_affected: last.map(Into::into),
        }
    }

    fn range(events: Vec<Event>) -> Vec<Range> {
        vec![Range {
            kind: "ECOSYSTEM".into(),
            events,
        }]
    }

    #[test]
    fn ranges_in_any_order() {
        let s = Some(Scheme::Pep440);
        // As in PYSEC-2023-192: the 2.x range is listed before the 1.x one.
        let r = range(vec![
            ev(Some("2.0.0"), None, None),
            ev(None, Some("2.0.6"), None),
            ev(Some("0"), None, None),
            ev(None, Some("1.26.17"), None),
        ]);
        assert_eq!(affects(s, "1.26.4", &r, &[]), Some(Some("1.26.17".into())));
        assert_eq!(affects(s, "2.0.1", &r, &[]), Some(Some("2.0.6".into())));
        assert_eq!(affects(s, "1.26.17", &r, &[]), None);
        assert_eq!(affects(s, "2.0.6", &r, &[]), None);
    }

    #[test]
    fn last_affected_and_versions() {
        let s = Some(Scheme::Dpkg);
        let r = range(vec![
            ev(Some("1.0"), None, None),
            ev(None, None, Some("1.5-2")),
        ]);
        assert_eq!(affects(s, "1.5-2", &r, &[]), Some(None));
        assert_eq!(affects(s, "1.5-3", &r, &[]), None);
        assert_eq!(affects(s, "0.9", &r, &[]), None);
        assert_eq!(affects(s, "0.9", &[], &["0.9".into()]), Some(None));
        // A Debian epoch: 1:1.0 is far above 2.0.
        let r = range(vec![ev(Some("0"), None, None), ev(None, Some("2.0"), None)]);
        assert_eq!(affects(s, "1:1.0", &r, &[]), None);
        // Unknown ecosystem: ranges cannot be evaluated, the list still can.
        assert_eq!(affects(None, "1", &r, &[]), None);
    }
}
