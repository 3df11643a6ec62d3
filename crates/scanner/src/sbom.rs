//! Software bills of materials of an inventory: CycloneDX 1.5 JSON and SPDX 2.3 JSON.
//! Each package carries its package URL (purl); the distribution is a component (an
//! operating system) of its own. The output depends only on the inventory and the
//! subject, apart from the document's creation time and serial number.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::date::Date;
use crate::{Distro, Inventory, Package, PackageType};

const TOOL: &str = "bulwark";
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
const CYCLONEDX_SCHEMA: &str = "http://cyclonedx.org/schema/bom-1.5.schema.json";

/// The CycloneDX 1.5 document of the image `subject` (a name or reference).
pub fn cyclonedx(inventory: &Inventory, subject: &str) -> Value {
    let mut components = Vec::new();
    let mut refs = Vec::new();
    if let Some(distro) = &inventory.distro {
        let bom_ref = os_ref(distro);
        components.push(json!({
            "bom-ref": bom_ref,
            "type": "operating-system",
            "name": distro.id,
            "version": distro.version_id,
            "description": distro.pretty_name,
        }));
        refs.push(bom_ref);
    }
    for (package, id) in with_ids(inventory) {
        let (group, name) = match (package.kind, package.name.split_once([':', '/'])) {
            (PackageType::Java, Some((group, artifact))) => (Some(group), artifact),
            (PackageType::Npm, Some((scope, name))) if scope.starts_with('@') => {
                (Some(scope), name)
            }
            _ => (None, package.name.as_str()),
        };
        let mut component = json!({
            "bom-ref": id.bom_ref,
            "type": if package.kind == PackageType::Go && package.name == "stdlib" {
                "framework"
            } else {
                "library"
            },
            "name": name,
            "version": package.version,
            "purl": id.purl,
            "properties": properties(package),
        });
        if let Some(group) = group {
            component["group"] = json!(group);
        }
        components.push(component);
        refs.push(id.bom_ref);
    }
    json!({
        "$schema": CYCLONEDX_SCHEMA,
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": now(),
            "tools": {"components": [{"type": "application", "name": TOOL, "version": TOOL_VERSION}]},
            "component": {"bom-ref": IMAGE_REF, "type": "container", "name": subject},
        },
        "components": components,
        "dependencies": [{"ref": IMAGE_REF, "dependsOn": refs}],
    })
}

