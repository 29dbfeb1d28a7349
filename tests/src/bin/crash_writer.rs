//! Commits changes to the store at `argv[1]` in a loop, forever: for each iteration `n` it declares user
//! `w<n>` and invites it to `encore`, and prints the sequence of each write once its commit returned,
//! one per line, flushed. The crash tests kill it with SIGKILL at random moments and check that every
//! printed sequence survived.

use std::io::Write;

use kisum_access::doc::{MembershipDoc, MembershipStatus};
use kisum_access::{Actor, Change};
use kisum_entitlements::Timestamp;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crash writer: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: kisum-crash-writer DATABASE_URL")?;
    let store = kisum_store::connect(&url).await?;
    let engine = kisum_store::Engine::open(store, Some(&kisum_tests::demo_world())).await?;
    let at = Timestamp::parse("2026-03-15T12:00:00Z")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", engine.seq())?;
    out.flush()?;
    let mut n = engine.seq();
    loop {
        n += 1;
        let user = format!("w{n}");
        let add = Change::AddUser { user: user.parse()? };
        let record = engine.write(&Actor::Platform, at, add).await?;
        writeln!(out, "{}", record.seq)?;
        out.flush()?;
        let invite = Change::PutMembership(MembershipDoc {
            user,
            company: "encore".into(),
            status: MembershipStatus::Invited,
            roles: vec!["viewer".into()],
            expires_at: None,
            restrictions: Vec::new(),
        });
        let record = engine.write(&Actor::Platform, at, invite).await?;
        writeln!(out, "{}", record.seq)?;
        out.flush()?;
    }
}
