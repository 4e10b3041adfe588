//! `dartmouth.v1.Admin`: domains, principals, grants and keys.

use dartmouth_domains::{Domain, Grant, KeyInfo, Principal, PrincipalKind, Role};
use tonic::{Request, Response, Status};

use super::Grpc;
use crate::proto as pb;
use crate::service::{
    AuditInput, ConnectInput, ConnectionOut, DomainInput, DomainUpdate, GrantInput, KeyInput,
    PrincipalInput, SnapshotOut, SnapshotSource,
};

fn domain_info(d: Domain) -> pb::DomainInfo {
    pb::DomainInfo {
        id: d.id,
        name: d.name,
        description: d.description,
        settings_json: d.settings.to_string(),
        created_at: d.created_at,
        generations_json: serde_json::to_string(&d.generations).unwrap_or_default(),
        task_id: String::new(),
    }
}

fn snapshot_info(s: SnapshotOut) -> pb::Snapshot {
    pb::Snapshot {
        name: s.name,
        created_at: s.created_at,
        backend: s.backend,
        schema_version: s.schema_version,
        bytes: s.bytes,
        domains: s
            .domains
            .into_iter()
            .map(|d| pb::SnapshotDomain {
                name: d.name,
                store_seq: d.store_seq,
                shard_seq: d.shard_seq,
            })
            .collect(),
        rows: s.rows.into_iter().collect(),
        encrypted: s.encrypted,
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
                model: (!r.model.is_empty()).then_some(r.model),
                rerank: r.rerank.map(super::retrieval::rerank_input),
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

    async fn get_domain_stats(
        &self,
        request: Request<pb::DomainRequest>,
    ) -> Result<Response<pb::DomainStats>, Status> {
        self.observe("GetDomainStats", async {
            let caller = self.caller(&request).await?;
            let s = self
                .svc
                .domain_stats(&caller, &request.into_inner().name)
                .await?;
            Ok(pb::DomainStats {
                domain: s.shard.domain,
                documents: s.shard.documents,
                chunks: s.shard.chunks,
                graph_points: s.shard.graph_points,
                applied_seq: s.shard.applied_seq,
                model: s.shard.model.id,
                dim: s.shard.model.dim as u64,
                variants: s.variants,
                stored_documents: s.stored_documents,
                stored_chunks: s.stored_chunks,
                last_seq: s.last_seq,
                last_sync: s.last_sync.unwrap_or_default(),
                generations_json: serde_json::to_string(&s.generations).unwrap_or_default(),
                other_generation_embedded: s.other_generation.map_or(0, |p| p.embedded),
                other_generation_chunks: s.other_generation.map_or(0, |p| p.chunks),
                quarantined: s
                    .quarantined
                    .into_iter()
                    .map(|q| pb::QuarantinedDocument {
                        doc_id: q.external_id,
                        seq: q.seq,
                        reason: q.reason,
                        at: q.at,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn update_domain(
        &self,
        request: Request<pb::UpdateDomainRequest>,
    ) -> Result<Response<pb::DomainInfo>, Status> {
        self.observe("UpdateDomain", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            if !r.set_option_names && !r.option_names.is_empty() {
                return Err(crate::error::ApiError::invalid(
                    "option_names: given without set_option_names = true",
                ));
            }
            let update = DomainUpdate {
                description: r.description,
                option_names: r
                    .set_option_names
                    .then(|| r.option_names.into_iter().collect()),
                model: (!r.model.is_empty()).then_some(r.model),
                rerank: r.rerank.map(super::retrieval::rerank_input),
            };
            let out = self.svc.update_domain(&caller, &r.name, update).await?;
            Ok(pb::DomainInfo {
                task_id: out.task.map(|t| t.id).unwrap_or_default(),
                ..domain_info(out.domain)
            })
        })
        .await
    }

    async fn rollback_model(
        &self,
        request: Request<pb::DomainRequest>,
    ) -> Result<Response<pb::DomainInfo>, Status> {
        self.observe("RollbackModel", async {
            let caller = self.caller(&request).await?;
            let out = self
                .svc
                .rollback_model(&caller, &request.into_inner().name)
                .await?;
            Ok(pb::DomainInfo {
                task_id: out.task.id,
                ..domain_info(out.domain)
            })
        })
        .await
    }

    async fn drop_old_generation(
        &self,
        request: Request<pb::DomainRequest>,
    ) -> Result<Response<pb::DomainInfo>, Status> {
        self.observe("DropOldGeneration", async {
            let caller = self.caller(&request).await?;
            let d = self
                .svc
                .drop_old_generation(&caller, &request.into_inner().name)
                .await?;
            Ok(domain_info(d))
        })
        .await
    }

    async fn reindex(
        &self,
        request: Request<pb::DomainRequest>,
    ) -> Result<Response<pb::ReindexResponse>, Status> {
        self.observe("Reindex", async {
            let caller = self.caller(&request).await?;
            let r = self
                .svc
                .reindex(&caller, &request.into_inner().name)
                .await?;
            Ok(pb::ReindexResponse {
                domain: r.domain,
                documents: r.documents,
                chunks: r.chunks,
                seq: r.seq,
                seconds: r.seconds,
            })
        })
        .await
    }

    async fn delete_principal(
        &self,
        request: Request<pb::DeletePrincipalRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("DeletePrincipal", async {
            let caller = self.caller(&request).await?;
            self.svc
                .delete_principal(&caller, &request.into_inner().name)
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn list_members(
        &self,
        request: Request<pb::GroupRequest>,
    ) -> Result<Response<pb::MemberList>, Status> {
        self.observe("ListMembers", async {
            let caller = self.caller(&request).await?;
            Ok(pb::MemberList {
                members: self
                    .svc
                    .members(&caller, &request.into_inner().group)
                    .await?,
            })
        })
        .await
    }

    async fn add_member(
        &self,
        request: Request<pb::MembershipRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("AddMember", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            self.svc.add_member(&caller, &r.group, &r.member).await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn remove_member(
        &self,
        request: Request<pb::MembershipRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("RemoveMember", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            self.svc.remove_member(&caller, &r.group, &r.member).await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn query_audit(
        &self,
        request: Request<pb::AuditRequest>,
    ) -> Result<Response<pb::AuditList>, Status> {
        self.observe("QueryAudit", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let text = |s: String| (!s.is_empty()).then_some(s);
            let input = AuditInput {
                since: (r.since != 0).then_some(r.since),
                until: (r.until != 0).then_some(r.until),
                actor: text(r.actor),
                action: text(r.action),
                target: text(r.target),
                outcome: text(r.outcome),
                limit: (r.limit != 0).then_some(r.limit as usize),
            };
            let entries = self.svc.audit_query(&caller, input).await?;
            Ok(pb::AuditList {
                entries: entries
                    .into_iter()
                    .map(|e| pb::AuditEntry {
                        id: e.id,
                        at: e.at,
                        actor: e.actor,
                        action: e.action,
                        target: e.target,
                        outcome: e.outcome,
                        detail: e.detail,
                        count: e.count,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn list_models(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ModelList>, Status> {
        self.observe("ListModels", async {
            let caller = self.caller(&request).await?;
            let models = self.svc.list_models(&caller).into_iter().map(|m| {
                let c = m.card;
                pb::ModelInfo {
                    id: c.id,
                    aliases: c.aliases,
                    kind: crate::service::snake(&c.kind),
                    description: c.description,
                    dim: c.dim.unwrap_or(0) as u32,
                    pooling: c
                        .pooling
                        .as_ref()
                        .map(crate::service::snake)
                        .unwrap_or_default(),
                    query_prefix: c.query_prefix,
                    passage_prefix: c.passage_prefix,
                    max_tokens: c.max_tokens as u32,
                    quantized: c.quantized,
                    source: c.source,
                    installed: m.installed.to_string(),
                    size_bytes: m.size_bytes.unwrap_or(0),
                    loaded: m.loaded,
                    measured: c.measured.into_iter().collect(),
                }
            });
            Ok(pb::ModelList {
                models: models.collect(),
            })
        })
        .await
    }

    async fn live_stats(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::LiveStatsResponse>, Status> {
        self.observe("LiveStats", async {
            let caller = self.caller(&request).await?;
            let s = self.svc.live_stats(&caller).await?;
            Ok(pb::LiveStatsResponse {
                uptime_seconds: s.uptime_seconds,
                requests_last_minute: s.requests.requests_last_minute,
                qps: s.requests.qps,
                p50_ms: s.requests.p50_ms,
                p99_ms: s.requests.p99_ms,
                domains: s
                    .domains
                    .into_iter()
                    .map(|d| pb::DomainLag {
                        domain: d.domain,
                        applied_seq: d.applied_seq,
                        last_seq: d.last_seq,
                        lag: d.lag,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn create_snapshot(
        &self,
        request: Request<pb::CreateSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        self.observe("CreateSnapshot", async {
            let caller = self.caller(&request).await?;
            let request = request.into_inner();
            let name = (!request.name.is_empty()).then_some(request.name);
            Ok(snapshot_info(
                self.svc
                    .create_snapshot(&caller, name, request.encrypt)
                    .await?,
            ))
        })
        .await
    }

    async fn list_snapshots(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::SnapshotList>, Status> {
        self.observe("ListSnapshots", async {
            let caller = self.caller(&request).await?;
            let snapshots = self.svc.list_snapshots(&caller).await?;
            Ok(pb::SnapshotList {
                snapshots: snapshots.into_iter().map(snapshot_info).collect(),
            })
        })
        .await
    }

    async fn restore_snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        self.observe("RestoreSnapshot", async {
            let caller = self.caller(&request).await?;
            let name = request.into_inner().name;
            Ok(snapshot_info(
                self.svc
                    .restore_snapshot(&caller, SnapshotSource::Named(name))
                    .await?,
            ))
        })
        .await
    }

    async fn connect_shop(
        &self,
        request: Request<pb::ConnectShopRequest>,
    ) -> Result<Response<pb::ShopConnection>, Status> {
        self.observe("ConnectShop", async {
            let caller = self.caller(&request).await?;
            let r = request.into_inner();
            let some = |s: String| (!s.is_empty()).then_some(s);
            let input = ConnectInput {
                shop: r.shop,
                token_env: r.token_env,
                api_version: some(r.api_version),
                every: some(r.every),
                metafields: r.metafields,
                register_webhooks: some(r.register_webhooks),
            };
            Ok(shop_connection(
                self.svc.connect_shop(&caller, &r.domain, input).await?,
            ))
        })
        .await
    }

    async fn get_shop_status(
        &self,
        request: Request<pb::DomainRequest>,
    ) -> Result<Response<pb::ShopConnection>, Status> {
        self.observe("GetShopStatus", async {
            let caller = self.caller(&request).await?;
            Ok(shop_connection(
                self.svc
                    .shop_status(&caller, &request.into_inner().name)
                    .await?,
            ))
        })
        .await
    }

    async fn disconnect_shop(
        &self,
        request: Request<pb::DomainRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.observe("DisconnectShop", async {
            let caller = self.caller(&request).await?;
            self.svc
                .disconnect_shop(&caller, &request.into_inner().name)
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }
}

fn shop_connection(c: ConnectionOut) -> pb::ShopConnection {
    pb::ShopConnection {
        domain: c.domain,
        shop: c.shop,
        api_version: c.api_version,
        token_env: c.token_env,
        every_ms: c.every_ms,
        metafields: c.metafields,
        next_run: c.next_run,
        syncing: c.syncing,
        state_json: c.state.to_string(),
        webhooks: c
            .webhooks
            .into_iter()
            .map(|(topic, outcome)| pb::WebhookSubscription {
                topic,
                outcome: outcome.to_string(),
            })
            .collect(),
    }
}
