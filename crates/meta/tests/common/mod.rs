//! Test support shared by the suites of this crate: a store on a fresh database of each
//! backend, and the macro that runs a suite's tests on every backend.

use bulwark_meta::{SqlMetaStore, SqlOptions};

/// A store on a fresh database, and how to open that database again.
pub struct Fixture {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    pub fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("meta.db").display());
        Fixture {
            url,
            _dir: Some(dir),
        }
    }

    /// A database of its own on the server `scripts/test.sh` started (it exports
    /// `BULWARK_TEST_POSTGRES_URL`).
    pub fn postgres() -> Fixture {
        Fixture {
            url: bulwark_testkit::postgres_database(),
            _dir: None,
        }
    }

    pub async fn open(&self) -> SqlMetaStore {
        SqlMetaStore::open(&self.url, &SqlOptions::default())
            .await
            .unwrap()
    }
}

/// Runs each named test (an `async fn(&Fixture)` of the suite's root) on every backend.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&$crate::common::Fixture::sqlite()).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(&$crate::common::Fixture::postgres()).await
            })*
        }
    };
}
pub(crate) use on_every_backend;
