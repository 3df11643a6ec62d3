//! The `bulwark` binary: command line, configuration and wiring of the layers.

mod admin;
mod config;
mod keys;
mod lifecycle;
mod logs;
mod scan;
mod security;
mod serve;
mod sockets;
mod vulndb_source;

use clap::{Parser, Subcommand};

use crate::config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "bulwark", version, about = "A secure OCI container registry")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry (with no configuration: SQLite + filesystem under ./bulwark-data).
    Serve(Overrides),
    /// Scan an image on disk for packages and vulnerabilities (no server needed).
    Scan(scan::ScanArgs),
    /// Vulnerability data for the registry's scans.
    Vulndb {
        #[command(subcommand)]
        command: security::VulndbCommand,
    },
    /// The action log: list, export (JSON Lines), verify the hash chain.
    Logs {
        #[command(subcommand)]
        command: logs::LogsCommand,
    },
    #[command(flatten)]
    Admin(admin::AdminCommand),
    /// The keys that sign registry tokens.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration, defaults included, as TOML.
    Print(Overrides),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(o) => serve::run(Config::load(&o)?),
        Command::Scan(args) => scan::run(args),
        Command::Vulndb { command } => security::run(command),
        Command::Logs { command } => logs::run(command),
        Command::Admin(command) => admin::run(command),
        Command::Keys { command } => keys::run(command),
        Command::Config {
            command: ConfigCommand::Print(o),
        } => {
            print!("{}", Config::load(&o)?.to_toml()?);
            Ok(())
        }
    }
}
