//! Scans built as DataFusion physical plans directly, for the Directory Insights
//! queries (events, count, distinct, interval).
//!
//! Their shape never changes (some files, one filter, a few columns, a fold), so
//! going through a logical plan, the optimizer and the physical planner for each
//! request is pure overhead: in a count's profile those were a quarter of the time.
//! Here the filter is coerced and simplified once (as the optimizer would), handed to
//! the Parquet scan to prune row groups and pages, and evaluated batch by batch by
//! the caller's fold, on each file group concurrently. File sizes come from our own
//! listing, so no file is looked up before it is read. Admin SQL and exports keep
//! the full DataFusion path.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use datafusion::common::config::TableParquetOptions;
use datafusion::common::DFSchema;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::session_state::SessionState;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;

use crate::schema::read_schema;
use crate::storage::{DataFile, Storage};
use crate::InsightsError;

/// How many file groups are read at once (the machine's cores, as DataFusion's
/// `target_partitions` is set for the other queries).
const GROUPS: usize = 2;

/// A filter and the expressions read beside it, made once per request: coerced,
/// simplified and planned against the table, whatever files are scanned with it.
pub(crate) struct ScanPlan {
    /// The filter over the whole table, for the scan's pruning.
    pruning: Arc<dyn PhysicalExpr>,
    /// The filter over the scanned columns, evaluated per batch.
    filter: Arc<dyn PhysicalExpr>,
    also: Vec<Arc<dyn PhysicalExpr>>,
    /// The table's columns the expressions use.
    columns: Vec<usize>,
}

impl ScanPlan {
    /// Keeps the rows where `filter` is true and reads the columns it and `also` refer
    /// to. `state` coerces expressions.
    pub(crate) fn new(
        state: &SessionState,
        filter: Expr,
        also: &[&Expr],
    ) -> Result<ScanPlan, InsightsError> {
        let table = read_schema();
        let table_columns = DFSchema::try_from(table.clone())?;
        let filter = coerced(state, filter, &table_columns)?;
        let mut used: Vec<usize> = Vec::new();
        for e in std::iter::once(&filter).chain(also.iter().copied()) {
            for c in e.column_refs() {
                used.push(table.index_of(c.name()).map_err(arrow_error)?);
            }
        }
        used.sort_unstable();
        used.dedup();
        let scanned = DFSchema::try_from(Arc::new(table.project(&used).map_err(arrow_error)?))?;
        Ok(ScanPlan {
            pruning: physical(state, &filter, &table_columns)?,
            filter: physical(state, &filter, &scanned)?,
            also: also
                .iter()
                .map(|e| physical(state, &coerced(state, (*e).clone(), &scanned)?, &scanned))
                .collect::<Result<_, _>>()?,
            columns: used,
        })
    }

    /// A scan of `files`. `late_rows`: the scan filters rows itself and decodes the
    /// other columns only for the rows kept (worth it for the event JSON; not for a
    /// few small columns, which decode whole faster than a row selection). The filter
    /// is evaluated again either way, so a conjunct the scan could not take still
    /// holds.
    pub(crate) fn scan(
        &self,
        storage: &Storage,
        task: &Arc<TaskContext>,
        files: &[DataFile],
        late_rows: bool,
    ) -> Result<Scan, InsightsError> {
        let mut options = TableParquetOptions::default();
        // The files have no bloom filters: none is looked for (see `Insights::table`).
        options.global.bloom_filter_on_read = false;
        options.global.pushdown_filters = late_rows;
        let store = storage.object_store();
        let footers = task.runtime_env().cache_manager.get_file_metadata_cache();
        let source = ParquetSource::new(read_schema())
            .with_table_parquet_options(options)
            .with_predicate(self.pruning.clone())
            .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
                store, footers,
            )));
        let config = FileScanConfigBuilder::new(
            ObjectStoreUrl::parse(storage.scheme_root())?,
            Arc::new(source),
        )
        .with_file_groups(file_groups(storage, files))
        .with_projection_indices(Some(self.columns.clone()))?
        .build();
        Ok(Scan {
            exec: DataSourceExec::from_data_source(config),
            filter: self.filter.clone(),
            also: self.also.clone(),
            task: task.clone(),
        })
    }
}

/// A filtered scan of some files, ready to run.
pub(crate) struct Scan {
    exec: Arc<dyn ExecutionPlan>,
    filter: Arc<dyn PhysicalExpr>,
    /// The expressions `also` of [`ScanPlan::new`], over the scanned columns.
    pub(crate) also: Vec<Arc<dyn PhysicalExpr>>,
    task: Arc<TaskContext>,
}