/// The SPDX 2.3 document of the image `subject` (a name or reference).
pub fn spdx(inventory: &Inventory, subject: &str) -> Value {
    let mut packages = vec![json!({
        "SPDXID": IMAGE_SPDX_ID,
        "name": subject,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut contains = Vec::new();
    if let Some(distro) = &inventory.distro {
        packages.push(json!({
            "SPDXID": "SPDXRef-OperatingSystem",
            "name": distro.id,
            "versionInfo": distro.version_id,
            "description": distro.pretty_name,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
        }));
        contains.push("SPDXRef-OperatingSystem".to_string());
    }
    for (n, (package, id)) in with_ids(inventory).into_iter().enumerate() {
        let spdx_id = format!("SPDXRef-Package-{}-{n}", package.kind.as_str());
        let mut entry = json!({
            "SPDXID": spdx_id,
            "name": package.name,
            "versionInfo": package.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "sourceInfo": format!("{} in layer {}", package.path, package.layer),
            "primaryPackagePurpose": if package.kind == PackageType::Go && package.name == "stdlib" {
                "FRAMEWORK"
            } else {
                "LIBRARY"
            },
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": id.purl,
            }],
        });
        if package.source_name != package.name || package.source_version != package.version {
            entry["comment"] = json!(format!(
                "source package {} {}",
                package.source_name, package.source_version
            ));
        }
        packages.push(entry);
        contains.push(spdx_id);
    }
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": IMAGE_SPDX_ID,
    })];
    relationships.extend(contains.into_iter().map(|id| {
        json!({
            "spdxElementId": IMAGE_SPDX_ID,
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        })
    }));
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": subject,
        "documentNamespace": format!("https://bulwark.invalid/spdx/{}", uuid::Uuid::new_v4()),
        "creationInfo": {
            "created": now(),
            "creators": [format!("Tool: {TOOL}-{TOOL_VERSION}")],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

const IMAGE_REF: &str = "image";
const IMAGE_SPDX_ID: &str = "SPDXRef-Image";

fn os_ref(distro: &Distro) -> String {
    format!("os:{}@{}", distro.id, distro.version_id)
}

struct Ids {
    purl: String,
    /// Unique in the document: the purl, or with the file's path when another package
    /// has the same purl (the same jar at two places).
    bom_ref: String,
}

fn with_ids(inventory: &Inventory) -> Vec<(&Package, Ids)> {
    let mut seen = HashSet::new();
    inventory
        .packages
        .iter()
        .map(|p| {
            let purl = purl(p, inventory.distro.as_ref());
            let mut bom_ref = purl.clone();
            if !seen.insert(bom_ref.clone()) {
                bom_ref = format!("{purl}#{}", p.path);
                let mut n = 1;
                while !seen.insert(bom_ref.clone()) {
                    n += 1;
                    bom_ref = format!("{purl}#{}#{n}", p.path);
                }
            }
            (p, Ids { purl, bom_ref })
        })
        .collect()
}

fn properties(p: &Package) -> Vec<Value> {
    let mut out = vec![
        json!({"name": "bulwark:package:type", "value": p.kind.as_str()}),
        json!({"name": "bulwark:layer", "value": p.layer}),
        json!({"name": "bulwark:path", "value": p.path}),
    ];
    if p.source_name != p.name || p.source_version != p.version {
        out.push(json!({"name": "bulwark:source:name", "value": p.source_name}));
        out.push(json!({"name": "bulwark:source:version", "value": p.source_version}));
    }
    out
}

/// The package URL of `p` (github.com/package-url/purl-spec). OS packages are named in
/// the image's distribution when it is of their family (`distro=debian-12`), and carry
/// their source package as `upstream` when it differs, the way syft writes them.
pub fn purl(p: &Package, distro: Option<&Distro>) -> String {
    let own_distro = |families: &[&str]| distro.filter(|d| families.contains(&d.id.as_str()));
    let os = |default: &str, families: &[&str]| {
        let d = own_distro(families);
        let namespace = match d.map(|d| d.id.as_str()) {
            Some("rhel") => "redhat",
            Some(id) => id,
            None => default,
        };
        let mut qualifiers = Vec::new();
        if let Some(d) = d {
            qualifiers.push(("distro", format!("{}-{}", d.id, d.version_id)));
        }
        if p.source_name != p.name || p.source_version != p.version {
            qualifiers.push(("upstream", upstream(p)));
        }
        (namespace.to_string(), qualifiers)
    };
    let (kind, namespace, name, version, qualifiers) = match p.kind {
        PackageType::Deb => {
            let (ns, q) = os("debian", &["debian", "ubuntu"]);
            ("deb", Some(ns), p.name.clone(), p.version.clone(), q)
        }
        PackageType::Apk => {
            let (ns, q) = os("alpine", &["alpine", "wolfi", "chainguard"]);
            ("apk", Some(ns), p.name.clone(), p.version.clone(), q)
        }
        PackageType::Rpm => {
            let (ns, mut q) = os(
                "redhat",
                &[
                    "rhel",
                    "centos",
                    "fedora",
                    "rocky",
                    "almalinux",
                    "ol",
                    "amzn",
                    "opensuse-leap",
                    "sles",
                ],
            );
            // purl: the epoch is a qualifier, not part of the version.
            let version = match p.version.split_once(':') {
                Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => {
                    q.push(("epoch", epoch.to_string()));
                    rest.to_string()
                }
                _ => p.version.clone(),
            };
            ("rpm", Some(ns), p.name.clone(), version, q)
        }
        PackageType::Python => (
            "pypi",
            None,
            p.name.to_lowercase().replace('_', "-"),
            p.version.clone(),
            Vec::new(),
        ),
        PackageType::Npm => match p.name.split_once('/') {
            Some((scope, name)) if scope.starts_with('@') => (
                "npm",
                Some(scope.to_string()),
                name.to_string(),
                p.version.clone(),
                Vec::new(),
            ),
            _ => ("npm", None, p.name.clone(), p.version.clone(), Vec::new()),
        },
        PackageType::Go => {
            let (namespace, name) = match p.name.rsplit_once('/') {
                Some((ns, name)) => (Some(ns.to_string()), name.to_string()),
                None => (None, p.name.clone()),
            };
            ("golang", namespace, name, p.version.clone(), Vec::new())
        }
        PackageType::Rust => ("cargo", None, p.name.clone(), p.version.clone(), Vec::new()),
        PackageType::Java => match p.name.split_once(':') {
            Some((group, artifact)) => (
                "maven",
                Some(group.to_string()),
                artifact.to_string(),
                p.version.clone(),
                Vec::new(),
            ),
            None => ("maven", None, p.name.clone(), p.version.clone(), Vec::new()),
        },
    };
    let mut out = format!("pkg:{kind}/");
    if let Some(namespace) = namespace {
        let segments: Vec<String> = namespace.split('/').map(encode).collect();
        out.push_str(&segments.join("/"));
        out.push('/');
    }
    out.push_str(&encode(&name));
    if !version.is_empty() {
        out.push('@');
        out.push_str(&encode(&version));
    }
    let mut qualifiers = qualifiers;
    qualifiers.sort();
    for (i, (key, value)) in qualifiers.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        out.push_str(&encode(value));
    }
    out
}

