//! `castellan events tail`: the log as JSON lines (one envelope per line).

use std::io::Write;

use futures::StreamExt;

use crate::config::Config;

pub async fn run(config: &Config, from: Option<u64>, no_follow: bool) -> anyhow::Result<()> {
    let b = crate::backends::open(config).await?;
    let head = b.log.head().await?;
    let from = from.unwrap_or(head);
    if no_follow && from >= head {
        return Ok(());
    }
    let mut commits = b.log.subscribe(from).await?;
    let stdout = std::io::stdout();
    loop {
        let next = tokio::select! {
            c = commits.next() => c,
            _ = crate::node::signal() => return Ok(()),
        };
        let Some(commit) = next else { return Ok(()) };
        let commit = commit?;
        let mut out = stdout.lock();
        for envelope in commit.envelopes() {
            serde_json::to_writer(&mut out, &envelope)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        if no_follow && commit.position >= head {
            return Ok(());
        }
    }
}
