//! Version ordering, one module per scheme. Every comparator is a total order over all
//! strings (versions a scheme rejects sort before valid ones), so that range checks on
//! hostile or sloppy data never panic and stay consistent; property tests check it.

pub mod apk;
pub mod dpkg;
pub mod maven;
pub mod pep440;
pub mod rpm;
pub mod semver;

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Dpkg,
    Apk,
    Rpm,
    Pep440,
    Semver,
    Maven,
}

impl Scheme {
    /// The scheme of an OSV ecosystem (`Debian:12`, `PyPI`, …), if known.
    pub fn for_ecosystem(ecosystem: &str) -> Option<Scheme> {
        let base = ecosystem.split(':').next().unwrap_or(ecosystem);
        Some(match base {
            "Debian" | "Ubuntu" => Scheme::Dpkg,
            "Alpine" | "Chainguard" | "Wolfi" => Scheme::Apk,
            "Red Hat" | "Rocky Linux" | "AlmaLinux" | "openSUSE" | "SUSE" | "Mageia"
            | "openEuler" => Scheme::Rpm,
            "PyPI" => Scheme::Pep440,
            "npm" | "crates.io" | "Go" | "NuGet" | "Hex" | "Pub" | "RubyGems" => Scheme::Semver,
            "Maven" => Scheme::Maven,
            _ => return None,
        })
    }

    pub fn compare(self, a: &str, b: &str) -> Ordering {
        match self {
            Scheme::Dpkg => dpkg::compare(a, b),
            Scheme::Apk => apk::compare(a, b),
            Scheme::Rpm => rpm::compare(a, b),
            Scheme::Pep440 => pep440::compare(a, b),
            Scheme::Semver => semver::compare(a, b),
            Scheme::Maven => maven::compare(a, b),
        }
    }
}

/// Compares two runs of ASCII digits as numbers, however long (no overflow).
pub(crate) fn cmp_digits(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::Scheme;
    use proptest::prelude::*;

    const SCHEMES: [Scheme; 6] = [
        Scheme::Dpkg,
        Scheme::Apk,
        Scheme::Rpm,
        Scheme::Pep440,
        Scheme::Semver,
        Scheme::Maven,
    ];

    /// Version-like strings: the characters every scheme gives meaning to, plus words
    /// that are qualifiers somewhere, so that the interesting paths are taken often.
    fn version() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[0-9]{1,3}",
            "[.\\-_+~^:!]",
            Just("alpha".to_string()),
            Just("rc".to_string()),
            Just("p".to_string()),
            Just("post".to_string()),
            Just("dev".to_string()),
            Just("-r".to_string()),
            Just("sp".to_string()),
            "[a-z]",
        ];
        prop::collection::vec(piece, 1..8).prop_map(|p| p.concat())
    }

    /// Triples the property test once found out of order.
    #[test]
    fn transitive_regressions() {
        for triple in [
            ["p", "-alpha0", "-"],
            // Maven's zero against padding and qualifiers, and against sub-lists.
            ["p", ".alpha0", "-"],
            [".alpha0", "-1", ""],
            ["2.0.alpha1", "2", "2-1"],
        ] {
            for s in SCHEMES {
                let mut v = triple;
                v.sort_by(|x, y| s.compare(x, y));
                assert!(s.compare(v[0], v[2]).is_le(), "{s:?} {v:?}");
                assert!(
                    s.compare(v[0], v[1]).is_le() && s.compare(v[1], v[2]).is_le(),
                    "{s:?} {v:?}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn antisymmetric_and_reflexive(a in version(), b in version()) {
            for s in SCHEMES {
                prop_assert_eq!(s.compare(&a, &b), s.compare(&b, &a).reverse(), "{:?} {} {}", s, a, b);
                prop_assert!(s.compare(&a, &a).is_eq());
            }
        }

        #[test]
        fn transitive(a in version(), b in version(), c in version()) {
            for s in SCHEMES {
                let mut v = [a.as_str(), b.as_str(), c.as_str()];
                v.sort_by(|x, y| s.compare(x, y));
                prop_assert!(s.compare(v[0], v[2]).is_le(), "{:?} {:?}", s, v);
                // Equality is an equivalence: whatever equals one equals the other.
                if s.compare(v[0], v[1]).is_eq() && s.compare(v[1], v[2]).is_eq() {
                    prop_assert!(s.compare(v[0], v[2]).is_eq(), "{:?} {:?}", s, v);
                }
            }
        }
    }
}
