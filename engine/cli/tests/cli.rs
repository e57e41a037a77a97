//! End-to-end tests of the `sqe-cli` binary against a small in-process
//! Flight SQL server that answers a few fixed statements.

use std::io::Write;
use std::pin::Pin;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, Ticket,
};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tokio::runtime::Runtime;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

const TOKEN: &str = "token-123";
const PARSE_ERROR: &str =
    "sql parser error: Expected: an SQL statement, found: FROMM at Line: 1, Column: 10";

#[derive(Clone)]
struct MockServer {
    require_auth: bool,
}

fn fruits_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]))
}

/// The schema and batches of the statements the mock knows.
fn answer(sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
    let batch = |schema: &SchemaRef, columns| {
        RecordBatch::try_new(Arc::clone(schema), columns)
            .map_err(|e| Status::internal(e.to_string()))
    };
    match sql {
        "SELECT * FROM fruits" => {
            let schema = fruits_schema();
            let first = batch(
                &schema,
                vec![
                    Arc::new(Int64Array::from(vec![1])),
                    Arc::new(StringArray::from(vec![Some("apple; red")])),
                ],
            )?;
            let second = batch(
                &schema,
                vec![
                    Arc::new(Int64Array::from(vec![2])),
                    Arc::new(StringArray::from(vec![None::<&str>])),
                ],
            )?;
            Ok((schema, vec![first, second]))
        }
        "SELECT * FROM fruits WHERE false" => Ok((fruits_schema(), vec![])),
        "INSERT INTO fruits VALUES (3, 'pear')" => {
            let schema = Arc::new(Schema::new(vec![Field::new(
                "count",
                DataType::UInt64,
                false,
            )]));
            let result = batch(&schema, vec![Arc::new(UInt64Array::from(vec![1]))])?;
            Ok((schema, vec![result]))
        }
        "SET x = 1" => Ok((Arc::new(Schema::empty()), vec![])),
        _ => Err(Status::invalid_argument(PARSE_ERROR)),
    }
}

impl MockServer {
    fn check_token<T>(&self, request: &Request<T>) -> Result<(), Status> {
        if !self.require_auth {
            return Ok(());
        }
        let expected = format!("Bearer {TOKEN}");
        match request.metadata().get("authorization").map(|v| v.to_str()) {
            Some(Ok(value)) if value == expected => Ok(()),
            _ => Err(Status::unauthenticated("no valid bearer token")),
        }
    }
}

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl FlightSqlService for MockServer {
    type FlightService = MockServer;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let expected = format!("Basic {}", BASE64_STANDARD.encode("alice:secret"));
        match request.metadata().get("authorization").map(|v| v.to_str()) {
            Some(Ok(value)) if value == expected => {}
            _ => return Err(Status::unauthenticated("invalid user or password")),
        }
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Default::default(),
        };
        let mut response: Response<HandshakeStream> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let header = MetadataValue::try_from(format!("Bearer {TOKEN}"))
            .map_err(|e| Status::internal(e.to_string()))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.check_token(&request)?;
        let (schema, _) = answer(&query.query)?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        };
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            );
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check_token(&request)?;
        let sql = String::from_utf8(ticket.statement_handle.to_vec())
            .map_err(|e| Status::internal(e.to_string()))?;
        let (schema, batches) = answer(&sql)?;
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(Status::from);
        Ok(Response::new(stream.boxed()))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Starts the mock on a free local port; it runs as long as `runtime` lives.
fn start_server(runtime: &Runtime, require_auth: bool) -> u16 {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind a local port");
    let port = listener.local_addr().expect("local address").port();
    let incoming = futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.and_then(|(stream, _)| {
            stream.set_nodelay(true)?;
            Ok(stream)
        });
        Some((accepted, listener))
    });
    let service = FlightServiceServer::new(MockServer { require_auth });
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    port
}

fn cli(port: u16, args: &[&str], stdin: Option<&str>) -> Output {
    cli_with_env(port, args, stdin, &[])
}

