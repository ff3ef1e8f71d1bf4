//! The run-time harness of the suites declared `harness = false`: a runtime per trial, and
//! trials that run a case on a SQLite file or on a fresh PostgreSQL database. PostgreSQL's
//! trials are *ignored with the reason* when it is unreachable (a libtest-mimic completion,
//! decided at run time), and fail under `CI=true` (see [`crate::Db::postgres_or_why`]).

pub use libtest_mimic;

/// The runtime a trial's case runs on: two workers, as the machines have two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `sqlite_trial!(case)`: a trial named `sqlite::case` running `case(&Db)` on a fresh file.
#[macro_export]
macro_rules! sqlite_trial {
    ($name:ident) => {
        $crate::harness::libtest_mimic::Trial::test(concat!("sqlite::", stringify!($name)), || {
            $crate::harness::runtime().block_on($name(&$crate::Db::sqlite()));
            Ok(())
        })
    };
}

/// `postgres_trial!(case)`: a trial named `postgres::case` running `case(&Db)` on a fresh
/// PostgreSQL database (dropped afterwards), or ignored with the reason it cannot.
#[macro_export]
macro_rules! postgres_trial {
    ($name:ident) => {
        $crate::harness::libtest_mimic::Trial::ignorable_test(
            concat!("postgres::", stringify!($name)),
            || -> Result<
                $crate::harness::libtest_mimic::Completion,
                $crate::harness::libtest_mimic::Failed,
            > {
                $crate::harness::runtime().block_on(async {
                    match $crate::Db::postgres_or_why().await {
                        Ok(db) => {
                            $name(&db).await;
                            db.drop_database().await;
                            Ok($crate::harness::libtest_mimic::Completion::Completed)
                        }
                        Err(why) => Ok($crate::harness::libtest_mimic::Completion::ignored_with(
                            why,
                        )),
                    }
                })
            },
        )
    };
}