fn upstream(p: &Package) -> String {
    if p.source_version == p.version {
        p.source_name.clone()
    } else {
        format!("{}@{}", p.source_name, p.source_version)
    }
}

/// Percent-encodes all but the characters purl leaves as they are.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The current time as RFC 3339 UTC, to the second.
fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = Date::from_ymd(1970, 1, 1)
        .add_days((secs / 86_400) as i64)
        .ymd();
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(kind: PackageType, name: &str, version: &str) -> Package {
        Package {
            kind,
            name: name.into(),
            version: version.into(),
            source_name: name.into(),
            source_version: version.into(),
            layer: "sha256:0".into(),
            path: "/x".into(),
        }
    }

    fn distro(id: &str, version_id: &str) -> Distro {
        Distro {
            id: id.into(),
            version_id: version_id.into(),
            pretty_name: String::new(),
        }
    }

    #[test]
    fn purls_per_package_type() {
        let debian = distro("debian", "12");
        let mut libc = package(PackageType::Deb, "libc6", "2.36-9+deb12u3");
        libc.source_name = "glibc".into();
        assert_eq!(
            purl(&libc, Some(&debian)),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u3?distro=debian-12&upstream=glibc"
        );
        let mut bsdutils = package(PackageType::Deb, "bsdutils", "1:2.38.1-5");
        bsdutils.source_name = "util-linux".into();
        bsdutils.source_version = "2.38.1-5".into();
        assert_eq!(
            purl(&bsdutils, None),
            "pkg:deb/debian/bsdutils@1%3A2.38.1-5?upstream=util-linux%402.38.1-5"
        );
        let mut ssl = package(PackageType::Apk, "libssl3", "3.1.0-r4");
        ssl.source_name = "openssl".into();
        assert_eq!(
            purl(&ssl, Some(&distro("alpine", "3.18.0"))),
            "pkg:apk/alpine/libssl3@3.1.0-r4?distro=alpine-3.18.0&upstream=openssl"
        );
        assert_eq!(
            purl(
                &package(PackageType::Rpm, "openssl-libs", "1:1.1.1k-7.el8"),
                Some(&distro("rhel", "8.5"))
            ),
            "pkg:rpm/redhat/openssl-libs@1.1.1k-7.el8?distro=rhel-8.5&epoch=1"
        );
        // A Debian package in an Alpine image is not Alpine's.
        assert_eq!(
            purl(
                &package(PackageType::Deb, "bash", "5.2"),
                Some(&distro("alpine", "3.18.0"))
            ),
            "pkg:deb/debian/bash@5.2"
        );
        let cases = [
            (
                PackageType::Python,
                "Typing_Extensions",
                "4.8.0",
                "pkg:pypi/typing-extensions@4.8.0",
            ),
            (
                PackageType::Npm,
                "@babel/core",
                "7.22.0",
                "pkg:npm/%40babel/core@7.22.0",
            ),
            (
                PackageType::Npm,
                "lodash",
                "4.17.21",
                "pkg:npm/lodash@4.17.21",
            ),
            (
                PackageType::Go,
                "golang.org/x/net",
                "v0.17.0",
                "pkg:golang/golang.org/x/net@v0.17.0",
            ),
            (
                PackageType::Go,
                "stdlib",
                "1.21.3",
                "pkg:golang/stdlib@1.21.3",
            ),
            (
                PackageType::Rust,
                "serde",
                "1.0.190",
                "pkg:cargo/serde@1.0.190",
            ),
            (
                PackageType::Java,
                "org.apache.logging.log4j:log4j-core",
                "2.14.1",
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            ),
        ];
        for (kind, name, version, want) in cases {
            assert_eq!(purl(&package(kind, name, version), None), want);
        }
    }

    #[test]
    fn now_is_rfc3339() {
        let t = now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(Date::parse(&t).is_some() && t.ends_with('Z'), "{t}");
    }
}
