//! `dartmouth.v1.Auth`: delegated tokens.

use tonic::{Request, Response, Status};

use super::Grpc;
use crate::proto as pb;
use crate::service::DelegateInput;

#[tonic::async_trait]
impl pb::auth_server::Auth for Grpc {
    async fn delegate(
        &self,
        request: Request<pb::DelegateRequest>,
    ) -> Result<Response<pb::DelegatedToken>, Status> {
        self.observe("Delegate", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = DelegateInput {
                end_user: r.end_user,
                domains: r.domains,
                ttl_seconds: r.ttl_seconds,
            };
            let d = self.svc.delegate(&caller, input).await?;
            Ok(pb::DelegatedToken {
                token: d.token,
                expires_at: d.expires_at,
                end_user: d.end_user,
                domains: d.domains,
            })
        })
        .await
    }
}
