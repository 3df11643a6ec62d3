//! `bulwark keys rotate`: replace the key that signs registry tokens. The old key is retired,
//! not deleted, so tokens it signed keep verifying until they expire; every node signs with
//! the new key once it has loaded it (at start, or on meeting a token signed with it).

use anyhow::Context;
use bulwark_events::{Actor, Event, Origin};

use crate::config::{Config, Overrides};
use crate::serve;

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Generate a new token signing key and retire the current one (on the configured
    /// metadata database; safe while servers run).
    Rotate(Overrides),
}

pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Rotate(overrides) = command;
    let config = Config::load(&overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (_, accounts, action_log) = serve::open_accounts(&config).await?;
        let auth = accounts.authenticator();
        let kid = auth
            .rotate_signing_key()
            .await
            .context("rotating the signing key")?;
        auth.events().emit(
            Event::new("signing_key.rotate", Actor::system(), Origin::default()).target(&kid),
        );
        action_log.close().await;
        println!("new signing key {kid}; the previous keys are retired and keep verifying");
        Ok(())
    })
}
