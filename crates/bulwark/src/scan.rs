//! `bulwark scan`: indexes an image (on disk, or in a registry through `docker://`) and
//! matches it against OSV files, without a server (the scanner library does the work;
//! this is its command line).

mod docker;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

use crate::config::{Config, Overrides};
use crate::serve;
use bulwark_scanner::{Database, Date, Image, Limits, Platform, Report, sbom};

#[derive(clap::Args)]
pub struct ScanArgs {
    /// OSV vulnerability data: a .json, .jsonl or .zip file, or a directory of them.
    /// Repeatable. Without it, the data imported into the registry's database (`bulwark
    /// vulndb import`, see --data-dir/--config); without either, only the inventory.
    #[arg(long = "vulndb", value_name = "PATH")]
    vulndb: Vec<PathBuf>,
    #[command(flatten)]
    registry: Overrides,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Grade as of this day (YYYY-MM-DD) instead of today.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    today: Option<Date>,
    /// Stop at this many decompressed bytes in one layer.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_layer_bytes)]
    max_layer_bytes: u64,
    /// Stop at this many tar entries in one layer.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_entries)]
    max_entries: u64,
    /// Stop at a package database or manifest larger than this.
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_file_bytes)]
    max_file_bytes: u64,
    /// The image of this platform (OS/ARCH[/VARIANT]) from a multi-platform index;
    /// default: Linux on this machine's architecture.
    #[arg(long, value_name = "OS/ARCH", value_parser = parse_platform)]
    platform: Option<Platform>,
    /// docker:// only: USER:PASS for the registry (Basic, or its token service).
    #[arg(long, value_name = "USER:PASS", value_parser = parse_creds)]
    creds: Option<(String, String)>,
    /// docker:// only: `--tls-verify=false` accepts any certificate and falls back to
    /// plain HTTP when the registry has no TLS.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// The image, in skopeo's syntax: oci:DIR[:TAG], docker-archive:FILE[:REPO:TAG] or
    /// docker://HOST[:PORT]/REPO[:TAG|@DIGEST].
    reference: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
    /// A CycloneDX 1.5 SBOM of the inventory (JSON).
    Cyclonedx,
    /// An SPDX 2.3 SBOM of the inventory (JSON).
    Spdx,
}

fn parse_platform(s: &str) -> Result<Platform, String> {
    Platform::parse(s).map_err(|e| e.to_string())
}

fn parse_creds(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(user, pass)| (user.to_string(), pass.to_string()))
        .ok_or_else(|| "expected USER:PASS".to_string())
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s).ok_or_else(|| format!("{s:?} is not a YYYY-MM-DD date"))
}

pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let limits = Limits {
        max_layer_bytes: args.max_layer_bytes,
        max_entries: args.max_entries,
        max_file_bytes: args.max_file_bytes,
        ..Limits::default()
    };
    let db = vulnerability_data(&args)?;
    let platform = args.platform.clone().unwrap_or_else(Platform::current);
    let inventory = match args.reference.strip_prefix("docker://") {
        Some(remote) => {
            let options = docker::Options {
                platform,
                creds: args.creds.clone(),
                tls_verify: args.tls_verify,
            };
            docker::index(&remote.parse()?, &options, &limits)
        }
        None => Image::open_platform(&args.reference, &platform)
            .and_then(|image| bulwark_scanner::index_image(&image, &limits))
            .map_err(anyhow::Error::from),
    }
    .with_context(|| format!("scanning {}", args.reference))?;
    let report = bulwark_scanner::report(inventory, &db, args.today.unwrap_or_else(Date::today));
    match args.format {
        Format::Json => {
            let out = JsonOutput {
                image: &args.reference,
                report: &report,
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Table => print!("{}", table(&args.reference, &report, db.is_empty())),
        Format::Cyclonedx => {
            let bom = sbom::cyclonedx(&report.inventory, &args.reference);
            println!("{}", serde_json::to_string_pretty(&bom)?);
        }
        Format::Spdx => {
            let bom = sbom::spdx(&report.inventory, &args.reference);
            println!("{}", serde_json::to_string_pretty(&bom)?);
        }
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct JsonOutput<'a> {
    image: &'a str,
    #[serde(flatten)]
    report: &'a Report,
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.get(..12).unwrap_or(hex)
}

/// The `--vulndb` files, else what the registry's database holds, else nothing.
fn vulnerability_data(args: &ScanArgs) -> anyhow::Result<Database> {
    let mut db = Database::new();
    for path in &args.vulndb {
        db.load(path)
            .with_context(|| format!("loading vulnerability data {}", path.display()))?;
    }
    if !args.vulndb.is_empty() {
        return Ok(db);
    }
    let config = Config::load(&args.registry)?;
    if !serve::has_database(&config) {
        return Ok(db);
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let meta = serve::open_meta(&config).await?;
            bulwark_security::vulndb::load(meta.as_ref())
                .await
                .context("reading the registry's vulnerability data")
        })
}

fn table(reference: &str, r: &Report, no_vulndb: bool) -> String {
    let mut out = String::new();
    let inv = &r.inventory;
    let distro = inv.distro.as_ref().map_or("unknown".to_string(), |d| {
        let eco = d.ecosystem().unwrap_or_default();
        format!("{} ({eco})", d.pretty_name)
    });
    let _ = writeln!(out, "Image:         {reference}");
    let _ = writeln!(out, "Distribution:  {distro}");
    let _ = writeln!(out, "Layers:        {}", inv.layers.len());
    let _ = writeln!(out, "Packages:      {}", inv.packages.len());
    let rows: Vec<[String; 4]> = inv
        .packages
        .iter()
        .map(|p| {
            [
                p.kind.as_str().to_string(),
                p.name.clone(),
                p.version.clone(),
                short(&p.layer).to_string(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&columns(["TYPE", "NAME", "VERSION", "LAYER"], &rows));
    if no_vulndb {
        out.push_str(
            "\nNo vulnerability data (--vulndb, or imported into the registry's database): \
             inventory only.\n",
        );
        return out;
    }
    let drop = r
        .grade
        .next_drop_date
        .map_or(String::new(), |d| format!(", drops on {d}"));
    let _ = writeln!(out, "\nVulnerabilities: {}", r.vulnerabilities.len());
    let _ = writeln!(out, "Grade:           {:?}{drop}\n", r.grade.current_grade);
    let rows: Vec<[String; 5]> = r
        .vulnerabilities
        .iter()
        .map(|v| {
            [
                v.id.clone(),
                format!("{:?}", v.severity),
                v.package.clone(),
                v.version.clone(),
                v.fixed_version.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&columns(
        ["ID", "SEVERITY", "PACKAGE", "VERSION", "FIXED"],
        &rows,
    ));
    out
}

fn columns<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; N]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:w$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}
