//! The connection to an SQE server: channel setup, authentication and running
//! one statement to a complete [`QueryResult`].

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::Schema;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightInfo, HandshakeRequest};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use futures::TryStreamExt;
use tonic::transport::{Channel, Endpoint};

use crate::error::{CliError, error_chain};
use crate::output::QueryResult;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach and authenticate to the server.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub host: String,
    pub port: u16,
    pub auth: Auth,
}

/// The credentials to present.
#[derive(Debug, Clone)]
pub enum Auth {
    None,
    /// Basic auth in a Flight handshake; the server answers with a bearer token.
    Basic {
        user: String,
        password: String,
    },
    /// A bearer token sent as is.
    Token(String),
}

impl ConnectOptions {
    /// `host:port`, with IPv6 addresses in brackets.
    pub fn target(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn uri(&self) -> String {
        format!("http://{}", self.target())
    }
}

/// An authenticated Flight SQL connection.
pub struct Session {
    client: FlightSqlServiceClient<Channel>,
}

impl Session {
    /// Connects (eagerly, so an unreachable server is reported at once) and authenticates.
    pub async fn connect(options: &ConnectOptions) -> Result<Session, CliError> {
        let channel = open_channel(options).await?;
        // Results can be large; lift tonic's 4 MiB default limit on messages.
        let inner = FlightServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let mut client = FlightSqlServiceClient::new_from_inner(inner);
        match &options.auth {
            Auth::None => {}
            Auth::Token(token) => client.set_token(token.clone()),
            Auth::Basic { user, password } => {
                let token = handshake(&mut client, user, password).await?;
                client.set_token(token);
            }
        }
        Ok(Session { client })
    }

    /// Runs one statement and collects its whole result.
    ///
    /// Every endpoint is fetched over this connection, in order: SQE serves
    /// its results from the server that planned the query.
    pub async fn query(&mut self, sql: &str) -> Result<QueryResult, CliError> {
        let info = self.client.execute(sql.to_string(), None).await?;
        let mut schema = info_schema(&info)?;
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                return Err(CliError::Other(
                    "the server returned an endpoint without a ticket".to_string(),
                ));
            };
            let mut stream = self.client.do_get(ticket).await?;
            while let Some(batch) = stream.try_next().await? {
                batches.push(batch);
            }
            if schema.is_none() {
                schema = stream.schema().map(Arc::clone);
            }
        }
        let schema = schema
            .or_else(|| batches.first().map(|batch| batch.schema()))
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        Ok(QueryResult { schema, batches })
    }
}

/// The schema announced in the FlightInfo, if any.
fn info_schema(info: &FlightInfo) -> Result<Option<Arc<Schema>>, CliError> {
    if info.schema.is_empty() {
        return Ok(None);
    }
    let schema = info.clone().try_decode_schema()?;
    Ok(Some(Arc::new(schema)))
}

async fn open_channel(options: &ConnectOptions) -> Result<Channel, CliError> {
    let connect_error = |detail: String| CliError::Connect {
        target: options.target(),
        detail,
    };
    let endpoint = Endpoint::from_shared(options.uri())
        .map_err(|e| connect_error(format!("invalid address: {}", error_chain(&e))))?
        .connect_timeout(CONNECT_TIMEOUT);
    endpoint
        .connect()
        .await
        .map_err(|e| connect_error(error_chain(&e)))
}

/// Basic-auth handshake. Done on the raw Flight client rather than with
/// `FlightSqlServiceClient::handshake`, which folds the server's status into
/// a string and so loses its gRPC code (e.g. `Unauthenticated`).
async fn handshake(
    client: &mut FlightSqlServiceClient<Channel>,
    user: &str,
    password: &str,
) -> Result<String, CliError> {
    let credentials = BASE64_STANDARD.encode(format!("{user}:{password}"));
    let header = format!("Basic {credentials}")
        .parse()
        .map_err(|_| CliError::Other("the user name cannot be sent in a header".to_string()))?;
    let mut request = tonic::Request::new(futures::stream::iter([HandshakeRequest {
        protocol_version: 0,
        payload: Default::default(),
    }]));
    request.metadata_mut().insert("authorization", header);

    let response = client.inner_mut().handshake(request).await?;
    let header_token = response
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    let replies: Vec<_> = response.into_inner().try_collect().await?;
    if let Some(token) = header_token {
        return Ok(token);
    }
    // Some servers return the token in the handshake payload instead.
    replies
        .into_iter()
        .find_map(|reply| String::from_utf8(reply.payload.to_vec()).ok())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            CliError::Other("the server accepted the login but sent no bearer token".to_string())
        })
}

/// The token of an `authorization: Bearer <token>` header value.
fn bearer_token(value: &str) -> Option<String> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(host: &str) -> ConnectOptions {
        ConnectOptions {
            host: host.to_string(),
            port: 50051,
            auth: Auth::None,
        }
    }

    #[test]
    fn target_and_uri() {
        assert_eq!(options("127.0.0.1").target(), "127.0.0.1:50051");
        assert_eq!(options("::1").target(), "[::1]:50051");
        assert_eq!(options("[::1]").target(), "[::1]:50051");
        assert_eq!(options("sqe.local").uri(), "http://sqe.local:50051");
    }

    #[test]
    fn parses_bearer_header() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def".to_string()));
        assert_eq!(bearer_token("bearer abc"), Some("abc".to_string()));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[tokio::test]
    async fn unreachable_server_names_host_and_port() {
        // Port 1 on localhost is essentially never listening.
        let mut opts = options("127.0.0.1");
        opts.port = 1;
        match Session::connect(&opts).await {
            Ok(_) => panic!("connected to port 1"),
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.starts_with("could not connect to SQE at 127.0.0.1:1: "),
                    "{message}"
                );
            }
        }
    }
}
