//! `dartmouth.v1.Admin`: domains, principals, grants and keys.

use dartmouth_domains::{Domain, Grant, KeyInfo, Principal, PrincipalKind, Role};
use tonic::{Request, Response, Status};

use super::Grpc;
use crate::proto as pb;
use crate::service::{DomainInput, GrantInput, KeyInput, PrincipalInput};

fn domain_info(d: Domain) -> pb::DomainInfo {
    pb::DomainInfo {
        id: d.id,
        name: d.name,
        description: d.description,
        settings_json: d.settings.to_string(),
        created_at: d.created_at,
    }
}

fn principal_info(p: Principal) -> pb::PrincipalInfo {
    pb::PrincipalInfo {
        id: p.id,
        name: p.name,
        kind: p.kind.as_str().to_string(),
        superuser: p.superuser,
        created_at: p.created_at,
    }
}

fn grant_info(g: Grant) -> pb::GrantInfo {
    pb::GrantInfo {
        principal: g.principal,
        domain: g.domain,
        role: g.role.as_str().to_string(),
    }
}

fn key_info(k: KeyInfo) -> pb::KeyInfo {
    pb::KeyInfo {
        id: k.id,
        principal: k.principal,
        domains: k.domains.map(|names| pb::DomainNames { names }),
        created_at: k.created_at,
        expires_at: k.expires_at,
        revoked_at: k.revoked_at,
        role: k.role.map(|r| r.as_str().to_string()),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for Grpc {
    async fn list_domains(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::DomainList>, Status> {
        self.observe("ListDomains", async {
            let caller = self.caller(&request).await?;
            let domains = self.svc.list_domains(&caller).await?;
            Ok(pb::DomainList {
                domains: domains.into_iter().map(domain_info).collect(),
            })
        })
        .await
    }

    async fn create_domain(
        &self,
        request: Request<pb::CreateDomainRequest>,
    ) -> Result<Response<pb::DomainInfo>, Status> {
        self.observe("CreateDomain", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = DomainInput {
                name: r.name,
                description: r.description,
                embedder: (!r.embedder.is_empty()).then_some(r.embedder),
                option_names: r.option_names.into_iter().collect(),
                ..DomainInput::default()
            };
            Ok(domain_info(self.svc.create_domain(&caller, input).await?))
        })
        .await
    }

    async fn delete_domain(
        &self,
        request: Request<pb::DeleteDomainRequest>,
    ) -> Result<Response<pb::DomainInfo>, Status> {
        self.observe("DeleteDomain", async {
            let caller = self.caller(&request).await?;
            let name = request.into_inner().name;
            Ok(domain_info(self.svc.delete_domain(&caller, &name).await?))
        })
        .await
    }

    async fn list_principals(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::PrincipalList>, Status> {
        self.observe("ListPrincipals", async {
            let caller = self.caller(&request).await?;
            let principals = self.svc.list_principals(&caller).await?;
            Ok(pb::PrincipalList {
                principals: principals.into_iter().map(principal_info).collect(),
            })
        })
        .await
    }

    async fn create_principal(
        &self,
        request: Request<pb::CreatePrincipalRequest>,
    ) -> Result<Response<pb::PrincipalInfo>, Status> {
        self.observe("CreatePrincipal", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = PrincipalInput {
                kind: PrincipalKind::parse(&r.kind)?,
                name: r.name,
            };
            Ok(principal_info(
                self.svc.create_principal(&caller, input).await?,
            ))
        })
        .await
    }

    async fn list_grants(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::GrantList>, Status> {
        self.observe("ListGrants", async {
            let caller = self.caller(&request).await?;
            let grants = self.svc.list_grants(&caller).await?;
            Ok(pb::GrantList {
                grants: grants.into_iter().map(grant_info).collect(),
            })
        })
        .await
    }

    async fn grant(
        &self,
        request: Request<pb::GrantInfo>,
    ) -> Result<Response<pb::GrantInfo>, Status> {
        self.observe("Grant", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = GrantInput {
                role: Role::parse(&r.role)?,
                principal: r.principal,
                domain: r.domain,
            };
            Ok(grant_info(self.svc.grant(&caller, input).await?))
        })
        .await
    }

    async fn revoke_grant(
        &self,
        request: Request<pb::RevokeGrantRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("RevokeGrant", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            self.svc
                .revoke_grant(&caller, &r.principal, &r.domain)
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::KeyList>, Status> {
        self.observe("ListKeys", async {
            let caller = self.caller(&request).await?;
            let keys = self.svc.list_keys(&caller).await?;
            Ok(pb::KeyList {
                keys: keys.into_iter().map(key_info).collect(),
            })
        })
        .await
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::NewKey>, Status> {
        self.observe("CreateKey", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let input = KeyInput {
                principal: r.principal,
                domains: r.domains.map(|d| d.names),
                expires_in: r.expires_in,
                role: (!r.role.is_empty())
                    .then(|| Role::parse(&r.role))
                    .transpose()?,
            };
            let out = self.svc.create_key(&caller, input).await?;
            Ok(pb::NewKey {
                key: Some(key_info(out.key)),
                secret: out.secret,
            })
        })
        .await
    }

    async fn revoke_key(
        &self,
        request: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("RevokeKey", async {
            let caller = self.caller(&request).await?;
            let id = request.into_inner().id;
            self.svc.revoke_key(&caller, &id).await?;
            Ok(pb::Empty {})
        })
        .await
    }
}