fn cli_with_env(port: u16, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sqe-cli"))
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .env_remove("SQE_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sqe-cli");
    {
        let mut input = child.stdin.take().expect("stdin of sqe-cli");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("run sqe-cli")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const FRUITS_TABLE: &str = "\
+----+------------+
| id | name       |
+----+------------+
|  1 | apple; red |
|  2 | NULL       |
+----+------------+
(2 rows)
";

#[test]
fn executes_statements_as_a_table() {
    let runtime = Runtime::new().expect("runtime");
    let port = start_server(&runtime, false);
    let output = cli(
        port,
        &[
            "-e",
            "SELECT * FROM fruits; -- a comment\nINSERT INTO fruits VALUES (3, 'pear');SET x = 1",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = format!(
        "{FRUITS_TABLE}\n+-------+\n| count |\n+-------+\n|     1 |\n+-------+\n(1 row)\n\n(0 rows)\n"
    );
    assert_eq!(stdout(&output), expected);
    assert_eq!(stderr(&output), "");
}

#[test]
fn formats_csv_and_json() {
    let runtime = Runtime::new().expect("runtime");
    let port = start_server(&runtime, false);
    let csv = cli(
        port,
        &["--format", "csv", "-e", "SELECT * FROM fruits"],
        None,
    );
    assert!(csv.status.success(), "{}", stderr(&csv));
    assert_eq!(stdout(&csv), "id,name\n1,apple; red\n2,\n");

    let json = cli(
        port,
        &["--format", "json", "-e", "SELECT * FROM fruits; SET x = 1"],
        None,
    );
    assert!(json.status.success(), "{}", stderr(&json));
    assert_eq!(
        stdout(&json),
        "{\"id\":1,\"name\":\"apple; red\"}\n{\"id\":2,\"name\":null}\n"
    );

    let empty = cli(
        port,
        &["--format", "csv", "-e", "SELECT * FROM fruits WHERE false"],
        None,
    );
    assert_eq!(stdout(&empty), "id,name\n");
}

#[test]
fn stops_at_the_first_error_with_the_server_message() {
    let runtime = Runtime::new().expect("runtime");
    let port = start_server(&runtime, false);
    let output = cli(
        port,
        &[
            "-e",
            "SELECT * FROM fruits; SELECT * FROMM fruits; SET x = 1",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), FRUITS_TABLE);
    assert_eq!(
        stderr(&output),
        format!("ERROR: InvalidArgument: {PARSE_ERROR}\n")
    );
}

#[test]
fn reads_statements_from_a_file_and_from_stdin() {
    let runtime = Runtime::new().expect("runtime");
    let port = start_server(&runtime, false);
    let dir = std::env::temp_dir().join(format!("sqe-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("script.sql");
    std::fs::write(&file, "/* setup; */\nSELECT * FROM fruits;\n").expect("write script");
    let from_file = cli(port, &["-f", file.to_str().expect("utf-8 path")], None);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    assert_eq!(stdout(&from_file), FRUITS_TABLE);

    let from_stdin = cli(port, &[], Some("SELECT * FROM fruits;\n"));
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert_eq!(stdout(&from_stdin), FRUITS_TABLE);

    let missing = cli(port, &["-f", "/nonexistent/script.sql"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("ERROR: could not read /nonexistent/script.sql: "),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn authenticates_with_a_password_or_a_token() {
    let runtime = Runtime::new().expect("runtime");
    let port = start_server(&runtime, true);
    let query = ["-e", "SELECT * FROM fruits"];

    let anonymous = cli(port, &query, None);
    assert_eq!(anonymous.status.code(), Some(1));
    assert_eq!(
        stderr(&anonymous),
        "ERROR: Unauthenticated: no valid bearer token\n"
    );

    let login = cli(
        port,
        &[&["-u", "alice", "--password", "secret"], &query[..]].concat(),
        None,
    );
    assert!(login.status.success(), "{}", stderr(&login));
    assert_eq!(stdout(&login), FRUITS_TABLE);

    let bad_login = cli(
        port,
        &[&["-u", "alice", "--password", "wrong"], &query[..]].concat(),
        None,
    );
    assert_eq!(bad_login.status.code(), Some(1));
    assert_eq!(
        stderr(&bad_login),
        "ERROR: Unauthenticated: invalid user or password\n"
    );

    let env_password = cli_with_env(
        port,
        &[&["-u", "alice"], &query[..]].concat(),
        None,
        &[("SQE_PASSWORD", "secret")],
    );
    assert!(env_password.status.success(), "{}", stderr(&env_password));
    assert_eq!(stdout(&env_password), FRUITS_TABLE);

    // An exported SQE_PASSWORD does not get in the way of --token.
    let token = cli_with_env(
        port,
        &[&["--token", TOKEN], &query[..]].concat(),
        None,
        &[("SQE_PASSWORD", "secret")],
    );
    assert!(token.status.success(), "{}", stderr(&token));
    assert_eq!(stdout(&token), FRUITS_TABLE);
}

#[test]
fn reports_an_unreachable_server() {
    // Bind and release a port so that nothing is listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let output = cli(port, &["-e", "SELECT 1"], None);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.starts_with(&format!(
            "ERROR: could not connect to SQE at 127.0.0.1:{port}: "
        )),
        "{message}"
    );
}