impl Scan {
    /// Calls `step` with every batch and the rows the filter keeps, in file order,
    /// one file group after the other, on this task.
    pub(crate) async fn for_each<F>(&self, mut step: F) -> Result<(), InsightsError>
    where
        F: FnMut(&RecordBatch, &BooleanArray) -> Result<(), InsightsError>,
    {
        for partition in 0..self.exec.properties().partitioning.partition_count() {
            let mut stream = self.exec.execute(partition, self.task.clone())?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                with_kept(&self.filter, &batch, &mut step)?;
            }
        }
        Ok(())
    }

    /// Folds every batch with the rows the filter keeps (a mask without nulls), each
    /// file group on its own task; one accumulator per group.
    pub(crate) async fn fold<A, F>(&self, step: F) -> Result<Vec<A>, InsightsError>
    where
        A: Default + Send + 'static,
        F: Fn(&mut A, &RecordBatch, &BooleanArray) -> Result<(), InsightsError>
            + Send
            + Sync
            + 'static,
    {
        let step = Arc::new(step);
        let partitions = self.exec.properties().partitioning.partition_count();
        // Dropping the set (a request given up on) stops the reads.
        let mut tasks = tokio::task::JoinSet::new();
        for partition in 0..partitions {
            let mut stream = self.exec.execute(partition, self.task.clone())?;
            let (filter, step) = (self.filter.clone(), step.clone());
            tasks.spawn(async move {
                let mut acc = A::default();
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    with_kept(&filter, &batch, |batch, kept| step(&mut acc, batch, kept))?;
                }
                Ok::<A, InsightsError>(acc)
            });
        }
        let mut out = Vec::with_capacity(partitions);
        while let Some(done) = tasks.join_next().await {
            out.push(done.map_err(|e| InsightsError::Internal(format!("scan task: {e}")))??);
        }
        Ok(out)
    }
}

/// Calls `step` with the batch and the rows `filter` keeps (a mask without nulls).
fn with_kept<F>(
    filter: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
    mut step: F,
) -> Result<(), InsightsError>
where
    F: FnMut(&RecordBatch, &BooleanArray) -> Result<(), InsightsError>,
{
    let mask = filter.evaluate(batch)?.into_array(batch.num_rows())?;
    let mask = mask
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| InsightsError::Internal("filter is not boolean".into()))?;
    // A filter that is null for a row does not keep it.
    if mask.null_count() > 0 {
        step(batch, &arrow::compute::prep_null_mask_filter(mask))
    } else {
        step(batch, mask)
    }
}

fn physical(
    state: &SessionState,
    e: &Expr,
    schema: &DFSchema,
) -> Result<Arc<dyn PhysicalExpr>, InsightsError> {
    Ok(datafusion::physical_expr::create_physical_expr(
        e,
        schema,
        state.execution_props(),
        &PhysicalPlanningContext::default(),
    )?)
}

fn arrow_error(e: arrow::error::ArrowError) -> InsightsError {
    InsightsError::Internal(e.to_string())
}

/// Type coercion and the simplifications the optimizer would make (casts unwrapped
/// from comparisons, so that a dictionary column is compared as it is stored).
fn coerced(state: &SessionState, e: Expr, schema: &DFSchema) -> Result<Expr, InsightsError> {
    use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
    let context = SimplifyContext::builder()
        .with_schema(Arc::new(schema.clone()))
        .with_config_options(Arc::clone(state.config_options()))
        .with_query_execution_start_time(state.execution_props().query_execution_start_time)
        .build();
    let simplifier = ExprSimplifier::new(context);
    let e = simplifier.coerce(e, schema)?;
    Ok(simplifier.simplify(e)?)
}

/// The files in at most [`GROUPS`] groups of about equal size (largest first, each to
/// the lightest group).
fn file_groups(storage: &Storage, files: &[DataFile]) -> Vec<FileGroup> {
    let mut by_size: Vec<&DataFile> = files.iter().collect();
    by_size.sort_by_key(|f| std::cmp::Reverse(f.size));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> = Vec::new();
    for f in by_size {
        let file = PartitionedFile::new(storage.location(&f.key).to_string(), f.size);
        if groups.len() < GROUPS {
            groups.push((f.size, vec![file]));
        } else if let Some(g) = groups.iter_mut().min_by_key(|g| g.0) {
            g.0 += f.size;
            g.1.push(file);
        }
    }
    groups.into_iter().map(|(_, g)| FileGroup::new(g)).collect()
}
