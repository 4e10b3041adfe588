//! The gRPC transport (tonic): decode, call the service, encode — the same service layer and the
//! same error table as HTTP. Four services, a file each: `Retrieval` (search, context,
//! documents and chunks), `Ingest` (documents and Shopify catalogs), `Admin` (domains,
//! principals, grants, keys) and `Auth` (delegated tokens).

mod admin;
mod auth;
mod ingest;
mod retrieval;

use std::sync::Arc;
use std::time::Instant;

use dartmouth_domains::Caller;
use tonic::{Request, Response, Status};

use crate::error::ApiResult;
use crate::service::Service;

pub use ingest::ingest_document;
pub use retrieval::{context_input, search_input};

pub struct Grpc {
    pub svc: Arc<Service>,
}

impl Grpc {
    /// The client address's budget first, then the credential.
    pub(super) async fn caller<T>(&self, request: &Request<T>) -> ApiResult<Caller> {
        self.svc
            .throttle_address(request.remote_addr().map(|a| a.ip()))?;
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        let certificate = self.svc.certificate_principal(true, request.remote_addr());
        self.svc
            .authenticate_from(header, certificate.as_ref())
            .await
    }

    /// Runs one call with its latency recorded under the method's name.
    pub(super) async fn observe<T>(
        &self,
        method: &str,
        call: impl Future<Output = ApiResult<T>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let outcome = call.await;
        let code = match &outcome {
            Ok(_) => "OK".to_string(),
            Err(e) => format!("{:?}", e.code.grpc()),
        };
        self.svc
            .metrics
            .request("grpc", method, &code, started.elapsed());
        // In the call's span (`trace::grpc_span`): its request and trace ids.
        tracing::info!(
            code = %code,
            ms = started.elapsed().as_secs_f64() * 1e3,
            "done"
        );
        outcome.map(Response::new).map_err(Status::from)
    }
}
