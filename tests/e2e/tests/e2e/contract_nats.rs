//! The event-log contract on the NATS JetStream adapter, against a real nats-server.

use std::sync::Arc;

use castellan_app::ports::EventLog;
use castellan_e2e::contract::Harness;
use castellan_e2e::nats::NatsServer;
use castellan_log_nats::{NatsLog, StreamSettings};
use futures::future::BoxFuture;

struct Nats {
    server: NatsServer,
}

impl Harness for Nats {
    fn open(&mut self) -> BoxFuture<'_, Arc<dyn EventLog>> {
        Box::pin(async move {
            Arc::new(
                NatsLog::connect(&self.server.url(), StreamSettings::default())
                    .await
                    .unwrap(),
            ) as Arc<dyn EventLog>
        })
    }
    fn restart(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.server.kill();
            self.server.start_again();
        })
    }
}

async fn harness() -> Option<Nats> {
    Some(Nats {
        server: NatsServer::start()?,
    })
}

castellan_e2e::contract_tests!(harness().await);
