//! Bounds on query work, so that one request cannot take the node down or starve the
//! others: how many queries run at once, how long one may run, how much memory the
//! operators that buffer (sorts, groupings, joins) may hold, and how large an admin
//! SQL result may grow. Queries run on their own threads, with a stack of a known
//! size (DataFusion's planner recurses; with `recursive_protection` it grows its
//! stack on demand instead of overflowing), and a query that panics answers an
//! error instead of aborting the process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::InsightsError;

/// The settings (`[insights]` in the configuration file).
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Longest a query may run, queueing included.
    pub timeout: Duration,
    /// Memory the buffering operators of all queries may hold together.
    pub memory_bytes: usize,
    /// Queries running at once; the next waits up to [`QUEUE_WAIT`], then is told
    /// to retry.
    pub max_concurrent: usize,
    /// Rows and bytes an admin SQL result may hold.
    pub max_result_rows: usize,
    pub max_result_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(30),
            memory_bytes: 1024 << 20,
            max_concurrent: 4,
            max_result_rows: 10_000,
            max_result_bytes: 64 << 20,
        }
    }
}

/// How long a query waits for one of the running ones to finish.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The stack of each query thread.
const QUERY_STACK_BYTES: usize = 8 << 20;

/// The query threads and the permits to run on them.
pub(crate) struct QueryThreads {
    runtime: Option<tokio::runtime::Runtime>,
    permits: Arc<Semaphore>,
    pub limits: QueryLimits,
}

impl QueryThreads {
    pub fn new(limits: QueryLimits) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("insights-query")
            .thread_stack_size(QUERY_STACK_BYTES)
            .enable_all()
            .build()
            .expect("the query threads start");
        QueryThreads {
            runtime: Some(runtime),
            permits: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            limits,
        }
    }

    /// Runs `work` on a query thread, within the limits.
    pub async fn run<T, W>(&self, work: W) -> Result<T, InsightsError>
    where
        T: Send + 'static,
        W: Future<Output = Result<T, InsightsError>> + Send + 'static,
    {
        let limits = &self.limits;
        let permit =
            match tokio::time::timeout(QUEUE_WAIT, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => {
                    return Err(InsightsError::Busy(format!(
                "{} queries are running, the most at once (insights.max_concurrent_queries); retry",
                limits.max_concurrent
            )))
                }
            };
        let runtime = self.runtime.as_ref().expect("running");
        let task = runtime.spawn(async move {
            let _permit = permit;
            work.await
        });
        // A caller that gives up (a closed connection, the timeout) stops the query.
        let abort = AbortOnDrop(task.abort_handle());
        let outcome = tokio::time::timeout(limits.timeout, task).await;
        drop(abort);
        match outcome {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) if e.is_panic() => {
                let what = e
                    .into_panic()
                    .downcast::<String>()
                    .map(|s| *s)
                    .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                tracing::error!(panic = %what, "an insights query panicked");
                Err(InsightsError::Internal(
                    "the query failed on a defect (it was logged)".into(),
                ))
            }
            Ok(Err(_)) => Err(InsightsError::Internal("the query was cancelled".into())),
            Err(_) => Err(InsightsError::Timeout(format!(
                "the query ran longer than {} s (insights.query_timeout_seconds); narrow it",
                limits.timeout.as_secs_f64()
            ))),
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for QueryThreads {
    /// Dropping a runtime blocks, which an async caller may not do: let its threads
    /// end on their own.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_a_timeout_and_a_full_house_answer_errors() {
        let threads = QueryThreads::new(QueryLimits {
            max_concurrent: 1,
            ..QueryLimits::default()
        });
        let panicked = threads
            .run(async {
                if std::hint::black_box(true) {
                    panic!("boom");
                }
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(matches!(panicked, InsightsError::Internal(_)), "{panicked}");
        let threads = QueryThreads::new(QueryLimits {
            timeout: Duration::from_millis(200),
            max_concurrent: 1,
            ..QueryLimits::default()
        });
        let slow = threads
            .run(async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(())
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&slow, InsightsError::Timeout(m) if m.contains("query_timeout_seconds")),
            "{slow}"
        );
        // The timed-out query was stopped, so its permit is free again.
        assert_eq!(threads.run(async { Ok(7) }).await.unwrap(), 7);

        let threads = Arc::new(QueryThreads::new(QueryLimits {
            timeout: Duration::from_secs(10),
            max_concurrent: 1,
            ..QueryLimits::default()
        }));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let holder = threads.clone();
        let long = tokio::spawn(async move {
            holder
                .run(async move {
                    let _ = started_tx.send(());
                    tokio::time::sleep(QUEUE_WAIT * 2).await;
                    Ok(())
                })
                .await
        });
        started_rx.await.unwrap();
        let busy = threads.run(async { Ok(()) }).await.unwrap_err();
        assert!(
            matches!(&busy, InsightsError::Busy(m) if m.contains("max_concurrent_queries")),
            "{busy}"
        );
        long.await.unwrap().unwrap();
    }

    #[test]
    fn deep_recursion_fits_the_query_stack() {
        // About 3 MiB of frames: more than a default 2 MiB thread holds, well
        // within the query threads' 8.
        fn down(n: usize) -> usize {
            let pad = [n as u8; 1024];
            if n == 0 {
                return pad[0] as usize;
            }
            down(n - 1) + std::hint::black_box(&pad)[1] as usize
        }
        let threads = QueryThreads::new(QueryLimits::default());
        let runtime = threads.runtime.as_ref().unwrap();
        let depth = runtime.block_on(async { runtime.spawn(async { down(3000) }).await.unwrap() });
        assert!(depth > 0);
    }
}
