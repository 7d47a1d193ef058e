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
            .await;
        Ok::<_, ClientError>(client.outcome(resp)?.into_inner().status())
    };
    tokio::time::timeout(timeout, ask).await.map_err(|_| {
        ClientError::Protocol(format!("no health answer from {addr} within {timeout:?}"))
    })?
}
