//! `grpc.health.v1` checks, for `oxport health` (container and systemd
//! probes) and tests.

use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::{Client, ClientError, Result};

/// The service name the exporter registers its status under.
pub const EXPORTER_SERVICE: &str = "oxport.exporter.v1.Exporter";

/// Asks the server at `addr` for the status of `service` ("" for the server
/// as a whole), within `timeout` including the connection.
pub async fn check(addr: &str, service: &str, timeout: Duration) -> Result<ServingStatus> {
    let ask = async {
        let client = Client::connect(addr).await?;
        let resp = HealthClient::new(client.channel())
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .map_err(|status| not_grpc(status, addr))?;
        Ok::<_, ClientError>(resp.into_inner().status())
    };
    tokio::time::timeout(timeout, ask).await.map_err(|_| {
        ClientError::Protocol(format!("no health answer from {addr} within {timeout:?}"))
    })?
}

/// A status that only says HTTP/2 failed means the other end is no gRPC
/// server (an HTTP/1 port, for example): say so, naming the address. Which
/// text the HTTP/2 client gives depends on when the other end answers the
/// preface or hangs up: "h2 protocol error", a bare "transport error", or
/// "operation was canceled".
fn not_grpc(status: tonic::Status, addr: &str) -> ClientError {
    let m = status.message();
    let client_side = [
        "h2 protocol error",
        "transport error",
        "operation was canceled",
    ];
    if client_side.iter().any(|t| m.starts_with(t)) {
        return ClientError::Protocol(format!(
            "{addr} does not speak gRPC over HTTP/2 ({m}): is it the address of an oxport server?"
        ));
    }
    ClientError::Status(status)
}
