//! Distributed execution for SQE on `datafusion-distributed`: the coordinator plans a query
//! in stages and workers run the stages' tasks, streaming Arrow to each other.
//!
//! ```text
//!  coordinator session ── extend ──▶ OnlyWithWorkers(DistributedPhysicalOptimizerRule)
//!       │                              RegistryResolver (the ACTIVE workers with room)
//!       │                              InternalChannels (token + protocol on every call)
//!       │                              SqeCodec / ScanTasks (Iceberg scans on workers)
//!       └── observe(task ctx) ──▶ each SetPlan sent to a worker ─▶ system.runtime.tasks
//!  sqe-worker ── WorkerSessions (codec, UDFs, channels speaking the query's protocol)
//!             └─ Guard (internal credential, protocol range, running tasks)
//! ```
//!
//! This crate is the only one that knows datafusion-distributed; `sqe-core` sees it through
//! [`sqe_core::distribution::Distributor`].

#![forbid(unsafe_code)]

pub mod channel;
pub mod codec;
pub mod guard;
pub mod lost;

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion_distributed::{
    DistributedExt, DistributedPhysicalOptimizerRule, WorkerQueryContext, WorkerResolver,
    WorkerSessionBuilder,
};
use sqe_core::distribution::{Distribution, Distributor, RemoteTask};
use sqe_core::membership::Membership;
use url::Url;

use crate::channel::{InternalChannels, PROTOCOL_HEADER};
use crate::codec::{ScanTasks, SqeCodec};

/// The workers the planner may use: the registry's schedulable ones.
struct RegistryResolver(Arc<Membership>);

impl WorkerResolver for RegistryResolver {
    fn get_urls(&self) -> Result<Vec<Url>, DataFusionError> {
        let urls: Vec<Url> = self
            .0
            .schedulable()
            .iter()
            .filter_map(|w| Url::parse(&w.url).ok())
            .collect();
        match urls.as_slice() {
            // only reached when the last worker left between planning and execution
            [] => Err(DataFusionError::Execution(
                "no worker can take this query's tasks any more (they left or are full)".into(),
            )),
            // the planner splits a stage only over two or more task slots: a lone worker (the
            // last of two after a loss, or a cluster of one) takes two tasks, so the query's
            // work still runs on it and not on the coordinator
            [only] => Ok(vec![only.clone(), only.clone()]),
            _ => Ok(urls),
        }
    }
}

/// Distributes a plan only while some worker can take tasks; otherwise the plan stays whole
/// (statements on constants and system tables run here; the engine makes table scans wait).
#[derive(Debug)]
struct OnlyWithWorkers {
    membership: Arc<Membership>,
    rule: DistributedPhysicalOptimizerRule,
}

impl PhysicalOptimizerRule for OnlyWithWorkers {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if self.membership.schedulable().is_empty() {
            Ok(plan)
        } else {
            self.rule.optimize(plan, config)
        }
    }

    fn name(&self) -> &str {
        "SqeDistributed"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The coordinator's side of distributed execution.
pub struct SqeDistributor {
    membership: Arc<Membership>,
    channels: InternalChannels,
}

impl Distributor for SqeDistributor {
    fn extend(&self, builder: SessionStateBuilder) -> SessionStateBuilder {
        builder
            .with_physical_optimizer_rule(Arc::new(OnlyWithWorkers {
                membership: Arc::clone(&self.membership),
                rule: DistributedPhysicalOptimizerRule,
            }))
            .with_distributed_worker_resolver(RegistryResolver(Arc::clone(&self.membership)))
            .with_distributed_channel_resolver(self.channels.clone())
            .with_distributed_user_codec(SqeCodec)
            .with_distributed_task_estimator(ScanTasks)
    }

    fn observe(
        &self,
        task_ctx: &TaskContext,
        on_task: Arc<dyn Fn(RemoteTask) + Send + Sync>,
    ) -> TaskContext {
        let mut config = task_ctx.session_config().clone();
        config.set_distributed_channel_resolver(self.channels.observed(on_task));
        TaskContext::new(
            task_ctx.task_id(),
            task_ctx.session_id(),
            config,
            task_ctx.scalar_functions().clone(),
            task_ctx.aggregate_functions().clone(),
            task_ctx.window_functions().clone(),
            task_ctx.runtime_env(),
        )
    }

    fn worker_lost(&self, error: &DataFusionError) -> bool {
        lost::worker_lost(error)
    }
}

/// Distributed mode's parts for a coordinator: a registry and the planner that uses it.
pub fn coordinator(
    token: Option<&str>,
    protocol: u32,
    heartbeat_misses: u32,
) -> Result<Distribution, String> {
    let membership = Arc::new(Membership::new(protocol, heartbeat_misses));
    let channels = InternalChannels::new(token, protocol)?;
    Ok(Distribution {
        membership: Arc::clone(&membership),
        distributor: Arc::new(SqeDistributor {
            membership,
            channels,
        }),
    })
}

/// How a worker builds the session of each task it is sent: SQE's codec and functions, the
/// configured batch size, and worker-to-worker calls that speak the protocol the query came with.
#[derive(Clone)]
pub struct WorkerSessions {
    channels: InternalChannels,
    protocol: u32,
    batch_size: usize,
}

impl WorkerSessions {
    pub fn new(token: Option<&str>, protocol: u32, batch_size: usize) -> Result<Self, String> {
        Ok(Self {
            channels: InternalChannels::new(token, protocol)?,
            protocol,
            batch_size,
        })
    }
}

#[async_trait]
impl WorkerSessionBuilder for WorkerSessions {
    async fn build_session_state(
        &self,
        ctx: WorkerQueryContext,
    ) -> Result<SessionState, DataFusionError> {
        let protocol = ctx
            .headers
            .get(PROTOCOL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.protocol);
        let mut builder = ctx.builder;
        if let Some(config) = builder.config() {
            config.options_mut().execution.batch_size = self.batch_size;
        }
        let state = builder
            .with_distributed_user_codec(SqeCodec)
            .with_distributed_channel_resolver(self.channels.with_protocol(protocol))
            .build();
        let session = SessionContext::new_with_state(state);
        sqe_core::functions::register(&session, "");
        Ok(session.state())
    }
}
