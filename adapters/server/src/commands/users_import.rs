//! `castellan users import FILE.csv [--dry-run] [--org ID]`: imports with a progress
//! bar and writes the per-row results to `FILE.result.csv` beside the input.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use castellan_app::import::{self, ImportError};
use castellan_domain::envelope::{Actor, ActorKind, EventMeta};
use castellan_domain::ObjectId;
use castellan_projections::portal::PORTAL;
use castellan_projections::runtime::Runner;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;

pub fn result_path(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "import".into());
    input.with_file_name(format!("{stem}.result.csv"))
}

async fn pick_org(b: &crate::backends::Backends, org: Option<&str>) -> anyhow::Result<ObjectId> {
    if let Some(org) = org {
        return org.parse().map_err(|e| anyhow::anyhow!("--org: {e}"));
    }
    // The read model knows the organizations; bring it up to date first.
    Runner::new(b.store.clone(), b.log.clone(), &PORTAL)
        .catch_up()
        .await?;
    let ids = b.store.organization_ids().await?;
    match ids.as_slice() {
        [only] => Ok(only.parse()?),
        [] => anyhow::bail!("there is no organization yet: run `castellan bootstrap` first"),
        _ => anyhow::bail!(
            "--org: there are {} organizations; name one ({})",
            ids.len(),
            ids.join(", ")
        ),
    }
}

pub async fn run(
    config: &Config,
    file: &Path,
    dry_run: bool,
    org: Option<&str>,
) -> anyhow::Result<()> {
    let name = file.display().to_string();
    let open = || std::fs::File::open(file).with_context(|| format!("{name}: cannot open"));
    let size = open()?.metadata().map(|m| m.len()).unwrap_or(0);
    let rows = match import::check_structure(std::io::BufReader::new(open()?)) {
        Ok(rows) => rows,
        Err(e) => anyhow::bail!("{name}: {e}; nothing was imported"),
    };
    let b = crate::backends::open(config).await?;
    let org = pick_org(&b, org).await?;
    let out_path = result_path(file);
    let mut out = std::fs::File::create(&out_path)
        .with_context(|| format!("{}: cannot write", out_path.display()))?;
    out.write_all(import::result_csv_header().as_bytes())?;
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let meta = EventMeta::new(
        time::OffsetDateTime::now_utc(),
        Actor {
            kind: ActorKind::System,
            id: Some("castellan-cli".into()),
            email: None,
        },
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut write_error = None;
    let mut done = 0u64;
    let result = import::import(
        &*b.log,
        org,
        meta,
        std::io::BufReader::new(open()?),
        dry_run,
        cores * 2,
        |row, offset| {
            if let Err(e) = out.write_all(import::result_csv_row(row).as_bytes()) {
                write_error.get_or_insert(e);
            }
            done += 1;
            bar.set_position(offset);
            bar.set_message(format!("{done}/{rows} rows"));
        },
    )
    .await;
    bar.finish_and_clear();
    out.flush()?;
    if let Some(e) = write_error {
        anyhow::bail!("{}: {e}", out_path.display());
    }
    match result {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::json!({"file": name, "dry_run": dry_run, "org_id": org.to_string(), "summary": summary, "results": out_path.display().to_string()})
            );
            Ok(())
        }
        Err(ImportError::File(e)) => {
            anyhow::bail!("{name}: {e} (rows before it are in {})", out_path.display())
        }
        Err(ImportError::App(e)) => Err(e.into()),
    }
}
