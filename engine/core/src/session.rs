//! A client's session: who it is, which protocol it speaks, and the DataFusion session that
//! holds its current catalog and schema, its `SET` values and its views.
//!
//! Flight SQL keeps a session per bearer token across calls; Trino clients carry their session
//! in headers, so the Trino protocol builds one per request from them.

use datafusion::execution::FunctionRegistry;
use datafusion::prelude::SessionContext;

/// The client protocol a query came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    FlightSql,
    Trino,
}

impl Protocol {
    /// The `protocol` label of metrics and `system.runtime.queries`.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::FlightSql => "flight_sql",
            Protocol::Trino => "trino",
        }
    }
}

pub struct SqeSession {
    id: String,
    user: String,
    source: Option<String>,
    protocol: Protocol,
    trino_dialect: bool,
    ctx: SessionContext,
}

impl SqeSession {
    pub fn new(user: &str, protocol: Protocol, ctx: SessionContext) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            user: user.to_string(),
            source: None,
            protocol,
            trino_dialect: false,
            ctx,
        }
    }

    /// What Trino clients expect where Trino and DataFusion differ: unnamed result columns
    /// are named `_col0`, `_col1`, … by position (DataFusion names them after the expression,
    /// `Int64(1)`), and `information_schema.columns` has Trino's columns and type names.
    pub fn with_trino_dialect(mut self, on: bool) -> Self {
        self.trino_dialect = on;
        self
    }

    pub fn trino_dialect(&self) -> bool {
        self.trino_dialect
    }

    pub fn with_source(mut self, source: Option<String>) -> Self {
        self.source = source.filter(|s| !s.is_empty());
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The client program (Trino's `X-Trino-Source`), when it says.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The DataFusion session (cheap to clone: it shares its state).
    pub fn ctx(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn catalog(&self) -> String {
        self.ctx
            .state()
            .config_options()
            .catalog
            .default_catalog
            .clone()
    }

    pub fn schema(&self) -> String {
        self.ctx
            .state()
            .config_options()
            .catalog
            .default_schema
            .clone()
    }

    pub fn set_catalog(&self, catalog: &str) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_catalog = catalog.to_string();
    }

    pub fn set_schema(&self, schema: &str) {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_schema = schema.to_string();
    }

    /// Sets a DataFusion option (`datafusion.execution.batch_size`, ...) for this session, and
    /// rebuilds the functions that read options (`now()` reads `execution.time_zone`), as
    /// DataFusion's own `SET` does.
    pub fn set_option(&self, key: &str, value: &str) -> crate::error::Result<()> {
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state
            .config_mut()
            .options_mut()
            .set(key, value)
            .map_err(crate::error::SqeError::from)?;
        let options = state.config().options();
        let updated: Vec<_> = state
            .scalar_functions()
            .values()
            .filter_map(|f| f.inner().with_updated_config(options))
            .collect();
        for f in updated {
            state.register_udf(std::sync::Arc::new(f))?;
        }
        Ok(())
    }

    /// The session's time zone (what `now()` and `current_timestamp` are in): an offset
    /// (`+05:30`), `UTC`, or a region (`Europe/Berlin`).
    pub fn set_time_zone(&self, zone: &str) -> crate::error::Result<()> {
        if zone
            .parse::<datafusion::arrow::array::timezone::Tz>()
            .is_err()
        {
            return Err(crate::error::SqeError::new(
                crate::error::ErrorKind::NotSupported,
                format!("Time zone not supported: {zone}"),
            ));
        }
        self.set_option("datafusion.execution.time_zone", zone)
    }
}
