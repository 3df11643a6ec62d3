//! The distribution of an image, from `/etc/os-release` (or `/usr/lib/os-release`, which
//! `/etc/os-release` usually links to), else `/etc/alpine-release` or
//! `/etc/redhat-release`.

use serde::Serialize;

use crate::walker::FileTree;

const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
const ALPINE_RELEASE: &str = "etc/alpine-release";
const REDHAT_RELEASE: &str = "etc/redhat-release";

pub fn wanted(path: &str) -> bool {
    OS_RELEASE.contains(&path) || path == ALPINE_RELEASE || path == REDHAT_RELEASE
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Distro {
    /// os-release `ID`: `debian`, `alpine`, `rhel`, `ubuntu`, …
    pub id: String,
    /// os-release `VERSION_ID`: `12`, `3.18.0`, `8.5`, …
    pub version_id: String,
    pub pretty_name: String,
}

impl Distro {
    /// The OSV ecosystem of the distribution's packages: `Debian:12`, `Alpine:v3.18`,
    /// `Ubuntu:22.04`, `Red Hat:8`, … `None` for a distribution without one.
    pub fn ecosystem(&self) -> Option<String> {
        let major = self.version_id.split('.').next().unwrap_or("");
        let major_minor = || {
            self.version_id
                .split('.')
                .take(2)
                .collect::<Vec<_>>()
                .join(".")
        };
        if self.version_id.is_empty() {
            return None;
        }
        Some(match self.id.as_str() {
            "debian" => format!("Debian:{major}"),
            "ubuntu" => format!("Ubuntu:{}", self.version_id),
            "alpine" => format!("Alpine:v{}", major_minor()),
            "rhel" | "centos" => format!("Red Hat:{major}"),
            "rocky" => format!("Rocky Linux:{major}"),
            "almalinux" => format!("AlmaLinux:{major}"),
            "opensuse-leap" => format!("openSUSE:Leap {}", major_minor()),
            _ => return None,
        })
    }
}

/// The distribution as the final image describes it.
pub fn detect(tree: &FileTree) -> Option<Distro> {
    if let Some(file) = OS_RELEASE.iter().find_map(|p| tree.get(p)) {
        let text = String::from_utf8_lossy(&file.data);
        let value = |key: &str| {
            text.lines()
                .filter_map(|l| l.trim().split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| unquote(v.trim()))
                .unwrap_or_default()
        };
        let id = value("ID").to_ascii_lowercase();
        if !id.is_empty() {
            return Some(Distro {
                version_id: value("VERSION_ID"),
                pretty_name: value("PRETTY_NAME"),
                id,
            });
        }
    }
    if let Some(file) = tree.get(ALPINE_RELEASE) {
        let version = String::from_utf8_lossy(&file.data).trim().to_string();
        return Some(Distro {
            id: "alpine".into(),
            pretty_name: format!("Alpine Linux {version}"),
            version_id: version,
        });
    }
    let file = tree.get(REDHAT_RELEASE)?;
    // "Red Hat Enterprise Linux release 8.5 (Ootpa)", "CentOS Linux release 7.9.2009 (Core)"
    let line = String::from_utf8_lossy(&file.data).trim().to_string();
    let (name, rest) = line.split_once(" release ")?;
    let version = rest.split_whitespace().next()?.to_string();
    let id = match name {
        n if n.starts_with("Red Hat") => "rhel",
        n if n.starts_with("CentOS") => "centos",
        n if n.starts_with("Rocky") => "rocky",
        n if n.starts_with("AlmaLinux") => "almalinux",
        n if n.starts_with("Fedora") => "fedora",
        _ => return None,
    };
    Some(Distro {
        id: id.into(),
        version_id: version,
        pretty_name: line,
    })
}

fn unquote(v: &str) -> String {
    let v = v
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v);
    v.replace("\\\"", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distro(id: &str, version: &str) -> Distro {
        Distro {
            id: id.into(),
            version_id: version.into(),
            pretty_name: String::new(),
        }
    }

    #[test]
    fn ecosystems() {
        assert_eq!(
            distro("debian", "12").ecosystem().as_deref(),
            Some("Debian:12")
        );
        assert_eq!(
            distro("alpine", "3.18.0").ecosystem().as_deref(),
            Some("Alpine:v3.18")
        );
        assert_eq!(
            distro("rhel", "8.5").ecosystem().as_deref(),
            Some("Red Hat:8")
        );
        assert_eq!(distro("debian", "").ecosystem(), None);
    }
}
